"""A folder of images: class-named sub-folders (labels are the sorted names) or a flat folder
(unlabelled); a folder holding ``train/`` and ``test/`` gives two splits.

Its fingerprint follows the contents (every image's name, size and sha256), hashed again
only when a name, size or modification time changed since the last look in this process.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.fingerprint import fingerprint, sha256_file
from ..errors import DatasetUnavailableError, InvalidInputError
from .collection import SOURCES, ImageCollection, LazyFolderCollection
from .io import decode_all, is_image_filename, probe_size

log = logging.getLogger(__name__)


# Folder splits: sub-folders with these names make a split layout (in this order).
SPLIT_FOLDERS = ("train", "val", "valid", "validation", "test")


# Folders whose decoded pixels fit this budget are decoded into memory when opened;
# bigger ones decode lazily with a small cache.
EAGER_MAX_BYTES = 512 * 2**20


_DECODE_CHUNK = 2048


def folder_root(source: str | os.PathLike) -> Path:
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


def folder_splits(root: Path) -> list[str]:
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


def scan_folder(folder: Path, split: str):
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
    stats_key = fingerprint("folder-stats", folder, split, classes, stats)
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
    fp = fingerprint("folder-content", split, classes, contents)
    unchanged = fingerprint("folder-stats", folder, split, classes, _stat_all(found)) == stats_key
    if unchanged:  # no file was written while it was hashed
        with _CONTENT_LOCK:
            _CONTENT_BY_STATS[stats_key] = fp
            while len(_CONTENT_BY_STATS) > _CONTENT_MEMO_SIZE:
                _CONTENT_BY_STATS.popitem(last=False)
    return fp


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
    sizes = [s for s in (probe_size(paths[i]) for i in picks) if s]
    if not sizes:
        return 0.0
    return float(np.mean([w * h * 3 for w, h in sizes])) * len(paths)


def open_folder(source, root: Path, folder: Path, split: str, max_pixels: int | None) -> ImageCollection:
    """The collection of ``split`` in ``folder``: decoded into memory when it fits, else lazy."""
    paths, names, labels, classes, notes, fp = scan_folder(folder, split)
    common = {"name": root.name or str(root), "source": os.fspath(source), "split": split, "fingerprint": fp}
    if not paths:
        raise DatasetUnavailableError(f"no image files found in {folder}")
    listing = _Listing(folder, paths, names, labels, classes if labels is not None else [], notes)
    decoded = None
    if _estimate_bytes(paths) <= EAGER_MAX_BYTES:
        decoded = _decode_eagerly(folder, paths, names, max_pixels)
    if decoded is not None:
        return _eager_collection(listing, *decoded, common)
    return _lazy_collection(listing, max_pixels, common)


@dataclass(frozen=True)
class _Listing:
    """What :func:`scan_folder` found: the files, their names, labels and classes, and notes."""

    folder: Path
    paths: list
    names: list[str]
    labels: np.ndarray | None
    classes: list[str]
    notes: list[str]


def _decode_eagerly(folder: Path, paths, names, max_pixels: int | None):
    """(decoded arrays, None for each unreadable file; error messages), or None when the images
    decode to more than twice ``EAGER_MAX_BYTES`` (the folder is then read lazily)."""
    try:
        arrays: list[np.ndarray | None] = []
        errors: list[str] = []
        used = 0  # a soft limit was estimated; 2x is the hard one before switching to lazy
        for start in range(0, len(paths), _DECODE_CHUNK):
            chunk = paths[start : start + _DECODE_CHUNK]
            decoded, errs = decode_all(
                [_read_bytes(p) for p in chunk],
                names[start : start + len(chunk)],
                max_pixels,
                budget=2 * EAGER_MAX_BYTES - used,
            )
            used += sum(a.nbytes for a in decoded if a is not None)
            arrays.extend(decoded)
            errors.extend(errs)
    except MemoryError:
        log.info("%s decodes to more than %d MB; reading it lazily", folder, 2 * EAGER_MAX_BYTES >> 20)
        return None
    return arrays, errors


def _eager_collection(listing: _Listing, arrays: list, errors: list[str], common: dict) -> ImageCollection:
    """An in-memory collection of the images that decoded (one stacked array when all share a size)."""
    keep = [i for i, a in enumerate(arrays) if a is not None]
    images: np.ndarray | list[np.ndarray] = [arrays[i] for i in keep]
    if images and all(a.shape == images[0].shape for a in images):
        images = np.stack(images)
        images.setflags(write=False)
    skipped = len(listing.paths) - len(keep)
    _log_skipped(listing.folder, errors, listing.notes)
    if not keep:
        raise DatasetUnavailableError(
            f"none of the {len(listing.paths)} image files in {listing.folder} could be read"
        )
    return ImageCollection(
        images=images,
        classes=listing.classes,
        labels=None if listing.labels is None else listing.labels[keep],
        names=[listing.names[i] for i in keep],
        skipped=skipped,
        warnings=listing.notes,
        **common,
    )


def _lazy_collection(listing: _Listing, max_pixels: int | None, common: dict) -> LazyFolderCollection:
    """A collection that decodes on demand; every header is checked now, so unreadable files are
    left out up front."""
    paths, names = listing.paths, listing.names
    sizes = [probe_size(p) for p in paths]
    ok = [
        i for i, s in enumerate(sizes) if s is not None and (max_pixels is None or s[0] * s[1] <= max_pixels)
    ]
    ok_set = set(ok)
    errors = [
        f"{names[i]}: not a readable image or above the pixel limit"
        for i in range(len(paths))
        if i not in ok_set
    ]
    _log_skipped(listing.folder, errors, listing.notes)
    if not ok:
        raise DatasetUnavailableError(
            f"none of the {len(paths)} image files in {listing.folder} could be read"
        )
    return LazyFolderCollection(
        paths=[paths[i] for i in ok],
        sizes=[sizes[i] for i in ok],
        max_pixels=max_pixels,
        classes=listing.classes,
        labels=None if listing.labels is None else listing.labels[ok],
        names=[names[i] for i in ok],
        skipped=len(paths) - len(ok),
        warnings=listing.notes,
        **common,
    )


def _log_skipped(folder: Path, errors: list[str], notes: list[str]) -> None:
    if errors:
        notes.insert(0, f"{len(errors)} unreadable image file(s) skipped, e.g. {errors[0]}")
    for note in notes:
        log.warning("%s: %s", folder, note)
