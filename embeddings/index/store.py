"""The image index, built once on disk and reused.

For one (collection, split, image model) the index folder holds ``embeddings.npy``
(float32, unit rows), ``labels.npy``, ``index-flat.faiss`` (exact inner product = cosine)
and ``manifest.json``, which records everything that decides the vectors (model id,
weights, preprocessing, collection fingerprint, package version) plus the sha256 of
every file. A build writes into a temporary folder beside the final one and swaps it
in with ``os.replace``; a build killed halfway therefore leaves nothing that loads. A
file lock keeps two processes from building the same index at once. Loading checks the
manifest against the request and the files against their hashes: a stale or corrupt
index raises, and :func:`get_or_build_index` rebuilds it.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from .. import __version__
from ..config import data_dir as resolve_data_dir
from ..core.files import load_npy, save_npy_atomic, write_json_atomic
from ..core.fingerprint import as_json, fingerprint, sha256_file, slug
from ..errors import CorruptIndexError, IndexNotBuiltError, InvalidInputError, StaleIndexError
from ..image.folders import display_name

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
FORMAT_VERSION = 1
INDEX_KINDS = ("flat", "hnsw")
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 96
EMBED_CHUNK = 1024  # at most this many images decoded and embedded per step
# ... and at most this many bytes of decoded pixels (one bigger image is a chunk of its own), so
# peak memory follows the images' sizes, not their count: 1,024 large photos are never decoded at once.
EMBED_CHUNK_BYTES = 64 * 2**20

Progress = Callable[[int, int], None]


def require_faiss():
    from ..errors import MissingDependencyError

    try:
        import faiss
    except ImportError as exc:  # pragma: no cover - faiss-cpu is in requirements.txt
        raise MissingDependencyError("the index needs FAISS: pip install faiss-cpu") from exc
    return faiss


def index_key(collection, embedder) -> dict:
    """Everything that decides an index's contents (stored in, and checked against, the manifest)."""
    desc = collection.describe()
    key = {
        "format": FORMAT_VERSION,
        "package_version": __version__,
        "model": embedder.fingerprint(),
        "collection": {
            "name": desc["name"],
            "source": display_name(str(desc["source"])),  # a non-UTF-8 path is stored escaped
            "split": desc["split"],
            "count": int(desc["count"]),
            "fingerprint": desc["fingerprint"],
        },
    }
    return as_json(key)  # the form it takes in the manifest (tuples become lists)


def index_dir(collection, embedder, data_dir: str | os.PathLike | None = None) -> Path:
    """The folder an index for (collection, split, model) lives in."""
    return _index_dir(collection.describe(), embedder.model_id, data_dir)


def _index_dir(desc: dict, model_id: str, data_dir) -> Path:
    name = f"{slug(desc['name'])}-{slug(desc['split'])}-{slug(model_id)}-" + fingerprint(
        str(desc["source"]), length=8
    )
    return resolve_data_dir(data_dir) / "indexes" / name


def peek_manifest(collection, model_id: str, data_dir=None) -> dict | None:
    """The manifest of the index on disk for (collection, model id), or None.

    Reads one small JSON file: no model is loaded and nothing is verified, so it is only
    for status displays; :func:`load_index` is what checks an index before use.
    """
    try:
        return _read_manifest(_index_dir(collection.describe(), model_id, data_dir))
    except (IndexNotBuiltError, CorruptIndexError):
        return None


@dataclass
class ImageIndex:
    """A loaded index: vectors, labels and a FAISS index over them."""

    path: Path
    manifest: dict
    embeddings: np.ndarray
    labels: np.ndarray | None
    classes: list[str]
    faiss_index: object
    approximate: object | None = field(default=None, repr=False)

    @property
    def embeddings_sha256(self) -> str:
        """sha256 of ``embeddings.npy``, from the manifest (hashed from the file if missing)."""
        entry = self.manifest.get("files", {}).get("embeddings.npy", {})
        return entry.get("sha256") or sha256_file(Path(self.path) / "embeddings.npy")

    @property
    def count(self) -> int:
        return int(self.embeddings.shape[0])

    @property
    def dim(self) -> int:
        return int(self.embeddings.shape[1])

    def _check_k(self, k: int, exclude_self: bool) -> int:
        limit = self.count - (1 if exclude_self else 0)
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
            raise InvalidInputError(f"k must be a positive integer, got {k!r}")
        if k > limit:
            raise InvalidInputError(f"k={k} is more than the {limit} images available to return")
        return int(k)

    def search(self, queries: np.ndarray, k: int, approximate: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Return (ids, cosine scores), each (n_queries, k), best first, for unit query vectors."""
        from ..core.mathops import normalize

        k = self._check_k(k, exclude_self=False)
        queries = normalize(queries)
        if queries.shape[1] != self.dim:
            raise InvalidInputError(f"query vectors are {queries.shape[1]}-d; this index is {self.dim}-d")
        engine = self.approximate if approximate else self.faiss_index
        if engine is None:
            raise InvalidInputError("no approximate index loaded: call ensure_approximate(index) first")
        scores, ids = engine.search(queries, k)
        return ids.astype(np.int64), np.clip(scores, -1.0, 1.0).astype(np.float32)

    def neighbours(self, ids, k: int, approximate: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` neighbours of stored items ``ids`` (each item itself excluded)."""
        ids = np.atleast_1d(np.asarray(ids))
        if ids.dtype.kind not in "iu":
            raise InvalidInputError("image ids must be integers")
        bad = ids[(ids < 0) | (ids >= self.count)]
        if bad.size:
            valid = f"0..{self.count - 1}"
            raise InvalidInputError(f"image id {int(bad[0])} is out of range: valid ids are {valid}")
        k = self._check_k(k, exclude_self=True)
        found, scores = self.search(self.embeddings[ids], k + 1, approximate=approximate)
        out_ids = np.empty((len(ids), k), dtype=np.int64)
        out_scores = np.empty((len(ids), k), dtype=np.float32)
        for row, query in enumerate(ids):
            keep = found[row] != query
            if keep.all():  # self not returned (exact duplicates or approximate search): drop the last
                keep[-1] = False
            out_ids[row] = found[row][keep][:k]
            out_scores[row] = scores[row][keep][:k]
        return out_ids, out_scores


def file_entry(path: Path) -> dict:
    """A manifest's record of one file: its sha256 and size."""
    return {"sha256": sha256_file(path), "bytes": path.stat().st_size}


def _read_manifest(folder: Path) -> dict:
    path = folder / MANIFEST
    if not path.exists():
        raise IndexNotBuiltError(f"no index at {folder}")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CorruptIndexError(f"index manifest {path} is unreadable: {exc}") from exc
    if not isinstance(manifest, dict) or "key" not in manifest or "files" not in manifest:
        raise CorruptIndexError(f"index manifest {path} is incomplete")
    return manifest


def _describe_mismatch(found: dict, wanted: dict, prefix: str = "") -> str:
    for key in sorted(set(found) | set(wanted)):
        a, b = found.get(key), wanted.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            if a != b:
                return _describe_mismatch(a, b, f"{prefix}{key}.")
        elif a != b:
            return f"{prefix}{key} is {a!r} on disk but {b!r} was asked for"
    return "manifest differs"


def load_index(collection, embedder, data_dir=None, verify: bool = True) -> ImageIndex:
    """Load the index for (collection, embedder), checking manifest and file hashes.

    Raises :class:`IndexNotBuiltError`, :class:`StaleIndexError` (built for something else)
    or :class:`CorruptIndexError` (damaged files). Never returns a partial index.
    """
    faiss = require_faiss()
    folder = index_dir(collection, embedder, data_dir)
    manifest = _read_manifest(folder)
    wanted = index_key(collection, embedder)
    if manifest["key"] != wanted:
        raise StaleIndexError(f"index at {folder} is stale: {_describe_mismatch(manifest['key'], wanted)}")
    for name, entry in manifest["files"].items():
        path = folder / name
        if not path.exists():
            raise CorruptIndexError(f"index file {name} is missing from {folder}")
        if path.stat().st_size != entry.get("bytes"):
            size = path.stat().st_size
            raise CorruptIndexError(f"index file {name} has {size} bytes, expected {entry['bytes']}")
        if verify and sha256_file(path) != entry.get("sha256"):
            raise CorruptIndexError(f"index file {name} does not match its checksum")
    try:
        embeddings = load_npy(folder / "embeddings.npy")
        labels = load_npy(folder / "labels.npy") if "labels.npy" in manifest["files"] else None
        flat = faiss.read_index(str(folder / "index-flat.faiss"))
    except (OSError, ValueError, RuntimeError) as exc:
        raise CorruptIndexError(f"index at {folder} could not be read: {exc}") from exc
    count, dim = manifest["count"], manifest["dim"]
    if embeddings.shape != (count, dim) or embeddings.dtype != np.float32 or flat.ntotal != count:
        raise CorruptIndexError(f"index at {folder} has inconsistent shapes")
    if labels is not None and labels.shape != (count,):
        raise CorruptIndexError(f"labels at {folder} have shape {labels.shape}, expected ({count},)")
    index = ImageIndex(folder, manifest, embeddings, labels, list(manifest.get("classes", [])), flat)
    if "index-hnsw.faiss" in manifest["files"]:
        index.approximate = faiss.read_index(str(folder / "index-hnsw.faiss"))
        index.approximate.hnsw.efSearch = HNSW_EF_SEARCH
    return index


def embed_chunks(collection) -> list[range]:
    """Consecutive id ranges covering ``collection``, each at most ``EMBED_CHUNK`` images and
    ``EMBED_CHUNK_BYTES`` of decoded pixels (an image bigger than that alone)."""
    n = len(collection)
    sizes = getattr(collection, "image_nbytes", None)
    chunks, start, used = [], 0, 0
    for i in range(n):
        nbytes = sizes(i) if sizes else 0
        if i > start and (i - start >= EMBED_CHUNK or used + nbytes > EMBED_CHUNK_BYTES):
            chunks.append(range(start, i))
            start, used = i, 0
        used += nbytes
    if n:
        chunks.append(range(start, n))
    return chunks


def embed_collection(collection, embedder, progress: Progress | None = None) -> np.ndarray:
    """Embed every image of ``collection`` in chunks (:func:`embed_chunks`); returns (n, dim)
    float32 unit vectors."""
    n = len(collection)
    if n == 0:
        raise InvalidInputError(f"collection {collection.describe()['name']} has no images")
    out = np.empty((n, embedder.dim), dtype=np.float32)
    for chunk in embed_chunks(collection):
        start = chunk.start
        ids = list(chunk)
        images = collection.get_images(ids)

        def chunk_progress(done: int, _total: int, offset: int = start) -> None:
            if progress:
                progress(offset + done, n)

        out[start : start + len(ids)] = embedder.embed(images, progress=chunk_progress)
    return out


def build_lock(folder: Path):
    """The file lock that guards building (or adding to) the index in ``folder``."""
    from filelock import FileLock

    return FileLock(str(folder.parent / f"{folder.name}.lock"))


def build_index(collection, embedder, data_dir=None, progress: Progress | None = None) -> ImageIndex:
    """Embed the collection and write the index atomically (under a file lock); returns it loaded."""
    data_dir = resolve_data_dir(data_dir)
    folder = index_dir(collection, embedder, data_dir)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with build_lock(folder):
        return _build_locked(collection, embedder, folder, data_dir, progress)


def _build_locked(
    collection,
    embedder,
    folder: Path,
    data_dir,
    progress: Progress | None,
    vectors: np.ndarray | None = None,
    extra: dict | None = None,
) -> ImageIndex:
    faiss = require_faiss()
    for prefix in (".tmp", ".old"):  # earlier builds that died (while writing, or mid-swap)
        for leftover in folder.parent.glob(f"{prefix}-{folder.name}-*"):
            shutil.rmtree(leftover, ignore_errors=True)
    started = time.perf_counter()
    if vectors is None:
        vectors = embed_collection(collection, embedder, progress)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".tmp-{folder.name}-"))
    try:
        save_npy_atomic(tmp / "embeddings.npy", vectors)
        files = ["embeddings.npy", "index-flat.faiss"]
        if collection.labels is not None:
            save_npy_atomic(tmp / "labels.npy", np.asarray(collection.labels, dtype=np.int64))
            files.append("labels.npy")
        flat = faiss.IndexFlatIP(vectors.shape[1])
        flat.add(vectors)
        faiss.write_index(flat, str(tmp / "index-flat.faiss"))
        manifest = {
            "key": index_key(collection, embedder),
            "count": int(vectors.shape[0]),
            "dim": int(vectors.shape[1]),
            "classes": list(collection.classes),
            "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "build_seconds": round(time.perf_counter() - started, 2),
            "files": {name: file_entry(tmp / name) for name in files},
            **(extra or {}),
        }
        write_json_atomic(tmp / MANIFEST, manifest)
        _swap_in(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("built index %s (%d x %d) in %.1fs", folder.name, *vectors.shape, manifest["build_seconds"])
    return load_index(collection, embedder, data_dir)


def write_index(
    collection, embedder, vectors: np.ndarray, data_dir=None, extra: dict | None = None
) -> ImageIndex:
    """Write an index for (collection, embedder) from vectors computed elsewhere (e.g. a projection
    head applied to another index's stored vectors), atomically and under the same file lock as a
    build; returns it loaded. ``extra`` is merged into the manifest (e.g. what it was derived from)."""
    from ..core.mathops import normalize

    vectors = np.ascontiguousarray(normalize(vectors), dtype=np.float32)
    if vectors.shape != (len(collection), embedder.dim):
        raise InvalidInputError(
            f"{vectors.shape[0]} x {vectors.shape[1]} vectors for {len(collection)} images of {embedder.dim} dims"
        )
    data_dir = resolve_data_dir(data_dir)
    folder = index_dir(collection, embedder, data_dir)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with build_lock(folder):
        return _build_locked(collection, embedder, folder, data_dir, None, vectors=vectors, extra=extra)


def _swap_in(tmp: Path, folder: Path) -> None:
    """Replace ``folder`` with the finished ``tmp`` folder; the old one is removed afterwards."""
    old = None
    if folder.exists():
        old = folder.parent / f".old-{folder.name}-{os.getpid()}-{time.monotonic_ns()}"
        os.replace(folder, old)
    os.replace(tmp, folder)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@dataclass
class IndexStatus:
    """How an index was obtained (:func:`load_or_build`, :func:`embeddings.index.service.get_or_build_index`)."""

    action: str  # "loaded", "built" or "rebuilt"
    reason: str = ""


def load_or_build(
    collection, embedder, data_dir=None, progress: Progress | None = None
) -> tuple[ImageIndex, IndexStatus]:
    """Load the index, or embed the collection and build it when missing, stale or corrupt (the
    reason is reported). Callers use :func:`embeddings.index.service.get_or_build_index`, which
    also derives adapted models' indexes."""
    data_dir = resolve_data_dir(data_dir)  # fixed once: the environment may change during a long build
    try:
        return load_index(collection, embedder, data_dir), IndexStatus("loaded")
    except IndexNotBuiltError:
        action, reason = "built", "no index on disk yet"
    except (StaleIndexError, CorruptIndexError) as exc:
        action, reason = "rebuilt", str(exc)
        log.warning("rebuilding index: %s", reason)
    folder = index_dir(collection, embedder, data_dir)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with build_lock(folder):
        try:  # another process may have built it while we waited for the lock
            found = load_index(collection, embedder, data_dir)
            return found, IndexStatus("loaded", "built by another process")
        except (IndexNotBuiltError, StaleIndexError, CorruptIndexError):
            pass
        index = _build_locked(collection, embedder, folder, data_dir, progress)
    return index, IndexStatus(action, reason)
