"""The document index: a text collection's vectors, built once on disk exactly like the image index.

For one (collection, passage settings, text model) the folder holds what an image index holds
(``embeddings.npy`` with one unit vector per *document*, ``labels.npy``, ``index-flat.faiss``,
``manifest.json``) plus ``passages.npy`` (one unit vector per passage) and ``passage_spans.npy``
(document, first and last character of each passage), all written by the
store's build (:func:`embeddings.index.store.write_index`'s path): fingerprinted key (the passage settings are the key's
``split``), atomic build and swap under a file lock, every file's sha256 checked on load. So a
:class:`DocumentIndex` *is* an :class:`~embeddings.index.store.ImageIndex` (``embeddings``,
``labels``, ``classes``, ``search``, ``neighbours``, ``manifest``, ``path``): maps, retrieval
scores and k-NN work on it unchanged.

A document's vector is its passage's (trim) or the normalised mean of its passages' (chunk);
:meth:`DocumentIndex.search_documents` scores a document as its best passage and says which.
Remote (OpenAI) vectors go through the SQLite embedding cache, so a second build costs nothing.
The bundled documents' passage vectors for the default model and passages ship with the package
(:mod:`embeddings.index.shipped`): a first build writes them instead of embedding when its key
and split match them exactly.
"""

from __future__ import annotations

import atexit
import logging
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config import data_dir as resolve_data_dir
from ..core.files import load_npy
from ..core.mathops import normalize
from ..documents.collection import DocumentCollection
from ..documents.passages import Passages, PassageSettings, split_passages
from ..errors import CorruptIndexError, IndexNotBuiltError, InvalidInputError, StaleIndexError
from ..text.base import MAX_REQUEST_CHARS
from .shipped import SHIPPED_REASON, install_shipped_map, shipped_document_for_key, shipped_passages_for
from .store import (
    ImageIndex,
    IndexStatus,
    Progress,
    build_lock,
    build_locked,
    index_dir,
    load_index,
    read_manifest,
)

log = logging.getLogger(__name__)

PASSAGES = "passages.npy"
SPANS = "passage_spans.npy"
EMBED_CALL_CHARS = MAX_REQUEST_CHARS // 2  # characters per embed() call (and progress step)
EMBED_CALL_ITEMS = 512


class PassageView:
    """A collection as the index store sees it: its passage settings are the key's ``split``."""

    def __init__(self, collection: DocumentCollection, settings: PassageSettings):
        self.collection, self.settings = collection, settings
        self.labels, self.classes = collection.labels, list(collection.classes)

    def __len__(self) -> int:
        return len(self.collection)

    def describe(self) -> dict:
        return {**self.collection.describe(), "split": self.settings.label}

    def fingerprint(self) -> str:
        return self.collection.fingerprint()


class TextModelKey:
    """A text embedder as the index store keys it: ``fingerprint()`` is a dict naming the model
    (what the manifest schema asks of every index), ``model_id`` and ``dim`` as the embedder's."""

    def __init__(self, embedder):
        self.embedder = embedder
        self.model_id, self.dim = embedder.model_id, embedder.dim

    def fingerprint(self) -> dict:
        return {"model_id": self.model_id, "kind": "text", "fingerprint": self.embedder.fingerprint()}


@dataclass
class DocumentHits:
    """The top documents for one query, best first, with the passage that matched each."""

    ids: np.ndarray
    scores: np.ndarray
    passages: np.ndarray  # passage row of each hit's best passage

    def __len__(self) -> int:
        return int(self.ids.shape[0])


@dataclass
class DocumentIndex(ImageIndex):
    """An :class:`ImageIndex` over documents, with passage vectors and where each passage is."""

    passage_vectors: np.ndarray = field(default=None, repr=False)
    spans: np.ndarray = field(default=None, repr=False)  # (P, 3): document, start, end

    @property
    def settings(self) -> dict:
        return dict(self.manifest.get("passages", {}))

    def cut(self) -> list[int]:
        """Documents that lost text to trimming or the passage limit (from the manifest)."""
        return list(self.manifest.get("cut", []))

    def passage_text(self, collection: DocumentCollection, row: int) -> str:
        doc, start, end = (int(v) for v in self.spans[row])
        return collection.texts[doc][start:end]

    def search_documents(self, query: np.ndarray, k: int) -> DocumentHits:
        """The ``k`` documents whose best passage is nearest the unit vector ``query`` (cosine)."""
        query = normalize(np.atleast_2d(np.asarray(query, dtype=np.float32)))[0]
        if query.shape[0] != self.dim:
            raise InvalidInputError(f"the query vector is {query.shape[0]}-d; this index is {self.dim}-d")
        k = self._check_k(k, exclude_self=False)
        scores = self.passage_vectors @ query
        docs = self.spans[:, 0]
        starts = np.flatnonzero(np.r_[True, docs[1:] != docs[:-1]])  # passages are in document order
        best = np.maximum.reduceat(scores, starts)
        order = np.lexsort((np.arange(best.size), -best))[:k]  # best first; ties by document order
        rows = np.empty(k, dtype=np.int64)
        for i, d in enumerate(order):
            segment = scores[starts[d] : starts[d + 1] if d + 1 < starts.size else scores.size]
            rows[i] = starts[d] + int(np.argmax(segment))
        return DocumentHits(docs[starts[order]].astype(np.int64), np.clip(best[order], -1, 1), rows)


def embed_passages(collection, passages: Passages, embedder, progress: Progress | None = None) -> np.ndarray:
    """(P, dim) unit vectors, one per passage, embedded in calls of at most ``EMBED_CALL_CHARS``."""
    texts = passages.texts(collection)
    out = np.empty((len(texts), embedder.dim), dtype=np.float32)
    start = 0
    while start < len(texts):
        stop, used = start, 0
        while (
            stop < len(texts)
            and stop - start < EMBED_CALL_ITEMS
            and (stop == start or used + len(texts[stop]) <= EMBED_CALL_CHARS)
        ):
            used += len(texts[stop])
            stop += 1
        step = None
        if progress:  # reported after every batch the model embeds, not only after each call

            def step(done: int, _total: int, offset: int = start) -> None:
                progress(offset + done, len(texts))

        out[start:stop] = embedder.embed(texts[start:stop], progress=step)
        if progress:
            progress(stop, len(texts))
        start = stop
    return out


def document_vectors(passage_vectors: np.ndarray, docs: np.ndarray, count: int) -> np.ndarray:
    """One unit vector per document: the normalised mean of its passages' vectors."""
    sums = np.zeros((count, passage_vectors.shape[1]), dtype=np.float64)
    np.add.at(sums, docs, passage_vectors)
    return normalize(sums.astype(np.float32))


def document_index_dir(collection, settings: PassageSettings, embedder, data_dir=None) -> Path:
    return index_dir(PassageView(collection, settings), TextModelKey(embedder), data_dir)


def load_document_index(
    collection, settings: PassageSettings, embedder, data_dir=None, verify: bool = True
) -> DocumentIndex:
    """Load and check the index (manifest key, every file's size and sha256, passage arrays' shapes).

    Raises :class:`IndexNotBuiltError`, :class:`StaleIndexError` or :class:`CorruptIndexError`."""
    view = PassageView(collection, settings)
    base = load_index(view, TextModelKey(embedder), data_dir, verify=verify)
    files = base.manifest["files"]
    if PASSAGES not in files or SPANS not in files:
        raise CorruptIndexError(f"the index at {base.path} lists no passages")
    try:
        vectors = load_npy(base.path / PASSAGES)
        spans = load_npy(base.path / SPANS)
    except (OSError, ValueError) as exc:
        raise CorruptIndexError(f"the passages at {base.path} could not be read: {exc}") from exc
    n = base.count
    if (
        vectors.ndim != 2
        or vectors.shape[1] != base.dim
        or vectors.dtype != np.float32
        or spans.shape != (vectors.shape[0], 3)
        or spans.dtype.kind not in "iu"
        or not np.isfinite(vectors).all()
        or (
            spans.shape[0]
            and (spans[:, 0].min() < 0 or spans[:, 0].max() >= n or (np.diff(spans[:, 0]) < 0).any())
        )
        or np.unique(spans[:, 0]).size != n
    ):
        raise CorruptIndexError(f"the passages at {base.path} do not fit its {n} documents")
    fields = {
        name: getattr(base, name)
        for name in ("path", "manifest", "embeddings", "labels", "classes", "faiss_index")
    }
    return DocumentIndex(**fields, passage_vectors=vectors, spans=spans.astype(np.int64))


def build_document_index(
    collection, settings: PassageSettings, embedder, data_dir=None, progress: Progress | None = None
) -> DocumentIndex:
    """Split, embed and write the index atomically, under the store's file lock; returns it loaded."""
    data_dir = resolve_data_dir(data_dir)
    folder = document_index_dir(collection, settings, embedder, data_dir)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with build_lock(folder):
        return _build_locked_documents(collection, settings, embedder, folder, data_dir, progress)


def _build_locked_documents(
    collection, settings, embedder, folder, data_dir, progress, use_shipped: bool = False
) -> DocumentIndex:
    started = time.perf_counter()
    passages = split_passages(collection.texts, settings)
    view = PassageView(collection, settings)
    shipped = shipped_passages_for(view, TextModelKey(embedder), passages.spans()) if use_shipped else None
    if shipped is not None:  # made for exactly this key and split: nothing is embedded
        vectors = shipped.vectors
    else:
        vectors = embed_passages(collection, passages, embedder, progress)
    docs = document_vectors(vectors, passages.doc, len(collection))
    if docs.shape != (len(collection), embedder.dim):
        raise InvalidInputError(f"{docs.shape} document vectors for {len(collection)} documents")
    extra = {
        "passages": {**settings.as_dict(), "count": len(passages)},
        "cut": passages.cut,
        "build_seconds": round(
            time.perf_counter() - started, 2
        ),  # splitting and embedding (the store times the write)
    }
    if shipped is not None:
        extra["shipped_from"] = {"file": shipped.path.name, "embeddings_sha256": shipped.embeddings_sha256}
    arrays = {PASSAGES: np.ascontiguousarray(vectors), SPANS: passages.spans()}
    build_locked(
        view, TextModelKey(embedder), folder, data_dir, None, vectors=docs, extra=extra, arrays=arrays
    )
    index = load_document_index(collection, settings, embedder, data_dir)
    if shipped is not None:
        install_shipped_map(index, shipped)
    return index


def get_or_build_document_index(
    collection, settings: PassageSettings, embedder, data_dir=None, progress: Progress | None = None
) -> tuple[DocumentIndex, IndexStatus]:
    """Load the index, or build it when missing, stale or corrupt (the status says which and why);
    a build holds the file lock, and first uses what another process built while it waited. A
    build writes the passage vectors shipped with the package instead of embedding when they were
    made for exactly this key and split (:func:`embeddings.index.shipped.shipped_passages_for`)."""
    data_dir = resolve_data_dir(data_dir)  # fixed once: the environment may change during a build
    try:
        return load_document_index(collection, settings, embedder, data_dir), IndexStatus("loaded")
    except IndexNotBuiltError:
        action, reason = "built", "no index on disk yet"
    except (StaleIndexError, CorruptIndexError) as exc:
        action, reason = "rebuilt", str(exc)
        log.warning("rebuilding document index: %s", reason)
    folder = document_index_dir(collection, settings, embedder, data_dir)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with build_lock(folder):
        try:
            found = load_document_index(collection, settings, embedder, data_dir)
            return found, IndexStatus("loaded", "built by another process")
        except (IndexNotBuiltError, StaleIndexError, CorruptIndexError):
            pass
        index = _build_locked_documents(
            collection, settings, embedder, folder, data_dir, progress, use_shipped=True
        )
    if "shipped_from" in index.manifest:
        reason = SHIPPED_REASON
    return index, IndexStatus(action, reason)


def has_shipped_index(collection, settings: PassageSettings, embedder) -> bool:
    """Whether vectors shipped with the package were made for exactly this index's key (a build
    then writes them instead of embedding, if today's split matches too)."""
    return shipped_document_for_key(PassageView(collection, settings), TextModelKey(embedder)) is not None


def read_document_manifest(collection, settings: PassageSettings, model_id: str, data_dir=None) -> dict:
    """The manifest on disk (shape checked, nothing hashed): for status displays."""
    return read_manifest(PassageView(collection, settings), model_id, data_dir)


def place_query(layout: np.ndarray, ids, scores) -> np.ndarray:
    """Where a query goes on a map of the documents: the mean position of its hits, weighted by
    their cosine scores (negative scores count as zero; all zero: the plain mean)."""
    points = np.asarray(layout, dtype=np.float64)[np.asarray(ids, dtype=np.int64)]
    weights = np.clip(np.asarray(scores, dtype=np.float64), 0.0, None)
    if not weights.sum() > 0:
        weights = np.ones(len(points))
    return (points * weights[:, None]).sum(axis=0) / weights.sum()


_UPLOAD_DIR: list[Path] = []
_UPLOAD_LOCK = threading.Lock()


def upload_data_dir() -> Path:
    """A temporary data folder for uploaded collections' indexes, one per process, removed at exit:
    an upload is never kept beyond the server process (its index is keyed by its content)."""
    with _UPLOAD_LOCK:
        if not _UPLOAD_DIR:
            path = Path(tempfile.mkdtemp(prefix="embedding-explorer-uploads-"))
            atexit.register(shutil.rmtree, path, ignore_errors=True)
            _UPLOAD_DIR.append(path)
        return _UPLOAD_DIR[0]
