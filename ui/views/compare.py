"""Before/after on the image page: the same query under the base model, its adapted and
fine-tuned versions and label-free re-ranking, side by side; per-class precision per variant.

The variants come from :mod:`embeddings.compare` (pure logic), cached by
:func:`ui.cached.comparison_variants` (``st.cache_resource``: they hold loaded indexes); here
they are laid out. A fine-tuned model's index over
the current split is built in the background like any other index.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import streamlit as st

from embeddings.errors import EmbeddingsError
from embeddings.image.display import class_mark, framed
from embeddings.text.wordlists import escape_markdown
from ui.cached import comparison_variants, index_or_job, index_request, thumbnails, variant_precision
from ui.jobs import Job
from ui.settings import ImageSettings, IndexRequest
from ui.views.text import show_problem

RERANK_NAMES = {"aqe": "query expansion", "kreciprocal": "k-reciprocal"}
THUMB = 72


def variant_label(name: str) -> str:
    """A variant's name for people: re-ranking methods spelled out."""
    for method, words in RERANK_NAMES.items():
        name = name.replace(f"+ {method}", f"+ {words}")
    return name


def finetuned_models(settings: ImageSettings) -> tuple[list[tuple[str, str]], list[Job]]:
    """The newest fine-tuned model for the sidebar's image model: ``([(id, note)] when its index
    over this split is ready, [its build job] while it is being built)``."""
    from embeddings.adapt.saved import saved_runs

    try:
        runs = saved_runs(settings.data_dir, settings.model_id)[:1]
    except OSError:
        return [], []
    ready, jobs = [], []
    request = index_request(settings)
    for ft_id, _folder, info in runs:
        note = ""
        if info.get("training_collection", {}).get("fingerprint") == request.fingerprint:
            note = "trained on these very labels: its precision here is optimistic"
        try:
            found = index_or_job(replace(request, model_id=ft_id))
        except EmbeddingsError:
            continue
        if isinstance(found, Job):
            jobs.append(found)
        else:
            ready.append((ft_id, note))
    return ready, jobs


def load_variants(settings: ImageSettings) -> tuple[list, tuple]:
    """``(variants, key)`` for the sidebar settings, where ``key`` is the argument tuple of
    :func:`ui.cached.comparison_variants`; fine-tuned indexes still building get a note, and a
    problem is shown and stops the page."""
    try:
        ready, jobs = finetuned_models(settings)
        for job in jobs:
            if job.stopped:
                st.warning(f"The fine-tuned model's index could not be built: {job.error}")
            else:
                st.caption(f"{job.label}: {job.fraction:.0%} done; it joins the comparison when ready.")
        key = (index_request(settings), tuple(ready))
        return comparison_variants(*key), key
    except EmbeddingsError as exc:
        show_problem(f"The comparison could not be prepared: {exc}")
        st.stop()


def pick_variants(variants, key: str) -> list:
    """A multiselect of the variants to show (default: all but k-reciprocal, at most four)."""
    names = [v.name for v in variants]
    default = [n for n in names if not n.endswith("+ kreciprocal")][:4]
    chosen = st.multiselect("Variants", names, default=default, key=key, format_func=variant_label)
    return [v for v in variants if v.name in chosen]


def row_length(k: int, cap: int) -> int:
    """Thumbnails per row for ``k`` neighbours: the largest count up to ``cap`` that divides ``k``
    (10 in rows of 5 or 2, never 3-3-3-1); ``cap`` itself when only 1 divides (a prime ``k``)."""
    for n in range(min(cap, k), 1, -1):
        if k % n == 0:
            return n
    return max(1, min(cap, k))


def side_by_side(request: IndexRequest, variants, query_id: int, k: int) -> None:
    """The query's top-``k`` neighbours under each variant, in columns, with precision@k."""
    from embeddings.index.compare import neighbours_side_by_side, pair_cosines
    from ui.cached import load_index
    from ui.views.image import HEAD_SCORES_NOTE

    if not variants:
        st.info("Pick at least one variant.")
        return
    try:
        found = neighbours_side_by_side(variants, query_id, k)
    except EmbeddingsError as exc:
        st.error(str(exc))
        return
    columns = st.columns(len(variants))
    for column, variant in zip(columns, variants, strict=True):
        result = found[variant.name]
        with column:
            st.markdown(f"**{variant_label(variant.name)}**")
            if result.same_class is not None:
                st.metric(f"precision@{k}", f"{float(np.mean(result.same_class)):.2f}")
            if variant.note:
                st.caption(f":orange[{variant.note}]")
            base_scores = None
            if " head (" in variant.name:  # a projection head's cosines are all near 1: add the base's
                base_scores = pair_cosines(load_index(request), query_id, result.ids)
                st.caption(HEAD_SCORES_NOTE)
            thumbs = thumbnails(request, tuple(int(i) for i in result.ids), THUMB)
            per_row = row_length(len(result.ids), max(2, min(5, 10 // len(variants))))
            inner = st.columns(per_row)
            for n, (i, score, thumb) in enumerate(zip(result.ids, result.scores, thumbs, strict=True)):
                same = None if result.same_class is None else bool(result.same_class[n])
                label = (
                    variant.index.classes[int(result.labels[n])]
                    if result.labels is not None
                    else f"#{int(i)}"
                )
                with inner[n % per_row]:
                    st.image(framed(thumb, same, width=3), width="stretch")
                    shown = (
                        f"{score:.2f}" if base_scores is None else f"{score:.2f}, base {base_scores[n]:.2f}"
                    )
                    st.caption(f"{class_mark(same)}{escape_markdown(label)} · {shown}")


def summary_first(frame):
    """The per-class table with its ``all`` row (mean precision) first, seen without scrolling."""
    if "all" not in frame.index:
        return frame
    return frame.loc[["all", *[c for c in frame.index if c != "all"]]]


def per_class_comparison(settings: ImageSettings, k: int) -> None:
    """Per-class precision@k of each variant: a grouped bar chart and the table."""
    import pandas as pd

    from ui.charts.image import variant_bars

    variants, key = load_variants(settings)
    chosen = pick_variants(variants, key="category_variants")
    if not chosen:
        st.info("Pick at least one variant.")
        return
    try:
        table = variant_precision(*key, tuple(v.name for v in chosen), k)
    except EmbeddingsError as exc:
        show_problem(f"The variants could not be scored: {exc}")
        return
    labels = {v.name: variant_label(v.name) for v in chosen}
    st.plotly_chart(variant_bars(table, k, labels), width="stretch")
    frame = summary_first(pd.DataFrame(table).set_index("class").rename(columns=labels))
    st.dataframe(
        frame.style.format("{:.3f}").apply(
            lambda row: ["font-weight: bold" if row.name == "all" else ""] * len(row), axis=1
        ),
        width="stretch",
    )
    for v in chosen:
        if v.note:
            st.caption(f"{variant_label(v.name)}: :orange[{v.note}]")
