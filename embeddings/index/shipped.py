"""Index vectors (and a t-SNE map) shipped with the package, so a first use embeds no image.

``embeddings/data/precomputed/index-<collection>-<split>-<model>-<precision>.npz`` holds
``vectors`` (float32 unit rows, one per image of the collection), ``key`` (the exact
:func:`embeddings.index.store.index_key` they were made for, as JSON), ``embeddings_sha256``
(the sha256 of the ``embeddings.npy`` an index written from them has), and optionally ``map``
(an (n, 2) layout) with ``map_params`` (JSON ``[method, perplexity, seed]``), made by
``scripts/make_sample_index.py``. :func:`install_shipped_index` writes an ordinary index from
them with :func:`embeddings.index.store.write_index` when the requested key equals the shipped
one exactly; any other key (another model, precision, package version, a changed sample) is a
miss and the index is built normally: a miss beats a wrong hit.

The bundled documents' index ships the same way for one text model and passage setting
(``docindex-*.npz``, :func:`shipped_passages_for`, made by ``scripts/make_docs_index.py``).
"""

from __future__ import annotations

import json
import logging
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import PACKAGE_DATA
from ..core.files import read_memoised, save_npy_atomic
from ..core.fingerprint import slug
from .maps import _map_path
from .store import ImageIndex, index_key, write_index

log = logging.getLogger(__name__)

SHIPPED_DIR = PACKAGE_DATA / "precomputed"
SHIPPED_REASON = "written from the vectors shipped with the package"
# what reading a damaged .npz raises (a truncated one is not a zip file)
UNREADABLE = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile)


@dataclass(frozen=True)
class ShippedIndex:
    """What one shipped file holds (the arrays are read only when installed)."""

    path: Path
    key: dict
    embeddings_sha256: str

    def arrays(self) -> tuple[np.ndarray, np.ndarray | None, tuple | None]:
        """(vectors, map or None, map params or None)."""
        with np.load(self.path, allow_pickle=False) as data:
            vectors = np.asarray(data["vectors"])
            layout = np.asarray(data["map"]) if "map" in data.files else None
            params = tuple(json.loads(str(data["map_params"]))) if "map_params" in data.files else None
        return vectors, layout, params


def shipped_path(collection_name: str, split: str, model_id: str, precision: str) -> Path:
    """Where the shipped index of (collection, split, model, precision) is (whether or not it exists)."""
    return SHIPPED_DIR / f"index-{slug(collection_name)}-{slug(split)}-{slug(model_id)}-{slug(precision)}.npz"


def _path_for(collection, embedder) -> Path:
    desc = collection.describe()
    return shipped_path(
        desc["name"], desc["split"], embedder.model_id, str(getattr(embedder, "precision", ""))
    )


def _read(path: Path) -> ShippedIndex | None:
    try:
        with np.load(path, allow_pickle=False) as data:
            key = json.loads(str(data["key"]))
            sha = str(data["embeddings_sha256"])
    except UNREADABLE as exc:
        log.warning("ignoring the shipped index %s: %s", path, exc)
        return None
    return ShippedIndex(path, key, sha)


def shipped_index_for(collection, embedder) -> ShippedIndex | None:
    """The shipped index for (collection, embedder) if one was made for exactly this index key."""
    path = _path_for(collection, embedder)
    shipped = read_memoised(path, _read)
    if shipped is None:
        return None
    if shipped.key != index_key(collection, embedder):
        log.info("the shipped index %s was made for another key; building normally", path.name)
        return None
    return shipped


def install_shipped_index(collection, embedder, data_dir=None) -> ImageIndex | None:
    """Write (collection, embedder)'s index from the shipped vectors, and its shipped map beside it.

    Returns None (nothing written) when no shipped file matches the index key exactly or the
    file's vectors do not fit the collection.
    """
    shipped = shipped_index_for(collection, embedder)
    if shipped is None:
        return None
    try:
        vectors, layout, params = shipped.arrays()
    except UNREADABLE as exc:
        log.warning("ignoring the shipped index %s: %s", shipped.path, exc)
        return None
    if (
        vectors.dtype != np.float32
        or vectors.shape != (len(collection), embedder.dim)
        or not np.isfinite(vectors).all()
    ):
        log.warning(
            "ignoring the shipped index %s: %s %s vectors", shipped.path, vectors.shape, vectors.dtype
        )
        return None
    extra = {"shipped_from": {"file": shipped.path.name, "embeddings_sha256": shipped.embeddings_sha256}}
    index = write_index(collection, embedder, vectors, data_dir, extra=extra)
    if (
        layout is not None
        and params is not None
        and index.embeddings_sha256 == shipped.embeddings_sha256
        and layout.shape == (index.count, 2)
        and np.isfinite(layout).all()
    ):
        method, perplexity, seed = params
        save_npy_atomic(_map_path(index, str(method), float(perplexity), int(seed)), layout)
    return index


def save_shipped_index(path, collection, embedder, vectors, scratch_dir, map_params=None) -> Path:
    """Ship ``vectors`` (the collection's, from an ordinary build) at ``path``, atomically, with
    the index key of (collection, embedder) and, given ``map_params`` (``(method, perplexity,
    seed)``), the map. The index is first written from them into ``scratch_dir`` exactly as
    :func:`install_shipped_index` will write it (``write_index`` normalises again, which may move
    the last bit), so the recorded checksum, and the map computed on that index, are those an
    installed index has."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    installed = write_index(collection, embedder, vectors, scratch_dir)
    arrays = {
        "vectors": vectors,
        "key": np.array(json.dumps(index_key(collection, embedder), sort_keys=True)),
        "embeddings_sha256": np.array(installed.embeddings_sha256),
    }
    return _save_shipped(path, arrays, installed, map_params, compress=False)


# ------------------------------------------------------------------ the bundled documents' index
# ``docindex-<collection>-<passages>-<model>.npz`` holds ``vectors`` (float32 unit rows, one per
# *passage*), ``spans`` (the (P, 3) document/start/end of each passage, as the split made them),
# ``key``, ``embeddings_sha256`` (of the document vectors an index written from them has) and
# the map, made by ``scripts/make_docs_index.py``. It is used only when the document index key
# *and* today's split of the collection into passages equal the shipped ones exactly.


@dataclass(frozen=True)
class ShippedPassages:
    """A shipped document index that fits the requested key and passages (arrays read)."""

    path: Path
    vectors: np.ndarray
    embeddings_sha256: str
    layout: np.ndarray | None
    map_params: tuple | None


def shipped_document_path(collection_name: str, passages_label: str, model_id: str) -> Path:
    """Where the shipped index of (document collection, passage settings, text model) is."""
    return SHIPPED_DIR / f"docindex-{slug(collection_name)}-{slug(passages_label)}-{slug(model_id)}.npz"


def shipped_document_for_key(view, model_key) -> ShippedIndex | None:
    """The shipped document index made for exactly (``view``, ``model_key``)'s index key, its
    arrays unread (cheap: what a page asks before starting a build); the split is checked by
    :func:`shipped_passages_for`."""
    desc = view.describe()
    path = shipped_document_path(desc["name"], desc["split"], model_key.model_id)
    shipped = read_memoised(path, _read)  # the key and checksum only: a miss reads no array
    if shipped is None:
        return None
    if shipped.key != index_key(view, model_key):
        log.info("the shipped document index %s was made for another key; building normally", path.name)
        return None
    return shipped


def shipped_passages_for(view, model_key, spans: np.ndarray) -> ShippedPassages | None:
    """The shipped passage vectors for (``view``, ``model_key``) (a document index's
    :class:`~embeddings.index.documents.PassageView` and ``TextModelKey``) when they were made for
    exactly its index key and for exactly ``spans`` (today's split); else None (build normally)."""
    shipped = shipped_document_for_key(view, model_key)
    if shipped is None:
        return None
    path = shipped.path
    try:
        with np.load(path, allow_pickle=False) as data:
            vectors, shipped_spans = np.asarray(data["vectors"]), np.asarray(data["spans"])
            layout = np.asarray(data["map"]) if "map" in data.files else None
            params = tuple(json.loads(str(data["map_params"]))) if "map_params" in data.files else None
    except UNREADABLE as exc:
        log.warning("ignoring the shipped document index %s: %s", path, exc)
        return None
    if not np.array_equal(shipped_spans, spans):
        log.info("the shipped document index %s was split differently; building normally", path.name)
        return None
    if (
        vectors.dtype != np.float32
        or vectors.shape != (len(spans), model_key.dim)
        or not np.isfinite(vectors).all()
    ):
        log.warning(
            "ignoring the shipped document index %s: %s %s vectors", path, vectors.shape, vectors.dtype
        )
        return None
    return ShippedPassages(path, vectors, shipped.embeddings_sha256, layout, params)


def install_shipped_map(index, shipped: ShippedPassages) -> bool:
    """Save the shipped map beside ``index`` when it was made on exactly these document vectors."""
    layout, params = shipped.layout, shipped.map_params
    if (
        layout is None
        or params is None
        or index.embeddings_sha256 != shipped.embeddings_sha256
        or layout.shape != (index.count, 2)
        or not np.isfinite(layout).all()
    ):
        return False
    method, perplexity, seed = params
    save_npy_atomic(_map_path(index, str(method), float(perplexity), int(seed)), layout)
    return True


def save_shipped_documents(path, index, key: dict, map_params=None) -> Path:
    """Ship a built document ``index`` (its passage vectors and spans, made for ``key``) at
    ``path``, atomically, with its map for ``map_params`` (``(method, perplexity, seed)``)."""
    arrays = {
        "vectors": np.ascontiguousarray(index.passage_vectors, dtype=np.float32),
        "spans": np.ascontiguousarray(index.spans, dtype=np.int64),
        "key": np.array(json.dumps(key, sort_keys=True)),
        "embeddings_sha256": np.array(index.embeddings_sha256),
    }
    return _save_shipped(path, arrays, index, map_params, compress=True)


def _save_shipped(path, arrays: dict, index, map_params, compress: bool) -> Path:
    """Write ``arrays`` (plus ``index``'s map for ``map_params``, when given) to ``path`` as one
    .npz, atomically: what both kinds of shipped file share."""
    from ..core.files import atomic_path
    from .maps import index_map

    if map_params is not None:
        arrays = {
            **arrays,
            "map": np.asarray(index_map(index, *map_params)),
            "map_params": np.array(json.dumps(list(map_params))),
        }
    path = Path(path)
    with atomic_path(path, suffix=".npz") as tmp:
        with open(tmp, "wb") as fh:
            (np.savez_compressed if compress else np.savez)(fh, **arrays)
    return path
