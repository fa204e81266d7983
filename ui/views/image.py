"""Pieces of the image pages: waiting for an index, neighbour grids, the image map section."""

from __future__ import annotations

import numpy as np
import streamlit as st

from embeddings.errors import EmbeddingsError, ModelUnavailableError, explain_os_error
from embeddings.image.display import class_mark, class_name, framed, kept_on_map, precision_of, valid_image_id
from embeddings.text.wordlists import escape_markdown
from ui.cached import (
    cancel_job,
    current_image_settings,
    index_manifest,
    index_or_job,
    index_request,
    jobs_ahead,
    load_image_embedder,
    load_index,
    map_or_job,
    retry_job,
    start_build,
    thumbnails,
    trust_or_job,
)
from ui.charts.image import clicked_id, image_map_figure
from ui.jobs import Job
from ui.settings import ImageSettings, IndexRequest
from ui.views import links
from ui.views.exports import collection_name, csv_download
from ui.views.text import show_problem
from ui.views.trust import trust_controls, trust_summary

THUMB = 128
SLIDER_WIDTH = 360  # pixels
HEAD_SCORES_NOTE = (
    "The head puts every image of a class at almost the same point, so its cosines are near 1; "
    "the base model's cosine says how alike the two images look."
)


def base_index_of(settings: ImageSettings):
    """The base model's loaded index when the sidebar's image model is a projection head, else None.

    The head's index is derived from it (same item ids), so it is on disk once the head's is."""
    from embeddings.adapt.heads import AdaptedImageEmbedder

    embedder = load_image_embedder(settings.model_id, settings.precision)
    if not isinstance(embedder, AdaptedImageEmbedder):
        return None
    try:
        return load_index(index_request(settings, embedder.base.model_id))
    except (EmbeddingsError, OSError):
        return None


def _current_index_key() -> str | None:
    """The job key of the index the sidebar asks for now (None when it cannot be worked out)."""
    try:
        return index_request(current_image_settings()).job_key
    except EmbeddingsError:
        return None


def wait_for_job(job: Job, what: str) -> None:
    """Show a job's progress with a Cancel button, refreshing every second; rerun the page when
    it ends. A queued job says what it waits behind. An index build's bar is only drawn while it
    is the index of the sidebar's current request: after a switch of collection or split the
    page reruns and shows the new request's job instead."""

    @st.fragment(run_every=1.0)
    def poll() -> None:
        if not job.active:
            st.rerun()
        if job.key.startswith("index:") and _current_index_key() not in (None, job.key):
            st.rerun()  # the sidebar now asks for another collection or split
        bar, button = st.columns([6, 1], vertical_alignment="bottom")
        if job.state == "queued":
            ahead = jobs_ahead(job)
            bar.progress(0.0, text=f"{job.label} · queued")
            if ahead:
                more = f" and {len(ahead) - 1} more" if len(ahead) > 1 else ""
                st.caption(f"Queued behind: {ahead[0].label}{more}… It starts when that is done.")
            else:
                st.caption("Starting…")
        else:
            bar.progress(job.fraction, text=job.status_text())
            st.caption(f"{what} This runs in the background: other pages keep working meanwhile.")
        button.button("Cancel", key=f"cancel:{job.key}", on_click=cancel_job, args=(job,))

    poll()


def show_job_failure(what: str, job: Job, key: str | None = None) -> None:
    """A failed job: what happened and what to do (a full disk says so), the raw error in "Details"
    (paths and errno text stay out of the message), and a "Try again" button. A cancelled job
    says so, with a button to start it again. Shown until the user presses it: never retried by itself."""
    exc = job.error
    if job.state == "cancelled":
        st.info(f"{what} was cancelled. Nothing half-done was kept.", icon=":material/cancel:")
        st.button("Start again", on_click=retry_job, args=(job,), key=key)
        return
    if isinstance(exc, OSError):
        happened, todo = explain_os_error(exc)
        st.error(f"{what} failed: {happened}. {todo[0].upper()}{todo[1:]}, then press Try again.")
        with st.expander("Details"):
            st.code(f"{type(exc).__name__}: {exc}", language=None)
    elif isinstance(exc, ModelUnavailableError):
        st.error(
            f"{what} failed: the image model could not be loaded. Choose another image model in the "
            "sidebar (`efficientnet_lite0` works offline), or connect and press Try again."
        )
        with st.expander("Details"):
            st.code(str(exc), language=None)
    else:
        st.error(f"{what} failed: {exc}")
    st.button("Try again", on_click=retry_job, args=(job,), key=key)


def show_model_unavailable(model_id: str, reason: str, key: str = "download_model") -> None:
    """A model whose weights are not here: what happened and what to do, the reason (paths, URLs)
    in "Details", and a button that downloads them (the build fetches them, or fails once)."""
    st.warning(
        f"**{model_id}** can't be used on this machine yet: its weights are not here, and no index is "
        "built with it. Choose another image model in the sidebar (`efficientnet_lite0` works offline), "
        "or connect to the internet and press Download (about 600 MB for CLIP, 45 MB for ResNet18).",
        icon=":material/cloud_off:",
    )
    with st.expander("Details"):  # the precise reason, always: it is the only "why"
        st.code(reason, language=None, wrap_lines=True)
    _download_button(model_id, key)


def _download_button(model_id: str, key: str = "download_model") -> None:
    st.button(
        "Download the weights and build the index",
        key=key,
        on_click=st.session_state.__setitem__,
        args=(f"download_ok:{model_id}", True),
    )


def show_download_failed(model_id: str, reason: str) -> None:
    """The user pressed Download and the weights still cannot be had: the plain reason, what to do,
    and the button again (a second try fails as cleanly, or works once the machine is online)."""
    show_problem(
        f"The download did not work: {reason}",
        "Check the internet connection and press the button again, or pick another image model in the "
        "sidebar (`efficientnet_lite0` works offline).",
        kind="warning",
        icon=":material/cloud_off:",
    )
    _download_button(model_id)


def require_index(settings: ImageSettings | None = None):
    """Return the loaded index for the sidebar settings, or show build progress/errors and stop."""
    settings = settings or current_image_settings()
    download = bool(st.session_state.get(f"download_ok:{settings.model_id}"))
    try:
        result = index_or_job(index_request(settings), download=download)
    except ModelUnavailableError as exc:
        if download:
            show_download_failed(settings.model_id, str(exc))
        else:
            show_model_unavailable(settings.model_id, str(exc))
        st.stop()
    except EmbeddingsError as exc:
        show_problem(f"The image collection or model could not be opened: {exc}")
        st.stop()
    if not isinstance(result, Job):
        return result
    if result.stopped:
        show_job_failure("Building the index", result)
        st.stop()
    wait_for_job(
        result,
        "Every image is embedded once and the index is saved to disk, so this happens only the first time.",
    )
    st.stop()


def index_status_line(settings: ImageSettings) -> None:
    """Home-page status: the index's size and build date, or its build progress (never blocks).

    It reads the index manifest only; a missing index starts building in the background, so
    switching collection or model in the sidebar builds it while every page stays usable. A model
    that cannot load starts nothing and says why; a failed or cancelled build is shown, not retried.
    """
    download = bool(st.session_state.get(f"download_ok:{settings.model_id}"))
    try:
        request = index_request(settings)
        manifest, note = index_manifest(request)
        job = None if manifest else start_build(request, note, download=download)
    except ModelUnavailableError as exc:
        if download:
            show_download_failed(settings.model_id, str(exc))
        else:
            show_model_unavailable(settings.model_id, str(exc), key="home_download")
        return
    except EmbeddingsError as exc:
        show_problem(f"The image collection or model could not be opened: {exc}")
        return
    if job is not None:
        if job.stopped:
            show_job_failure("Building the index", job, key="home_retry")
        elif job.active:
            wait_for_job(job, "The index is built once and saved to disk.")
        else:  # finished since the manifest was read
            st.rerun()
        return
    built = manifest["built_at"][:16].replace("T", " ")
    st.success(
        f"Index: {manifest['count']:,} images × {manifest['dim']} dims, built {built} UTC "
        f"in {manifest.get('build_seconds', 0):.0f} s, reused from disk.",
        icon=":material/database:",
    )
    built_as = manifest["key"]["model"].get("precision")
    if built_as != request.precision:  # the model fell back (index_manifest loaded it to learn so)
        reason = getattr(load_image_embedder(request.model_id, request.precision), "runtime_fallback", "")
        st.caption(f"{request.model_id} runs `{built_as}` inference, not `{request.precision}`: {reason}")


def neighbour_count(label: str, available: int, key: str, default: int = 10, cap: int = 50) -> int:
    """A slider for how many neighbours to show: 1 to ``min(cap, available)``, always in range.

    Streamlit returns a default above the maximum as it is, raises for a value kept in the
    session that is out of bounds (k=40 chosen, then a 10-image collection picked) and refuses
    a slider whose bounds are equal, so small collections need all three guards.
    """
    top = min(cap, available)
    if top <= 1:
        return max(1, top)
    kept = st.session_state.get(key)
    if isinstance(kept, (int, float)) and not 1 <= kept <= top:  # e.g. after switching collections
        st.session_state[key] = int(min(max(kept, 1), top))
    # a fixed width: across the whole page a 1..50 slider is hard to set to one value
    return min(int(st.slider(label, 1, top, min(default, top), key=key, width=SLIDER_WIDTH)), top)


def neighbour_grid(
    request: IndexRequest, index, ids, scores, query_label: str | None, columns: int = 5, base_scores=None
) -> None:
    """Neighbours with cosine scores and class labels; other-class neighbours framed red and marked ✗.

    ``base_scores`` (a projection head's neighbours): the base model's cosine for the same pairs,
    shown beside the head's, with a line on why the head's are all near 1."""
    if base_scores is not None:
        st.caption(HEAD_SCORES_NOTE)
    thumbs = thumbnails(request, tuple(int(i) for i in ids), THUMB)
    cols = st.columns(columns)
    for n, (i, score, thumb) in enumerate(zip(ids, scores, thumbs, strict=True)):
        label = class_name(index, int(i))
        same = None if (label is None or query_label is None) else label == query_label
        with cols[n % columns]:
            st.image(framed(thumb, same), width="stretch")
            shown = escape_markdown(label) if label else f"#{int(i)}"
            line = f"cos {score:.3f}"
            if base_scores is not None:
                line = f"head {score:.2f}  \nbase {float(base_scores[n]):.2f}"
            st.caption(f"{class_mark(same)}{shown}  \n{line}")


def render_image_map_section() -> None:
    """The t-SNE map of the current collection's image embeddings, with click-to-inspect."""
    settings = current_image_settings()
    index = require_index(settings)
    if index.count < 3:
        st.info(f"A map needs at least 3 images; this collection has {index.count}.")
        return
    links.check("tsne", "point", index.count - 1, f"this collection of {index.count:,} images")
    links.check("tsne", "mk", min(30, index.count - 1), "this collection")
    layout = _image_map_layout(index, settings)
    if layout is None:
        return
    k = neighbour_count("Neighbours to mark", index.count - 1, key="map_k", cap=30)
    trust = map_trust_or_progress(index, _map_perplexity(index), 0, "image_map")
    selected = st.session_state.get("map_selected")
    neighbours = None
    if valid_image_id(selected, index.count):
        ids, _ = index.neighbours([selected], k)
        neighbours = ids[0].tolist()
    else:
        selected = None
    fig = image_map_figure(layout, index.labels, index.classes, selected, neighbours, trust=trust)
    map_col, side = st.columns([3, 1], gap="medium") if trust is not None else (st.container(), None)
    with map_col:
        event = st.plotly_chart(
            fig, on_select="rerun", selection_mode="points", key="image_map", width="stretch"
        )
    if side is not None:
        with side:
            trust_summary(trust, "image_map")
    _map_download(index, settings, layout)
    clicked = clicked_id(event)
    if valid_image_id(clicked, index.count):
        if clicked != st.session_state.get("map_selected"):
            st.session_state["map_selected"] = clicked
            st.rerun()
    if selected is None:
        st.info("Click any point on the map to inspect that image.")
        return
    _inspect_map_image(index, settings, layout, selected, k)


def _map_download(index, settings: ImageSettings, layout: np.ndarray) -> None:
    """The map's coordinates with each image's id and class, as CSV."""
    from embeddings.core.exports import map_csv
    from embeddings.index.exports import labels_of

    csv_download(
        "Map coordinates (CSV)",
        lambda: map_csv(layout, {"id": np.arange(index.count), "label": labels_of(index)}),
        "map-tsne", settings.model_id, collection_name(settings), "export_image_map",
    )  # fmt: skip


def neighbours_download(settings: ImageSettings, index, query: str, ids, scores) -> None:
    """The query's neighbours (rank, id, label, cosine) as CSV."""
    from embeddings.core.exports import neighbours_csv

    labels = [class_name(index, int(i)) for i in ids]
    csv_download(
        "Neighbours (CSV)", lambda: neighbours_csv(query, [int(i) for i in ids], list(scores), labels),
        "neighbours", settings.model_id, collection_name(settings), "export_neighbours",
    )  # fmt: skip


def _map_perplexity(index) -> float:
    from embeddings.core.projection import max_perplexity

    return min(30.0, max_perplexity(index.count))  # small collections need a lower one


def map_trust_or_progress(index, perplexity: float, seed: int, key: str, noun: str = "images"):
    """With the map's switch (widget ``key``) on: the saved share of neighbours each of ``index``'s
    items kept on its map (``MapTrust``), or None after showing the background job computing it
    (the map keeps its class colours meanwhile). Image and document maps both use it."""
    on, k = trust_controls(key, index.count)
    if not on:
        return None
    try:
        found = trust_or_job(index, "tsne", perplexity, seed, k, noun=noun)
    except EmbeddingsError as exc:
        show_problem(f"The neighbourhoods could not be scored: {exc}")
        return None
    if isinstance(found, Job):
        if found.stopped:
            show_job_failure("Scoring the map's neighbourhoods", found, key=f"retry_trust:{key}")
        else:
            wait_for_job(
                found,
                f"Each {noun.removesuffix('s')}'s neighbours are compared once per k and saved beside the map.",
            )
        return None
    return found


def _image_map_layout(index, settings: ImageSettings) -> np.ndarray | None:
    """The map's layout, or None after showing why there is none yet (an error, or a job's progress)."""
    perplexity = _map_perplexity(index)
    st.caption(
        f"{index.count:,} images of **{settings.source}** ({settings.split}), embedded with "
        f"**{settings.model_id}**, laid out with t-SNE (openTSNE, perplexity {perplexity:g}, seed 0). "
        "Click a point to see the image and its nearest neighbours in the original space."
    )
    try:
        layout = map_or_job(index, "tsne", perplexity, 0)
    except EmbeddingsError as exc:
        st.error(str(exc))
        return None
    if isinstance(layout, Job):
        if layout.stopped:
            show_job_failure("Computing the map", layout, key="retry_map")
            return None
        wait_for_job(layout, "The layout is computed once per index and saved to disk.")
        return None
    return layout


def _inspect_map_image(index, settings: ImageSettings, layout: np.ndarray, selected: int, k: int) -> None:
    """The clicked image, how many of its neighbours share its class and stayed close on the map."""
    ids, scores = index.neighbours([selected], k)
    label = class_name(index, selected)
    request = index_request(settings)
    left, right = st.columns([1, 4])
    with left:
        st.image(
            thumbnails(request, (selected,), 192)[0],
            caption=f"#{selected} {escape_markdown(label or '')}",
        )
    with right:
        share = precision_of(index, ids[0], label)
        kept = kept_on_map(layout, selected, ids[0])
        if share is not None:
            st.markdown(f"**{share:.0%}** of its {k} nearest neighbours are also *{escape_markdown(label)}*.")
        st.markdown(
            f"**{kept:.0%}** of those neighbours are also among its {k} nearest points *on the map*; "
            "the rest were pulled apart by t-SNE (black rings show where they landed)."
        )
        neighbour_grid(request, index, ids[0], scores[0], label, columns=min(k, 10))
