"""k-NN classification for any labelled index (images now, documents too): one query's predicted
label with its vote, and the whole index's leave-one-out accuracy against k beside the
nearest-class-centroid baseline, per class as a table."""

from __future__ import annotations

import numpy as np
import streamlit as st

from embeddings.errors import EmbeddingsError
from embeddings.index.knn import DEFAULT_K_MAX, vote
from embeddings.text.wordlists import escape_markdown
from ui.cached import knn_or_job
from ui.charts.knn import knn_curve_figure, vote_figure
from ui.jobs import Job
from ui.views.image import show_job_failure, wait_for_job
from ui.views.text import show_problem

VOTE_HELP = (
    "Each of the k neighbours votes for its class: plain, one vote each; weighted, with its cosine "
    "similarity. A tie goes to the tied class whose neighbour is nearest."
)


def _classifiable(index) -> str:
    """Why ``index`` cannot be classified ("" when it can)."""
    if getattr(index, "labels", None) is None:
        return "This collection has no labels, so there is nothing for k-NN to predict."
    if len(np.unique(index.labels)) < 2:
        return "This collection has only one class, so k-NN has nothing to choose between."
    return ""


def knn_vote_section(
    index, neighbour_ids, scores, true_label: str | None = None, key: str = "knn_vote"
) -> None:
    """The query's predicted label by a vote of its neighbours ``neighbour_ids`` (cosine ``scores``,
    best first), plain and weighted, with the vote as a bar chart; ✓/✗ against ``true_label`` when known
    (``key``: the chart's widget key, one per call on a page)."""
    why = _classifiable(index)
    if why:
        st.caption(why)
        return
    try:
        result = vote(index, neighbour_ids, scores)
    except EmbeddingsError as exc:
        show_problem(exc)
        return

    def verdict(label: str) -> str:
        if true_label is None:
            return ""
        return " ✓" if label == true_label else f" ✗ (it is *{escape_markdown(true_label)}*)"

    plain, weighted = result.plain_label, result.weighted_label
    st.markdown(
        f"**k-NN prediction (k={result.k}):** plain vote **{escape_markdown(plain)}** "
        f"({int(result.counts[result.plain])} of {result.k}){verdict(plain)} · weighted vote "
        f"**{escape_markdown(weighted)}** (cosine sum {result.weights[result.weighted]:.2f}){verdict(weighted)}",
        help=VOTE_HELP,
    )
    st.plotly_chart(
        vote_figure(result.classes, result.counts, result.weights, result.k),
        width="stretch",
        config={"displayModeBar": False},
        key=f"{key}_chart",
    )


def knn_curve_section(index, k_max: int = DEFAULT_K_MAX, key: str = "knn") -> None:
    """Leave-one-out k-NN accuracy for k = 1..``k_max`` (plain and weighted) beside the
    nearest-class-centroid baseline, and a per-class table at a chosen k (the best by default).

    Computed once per index in the background (progress bar) and saved beside it."""
    why = _classifiable(index)
    if why:
        st.info(why)
        return
    count = len(index.embeddings)
    k_max = min(k_max, count - 1)
    if k_max < 1:
        st.info(f"k-NN needs at least 2 items; this collection has {count}.")
        return
    try:
        curve = knn_or_job(index, k_max)
    except EmbeddingsError as exc:
        show_problem(exc)
        return
    if isinstance(curve, Job):
        if curve.stopped:
            show_job_failure("Classifying every item", curve, key=f"{key}_retry")
        else:
            wait_for_job(curve, "It is computed once per index and saved to disk.")
        return
    best_k, best, how = curve.best()
    st.markdown(
        f"Each of the {curve.queries:,} items is classified by a vote of its nearest neighbours, itself "
        f"left out. **Best: {best:.1%} at k={best_k}** ({how} vote); the nearest class centroid "
        f"(each item left out of its own class's mean) scores **{curve.centroid:.1%}**; always guessing the "
        f"largest class would score {max(curve.class_counts) / curve.queries:.1%}."
    )
    st.plotly_chart(
        knn_curve_figure(curve.ks, curve.plain, curve.weighted, curve.centroid, best_k, best),
        width="stretch",
        key=f"{key}_curve",
    )
    if curve.k_max > 1:
        k = st.slider("Per class at k", 1, curve.k_max, best_k, key=f"{key}_table_k", width=360)
    else:
        k = 1
    table = curve.per_class(k)
    st.dataframe(
        {
            "class": table["class"],
            "items": table["queries"],
            f"plain, k={k}": table["plain"],
            f"weighted, k={k}": table["weighted"],
            "nearest centroid": table["centroid"],
        },
        hide_index=True,
        column_config={
            name: st.column_config.ProgressColumn(name, format="%.3f", min_value=0.0, max_value=1.0)
            for name in (f"plain, k={k}", f"weighted, k={k}", "nearest centroid")
        },
        key=f"{key}_table",
    )
