"""Every cached wrapper around the ``embeddings`` package, and every background-job start.

Text:

* ``st.cache_resource`` holds objects shared by all sessions: :func:`load_text_embedder`.
* ``st.cache_data`` holds arrays keyed by every argument that decides them:
  :func:`embed_texts`, :func:`text_map`.
* :func:`vocabulary` keeps one embedded vocabulary per text model (``embeddings.vocab``
  also stores it on disk) in a process-wide store (a ``cache_resource`` dict) filled
  *outside* any cached call, so its progress bar is drawn live and never replayed; 20k x 640
  floats are too big to copy on every rerun as ``cache_data`` would.

Images: models, collections, loaded indexes and comparison variants are ``st.cache_resource``
(one copy per server process); arrays and frames are ``st.cache_data``. Functions about one
index take an :class:`~ui.settings.IndexRequest` (a frozen dataclass: Streamlit keys a cache
on its fields); those that only need the collection pass its source, split and fingerprint on
to a private cached helper, so they are shared by every model. Index builds and large maps
run as background jobs (:mod:`ui.jobs`), so no page blocks while they run.

Nothing here catches errors: a failed call raises (and is not cached), and the page shows
it (:func:`ui.views.text.show_error` for the text side).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import streamlit as st
from streamlit.logger import get_logger

from embeddings.errors import CorruptIndexError, IndexNotBuiltError, ModelUnavailableError, StaleIndexError
from embeddings.registry import get_text_embedder
from embeddings.text.base import TextEmbedder
from ui.jobs import Job, JobRunner
from ui.settings import (
    COLLECTION_KEY,
    IMAGE_MODEL_ENV,
    IMAGE_MODEL_KEY,
    SPLIT_KEY,
    ImageSettings,
    IndexRequest,
    available_sources,
    current_data_dir,
)

Progress = Callable[[int, int], None]
log = get_logger(__name__)  # Streamlit's logger: its lines reach the server log
FINGERPRINT_TTL_S = 30
DAMAGED = "the saved index is damaged"  # why an index is rebuilt, shown on its progress bar
STALE = "the saved index was built for other settings or images"


@st.cache_resource(show_spinner=False, max_entries=8)
def load_text_embedder(model_id: str) -> TextEmbedder:
    """The text embedder for ``model_id``, built once per process (logged: "loaded text model ...")."""
    embedder = get_text_embedder(model_id)
    log.info("loaded text model %s", model_id)
    return embedder


@st.cache_data(show_spinner=False, max_entries=64)
def embed_texts(model_id: str, texts: tuple[str, ...]) -> np.ndarray:
    """Unit vectors, one row per text, from ``model_id``; stops between batches once the browser
    session that asked has gone (``WorkCancelledError``, never cached)."""
    return load_text_embedder(model_id).embed(list(texts), should_stop=session_gone_check())


def session_gone_check() -> Callable[[], bool] | None:
    """A ``should_stop`` callback: true once the current Streamlit session is no longer connected
    (its tab was closed); None outside a served script run (AppTest, the CLI)."""
    from streamlit import runtime
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx(suppress_warning=True)
    if ctx is None or not runtime.exists():
        return None
    instance, session_id = runtime.get_instance(), ctx.session_id
    return lambda: not instance.is_active_session(session_id)


@st.cache_data(show_spinner=False, max_entries=32)
def text_map(
    model_id: str, texts: tuple[str, ...], method: str, n_components: int, perplexity: float, seed: int
) -> np.ndarray:
    """2-D or 3-D coordinates of ``texts`` embedded with ``model_id``: ``method`` is "t-SNE" or "PCA"."""
    from embeddings.core.projection import pca, tsne

    vectors = embed_texts(model_id, texts)
    if method == "PCA":
        return pca(vectors, n_components)
    return tsne(vectors, perplexity=perplexity, n_components=n_components, seed=seed)


# ---------------------------------------------------------------------------- vocabulary


@dataclass(frozen=True)
class Vocabulary:
    """The English vocabulary embedded with one text model (rows of ``vectors`` match ``words``)."""

    model_id: str
    words: list[str]
    vectors: np.ndarray

    def __len__(self) -> int:
        return len(self.words)


@st.cache_resource(show_spinner=False)
def _vocabulary_store() -> dict:
    return {"lock": threading.Lock(), "locks": {}, "vocabularies": {}}


def vocabulary_ready(model_id: str) -> bool:
    """Whether :func:`vocabulary` for ``model_id`` would return at once."""
    return model_id in _vocabulary_store()["vocabularies"]


def vocabulary(model_id: str, progress: Progress | None = None) -> Vocabulary:
    """The vocabulary embedded with ``model_id``: computed (or read from disk) once per process.

    ``progress(done, total)`` is called while embedding; concurrent sessions asking for the
    same model wait for the first one instead of embedding twice.
    """
    store = _vocabulary_store()
    found = store["vocabularies"].get(model_id)
    if found is not None:
        return found
    with store["lock"]:
        lock = store["locks"].setdefault(model_id, threading.Lock())
    with lock:
        found = store["vocabularies"].get(model_id)
        if found is None:
            found = _build_vocabulary(model_id, progress)
            store["vocabularies"][model_id] = found
    return found


def _build_vocabulary(model_id: str, progress: Progress | None) -> Vocabulary:
    from embeddings.text import vocab

    words = vocab.load_vocab()
    vectors = vocab.vocab_vectors(load_text_embedder(model_id), progress=progress)
    return Vocabulary(model_id, words, vectors)


# ---------------------------------------------------------------------------- images


@st.cache_resource(show_spinner=False)
def job_runner() -> JobRunner:
    """The one background job runner of this server process."""
    return JobRunner(workers=1)


@st.cache_data(ttl=600, show_spinner="Checking which image model is available…")
def resolved_image_model(preferred: str = "resnet18") -> tuple[str, str]:
    """(model id, reason): ResNet18 when its weights can be had, else the offline fallback."""
    from embeddings.registry import resolve_image_model

    return resolve_image_model(preferred)


@st.cache_data(ttl=60, show_spinner=False)
def unavailable_image_models() -> dict[str, str]:
    """{model id: reason} for image models whose weights are not on this machine (ResNet18 or CLIP offline)."""
    from embeddings.registry import unavailable_models

    return unavailable_models()


@st.cache_resource(show_spinner="Loading the image model…")
def load_image_embedder(model_id: str, precision: str):
    """The image embedder for ``model_id`` at ``precision`` (one copy per process; logged)."""
    from embeddings.registry import get_image_embedder

    # lazy: the network (and its ONNX session) loads on the first embed, not to open a stored index
    embedder = get_image_embedder(model_id).set_precision(precision, lazy=True)
    fallback = getattr(embedder, "runtime_fallback", "")
    if fallback:
        log.info(
            "loaded image model %s (%s; asked for %s: %s)", model_id, embedder.precision, precision, fallback
        )
    else:
        log.info("loaded image model %s (%s)", model_id, precision)
    return embedder


@st.cache_resource(show_spinner="Opening the image collection…")
def _collection(source: str, split: str, fingerprint: str):
    from embeddings.image.collections import open_collection

    return open_collection(source, split, download=False)


def load_collection(request: IndexRequest):
    """The collection of ``request``; its ``fingerprint`` (from ``source_fingerprint``) makes a
    changed folder reload. One copy per collection, whatever the model."""
    return _collection(request.source, request.split, request.fingerprint)


@st.cache_data(ttl=FINGERPRINT_TTL_S, show_spinner=False)
def collection_fingerprint(source: str, split: str) -> str:
    """Fingerprint of a source split, used as a cache key; a folder is re-checked every 30 s.

    Checking a folder stats every file (0.36 s for CIFAR-10's 50,000 training images), and a
    full rerun of the image page asks twice (a click's fragment rerun not at all: it keeps the
    IndexRequest of its full run). Within the 30 s the app keeps using the snapshot it has,
    whose index was checked against it: a change is seen up to 30 s later, never mixed up.
    """
    from embeddings.image.collections import source_fingerprint

    return source_fingerprint(source, split)


@st.cache_resource(show_spinner="Loading the index…", max_entries=4)
def load_index(request: IndexRequest):
    """The verified on-disk index; raises IndexNotBuiltError/StaleIndexError/CorruptIndexError."""
    from embeddings.index.store import load_index as load

    collection = load_collection(request)
    index = load(collection, load_image_embedder(request.model_id, request.precision), request.data_dir)
    log.info("loaded index %s (%d x %d)", index.path.name, index.count, index.dim)
    return index


def index_or_job(request: IndexRequest, download: bool = False):
    """Return the loaded index, or the background job building it (started if needed).

    A failed or cancelled job is returned as it is (shown once; the user may press Try again).
    A model that cannot load raises ``ModelUnavailableError`` and starts nothing (see
    :func:`start_build`; ``download=True`` when the user asked to download its weights).
    """
    job = job_runner().get(request.job_key)
    if job is not None and (job.active or job.stopped):
        return job
    try:
        return load_index(request)
    except IndexNotBuiltError:
        note = ""
    except StaleIndexError as exc:
        log.info("rebuilding a stale index: %s", exc)
        note = STALE
    except CorruptIndexError as exc:  # the reason (with its path) goes to the log, not the page
        log.warning("rebuilding a damaged index: %s", exc)
        note = DAMAGED
    return start_build(request, note, download=download)


@st.cache_data(ttl=60, show_spinner=False)
def model_unavailable_reason(model_id: str, data_dir: str) -> str:
    """Why ``model_id`` cannot load on this machine now ("" when it can): its light status check,
    no download (``embeddings.registry.model_status``)."""
    from embeddings.registry import model_status

    usable, reason = model_status(model_id, download=False, data_dir=data_dir)
    return "" if usable else (reason or "its weights are not on this machine")


def check_model_usable(model_id: str, data_dir: str) -> None:
    """Raise ``ModelUnavailableError`` (the reason) when ``model_id`` cannot load without a download."""
    reason = model_unavailable_reason(model_id, data_dir)
    if reason:
        raise ModelUnavailableError(reason)


def start_build(request: IndexRequest, note: str = "", download: bool = False) -> Job:
    """Start (or join) the background build of an index; the model loads in the worker thread.

    A saved projection head's index is derived from its base model's index
    (:func:`embeddings.index.service.get_or_build_index`) instead of embedding every image again.
    ``note`` says why it is rebuilt (e.g. "the saved index is damaged"); the progress bar shows it.
    A model whose weights are not here starts no job: ``ModelUnavailableError`` says why, unless
    ``download`` (the user pressed Download: the build fetches them, or fails once).
    A failed or cancelled build is returned as it is until :func:`retry_job`.
    """
    job = job_runner().get(request.job_key)
    if job is not None and (job.active or job.stopped):
        return job
    if not download:
        check_model_usable(request.model_id, request.data_dir)

    def build(progress):
        from embeddings.index.service import get_or_build_index

        collection = load_collection(request)
        embedder = load_image_embedder(request.model_id, request.precision)
        index, status = get_or_build_index(collection, embedder, request.data_dir, progress)
        return status

    label = f"Embedding {request.source} ({request.split}) with {request.model_id}"
    if note:
        label = f"Rebuilding the index ({note}): {label[0].lower()}{label[1:]}"
    return job_runner().submit(request.job_key, label, build)


def index_manifest(request: IndexRequest) -> tuple[dict | None, str]:
    """The manifest of a built index for ``request`` (cheap: no model is loaded), or None and why
    it will be rebuilt ("" when there is none yet), for :func:`start_build`'s note."""
    from embeddings.index.store import read_manifest

    collection = load_collection(request)
    try:
        manifest = read_manifest(collection, request.model_id, request.data_dir)
    except IndexNotBuiltError:
        return None, ""
    except CorruptIndexError as exc:  # the reason (with its path) goes to the log, not the page
        log.warning("rebuilding a damaged index: %s", exc)
        return None, DAMAGED
    built_as = manifest["key"]["model"].get("precision")
    # A model that cannot run the asked-for precision (``onnx`` on a model with no network to
    # export) runs, and builds its index, in another: load it (cached) to learn which.
    if (
        built_as != request.precision
        and built_as != load_image_embedder(request.model_id, request.precision).precision
    ):
        return None, STALE
    if manifest["key"]["collection"]["fingerprint"] != collection.fingerprint():
        return None, STALE
    return manifest, ""


def retry_job(job: Job) -> None:
    """Forget a failed or cancelled job so the next run starts it again (the "Try again" button)."""
    job_runner().retry(job.key)


def cancel_job(job: Job) -> None:
    """Cancel a queued or running job (the "Cancel" button beside its bar)."""
    job_runner().cancel(job.key)


def jobs_ahead(job: Job) -> list[Job]:
    """The jobs that run before ``job`` (it is queued behind them)."""
    return job_runner().ahead_of(job)


def map_or_job(index, method: str, perplexity: float, seed: int):
    """Return the saved 2-D map of ``index``, or the background job computing it."""
    from embeddings.index.maps import index_map, saved_index_map

    layout = saved_index_map(index, method, perplexity, seed)
    if layout is not None:
        return layout
    key = f"map:{index.path}:{method}:{perplexity}:{seed}"
    name = "t-SNE" if method == "tsne" else method.upper()
    return job_runner().submit(
        key,
        f"Laying out the map of {index.count:,} images ({name})",
        lambda progress: index_map(index, method, perplexity, seed, progress=progress),
        unit="step",
    )


@st.cache_data(show_spinner=False, max_entries=64)
def _thumbnails(
    source: str, split: str, fingerprint: str, ids: tuple[int, ...], size: int
) -> list[np.ndarray]:
    from embeddings.image.io import thumbnail

    collection = _collection(source, split, fingerprint)
    return [thumbnail(np.asarray(img), size) for img in collection.get_images(list(ids))]


def thumbnails(request: IndexRequest, ids: tuple[int, ...], size: int) -> list[np.ndarray]:
    """Images ``ids`` of ``request``'s collection fitted into ``size`` x ``size`` tiles for display
    (shrunk or enlarged, letterboxed: the same size whatever the images; shared by every model)."""
    return _thumbnails(request.source, request.split, request.fingerprint, ids, size)


@st.cache_data(show_spinner="Scoring every image against its neighbours…", max_entries=16)
def retrieval_scores(request: IndexRequest, k: int):
    """Leave-one-out precision@k per class and the class confusion matrix of an index."""
    from embeddings.index.evaluation import evaluate_retrieval

    return evaluate_retrieval(load_index(request), k=k)


@st.cache_data(show_spinner=False, max_entries=32)
def _gallery_spec(
    source: str,
    split: str,
    fingerprint: str,
    ids: tuple[int, ...],
    captions: tuple[str, ...],
    columns: int,
    selected: int | None = None,
) -> dict:
    from ui.charts.image import gallery_figure

    thumbs = _thumbnails(source, split, fingerprint, ids, 96)
    return gallery_figure(thumbs, list(ids), list(captions), columns, selected=selected).to_dict()


def gallery_spec(
    request: IndexRequest,
    ids: tuple[int, ...],
    captions: tuple[str, ...],
    columns: int,
    selected: int | None = None,
) -> dict:
    """The clickable gallery figure for images ``ids`` as a plotly dict (built once per page of ids
    and selected image, whose tile is framed)."""
    return _gallery_spec(request.source, request.split, request.fingerprint, ids, captions, columns, selected)


RERANKINGS = ("aqe", "kreciprocal")  # the label-free re-rankings that measurably helped (rerank.py)


@st.cache_resource(show_spinner="Preparing the adapted and re-ranked variants…", max_entries=4)
def comparison_variants(request: IndexRequest, finetuned: tuple):
    """Variants for one index: base, base re-ranked, every saved projection head, and the
    fine-tuned models in ``finetuned`` (``(model id, note)`` pairs whose indexes are built)."""
    from embeddings.index.compare import Variant, base_variants

    index = load_index(request)
    embedder = load_image_embedder(request.model_id, request.precision)
    found = base_variants(index, embedder, request.data_dir)
    variants = [found[0]]
    from embeddings.index.rerank import K1

    usable = [m for m in RERANKINGS if m != "kreciprocal" or index.count > K1 + 1]  # it needs a k1-NN graph
    variants += [Variant(f"{found[0].name} + {m}", index, m) for m in usable]
    variants += found[1:]
    for ft_id, note in finetuned:
        ft_index = load_index(replace(request, model_id=ft_id))
        variants.append(Variant(f"fine-tuned ({ft_id})", ft_index, "none", note))
    return variants


@st.cache_data(show_spinner="Scoring every variant (re-ranking the whole collection once)…", max_entries=8)
def variant_precision(
    request: IndexRequest, finetuned: tuple, names: tuple[str, ...], k: int
) -> dict[str, list]:
    """Per-class precision@k table (leave-one-out) for the named variants of :func:`comparison_variants`."""
    from embeddings.index.compare import per_class_table, precision_by_variant

    chosen = [v for v in comparison_variants(request, finetuned) if v.name in names]
    return per_class_table(precision_by_variant(chosen, k))


# ---------------------------------------------------------------------------- current settings


def image_model_choices() -> tuple[list[str], str, str]:
    """(model ids offered, default id, why that default)."""
    from embeddings.registry import image_model_ids, refresh_if_changed

    default, reason = resolved_image_model()
    env = os.environ.get(IMAGE_MODEL_ENV, "").strip()
    refresh_if_changed()  # a head or fine-tuned run saved since the last look (two stat calls)
    models = image_model_ids()
    if env in models:
        default, reason = env, f"set by the environment variable `{IMAGE_MODEL_ENV}`"
    return models, default, reason


def current_image_settings() -> ImageSettings:
    """The image settings chosen in the sidebar (defaults before the sidebar ran)."""
    from embeddings.image.base import default_precision

    models, default, reason = image_model_choices()
    model = st.session_state.get(IMAGE_MODEL_KEY) or default
    if model != default:
        reason = "chosen in the sidebar"
    source = st.session_state.get(COLLECTION_KEY) or available_sources()[0]
    split = st.session_state.get(SPLIT_KEY) or "test"
    return ImageSettings(source, split, model, default_precision(), reason, current_data_dir())


def index_request(settings: ImageSettings, model_id: str | None = None) -> IndexRequest:
    """The index of ``settings``' collection split as it is now, for its model or ``model_id``.

    The fingerprint comes from :func:`collection_fingerprint` (a folder is re-checked
    at most every 30 s); opening a source that is gone raises an ``EmbeddingsError``.
    """
    return IndexRequest(
        settings.source,
        settings.split,
        collection_fingerprint(settings.source, settings.split),
        model_id or settings.model_id,
        settings.precision,
        settings.data_dir,
    )


# ---------------------------------------------------------------------------- k-NN classification


def knn_or_job(index, k_max: int):
    """Return the saved leave-one-out k-NN result of ``index`` for k = 1..``k_max``
    (:func:`embeddings.index.knn.knn_curve`), or the background job computing it (one neighbour
    search over the whole index, then saved beside it: computed once per index, not per rerun)."""
    from embeddings.index.knn import knn_curve, knn_key, saved_knn_curve

    found = saved_knn_curve(index, k_max)
    if found is not None:
        return found
    count = len(index.embeddings)
    return job_runner().submit(
        f"knn:{index.path}:{knn_key(index, k_max)}",
        f"Classifying each of the {count:,} items by its {k_max} nearest neighbours",
        lambda progress: knn_curve(index, k_max, progress=progress),
        unit="step",  # items, images or documents: no "img/s"
        lane="analysis",
    )


# ---------------------------------------------------------------------------- where the map lies
# How well each map keeps neighbourhoods (embeddings/core/trust.py): an index's map is scored
# once per k in a background job and saved beside the map; small maps (words) in the process.


@st.cache_data(show_spinner=False, max_entries=64)
def map_trust(vectors: np.ndarray, layout: np.ndarray, k: int):
    """Neighbourhood preservation of a small map (words, documents): ``MapTrust`` at ``k``."""
    from embeddings.core.trust import map_trust as score

    return score(vectors, layout, k)


@st.cache_data(show_spinner=False, max_entries=32)
def layout_comparison(vectors: np.ndarray, first: np.ndarray, second: np.ndarray, k: int):
    """How two maps of the same small set of vectors keep each point's k neighbours (``LayoutComparison``)."""
    from embeddings.core.trust import compare_layouts

    return compare_layouts(vectors, first, second, k)


def trust_or_job(index, method: str, perplexity: float, seed: int, k: int, noun: str = "images"):
    """Return the saved neighbourhood preservation of ``index``'s map at ``k``, or the background
    job computing it (about 6 s for 10,000 images on two cores: never on the page's thread)."""
    from embeddings.index.trust import index_map_trust, saved_map_trust

    found = saved_map_trust(index, method, perplexity, seed, k)
    if found is not None:
        return found
    key = f"trust:{index.path}:{method}:{perplexity}:{seed}:{k}"
    return job_runner().submit(
        key,
        f"Checking which of {index.count:,} {noun} kept their {k} nearest neighbours on the map",
        lambda progress: index_map_trust(index, method, perplexity, seed, k, progress=progress),
        lane="analysis",
    )


# ---------------------------------------------------------------------------- label conflicts, near-duplicates

CONFLICT_RESULTS_KEPT = 16  # results held in memory (each a few MB at most for 50,000 images)


@st.cache_resource(show_spinner=False)
def _conflict_results() -> dict:
    """Label conflicts and near-duplicate candidates once loaded or computed, by their fingerprint."""
    return {"lock": threading.Lock(), "results": {}}


def _saved_or_job(key: str, label: str, saved: Callable, compute: Callable):
    """The result for ``key``: from memory, from beside the index (``saved()``), or from the finished
    background job running ``compute(progress)``; else that job (started if needed)."""
    store = _conflict_results()
    found = store["results"].get(key)
    if found is None:
        found = saved()
    if found is None:
        job = job_runner().get(key)
        if job is None or job.active or job.stopped:
            return job_runner().submit(key, label, compute, lane="analysis")
        found = job.result
        job_runner().forget(key)
    with store["lock"]:
        results = store["results"]
        results[key] = found
        while len(results) > CONFLICT_RESULTS_KEPT:
            results.pop(next(iter(results)))
    return found


def label_disagreement_or_job(index, k: int):
    """Every item's neighbour disagreement (:func:`embeddings.index.conflicts.label_disagreement`),
    computed once per index in the background and saved beside it; or the job computing it."""
    from embeddings.index.conflicts import conflicts_key, label_disagreement, saved_disagreement

    return _saved_or_job(
        f"conflicts:{index.path}:{conflicts_key(index, k)}",
        f"Finding label conflicts among {index.count:,} images (k={k})",
        lambda: saved_disagreement(index, k),
        lambda progress: label_disagreement(index, k, progress),
    )


def duplicate_candidates_or_job(index, other=None):
    """Near-duplicate candidates of ``index`` (against ``other``, or within it) down to the lowest
    threshold offered, computed once in the background and saved beside it; or the job computing them."""
    from embeddings.index.conflicts import duplicate_candidates, duplicates_key, saved_duplicates

    scope = f"against {other.count:,} others" if other is not None else "within the split"
    return _saved_or_job(
        f"duplicates:{index.path}:{duplicates_key(index, other)}",
        f"Looking for near-duplicates of {index.count:,} images ({scope})",
        lambda: saved_duplicates(index, other),
        lambda progress: duplicate_candidates(index, other, progress=progress),
    )
