"""Cached wrappers and background jobs of the Semantic search page (documents).

Document collections and loaded document indexes are ``st.cache_resource`` (one copy per
server process), keyed by a :class:`DocRequest` (a frozen dataclass: Streamlit keys a cache on its
fields); index builds and maps run as background jobs (:mod:`ui.jobs`, the same runner as the
image index). An uploaded collection lives in its session's state; its index is written under a
temporary folder of the server process (:func:`embeddings.index.documents.upload_data_dir`),
keyed by the upload's content, and removed when the server stops.

Nothing here catches errors: the page shows them.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st
from streamlit.logger import get_logger

from embeddings.core.projection import DEFAULT_SEED
from embeddings.documents.collection import DocumentCollection
from embeddings.documents.passages import PassageSettings
from embeddings.errors import CorruptIndexError, EmbeddingsError, IndexNotBuiltError, StaleIndexError
from ui.cached import DAMAGED, STALE, job_runner, load_text_embedder
from ui.jobs import Job

log = get_logger(__name__)
UPLOAD_PREFIX = "upload:"


@dataclass(frozen=True)
class DocRequest:
    """One document index: collection source and fingerprint, text model, passage settings, data folder."""

    source: str
    fingerprint: str
    model_id: str
    mode: str
    chunk_chars: int
    overlap: int
    trim_chars: int
    data_dir: str

    @property
    def settings(self) -> PassageSettings:
        return PassageSettings(self.mode, self.chunk_chars, self.overlap, self.trim_chars)

    @property
    def job_key(self) -> str:
        return f"docs:{self.data_dir}:{self.source}:{self.fingerprint}:{self.model_id}:{self.settings.label}"

    @property
    def is_upload(self) -> bool:
        return self.source.startswith(UPLOAD_PREFIX)


SHIPPED_LABEL = "shipped with the app"  # in the job label when the index is written from shipped vectors


def doc_request(collection: DocumentCollection, model_id: str, settings: PassageSettings) -> DocRequest:
    """The request for ``collection``'s index with ``model_id`` and ``settings`` (uploads: the temporary folder)."""
    from embeddings.index.documents import upload_data_dir
    from ui.settings import current_data_dir

    data = str(upload_data_dir()) if collection.source.startswith(UPLOAD_PREFIX) else current_data_dir()
    return DocRequest(
        collection.source,
        collection.fingerprint(),
        model_id,
        settings.mode,
        settings.chunk_chars,
        settings.overlap,
        settings.trim_chars,
        data,
    )


@st.cache_resource(show_spinner="Opening the documents…", max_entries=8)
def stored_collection(source: str) -> DocumentCollection:
    """The bundled collection (``docs``) or a configured text folder, read once per process.

    A folder's changes show after a server restart or ``st.cache_resource.clear()``; its index is
    keyed by its contents, so a changed folder never gets an old index."""
    from embeddings.documents.sources import open_documents

    return open_documents(source)


@st.cache_resource(show_spinner="Loading the document index…", max_entries=8)
def load_doc_index(request: DocRequest, _collection: DocumentCollection):
    """The verified document index of ``request`` (``_collection`` is its collection, not hashed:
    the request's fingerprint names it); raises when it is missing, stale or damaged."""
    from embeddings.index.documents import load_document_index

    index = load_document_index(
        _collection, request.settings, load_text_embedder(request.model_id), request.data_dir
    )
    log.info("loaded document index %s (%d x %d)", index.path.name, index.count, index.dim)
    return index


def doc_index_or_job(request: DocRequest, collection: DocumentCollection):
    """The loaded index, or the background job building it (started if needed; a failed or
    cancelled one is returned as it is until retried)."""
    job = job_runner().get(request.job_key)
    if job is not None and (job.active or job.stopped):
        return job
    try:
        return load_doc_index(request, collection)
    except IndexNotBuiltError:
        note = ""
    except StaleIndexError as exc:
        log.info("rebuilding a stale document index: %s", exc)
        note = STALE
    except CorruptIndexError as exc:
        log.warning("rebuilding a damaged document index: %s", exc)
        note = DAMAGED

    from embeddings.index.documents import has_shipped_index

    try:
        shipped = has_shipped_index(collection, request.settings, load_text_embedder(request.model_id))
    except EmbeddingsError:  # the build reports it
        shipped = False

    def build(progress):
        from embeddings.index.documents import get_or_build_document_index
        from embeddings.index.shipped import SHIPPED_REASON

        embedder = load_text_embedder(request.model_id)
        _, status = get_or_build_document_index(
            collection, request.settings, embedder, request.data_dir, progress
        )
        if status.reason == SHIPPED_REASON:  # nothing embedded: load the model now for the first query
            try:
                embedder.embed(["warm up"])
            except EmbeddingsError as exc:  # the query shows it
                log.warning("could not load %s after writing its shipped index: %s", request.model_id, exc)
        return status

    label = f"Embedding {len(collection):,} documents with {request.model_id}"
    if shipped:
        label = (
            f"Writing the index of {len(collection):,} documents {SHIPPED_LABEL}, loading {request.model_id}"
        )
    if note:
        label = f"Rebuilding the index ({note}): {label[0].lower()}{label[1:]}"
    return job_runner().submit(request.job_key, label, build, unit="passage")


def map_perplexity(index, perplexity: float = 30.0) -> float:
    """The t-SNE perplexity of a document index's map (lower for a small collection)."""
    return min(perplexity, max(2.0, (index.count - 1) / 3))


def doc_map_or_job(index, perplexity: float = 30.0, seed: int = DEFAULT_SEED):
    """The saved t-SNE map of a document index (:func:`embeddings.index.maps.index_map`), or the
    background job computing it."""
    from embeddings.index.maps import index_map, saved_index_map

    perplexity = map_perplexity(index, perplexity)
    layout = saved_index_map(index, "tsne", perplexity, seed)
    if layout is not None:
        return layout
    return job_runner().submit(
        f"docmap:{index.path}:{perplexity}:{seed}",
        f"Laying out the map of {index.count:,} documents (t-SNE)",
        lambda progress: index_map(index, "tsne", perplexity, seed, progress=progress),
        unit="step",
    )


def forget_job(job: Job) -> None:
    """Drop a finished job (a map's) so the next run reads its result from disk."""
    job_runner().forget(job.key)
