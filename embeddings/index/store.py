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

import itertools
import json
import logging
import os
import shutil
import tempfile
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from .. import __version__
from ..config import data_dir as resolve_data_dir
from ..core.files import load_npy, save_npy_atomic, write_json_atomic
from ..core.fingerprint import as_json, fingerprint, sha256_file, slug
from ..errors import CorruptIndexError, IndexNotBuiltError, InvalidInputError, StaleIndexError

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
FORMAT_VERSION = 1
INDEX_KINDS = ("flat", "hnsw")
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 96
# Index builds: threads decoding and preprocessing batches ahead of the model, and how many
# batches may wait (64 preprocessed 224 px images are 38 MB: 4 of them bound the memory).
DECODE_WORKERS = 2
PREFETCH_BATCHES = 4

Progress = Callable[[int, int], None]


def _faiss():
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
            "source": str(desc["source"]),
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


def _file_entry(path: Path) -> dict:
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
    faiss = _faiss()
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


def _collection_batches(collection, embedder, n: int, batch_size: int, prepared: bool):
    """``(start, task)`` per batch: ``task()`` decodes the batch's images (and preprocesses them
    when the embedder can take prepared batches)."""
    for start in range(0, n, batch_size):

        def task(start: int = start):
            images = collection.get_images(list(range(start, min(n, start + batch_size))))
            return embedder.prepare_batch(images) if prepared else images

        yield start, task


def embed_collection(
    collection,
    embedder,
    progress: Progress | None = None,
    workers: int = DECODE_WORKERS,
    prefetch: int = PREFETCH_BATCHES,
) -> np.ndarray:
    """Embed every image of ``collection`` in batches; returns (n, dim) float32 unit vectors.

    ``workers`` threads decode and preprocess the next batches while the model runs on the
    current one; at most ``prefetch`` batches wait, so memory stays bounded whatever the
    collection's size (``workers=0``: one thread, serially). The vectors and their order are the
    same either way. An error in a worker stops the build: batches not yet started are
    cancelled, running ones are waited for, and the error is raised here.
    """
    n = len(collection)
    if n == 0:
        raise InvalidInputError(f"collection {collection.describe()['name']} has no images")
    batch_size = max(1, int(getattr(embedder, "batch_size", 64) or 64))
    prepared = callable(getattr(embedder, "prepare_batch", None)) and callable(
        getattr(embedder, "embed_prepared", None)
    )
    out = np.empty((n, embedder.dim), dtype=np.float32)

    def embed(start: int, item) -> None:
        vectors = embedder.embed_prepared(item) if prepared else embedder.embed(item)
        out[start : start + len(vectors)] = vectors
        if progress:
            progress(min(n, start + batch_size), n)

    batches = _collection_batches(collection, embedder, n, batch_size, prepared)
    if workers <= 0:
        for start, task in batches:
            embed(start, task())
        return out
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="embeddings-decode")
    pending: deque = deque()
    try:
        for start, task in itertools.islice(batches, max(1, prefetch)):
            pending.append((start, pool.submit(task)))
        while pending:
            start, future = pending.popleft()
            item = future.result()  # re-raises a worker's error here
            for next_start, next_task in itertools.islice(batches, 1):
                pending.append((next_start, pool.submit(next_task)))
            embed(start, item)
            del item
    finally:
        for _, future in pending:
            future.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
    return out


def _lock(folder: Path):
    from filelock import FileLock

    return FileLock(str(folder.parent / f"{folder.name}.lock"))


def build_index(collection, embedder, data_dir=None, progress: Progress | None = None) -> ImageIndex:
    """Embed the collection and write the index atomically (under a file lock); returns it loaded."""
    data_dir = resolve_data_dir(data_dir)
    folder = index_dir(collection, embedder, data_dir)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with _lock(folder):
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
    faiss = _faiss()
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
            "files": {name: _file_entry(tmp / name) for name in files},
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
    with _lock(folder):
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
    with _lock(folder):
        try:  # another process may have built it while we waited for the lock
            found = load_index(collection, embedder, data_dir)
            return found, IndexStatus("loaded", "built by another process")
        except (IndexNotBuiltError, StaleIndexError, CorruptIndexError):
            pass
        index = _build_locked(collection, embedder, folder, data_dir, progress)
    return index, IndexStatus(action, reason)


def ensure_approximate(index: ImageIndex) -> ImageIndex:
    """Build (once, on disk) and attach an HNSW index over the same vectors for fast approximate search."""
    faiss = _faiss()
    if index.approximate is not None:
        return index
    with _lock(index.path):
        path = index.path / "index-hnsw.faiss"
        hnsw = faiss.IndexHNSWFlat(index.dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        hnsw.add(np.ascontiguousarray(index.embeddings))
        tmp = index.path / f".index-hnsw.{os.getpid()}.tmp"
        try:
            faiss.write_index(hnsw, str(tmp))
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        manifest = dict(index.manifest)
        manifest["files"] = dict(manifest["files"], **{"index-hnsw.faiss": _file_entry(path)})
        manifest["hnsw"] = {"M": HNSW_M, "efConstruction": HNSW_EF_CONSTRUCTION, "efSearch": HNSW_EF_SEARCH}
        write_json_atomic(index.path / MANIFEST, manifest)
        index.manifest = manifest
    hnsw.hnsw.efSearch = HNSW_EF_SEARCH
    index.approximate = hnsw
    return index


def approximate_recall(index: ImageIndex, k: int = 10, n_queries: int = 1000, seed: int = 0) -> float:
    """Mean recall@k of the approximate index against exact search, on stored items as queries."""
    ensure_approximate(index)
    rng = np.random.default_rng(seed)
    ids = rng.choice(index.count, size=min(n_queries, index.count), replace=False)
    exact, _ = index.search(index.embeddings[ids], k)
    approx, _ = index.search(index.embeddings[ids], k, approximate=True)
    return recall_at_k(approx, exact)


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of each row of ``truth`` ids that the same row of ``found`` contains."""
    k = truth.shape[1]
    return float(np.mean([len(set(f) & set(t)) / k for f, t in zip(found, truth, strict=True)]))
