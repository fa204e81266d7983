"""Before/after on the image page: the same query under the base model, its adapted and
fine-tuned versions and label-free re-ranking, side by side; per-class precision per variant.

The variants come from :mod:`embeddings.compare` (pure logic). Here they are cached
(``st.cache_resource``: they hold loaded indexes) and laid out. A fine-tuned model's index over
the current split is built in the background like any other index.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from embeddings.errors import EmbeddingsError
from ui.image_charts import class_mark, framed
from ui.image_controls import ImageSettings
from ui.image_data import (
    collection_fingerprint,
    current_data_dir,
    index_or_job,
    load_image_embedder,
    load_index,
    thumbnails,
)
from ui.jobs import Job

RERANKINGS = ("aqe", "kreciprocal")  # the label-free re-rankings that measurably helped (rerank.py)
RERANK_NAMES = {"aqe": "query expansion", "kreciprocal": "k-reciprocal"}
THUMB = 72


def variant_label(name: str) -> str:
    """A variant's name for people: re-ranking methods spelled out."""
    for method, words in RERANK_NAMES.items():
        name = name.replace(f"+ {method}", f"+ {words}")
    return name


@st.cache_resource(show_spinner="Preparing the adapted and re-ranked variants…", max_entries=4)
def comparison_variants(
    source: str, split: str, fingerprint: str, model_id: str, precision: str, data_dir: str, finetuned: tuple
):
    """Variants for one index: base, base re-ranked, every saved projection head, and the
    fine-tuned models in ``finetuned`` (``(model id, note)`` pairs whose indexes are built)."""
    from embeddings.index.compare import Variant, base_variants

    index = load_index(source, split, fingerprint, model_id, precision, data_dir)
    embedder = load_image_embedder(model_id, precision)
    found = base_variants(index, embedder, data_dir)
    variants = [found[0]]
    from embeddings.index.rerank import K1

    usable = [m for m in RERANKINGS if m != "kreciprocal" or index.count > K1 + 1]  # it needs a k1-NN graph
    variants += [Variant(f"{found[0].name} + {m}", index, m) for m in usable]
    variants += found[1:]
    for ft_id, note in finetuned:
        ft_index = load_index(source, split, fingerprint, ft_id, precision, data_dir)
        variants.append(Variant(f"fine-tuned ({ft_id})", ft_index, "none", note))
    return variants


def finetuned_models(settings: ImageSettings) -> tuple[list[tuple[str, str]], list[Job]]:
    """The newest fine-tuned model for the sidebar's image model: ``([(id, note)] when its index
    over this split is ready, [its build job] while it is being built)``."""
    from embeddings.adapt.saved import saved_runs

    try:
        runs = saved_runs(current_data_dir(), settings.model_id)[:1]
    except OSError:
        return [], []
    ready, jobs = [], []
    fp = collection_fingerprint(settings.source, settings.split)
    for ft_id, _folder, info in runs:
        note = ""
        if info.get("training_collection", {}).get("fingerprint") == fp:
            note = "trained on these very labels: its precision here is optimistic"
        try:
            found = index_or_job(settings.source, settings.split, ft_id, settings.precision)
        except EmbeddingsError:
            continue
        if isinstance(found, Job):
            jobs.append(found)
        else:
            ready.append((ft_id, note))
    return ready, jobs


def load_variants(settings: ImageSettings) -> tuple[list, tuple]:
    """``(variants, key)`` for the sidebar settings, where ``key`` is the argument tuple of
    :func:`comparison_variants`; fine-tuned indexes still building get a note, and a problem is
    shown and stops the page."""
    try:
        ready, jobs = finetuned_models(settings)
        for job in jobs:
            if job.state == "failed":
                st.warning(f"The fine-tuned model's index could not be built: {job.error}")
            else:
                st.caption(f"{job.label}: {job.fraction:.0%} done; it joins the comparison when ready.")
        key = (
            settings.source,
            settings.split,
            collection_fingerprint(settings.source, settings.split),
            settings.model_id,
            settings.precision,
            current_data_dir(),
            tuple(ready),
        )
        return comparison_variants(*key), key
    except EmbeddingsError as exc:
        st.error(f"The comparison could not be prepared: {exc}")
        st.stop()


def pick_variants(variants, key: str) -> list:
    """A multiselect of the variants to show (default: all but k-reciprocal, at most four)."""
    names = [v.name for v in variants]
    default = [n for n in names if not n.endswith("+ kreciprocal")][:4]
    chosen = st.multiselect("Variants", names, default=default, key=key, format_func=variant_label)
    return [v for v in variants if v.name in chosen]


def side_by_side(settings: ImageSettings, variants, query_id: int, k: int) -> None:
    """The query's top-``k`` neighbours under each variant, in columns, with precision@k."""
    from embeddings.index.compare import neighbours_side_by_side

    if not variants:
        st.info("Pick at least one variant.")
        return
    try:
        found = neighbours_side_by_side(variants, query_id, k)
    except EmbeddingsError as exc:
        st.error(str(exc))
        return
    fp = collection_fingerprint(settings.source, settings.split)
    columns = st.columns(len(variants))
    for column, variant in zip(columns, variants, strict=True):
        result = found[variant.name]
        with column:
            st.markdown(f"**{variant_label(variant.name)}**")
            if result.same_class is not None:
                st.metric(f"precision@{k}", f"{float(np.mean(result.same_class)):.2f}")
            if variant.note:
                st.caption(f":orange[{variant.note}]")
            thumbs = thumbnails(settings.source, settings.split, fp, tuple(int(i) for i in result.ids), THUMB)
            per_row = max(2, min(5, 10 // len(variants)))
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
                    st.caption(f"{class_mark(same)}{label} · {score:.2f}")


@st.cache_data(show_spinner="Scoring every variant (re-ranking the whole collection once)…", max_entries=8)
def variant_precision(
    source: str,
    split: str,
    fingerprint: str,
    model_id: str,
    precision: str,
    data_dir: str,
    finetuned: tuple,
    names: tuple[str, ...],
    k: int,
) -> dict[str, list]:
    """Per-class precision@k table (leave-one-out) for the named variants."""
    from embeddings.index.compare import per_class_table, precision_by_variant

    variants = comparison_variants(source, split, fingerprint, model_id, precision, data_dir, finetuned)
    chosen = [v for v in variants if v.name in names]
    return per_class_table(precision_by_variant(chosen, k))


def per_class_comparison(settings: ImageSettings, k: int) -> None:
    """Per-class precision@k of each variant: a grouped bar chart and the table."""
    import pandas as pd

    from ui.image_charts import variant_bars

    variants, key = load_variants(settings)
    chosen = pick_variants(variants, key="category_variants")
    if not chosen:
        st.info("Pick at least one variant.")
        return
    try:
        table = variant_precision(*key, tuple(v.name for v in chosen), k)
    except EmbeddingsError as exc:
        st.error(f"The variants could not be scored: {exc}")
        return
    labels = {v.name: variant_label(v.name) for v in chosen}
    st.plotly_chart(variant_bars(table, k, labels), width="stretch")
    frame = pd.DataFrame(table).set_index("class").rename(columns=labels)
    st.dataframe(frame.style.format("{:.3f}"), width="stretch")
    for v in chosen:
        if v.note:
            st.caption(f"{variant_label(v.name)}: :orange[{v.note}]")
