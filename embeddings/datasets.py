"""Image collections: the bundled sample, torchvision's CIFAR-10, or a folder of images.

:func:`open_collection` is the one entry point. Every collection gives uint8 H x W x 3 RGB
images by integer id, optional class labels, and a cheap :meth:`ImageCollection.fingerprint`
that changes whenever its contents do (indexes store it to detect staleness).

Sources:

* ``"sample"``: 2,000 CIFAR-10 test images (200 per class) shipped in
  ``embeddings/data/cifar10_sample.npz``; works offline; its only split is ``"test"``.
* ``"cifar10"``: torchvision's CIFAR-10 in ``<data_dir>/cifar10/``, downloaded once (fast
  failing when offline) and cached as ``.npy`` arrays; splits ``"train"`` and ``"test"``.
* a folder path: class-named subfolders (labels are the sorted subfolder names) or a flat
  folder of images (unlabelled); a folder holding ``train/`` and ``test/`` gives two splits.
"""

from __future__ import annotations

import logging
import os
import shutil
import tarfile
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from .config import data_dir as resolve_data_dir
from .errors import DatasetUnavailableError, InvalidInputError
from .fileio import fingerprint as hash_parts
from .fileio import load_npy, save_npy_atomic, sha256_file, write_json_atomic
from .imageio import (
    DEFAULT_MAX_PIXELS,
    _allowed_formats,
    decode_image_bytes,
    is_image_filename,
    load_image_file,
)

log = logging.getLogger(__name__)

SAMPLE_PATH = Path(__file__).resolve().parent / "data" / "cifar10_sample.npz"
SOURCES = ("sample", "cifar10")
DEFAULT_SPLIT = "test"

# torchvision's CIFAR-10 archive (same values as torchvision.datasets.CIFAR10).
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_SPLITS = ("train", "test")
DOWNLOAD_TIMEOUT_S = 5.0
# A JPEG copy of CIFAR-10 in folder layout, suggested when the download is impossible.
SHARED_CIFAR10_JPEG = Path("/work/shared/datasets/cifar10")

# Folder splits: sub-folders with these names make a split layout (in this order).
SPLIT_FOLDERS = ("train", "val", "valid", "validation", "test")
# Folders whose decoded pixels fit this budget are decoded into memory when opened;
# bigger ones decode lazily with a small cache.
EAGER_MAX_BYTES = 512 * 2**20
LAZY_CACHE_BYTES = 128 * 2**20
_DECODE_CHUNK = 2048


# ----------------------------------------------------------------------------- the collection


class ImageCollection:
    """A fixed, ordered set of RGB images with optional class labels.

    Attributes: ``name`` ("sample", "cifar10" or the folder's name), ``source`` (as given to
    :func:`open_collection`), ``split`` ("train"/"test", or "all" for a folder without splits),
    ``classes`` ([] when unlabelled), ``labels`` (int64 indices into ``classes``, or None),
    ``names`` (a short name per image, e.g. ``"cat/0042.jpg"``), ``skipped`` (files that
    could not be read and were left out) and ``warnings`` (messages about them).
    """

    def __init__(
        self,
        name: str,
        source: str,
        split: str,
        images: np.ndarray | list[np.ndarray] | None,
        fingerprint: str,
        classes: Sequence[str] | None = None,
        labels: np.ndarray | None = None,
        names: Sequence[str] | None = None,
        skipped: int = 0,
        warnings: Sequence[str] = (),
    ):
        self.name = name
        self.source = source
        self.split = split
        self._images = images
        self._fingerprint = fingerprint
        self.classes: list[str] = list(classes or [])
        self.labels: np.ndarray | None = None if labels is None else np.asarray(labels, dtype=np.int64)
        self.names: list[str] = (
            list(names) if names is not None else [f"{split}/{i:05d}" for i in range(len(self))]
        )
        self.skipped = int(skipped)
        self.warnings: list[str] = list(warnings)
        if self.labels is not None:
            if len(self.labels) != len(self):
                raise ValueError(f"{len(self.labels)} labels for {len(self)} images")
            if len(self.labels) and (self.labels.min() < 0 or self.labels.max() >= len(self.classes)):
                raise ValueError("labels must index into classes")

    def __len__(self) -> int:
        return len(self._images)

    def __repr__(self) -> str:
        return f"ImageCollection(name={self.name!r}, split={self.split!r}, count={len(self)})"

    @property
    def labelled(self) -> bool:
        return self.labels is not None

    def _check_ids(self, ids) -> np.ndarray:
        arr = np.asarray(ids)
        if arr.ndim == 0:
            arr = arr[None]
        if arr.size == 0:
            return np.zeros(0, dtype=np.int64)
        if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
            raise InvalidInputError(f"image ids must be integers, got {arr.dtype}")
        arr = arr.astype(np.int64).ravel()
        bad = arr[(arr < 0) | (arr >= len(self))]
        if bad.size:
            raise InvalidInputError(
                f"image id {int(bad[0])} is out of range: {self.name} ({self.split}) has {len(self)} images, "
                f"ids 0..{len(self) - 1}"
            )
        return arr

    def _fetch(self, ids: np.ndarray) -> np.ndarray | list[np.ndarray]:
        if isinstance(self._images, np.ndarray):
            return self._images[ids]
        return [self._images[i] for i in ids]

    def get_images(self, ids) -> np.ndarray | list[np.ndarray]:
        """Return the images with these ids, in order: uint8 H x W x 3 RGB.

        In-memory collections of equal-size images give one N x H x W x 3 array; others a list.
        Ids out of range raise :class:`InvalidInputError`.
        """
        return self._fetch(self._check_ids(ids))

    def get_image(self, i: int) -> np.ndarray:
        """Return image ``i`` (uint8 H x W x 3 RGB)."""
        if isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer)):
            raise InvalidInputError(f"an image id must be an integer, got {i!r}")
        return np.asarray(self._fetch(self._check_ids([i]))[0])

    def label_name(self, i: int) -> str | None:
        """Class name of image ``i``, or None when unlabelled."""
        if self.labels is None:
            return None
        return self.classes[int(self.labels[int(self._check_ids([i])[0])])]

    def fingerprint(self) -> str:
        """A short hash that changes whenever the collection's contents change."""
        return self._fingerprint

    def describe(self) -> dict:
        """JSON-serialisable summary (stored in index manifests)."""
        return {
            "name": self.name,
            "source": self.source,
            "split": self.split,
            "count": len(self),
            "classes": list(self.classes),
            "fingerprint": self.fingerprint(),
        }


class LazyFolderCollection(ImageCollection):
    """A folder collection too big to hold in memory: images are decoded on demand.

    Decoded images stay in a small LRU cache (``LAZY_CACHE_BYTES``). A file that fails to
    decode later than its header check (truncated data) gives a grey placeholder of its size,
    is listed in ``failed_ids`` and logged.
    """

    def __init__(self, paths: list[str], sizes: list[tuple[int, int]], max_pixels: int | None, **kwargs):
        self._paths = paths
        self._sizes = sizes
        self._max_pixels = max_pixels
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cache_bytes = 0
        self._lock = threading.Lock()
        self.failed_ids: set[int] = set()
        super().__init__(images=None, **kwargs)

    def __len__(self) -> int:
        return len(self._paths)

    def _load_one(self, i: int) -> np.ndarray:
        with self._lock:
            if i in self._cache:
                self._cache.move_to_end(i)
                return self._cache[i]
        try:
            img = load_image_file(self._paths[i], max_pixels=self._max_pixels)
        except InvalidInputError as exc:
            width, height = self._sizes[i]
            log.warning("image %d (%s) could not be decoded: %s", i, self.names[i], exc)
            self.failed_ids.add(i)
            img = np.full((height, width, 3), 128, dtype=np.uint8)
        with self._lock:
            if img.nbytes <= LAZY_CACHE_BYTES:
                self._cache[i] = img
                self._cache_bytes += img.nbytes
                while self._cache_bytes > LAZY_CACHE_BYTES:
                    _, old = self._cache.popitem(last=False)
                    self._cache_bytes -= old.nbytes
        return img

    def _fetch(self, ids: np.ndarray) -> list[np.ndarray]:
        return [self._load_one(int(i)) for i in ids]


# ----------------------------------------------------------------------------- public functions


def _is_named_source(source) -> bool:
    return isinstance(source, str) and source.strip().lower() in SOURCES


def open_collection(
    source: str | os.PathLike = "sample",
    split: str | None = None,
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> ImageCollection:
    """Open ``"sample"``, ``"cifar10"`` or a folder path as an :class:`ImageCollection`.

    ``split`` defaults to ``"test"`` where there is one (the sample, CIFAR-10, folders with
    ``train/`` and ``test/``), else ``"all"``. ``download=False`` never touches the network.
    Raises :class:`DatasetUnavailableError` when the source cannot be found or downloaded and
    :class:`InvalidInputError` for a split the source does not have.
    """
    if _is_named_source(source):
        key = source.strip().lower()
        if key == "sample":
            _check_split(split, ["test"], "the sample")
            return _open_sample(source)
        split = _check_split(split, list(CIFAR10_SPLITS), "CIFAR-10")
        return _open_cifar10(source, split, data_dir, download)
    root = _folder_root(source)
    splits = _folder_splits(root)
    if splits:
        split = _check_split(split, splits, str(root))
        return _open_folder(source, root, root / split, split, max_pixels)
    split = _check_split(split, ["all"], str(root))
    return _open_folder(source, root, root, "all", max_pixels)


def list_splits(source: str | os.PathLike, data_dir: str | os.PathLike | None = None) -> list[str]:
    """The splits ``source`` offers: ["test"] for the sample, ["train", "test"] for CIFAR-10,
    the split sub-folders of a folder (e.g. ["train", "test"]) or ["all"]."""
    if _is_named_source(source):
        return ["test"] if source.strip().lower() == "sample" else list(CIFAR10_SPLITS)
    root = _folder_root(source)
    return _folder_splits(root) or ["all"]


def default_source(data_dir: str | os.PathLike | None = None) -> str:
    """``"cifar10"`` when CIFAR-10 is already downloaded into the data dir, else ``"sample"``."""
    root = resolve_data_dir(data_dir) / "cifar10"
    return "cifar10" if _cifar10_present(root) else "sample"


def source_fingerprint(
    source: str | os.PathLike, split: str | None = None, data_dir: str | os.PathLike | None = None
) -> str:
    """The fingerprint :func:`open_collection` would give, without decoding any image.

    Cheap enough to call on every app rerun as a cache key: a folder is re-listed and stat'ed,
    and its files are hashed only when a name, size or mtime changed since the last call in
    this process.
    """
    if _is_named_source(source):
        key = source.strip().lower()
        if key == "sample":
            _check_split(split, ["test"], "the sample")
            return _sample_fingerprint()
        return _cifar10_fingerprint(_check_split(split, list(CIFAR10_SPLITS), "CIFAR-10"))
    root = _folder_root(source)
    splits = _folder_splits(root)
    if splits:
        split = _check_split(split, splits, str(root))
        folder = root / split
    else:
        split = _check_split(split, ["all"], str(root))
        folder = root
    return _scan_folder(folder, split)[-1]


def _check_split(split: str | None, valid: list[str], what: str) -> str:
    if split is None:
        return DEFAULT_SPLIT if DEFAULT_SPLIT in valid else valid[0]
    if split not in valid:
        raise InvalidInputError(f"{what} has no split {split!r}; valid splits: {', '.join(valid)}")
    return split


# ----------------------------------------------------------------------------- sample


@lru_cache(maxsize=4)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    return sha256_file(path)


def _sample_fingerprint(path: Path | None = None) -> str:
    path = Path(path or SAMPLE_PATH)
    try:
        st = path.stat()
    except OSError as exc:
        raise DatasetUnavailableError(f"the bundled sample {path} is missing ({exc.strerror})") from exc
    return hash_parts("sample", _sha256_cached(str(path), st.st_size, st.st_mtime_ns), "test")


def load_sample_arrays(
    path: str | os.PathLike | None = None,
) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """Read the sample file: (images N x 32 x 32 x 3 uint8, labels int64, classes, names).

    The file holds either raw pixels (``images``) or the original JPEG bytes
    (``jpeg_bytes`` + ``jpeg_offsets``); it never contains pickles.
    """
    path = Path(path or SAMPLE_PATH)
    try:
        with np.load(path, allow_pickle=False) as npz:
            labels = npz["labels"].astype(np.int64)
            classes = [str(c) for c in npz["classes"]]
            names = [str(n) for n in npz["names"]] if "names" in npz else None
            if "images" in npz:
                images = np.ascontiguousarray(npz["images"], dtype=np.uint8)
            else:
                blob, offsets = npz["jpeg_bytes"], npz["jpeg_offsets"]
                datas = [blob[offsets[i] : offsets[i + 1]].tobytes() for i in range(len(offsets) - 1)]
                decoded, errors = _decode_datas(datas, [f"sample image {i}" for i in range(len(datas))], None)
                if errors:
                    raise DatasetUnavailableError(f"the sample file {path} is damaged: {errors[0]}")
                images = np.stack(decoded)
    except DatasetUnavailableError:
        raise
    except (OSError, KeyError, ValueError) as exc:
        raise DatasetUnavailableError(f"cannot read the bundled sample {path}: {exc}") from exc
    if images.ndim != 4 or images.shape[3] != 3 or len(images) != len(labels):
        raise DatasetUnavailableError(
            f"the sample file {path} has unexpected shapes {images.shape}, {labels.shape}"
        )
    if names is None:
        names = [f"test/{i:05d}" for i in range(len(images))]
    return images, labels, classes, names


def _open_sample(source: str) -> ImageCollection:
    images, labels, classes, names = load_sample_arrays(SAMPLE_PATH)
    images.setflags(write=False)
    return ImageCollection(
        name="sample",
        source=source,
        split="test",
        images=images,
        fingerprint=_sample_fingerprint(SAMPLE_PATH),
        classes=classes,
        labels=labels,
        names=names,
    )


# ----------------------------------------------------------------------------- CIFAR-10


def _cifar10_fingerprint(split: str) -> str:
    return hash_parts("cifar10", CIFAR10_MD5, split)


def _cifar_cache_paths(root: Path, split: str) -> tuple[Path, Path, Path]:
    cache = root / "cache"
    return cache / f"{split}_images.npy", cache / f"{split}_labels.npy", cache / f"{split}_meta.json"


def _cifar_batches_present(root: Path) -> bool:
    batches = root / CIFAR10_FOLDER
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]
    return all((batches / n).is_file() for n in names)


def _cifar10_present(root: Path) -> bool:
    """Cheap check (no hashing) that CIFAR-10 was downloaded into ``root``."""
    if all(_cifar_cache_paths(root, s)[2].exists() for s in CIFAR10_SPLITS):
        return True
    return _cifar_batches_present(root)


def _read_cifar_cache(root: Path, split: str) -> tuple[np.ndarray, np.ndarray, list[str]] | None:
    import json

    images_path, labels_path, meta_path = _cifar_cache_paths(root, split)
    try:
        meta = json.loads(meta_path.read_text())
        if meta.get("archive_md5") != CIFAR10_MD5:
            return None
        images = load_npy(images_path, mmap=True)
        labels = load_npy(labels_path).astype(np.int64)
        classes = [str(c) for c in meta["classes"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    n = meta.get("count")
    if images.shape != (n, 32, 32, 3) or images.dtype != np.uint8 or labels.shape != (n,):
        log.warning("ignoring a damaged CIFAR-10 cache in %s", images_path.parent)
        return None
    if n and (labels.min() < 0 or labels.max() >= len(classes)):
        return None
    return images, labels, classes


def _write_cifar_cache(
    root: Path, split: str, images: np.ndarray, labels: np.ndarray, classes: list[str]
) -> None:
    images_path, labels_path, meta_path = _cifar_cache_paths(root, split)
    save_npy_atomic(images_path, np.ascontiguousarray(images, dtype=np.uint8))
    save_npy_atomic(labels_path, np.asarray(labels, dtype=np.int64))
    # written last: its presence means both arrays are complete
    write_json_atomic(
        meta_path,
        {"archive_md5": CIFAR10_MD5, "classes": list(classes), "count": int(len(labels)), "split": split},
    )


def _offline_hint() -> str:
    hint = "Work offline with `--data sample` (2,000 bundled CIFAR-10 test images) or a folder of images"
    if SHARED_CIFAR10_JPEG.is_dir():
        return f"{hint}, e.g. the JPEG copy of CIFAR-10: `--data {SHARED_CIFAR10_JPEG}`."
    return (
        f"{hint} (class-named sub-folders, optionally under train/ and test/), e.g. a JPEG copy of CIFAR-10."
    )


def _extract_cifar_archive(archive: Path, root: Path) -> None:
    """Extract the (already md5-checked) archive; the batches folder appears atomically."""
    tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=root))
    try:
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(tmp, filter="data")
        extracted = tmp / CIFAR10_FOLDER
        if not extracted.is_dir():
            raise DatasetUnavailableError(f"{archive} does not contain {CIFAR10_FOLDER}/")
        target = root / CIFAR10_FOLDER
        if target.exists():
            shutil.rmtree(target)
        os.replace(extracted, target)
    except (OSError, tarfile.TarError) as exc:
        raise DatasetUnavailableError(f"could not extract {archive}: {exc}") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _ensure_cifar_batches(root: Path, download: bool) -> None:
    """Make sure the official batches are in ``root``, downloading the archive if allowed."""
    from .image_backends import download_file

    if _cifar_batches_present(root):
        return
    archive = root / CIFAR10_ARCHIVE
    if not archive.is_file():
        if not download:
            raise DatasetUnavailableError(
                f"CIFAR-10 is not downloaded in {root} (downloads are disabled). {_offline_hint()}"
            )
        try:
            download_file(CIFAR10_URL, archive, expected=("md5", CIFAR10_MD5), timeout=DOWNLOAD_TIMEOUT_S)
        except (OSError, ValueError) as exc:
            raise DatasetUnavailableError(
                f"CIFAR-10 is not in {root} and could not be downloaded from {CIFAR10_URL} ({exc}). "
                f"{_offline_hint()}"
            ) from exc
    else:
        import hashlib

        digest = hashlib.md5(usedforsecurity=False)
        with open(archive, "rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
        if digest.hexdigest() != CIFAR10_MD5:
            archive.unlink(missing_ok=True)
            raise DatasetUnavailableError(
                f"{archive} is damaged (md5 mismatch) and was removed; open again to re-download. {_offline_hint()}"
            )
    _extract_cifar_archive(archive, root)


def _load_cifar_split(root: Path, split: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Read one split through torchvision, which checks every batch file's md5 before unpickling."""
    try:
        from torchvision.datasets import CIFAR10
    except ImportError as exc:  # pragma: no cover - torchvision is in requirements.txt
        raise DatasetUnavailableError(
            "reading CIFAR-10 needs torchvision: pip install torchvision==0.29.1"
        ) from exc
    try:
        ds = CIFAR10(str(root), train=split == "train", download=False)
    except RuntimeError as exc:  # "Dataset not found or corrupted"
        raise DatasetUnavailableError(f"the CIFAR-10 files in {root} are missing or corrupt ({exc})") from exc
    images = np.ascontiguousarray(ds.data, dtype=np.uint8)
    return images, np.asarray(ds.targets, dtype=np.int64), list(ds.classes)


def _open_cifar10(source: str, split: str, data_dir, download: bool) -> ImageCollection:
    root = resolve_data_dir(data_dir) / "cifar10"
    cached = _read_cifar_cache(root, split)
    if cached is None:
        root.mkdir(parents=True, exist_ok=True)
        _ensure_cifar_batches(root, download)
        images, labels, classes = _load_cifar_split(root, split)
        _write_cifar_cache(root, split, images, labels, classes)
        cached = _read_cifar_cache(root, split) or (images, labels, classes)
    images, labels, classes = cached
    return ImageCollection(
        name="cifar10",
        source=source,
        split=split,
        images=images,
        fingerprint=_cifar10_fingerprint(split),
        classes=classes,
        labels=labels,
        names=[f"{split}/{i:05d}" for i in range(len(images))],
    )


# ----------------------------------------------------------------------------- folders


def _folder_root(source: str | os.PathLike) -> Path:
    try:
        root = Path(os.fspath(source)).expanduser()
    except TypeError as exc:
        raise InvalidInputError(f"a collection source must be a name or a path, got {source!r}") from exc
    if not root.exists():
        raise DatasetUnavailableError(
            f"no image collection {os.fspath(source)!r}: it is neither a folder nor one of "
            f"{', '.join(SOURCES)}"
        )
    if not root.is_dir():
        raise DatasetUnavailableError(f"{root} is not a folder")
    return root.resolve()


def _visible_entries(folder: Path) -> list[os.DirEntry]:
    try:
        with os.scandir(folder) as it:
            return sorted((e for e in it if not e.name.startswith(".")), key=lambda e: e.name)
    except OSError as exc:
        raise DatasetUnavailableError(f"cannot list {folder}: {exc.strerror or exc}") from exc


def _folder_splits(root: Path) -> list[str]:
    """Split sub-folders when ``root`` is laid out as train/ and/or test/ (nothing else), else []."""
    subdirs = {e.name for e in _visible_entries(root) if e.is_dir()}
    if not subdirs or not subdirs & {"train", "test"} or not subdirs <= set(SPLIT_FOLDERS):
        return []
    return [s for s in SPLIT_FOLDERS if s in subdirs]


def _walk_images(folder: str, prefix: str) -> list[tuple[str, str]]:
    """(path, name) of image files under ``folder``, recursively, hidden entries skipped, sorted
    by name; ``name`` is ``prefix`` + the path relative to ``folder`` with ``/`` separators.
    (Plain strings: pathlib costs more than decoding for 50,000 tiny files.)"""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        rel = os.path.relpath(dirpath, folder)
        rel = prefix if rel == "." else prefix + rel.replace(os.sep, "/") + "/"
        found.extend(
            (os.path.join(dirpath, f), rel + f)
            for f in filenames
            if not f.startswith(".") and is_image_filename(f)
        )
    return sorted(found, key=lambda item: item[1])


def _scan_folder(folder: Path, split: str):
    """List a split folder: (paths, names, labels or None, classes, notes, fingerprint)."""
    entries = _visible_entries(folder)
    notes = []
    class_files = {e.name: _walk_images(e.path, e.name + "/") for e in entries if e.is_dir()}
    loose = [(e.path, e.name) for e in entries if e.is_file() and is_image_filename(e.name)]
    classes = [name for name, files in class_files.items() if files]
    empty = sorted(set(class_files) - set(classes))
    if classes:
        found = [item for c in classes for item in class_files[c]]
        labels = np.concatenate(
            [np.full(len(class_files[c]), k, dtype=np.int64) for k, c in enumerate(classes)]
        )
        if loose:
            notes.append(f"{len(loose)} image(s) directly in {folder} (outside class folders) were ignored")
        if empty:
            notes.append(f"sub-folder(s) without images ignored: {', '.join(empty)}")
    else:
        found, labels = loose, None
    paths = [p for p, _ in found]
    names = [n for _, n in found]
    fp = _content_fingerprint(os.path.abspath(folder), found, split, classes)
    return paths, names, labels, classes, notes, fp


# Folder fingerprints hash contents, not modification times, so copying or touching a folder
# keeps its indexes valid while any changed byte gives a new fingerprint. Hashing every file
# on every look would be slow, so the content fingerprint is remembered under a fingerprint
# of the files' (name, size, mtime): a folder is hashed again only when one of those changed.
# A few entries per folder looked at, not one per file: a million-image folder costs no memory.
_CONTENT_BY_STATS: OrderedDict[str, str] = OrderedDict()
_CONTENT_MEMO_SIZE = 32
_CONTENT_LOCK = threading.Lock()


def _stat_all(found: list[tuple[str, str]]) -> list[list]:
    stats = []
    for path, name in found:
        try:
            st = os.stat(path)
            stats.append([name, st.st_size, st.st_mtime_ns])
        except OSError:
            stats.append([name, -1, -1])
    return stats


def _content_fingerprint(folder: str, found: list[tuple[str, str]], split: str, classes: list[str]) -> str:
    """Fingerprint of the files' names, sizes and sha256s (hashed only when their stats changed).

    The memo key includes the folder's path, so a copy elsewhere is hashed on its own.
    """
    stats = _stat_all(found)
    stats_key = hash_parts("folder-stats", folder, split, classes, stats)
    with _CONTENT_LOCK:
        known = _CONTENT_BY_STATS.get(stats_key)
        if known is not None:
            _CONTENT_BY_STATS.move_to_end(stats_key)
            return known
    contents = []
    for (path, name), (_, size, _) in zip(found, stats, strict=True):
        try:
            contents.append([name, size, sha256_file(path) if size >= 0 else ""])
        except OSError:
            contents.append([name, -1, ""])
    fp = hash_parts("folder-content", split, classes, contents)
    unchanged = hash_parts("folder-stats", folder, split, classes, _stat_all(found)) == stats_key
    if unchanged:  # no file was written while it was hashed
        with _CONTENT_LOCK:
            _CONTENT_BY_STATS[stats_key] = fp
            while len(_CONTENT_BY_STATS) > _CONTENT_MEMO_SIZE:
                _CONTENT_BY_STATS.popitem(last=False)
    return fp


def _probe_size(path: str) -> tuple[int, int] | None:
    """(width, height) from the file header, or None when it is not a readable image."""
    from PIL import Image

    try:
        with Image.open(path, formats=_allowed_formats()) as img:
            return img.size
    except Exception:
        return None


def _decode_datas(
    datas: list[bytes | None], names: list[str], max_pixels: int | None, budget: int | None = None
) -> tuple[list[np.ndarray | None], list[str]]:
    """Decode file contents (None = unreadable) with Pillow, in memory.

    Returns (arrays with None for failures, error messages). Raises MemoryError when
    ``budget`` (bytes of decoded pixels) is exceeded. (torchvision's batched JPEG decoder was
    ~30% faster for CIFAR's tiny files but is deprecated since torchvision 0.29.)
    """
    out: list[np.ndarray | None] = [None] * len(datas)
    errors: list[str] = []
    total = 0
    for i, data in enumerate(datas):
        if data is None:
            errors.append(f"{names[i]}: cannot read the file")
            continue
        try:
            out[i] = decode_image_bytes(data, max_pixels=max_pixels, name=names[i])
        except InvalidInputError as exc:
            errors.append(str(exc))
            continue
        total += out[i].nbytes
        if budget is not None and total > budget:
            raise MemoryError("decoded images exceed the in-memory budget")
    return out, errors


def _read_bytes(path: str) -> bytes | None:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError:
        return None


def _estimate_bytes(paths: list[str]) -> float:
    """Decoded size of all images, estimated from up to 32 evenly spaced file headers."""
    if not paths:
        return 0.0
    picks = (
        sorted({round(k * (len(paths) - 1) / 31) for k in range(32)})
        if len(paths) > 32
        else range(len(paths))
    )
    sizes = [s for s in (_probe_size(paths[i]) for i in picks) if s]
    if not sizes:
        return 0.0
    return float(np.mean([w * h * 3 for w, h in sizes])) * len(paths)


def _open_folder(source, root: Path, folder: Path, split: str, max_pixels: int | None) -> ImageCollection:
    paths, names, labels, classes, notes, fp = _scan_folder(folder, split)
    common = {"name": root.name or str(root), "source": os.fspath(source), "split": split, "fingerprint": fp}
    if not paths:
        raise DatasetUnavailableError(f"no image files found in {folder}")
    keep = None
    if _estimate_bytes(paths) <= EAGER_MAX_BYTES:
        try:
            arrays: list[np.ndarray | None] = []
            errors: list[str] = []
            used = 0  # a soft limit was estimated; 2x is the hard one before switching to lazy
            for start in range(0, len(paths), _DECODE_CHUNK):
                chunk = paths[start : start + _DECODE_CHUNK]
                decoded, errs = _decode_datas(
                    [_read_bytes(p) for p in chunk],
                    names[start : start + len(chunk)],
                    max_pixels,
                    budget=2 * EAGER_MAX_BYTES - used,
                )
                used += sum(a.nbytes for a in decoded if a is not None)
                arrays.extend(decoded)
                errors.extend(errs)
            keep = [i for i, a in enumerate(arrays) if a is not None]
        except MemoryError:
            keep = None
            log.info("%s decodes to more than %d MB; reading it lazily", folder, 2 * EAGER_MAX_BYTES >> 20)
    if keep is not None:
        images: np.ndarray | list[np.ndarray] = [arrays[i] for i in keep]
        if images and all(a.shape == images[0].shape for a in images):
            images = np.stack(images)
            images.setflags(write=False)
        skipped = len(paths) - len(keep)
        _log_skipped(folder, errors, notes)
        if not keep:
            raise DatasetUnavailableError(f"none of the {len(paths)} image files in {folder} could be read")
        return ImageCollection(
            images=images,
            classes=classes if labels is not None else [],
            labels=None if labels is None else labels[keep],
            names=[names[i] for i in keep],
            skipped=skipped,
            warnings=notes,
            **common,
        )
    # lazy: check every header now so unreadable files are left out up front
    sizes = [_probe_size(p) for p in paths]
    ok = [
        i for i, s in enumerate(sizes) if s is not None and (max_pixels is None or s[0] * s[1] <= max_pixels)
    ]
    ok_set = set(ok)
    errors = [
        f"{names[i]}: not a readable image or above the pixel limit"
        for i in range(len(paths))
        if i not in ok_set
    ]
    _log_skipped(folder, errors, notes)
    if not ok:
        raise DatasetUnavailableError(f"none of the {len(paths)} image files in {folder} could be read")
    return LazyFolderCollection(
        paths=[paths[i] for i in ok],
        sizes=[sizes[i] for i in ok],
        max_pixels=max_pixels,
        classes=classes if labels is not None else [],
        labels=None if labels is None else labels[ok],
        names=[names[i] for i in ok],
        skipped=len(paths) - len(ok),
        warnings=notes,
        **common,
    )


def _log_skipped(folder: Path, errors: list[str], notes: list[str]) -> None:
    if errors:
        notes.insert(0, f"{len(errors)} unreadable image file(s) skipped, e.g. {errors[0]}")
    for note in notes:
        log.warning("%s: %s", folder, note)
