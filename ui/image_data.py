"""Cached access to the image side for the pages: models, collections, indexes, maps.

Models and loaded indexes are ``st.cache_resource`` (one copy per server process); arrays
and frames are ``st.cache_data``. Index builds and large maps run as background jobs
(:mod:`ui.jobs`), so no page blocks while they run.
"""

from __future__ import annotations

import numpy as np
import streamlit as st
from streamlit.logger import get_logger

from embeddings.errors import CorruptIndexError, IndexNotBuiltError, StaleIndexError
from ui.jobs import Job, JobRunner

log = get_logger(__name__)  # Streamlit's logger: its lines reach the server log
FINGERPRINT_TTL_S = 30


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
    """{model id: reason} for image models that cannot be used yet without a download (CLIP offline)."""
    from embeddings.registry import unavailable_models

    return unavailable_models()


@st.cache_resource(show_spinner="Loading the image model…")
def load_image_embedder(model_id: str, precision: str):
    """The image embedder for ``model_id`` at ``precision`` (one copy per process; logged)."""
    from embeddings.registry import get_image_embedder

    embedder = get_image_embedder(model_id).set_precision(precision)
    log.info("loaded image model %s (%s)", model_id, precision)
    return embedder


@st.cache_resource(show_spinner="Opening the image collection…")
def load_collection(source: str, split: str, fingerprint: str):
    """The collection; ``fingerprint`` (from ``source_fingerprint``) makes a changed folder reload."""
    from embeddings.image.collections import open_collection

    return open_collection(source, split, download=False)


@st.cache_data(ttl=FINGERPRINT_TTL_S, show_spinner=False)
def collection_fingerprint(source: str, split: str) -> str:
    """Fingerprint of a source split, used as a cache key; a folder is re-checked every 30 s.

    Checking a folder stats every file (0.36 s for CIFAR-10's 50,000 training images), and a
    full rerun of the image page asks three times (a click's fragment rerun once). Within the 30 s the app keeps using the snapshot it has,
    whose index was checked against it: a change is seen up to 30 s later, never mixed up.
    """
    from embeddings.image.collections import source_fingerprint

    return source_fingerprint(source, split)


@st.cache_resource(show_spinner="Loading the index…", max_entries=4)
def load_index(source: str, split: str, fingerprint: str, model_id: str, precision: str, data_dir: str):
    """The verified on-disk index; raises IndexNotBuiltError/StaleIndexError/CorruptIndexError."""
    from embeddings.index.store import load_index as load

    collection = load_collection(source, split, fingerprint)
    index = load(collection, load_image_embedder(model_id, precision), data_dir)
    log.info("loaded index %s (%d x %d)", index.path.name, index.count, index.dim)
    return index


def current_data_dir() -> str:
    """The data folder in use (``$EMBEDDINGS_DATA_DIR`` or the per-user default)."""
    from embeddings.config import data_dir

    return str(data_dir())


def index_or_job(source: str, split: str, model_id: str, precision: str):
    """Return the loaded index, or the background job building it (started if needed)."""
    fingerprint = collection_fingerprint(source, split)
    data_dir = current_data_dir()
    key = f"index:{data_dir}:{source}:{split}:{fingerprint}:{model_id}:{precision}"
    runner = job_runner()
    job = runner.get(key)
    if job is not None and job.active:
        return job
    if job is not None and job.state == "failed":
        return job  # shown to the user; they may retry
    try:
        return load_index(source, split, fingerprint, model_id, precision, data_dir)
    except (IndexNotBuiltError, StaleIndexError, CorruptIndexError):
        pass
    return start_build(source, split, model_id, precision)


def start_build(source: str, split: str, model_id: str, precision: str) -> Job:
    """Start (or join) the background build of an index; the model loads in the worker thread."""
    fingerprint = collection_fingerprint(source, split)
    data_dir = current_data_dir()
    key = f"index:{data_dir}:{source}:{split}:{fingerprint}:{model_id}:{precision}"

    def build(progress):
        from embeddings.index.service import get_or_build_index

        collection = load_collection(source, split, fingerprint)
        embedder = load_image_embedder(model_id, precision)
        index, status = get_or_build_index(collection, embedder, data_dir, progress=progress)
        return status

    return job_runner().submit(key, f"Embedding {source} ({split}) with {model_id}", build)


def index_manifest(source: str, split: str, model_id: str, precision: str) -> dict | None:
    """The manifest of a built index for these settings (cheap: no model is loaded), or None."""
    from embeddings.index.store import peek_manifest

    collection = load_collection(source, split, collection_fingerprint(source, split))
    manifest = peek_manifest(collection, model_id, current_data_dir())
    if manifest is None or manifest["key"]["model"].get("precision") != precision:
        return None
    if manifest["key"]["collection"]["fingerprint"] != collection.fingerprint():
        return None
    return manifest


def retry_job(job: Job) -> None:
    """Forget a failed job so the next run starts it again."""
    job_runner().forget(job.key)


def map_or_job(index, method: str, perplexity: float, seed: int):
    """Return the saved 2-D map of ``index``, or the background job computing it."""
    from embeddings.index.maps import index_map, saved_index_map

    layout = saved_index_map(index, method, perplexity, seed)
    if layout is not None:
        return layout
    key = f"map:{index.path}:{method}:{perplexity}:{seed}"
    return job_runner().submit(
        key,
        f"Laying out {index.count:,} images with {method.upper()}",
        lambda progress: index_map(index, method, perplexity, seed, progress=progress),
    )


@st.cache_data(show_spinner=False, max_entries=64)
def thumbnails(
    source: str, split: str, fingerprint: str, ids: tuple[int, ...], size: int
) -> list[np.ndarray]:
    """Enlarged copies of images ``ids`` for display."""
    from embeddings.image.io import enlarge

    collection = load_collection(source, split, fingerprint)
    return [enlarge(np.asarray(img), size) for img in collection.get_images(list(ids))]


@st.cache_data(show_spinner="Scoring every image against its neighbours…", max_entries=16)
def retrieval_scores(
    source: str, split: str, fingerprint: str, model_id: str, precision: str, data_dir: str, k: int
):
    """Leave-one-out precision@k per class and the class confusion matrix of an index."""
    from embeddings.index.evaluation import evaluate_retrieval

    return evaluate_retrieval(load_index(source, split, fingerprint, model_id, precision, data_dir), k=k)


@st.cache_data(show_spinner=False, max_entries=32)
def gallery_spec(
    source: str, split: str, fingerprint: str, ids: tuple[int, ...], captions: tuple[str, ...], columns: int
) -> dict:
    """The clickable gallery figure for images ``ids`` as a plotly dict (built once per page of ids)."""
    from ui.image_charts import gallery_figure

    thumbs = thumbnails(source, split, fingerprint, ids, 96)
    return gallery_figure(thumbs, list(ids), list(captions), columns).to_dict()
