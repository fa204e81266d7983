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

import errno
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
from ..core.files import is_regular_file, load_npy, open_regular_file, save_npy_atomic, write_json_atomic
from ..core.fingerprint import as_json, fingerprint, sha256_file, slug
from ..errors import CorruptIndexError, IndexNotBuiltError, InvalidInputError, StaleIndexError
from ..image.folders import display_name
from .ivfpq import RerankedIVFPQ, open_ivfpq
from .manifest import check_manifest

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
# Index builds: threads decoding and preprocessing batches ahead of the model, and how many
# batches may wait (64 preprocessed 224 px images are 38 MB: 4 of them bound the memory).
DECODE_WORKERS = 2
PREFETCH_BATCHES = 4

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


def read_manifest(collection, model_id: str, data_dir=None) -> dict:
    """The manifest of the index on disk for (collection, model id), its shape checked
    (:func:`check_manifest`); raises :class:`IndexNotBuiltError` or :class:`CorruptIndexError`.

    Reads one small JSON file: no model is loaded and no file is hashed, so it is only
    for status displays; :func:`load_index` is what checks an index before use.
    """
    return _read_manifest(_index_dir(collection.describe(), model_id, data_dir))


def peek_manifest(collection, model_id: str, data_dir=None) -> dict | None:
    """:func:`read_manifest`, or None when there is no index or its manifest is damaged."""
    try:
        return read_manifest(collection, model_id, data_dir)
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
        valid = f"0..{self.count - 1}"
        whole = (int, np.integer)
        if ids.dtype == object and all(isinstance(i, whole) and not isinstance(i, bool) for i in ids.ravel()):
            # Python ints beyond int64 (``--id 99999999999999999999999``): out of range, not "not integers"
            bad = next(int(i) for i in ids.ravel() if not 0 <= i < self.count)
            raise InvalidInputError(f"image id {bad} is out of range: valid ids are {valid}")
        if ids.dtype.kind not in "iu":
            raise InvalidInputError("image ids must be integers")
        bad = ids[(ids < 0) | (ids >= self.count)]
        if bad.size:
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


def write_faiss_index(faiss_index, path: Path) -> None:
    """``faiss.write_index`` with its write failures as ``OSError`` (FAISS raises ``RuntimeError``
    "write error ... (No space left on device)"), so a full disk reads the same from every writer."""
    faiss = require_faiss()
    try:
        faiss.write_index(faiss_index, str(path))
    except RuntimeError as exc:
        text = str(exc)
        if "No space left on device" in text:
            raise OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)} ({text})", str(path)) from exc
        if "write error" in text or "could not open" in text:
            raise OSError(errno.EIO, f"{os.strerror(errno.EIO)} ({text})", str(path)) from exc
        raise


def replace_faiss_index(faiss_index, path: Path) -> None:
    """Write ``faiss_index`` to ``path`` through a temporary file beside it, then ``os.replace``:
    an index added to a built folder (HNSW, IVF-PQ) is never seen half-written."""
    tmp = path.parent / f".{path.stem}.{os.getpid()}.tmp"
    try:
        write_faiss_index(faiss_index, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _read_manifest(folder: Path) -> dict:
    path = folder / MANIFEST
    if not os.path.lexists(path):
        raise IndexNotBuiltError(f"no index at {folder}")
    try:
        with open_regular_file(path) as fh:
            manifest = json.loads(fh.read().decode("utf-8"))
    except (OSError, ValueError) as exc:
        raise CorruptIndexError(f"index manifest {path} is unreadable: {exc}") from exc
    try:
        return check_manifest(manifest)
    except CorruptIndexError as exc:
        raise CorruptIndexError(f"{exc} ({path})") from None


def _check_files(folder: Path, manifest: dict, labelled: bool, verify: bool) -> None:
    """Every file the index needs is listed, inside the folder, a regular file of the listed size
    and (with ``verify``) of the listed sha256."""
    files = manifest["files"]
    if labelled and "labels.npy" not in files:
        raise CorruptIndexError(f"the manifest at {folder} does not list labels.npy")
    inside = folder.resolve()
    for name, entry in files.items():
        path = folder / name
        if not os.path.lexists(path):
            raise CorruptIndexError(f"index file {name} is missing from {folder}")
        if path.resolve().parent != inside:
            raise CorruptIndexError(f"index file {name} in {folder} is a link leaving the folder")
        if not is_regular_file(path):
            raise CorruptIndexError(f"index file {name} in {folder} is not a regular file")
        size = path.stat().st_size
        if size != entry["bytes"]:
            raise CorruptIndexError(f"index file {name} has {size} bytes, expected {entry['bytes']}")
        try:
            if verify and sha256_file(path) != entry["sha256"]:
                raise CorruptIndexError(f"index file {name} does not match its checksum")
        except OSError as exc:
            raise CorruptIndexError(f"index file {name} in {folder} could not be read: {exc}") from exc


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
    _check_files(folder, manifest, collection.labels is not None, verify)
    on_disk = manifest.get("index_kind", "flat") == "ivfpq"  # vectors memory-mapped, IVF-PQ searched
    try:
        embeddings = load_npy(folder / "embeddings.npy", mmap=on_disk)
        labels = load_npy(folder / "labels.npy") if "labels.npy" in manifest["files"] else None
        if on_disk:
            flat = RerankedIVFPQ(
                open_ivfpq(folder / "index-ivfpq.faiss"), embeddings, **_search_params(manifest)
            )
        else:
            flat = faiss.read_index(str(folder / "index-flat.faiss"))
    except (OSError, ValueError, RuntimeError) as exc:
        raise CorruptIndexError(f"index at {folder} could not be read: {exc}") from exc
    count, dim, classes = manifest["count"], manifest["dim"], manifest["classes"]
    if embeddings.shape != (count, dim) or embeddings.dtype != np.float32 or flat.ntotal != count:
        raise CorruptIndexError(f"index at {folder} has inconsistent shapes")
    if flat.d != dim:
        raise CorruptIndexError(
            f"the {'IVF-PQ' if on_disk else 'flat'} index at {folder} is {flat.d}-d, expected {dim}"
        )
    if not all(
        np.isfinite(embeddings[i : i + EMBED_CHUNK * 64]).all() for i in range(0, count, EMBED_CHUNK * 64)
    ):
        raise CorruptIndexError(f"embeddings at {folder} contain NaN or infinite values")
    if labels is not None:
        if labels.shape != (count,) or labels.dtype.kind not in "iu":
            raise CorruptIndexError(
                f"labels at {folder} are {labels.dtype} {labels.shape}, expected ({count},) integers"
            )
        if labels.min() < 0 or labels.max() >= len(classes):
            raise CorruptIndexError(f"labels at {folder} fall outside the {len(classes)} classes")
        labels = labels.astype(np.int64, copy=False)
    if classes != list(getattr(collection, "classes", classes)):
        raise CorruptIndexError(f"the classes in the manifest at {folder} are not the collection's")
    index = ImageIndex(folder, manifest, embeddings, labels, list(classes), flat)
    if "index-hnsw.faiss" in manifest["files"]:
        try:
            index.approximate = faiss.read_index(str(folder / "index-hnsw.faiss"))
            index.approximate.hnsw.efSearch = HNSW_EF_SEARCH
        except (AttributeError, RuntimeError) as exc:
            raise CorruptIndexError(f"the HNSW index at {folder} could not be read: {exc}") from exc
        if index.approximate.ntotal != count or index.approximate.d != dim:
            raise CorruptIndexError(f"the HNSW index at {folder} has inconsistent shapes")
    return index


def _search_params(manifest: dict) -> dict:
    """The IVF-PQ search parameters a manifest records (nprobe, rerank depth)."""
    params = manifest["ivfpq"]
    return {"nprobe": params["nprobe"], "rerank": params["rerank"]}


def embed_chunks(collection, max_images: int | None = None, max_bytes: int | None = None) -> list[range]:
    """Consecutive id ranges covering ``collection``, each at most ``max_images`` (default
    ``EMBED_CHUNK``) images and ``max_bytes`` (default ``EMBED_CHUNK_BYTES``) of decoded pixels
    (an image bigger than that alone)."""
    max_images = max_images or EMBED_CHUNK
    budget = max_bytes or EMBED_CHUNK_BYTES
    n = len(collection)
    sizes = getattr(collection, "image_nbytes", None)
    chunks, start, used = [], 0, 0
    for i in range(n):
        nbytes = sizes(i) if sizes else 0
        if i > start and (i - start >= max_images or used + nbytes > budget):
            chunks.append(range(start, i))
            start, used = i, 0
        used += nbytes
    if n:
        chunks.append(range(start, n))
    return chunks


def _collection_batches(collection, embedder, batch_size: int, prepared: bool):
    """``(ids, task)`` per batch (:func:`embed_chunks`: at most ``batch_size`` images and
    ``EMBED_CHUNK_BYTES`` of decoded pixels): ``task()`` decodes the batch's images (and
    preprocesses them when the embedder can take prepared batches)."""
    for ids in embed_chunks(collection, batch_size):

        def task(ids: range = ids):
            images = collection.get_images(list(ids))
            return embedder.prepare_batch(images) if prepared else images

        yield ids, task


def embed_collection(
    collection,
    embedder,
    progress: Progress | None = None,
    workers: int = DECODE_WORKERS,
    prefetch: int = PREFETCH_BATCHES,
) -> np.ndarray:
    """Embed every image of ``collection`` in batches; returns (n, dim) float32 unit vectors.

    ``workers`` threads decode and preprocess the next batches while the model runs on the
    current one; at most ``prefetch`` batches and ``EMBED_CHUNK_BYTES`` of decoded pixels wait
    (besides the batch being embedded), so memory follows the images' sizes, not the
    collection's (``workers=0``: one thread, serially). The vectors and their order are the
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

    def embed(ids: range, item) -> None:
        out[ids.start : ids.stop] = embedder.embed_prepared(item) if prepared else embedder.embed(item)
        if progress:
            progress(ids.stop, n)

    batches = _collection_batches(collection, embedder, batch_size, prepared)
    if workers <= 0:
        for ids, task in batches:
            embed(ids, task())
        return out
    sizes = getattr(collection, "image_nbytes", None)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="embeddings-decode")
    pending: deque = deque()  # (ids, decoded bytes, future), oldest first
    waiting = None  # the next batch, held back while the bytes in flight would pass the budget
    in_flight = 0

    def fill() -> None:
        """Start batches ahead: at most ``prefetch`` of them, and together at most
        ``EMBED_CHUNK_BYTES`` of decoded pixels (one batch always runs)."""
        nonlocal waiting, in_flight
        while len(pending) < max(1, prefetch):
            waiting = waiting or next(batches, None)
            if waiting is None:
                return
            ids, task = waiting
            need = sum(sizes(i) for i in ids) if sizes else 0
            if pending and in_flight + need > EMBED_CHUNK_BYTES:
                return
            pending.append((ids, need, pool.submit(task)))
            in_flight += need
            waiting = None

    try:
        fill()
        while pending:
            ids, need, future = pending[0]
            item = future.result()  # re-raises a worker's error here
            pending.popleft()
            fill()  # the next batches decode while this one is embedded
            embed(ids, item)
            del item
            in_flight -= need
            fill()
    finally:
        for _, _, future in pending:
            future.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
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
        return build_locked(collection, embedder, folder, data_dir, progress)


def build_locked(
    collection,
    embedder,
    folder: Path,
    data_dir,
    progress: Progress | None,
    vectors: np.ndarray | None = None,
    extra: dict | None = None,
    arrays: dict[str, np.ndarray] | None = None,
) -> ImageIndex:
    """Build the index into ``folder`` with the build lock already held (:func:`build_lock`):
    embed the collection unless ``vectors`` are given, write every file into a temporary folder
    beside ``folder`` and swap it in; ``extra`` goes into the manifest, and ``arrays`` (file name
    to array, e.g. a document index's passages) are written and checksummed beside the vectors."""
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
        for name, array in (arrays or {}).items():  # more arrays (a document index's passages)
            save_npy_atomic(tmp / name, array)
            files.append(name)
        flat = faiss.IndexFlatIP(vectors.shape[1])
        flat.add(vectors)
        write_faiss_index(flat, tmp / "index-flat.faiss")
        manifest = {
            "key": index_key(collection, embedder),
            "count": int(vectors.shape[0]),
            "dim": int(vectors.shape[1]),
            "classes": list(collection.classes),
            "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "build_seconds": round(time.perf_counter() - started, 2),
            "files": {name: file_entry(tmp / name) for name in files},
            "engine": {"name": "local"},
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
    collection,
    embedder,
    vectors: np.ndarray,
    data_dir=None,
    extra: dict | None = None,
    arrays: dict[str, np.ndarray] | None = None,
) -> ImageIndex:
    """Write an index for (collection, embedder) from vectors computed elsewhere (e.g. a projection
    head applied to another index's stored vectors), atomically and under the same file lock as a
    build; returns it loaded. ``extra`` is merged into the manifest (e.g. what it was derived from);
    ``arrays`` are more ``.npy`` files written beside the vectors (listed and checksummed too)."""
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
        return build_locked(
            collection, embedder, folder, data_dir, None, vectors=vectors, extra=extra, arrays=arrays
        )


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
        index = build_locked(collection, embedder, folder, data_dir, progress)
    return index, IndexStatus(action, reason)
