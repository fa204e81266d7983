"""The class view's "Label conflicts" and "Near-duplicates" sections (layout only).

The numbers come from :mod:`embeddings.index.conflicts`, computed once per index (and pair of
indexes) as background jobs (:func:`ui.cached.label_disagreement_or_job`,
:func:`ui.cached.duplicate_candidates_or_job`) and saved beside the index; the share slider and the
threshold slider only filter what was computed, so moving them never searches again.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import streamlit as st

from embeddings.errors import EmbeddingsError
from embeddings.image.display import class_name, mosaic
from embeddings.index.conflicts import DEFAULT_K, DEFAULT_THRESHOLD, DUPLICATE_FLOOR
from embeddings.text.wordlists import escape_markdown
from ui.cached import (
    duplicate_candidates_or_job,
    index_manifest,
    index_request,
    label_disagreement_or_job,
    load_index,
    start_build,
    thumbnails,
)
from ui.jobs import Job
from ui.settings import ImageSettings
from ui.views.image import neighbour_grid, show_job_failure, wait_for_job
from ui.views.text import show_problem

SHOWN = 10  # tiles (conflicts) or pairs (near-duplicates) per page
COLUMNS = 5
TILE = 112
SELECTED_KEY = "conflict_selected"  # (index folder, id) of the label conflict whose neighbours are shown


def _ready(found, what: str, key: str):
    """``found`` when it is a result; else show its job's progress or failure and return None."""
    if not isinstance(found, Job):
        return found
    if found.stopped:
        show_job_failure(what, found, key=key)
    else:
        wait_for_job(found, f"{what} runs once per index; the result is saved beside it.")
    return None


def _page(count: int, key: str) -> int:
    """A page number input for ``count`` items, ``SHOWN`` a page (1 when they fit on one)."""
    pages = max(1, -(-count // SHOWN))
    if pages == 1:
        return 1
    kept = st.session_state.get(key)
    if isinstance(kept, int) and not 1 <= kept <= pages:
        st.session_state[key] = min(max(kept, 1), pages)
    return int(st.number_input(f"Page (of {pages})", 1, pages, key=key, step=1))


def _class_filter(classes: list[str], key: str, label: str = "Show") -> int | None:
    """A class selectbox: the chosen class's index, or None for all classes."""
    chosen = st.selectbox(label, ["all classes", *classes], key=key)
    return None if chosen == "all classes" else classes.index(chosen)


def label_conflicts_section(settings: ImageSettings, index) -> None:
    """The images whose nearest neighbours mostly carry another label, ranked; a click shows them."""
    st.subheader("Label conflicts")
    st.caption(
        f"Images whose {DEFAULT_K} nearest neighbours mostly carry another label: likely label errors, or "
        "images that genuinely look like another class. Ranked by the share of neighbours that disagree "
        "(ties: the same share weighted by cosine similarity)."
    )
    if index.count <= DEFAULT_K:
        st.info(f"Label conflicts need more than {DEFAULT_K} images; this collection has {index.count}.")
        return
    found = _ready(label_disagreement_or_job(index, DEFAULT_K), "Finding label conflicts", "retry_conflicts")
    if found is None:
        return
    c1, c2 = st.columns([3, 2], vertical_alignment="bottom")
    share = c1.slider(
        "Neighbours with another label, at least",
        0.5,
        1.0,
        0.5,
        step=1 / DEFAULT_K,
        format="%.1f",
        key="conflict_share",
    )
    with c2:
        focus = _class_filter(index.classes, "conflict_class")
    result = found.conflicts(share)
    counts = result.per_class
    total = np.bincount(found.labels, minlength=len(index.classes))
    st.markdown(
        f"**{len(result):,}** of {index.count:,} images ({len(result) / index.count:.1%}) have at least "
        f"{share:.0%} of their {DEFAULT_K} neighbours in another class."
    )
    with st.expander("Per class"):
        st.dataframe(
            pd.DataFrame(
                {
                    "class": index.classes,
                    "label conflicts": [counts[c] for c in index.classes],
                    "share of the class": [
                        counts[c] / max(1, n) for c, n in zip(index.classes, total, strict=True)
                    ],
                }
            ),
            hide_index=True,
            column_config={"share of the class": st.column_config.NumberColumn(format="percent")},
        )
    ids = result.ids if focus is None else result.ids[found.labels[result.ids] == focus]
    if not len(ids):
        st.info("No image of this class is a label conflict at this share.")
        return
    page = _page(len(ids), "conflict_page")
    shown = [int(i) for i in ids[(page - 1) * SHOWN : page * SHOWN]]
    request = index_request(settings)
    thumbs = thumbnails(request, tuple(shown), TILE)
    cols = st.columns(COLUMNS)
    for n, (i, thumb) in enumerate(zip(shown, thumbs, strict=True)):
        with cols[n % COLUMNS]:
            st.image(thumb, width="stretch")
            says = index.classes[found.majority[i]] if found.majority[i] >= 0 else "?"
            st.caption(
                f"#{i} labelled **{escape_markdown(index.classes[found.labels[i]])}**  \n"
                f"neighbours say **{escape_markdown(says)}** · {found.share[i]:.0%} disagree"
            )
            st.button(
                "Show neighbours",
                key=f"conflict_show_{i}",
                on_click=_select,
                args=(str(index.path), i),
                icon=":material/arrow_downward:",
                type="tertiary",
            )
    where, selected = st.session_state.get(SELECTED_KEY) or (None, None)
    if where == str(index.path) and isinstance(selected, int) and 0 <= selected < index.count:
        _conflict_neighbours(request, index, found, selected)
    else:
        st.caption("Press Show neighbours under an image to see the neighbours that disagree with its label.")


def _select(where: str, i: int) -> None:
    st.session_state[SELECTED_KEY] = (where, int(i))  # an id means something only in its index


def _conflict_neighbours(request, index, found, selected: int) -> None:
    label = class_name(index, selected)
    ids, scores = index.neighbours([selected], found.k)
    left, right = st.columns([1, 4])
    left.image(
        thumbnails(request, (selected,), 160)[0], caption=f"#{selected} {escape_markdown(label or '')}"
    )
    with right:
        st.markdown(
            f"**#{selected}**, labelled *{escape_markdown(label or '')}*: {found.share[selected]:.0%} of its "
            f"{found.k} nearest neighbours carry another label (weighted by similarity: "
            f"{found.weighted[selected]:.0%})."
        )
        neighbour_grid(request, index, ids[0], scores[0], label, columns=min(found.k, 10))


# ---------------------------------------------------------------------------- near-duplicates


def _other_split(settings: ImageSettings) -> tuple[str, str] | None:
    """(test split, train split) when the collection has both, else None."""
    from embeddings.image.collections import list_splits

    try:
        splits = list_splits(settings.source, settings.data_dir)
    except (EmbeddingsError, OSError):
        return None
    return ("test", "train") if {"test", "train"} <= set(splits) else None


def _split_index(settings: ImageSettings, split: str, current):
    """The loaded index of ``split`` (the current one as it is); or None after saying it is not built,
    with a button that builds it in the background."""
    if split == settings.split:
        return current
    other = replace(settings, split=split)
    try:
        request = index_request(other)
        manifest, note = index_manifest(request)
        if manifest is not None:
            return load_index(request)
    except EmbeddingsError as exc:
        show_problem(f"The {split} split's index could not be opened: {exc}")
        return None
    from ui.cached import job_runner

    job = job_runner().get(request.job_key)
    if job is not None and (job.active or job.stopped):
        _ready(job, f"Building the {split} index", key="retry_other_split")
        return None
    st.info(
        f"Comparing with the **{split}** split needs its index, which is not built yet with "
        f"**{settings.model_id}** (embedding every {split} image once)."
    )
    st.button(f"Build the {split} index", key="build_other_split", on_click=start_build, args=(request, note))
    return None


def near_duplicates_section(settings: ImageSettings, index) -> None:
    """Near-duplicate pairs above a threshold the user sets, within the split and test against train."""
    st.subheader("Near-duplicates")
    st.caption(
        "Pairs of images whose embeddings have a cosine similarity above the threshold. Test images that "
        "also appear in the training set inflate every score measured on them. The default "
        f"{DEFAULT_THRESHOLD:.2f} was chosen by looking at CIFAR-10 pairs with efficientnet_lite0: above it "
        "they were the same photo (see the README); other models may need another threshold."
    )
    splits = _other_split(settings)
    scopes = [f"within {settings.split}"]
    if splits is not None:
        scopes.append(f"{splits[0]} against {splits[1]}")
    c1, c2 = st.columns([3, 2], vertical_alignment="bottom")
    threshold = c1.slider(
        "Cosine similarity at least",
        DUPLICATE_FLOOR,
        1.0,
        DEFAULT_THRESHOLD,
        step=0.005,
        format="%.3f",
        key="dup_threshold",
    )
    scope = c2.radio("Pairs", scopes, horizontal=True, key="dup_scope") if len(scopes) > 1 else scopes[0]
    if scope == scopes[0]:
        query, other, names = index, None, (settings.split, settings.split)
    else:
        query = _split_index(settings, splits[0], index)
        other = _split_index(settings, splits[1], index)
        names = splits
        if query is None or other is None:
            return
    candidates = _ready(
        duplicate_candidates_or_job(query, other), "Looking for near-duplicates", "retry_dups"
    )
    if candidates is None:
        return
    pairs = candidates.at(threshold)
    items = pairs.items()
    if other is None:
        st.markdown(
            f"**{len(pairs):,}** pairs at cosine ≥ {threshold:.3f}, involving **{len(items):,}** of the "
            f"{query.count:,} {names[0]} images."
        )
    else:
        st.markdown(
            f"**{len(items):,}** of the {query.count:,} {names[0]} images ({len(items) / query.count:.1%}) have "
            f"a near-duplicate among the {other.count:,} {names[1]} images at cosine ≥ {threshold:.3f} "
            f"({len(pairs):,} pairs)."
        )
    other_labels = query.labels if other is None else other.labels
    if query.labels is not None and query.classes:
        mixed = pairs.mixed(query.labels, other_labels)
        if mixed:
            st.caption(f"{mixed:,} of these pairs carry two different labels.")
        counts = pairs.per_class(query.labels, query.classes)
        column = (
            "images in a pair" if other is None else f"{names[0]} images with a {names[1]} near-duplicate"
        )
        with st.expander("Per class"):
            st.dataframe(
                pd.DataFrame({"class": list(counts), column: list(counts.values())}),
                hide_index=True,
            )
    if pairs.capped:
        st.caption(
            f"{pairs.capped:,} images have {candidates.per_item} or more partners this similar; only their "
            f"{candidates.per_item} closest are listed."
        )
    if not len(pairs):
        st.info("No pair is this similar: lower the threshold to see the closest pairs.")
        return
    _pair_tiles(settings, query, other, pairs, names)


def _pair_tiles(settings: ImageSettings, query, other, pairs, names) -> None:
    c1, c2 = st.columns([3, 2], vertical_alignment="bottom")
    order = c1.radio(
        "Order", ["most similar first", "nearest the threshold first"], horizontal=True, key="dup_order"
    )
    focus = None
    if query.labels is not None and query.classes:
        with c2:
            focus = _class_filter(query.classes, "dup_class")
    rows = np.arange(len(pairs))
    if focus is not None:
        rows = rows[query.labels[pairs.first] == focus]
    if order != "most similar first":
        rows = rows[::-1]
    if not len(rows):
        st.info("No pair of this class at this threshold.")
        return
    page = _page(len(rows), "dup_page")
    rows = rows[(page - 1) * SHOWN : page * SHOWN]
    first, second = pairs.first[rows], pairs.second[rows]
    request_a = index_request(replace(settings, split=names[0]))
    request_b = index_request(replace(settings, split=names[1]))
    thumbs_a = thumbnails(request_a, tuple(int(i) for i in first), TILE)
    thumbs_b = thumbnails(request_b, tuple(int(i) for i in second), TILE)
    partner = query if other is None else other
    cols = st.columns(COLUMNS)
    for n, (a, b, cos) in enumerate(zip(first, second, pairs.cosine[rows], strict=True)):
        with cols[n % COLUMNS]:
            st.image(mosaic([thumbs_a[n], thumbs_b[n]], 2, gap=4), width="stretch")
            la, lb = class_name(query, int(a)) or "", class_name(partner, int(b)) or ""
            mark = "" if la == lb else " ✗"
            st.caption(
                f"{names[0]} #{int(a)} {escape_markdown(la)} · {names[1]} #{int(b)} {escape_markdown(lb)}{mark}  \n"
                f"cos {float(cos):.3f}"
            )
