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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core.fingerprint import fingerprint, sha256_file
from ..errors import DatasetUnavailableError, InvalidInputError
from .collection import SOURCES, ImageCollection, LazyFolderCollection
from .io import DECODE_SHORT_SIDE, decode_all, decoded_size, is_image_filename, probe_size, read_regular_file

log = logging.getLogger(__name__)


# Folder splits: sub-folders with these names make a split layout (in this order).
SPLIT_FOLDERS = ("train", "val", "valid", "validation", "test")


# Folders whose decoded pixels fit this budget are decoded into memory when opened;
# bigger ones decode lazily with a small cache.
EAGER_MAX_BYTES = 512 * 2**20


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


def display_name(name: str) -> str:
    """``name`` as it is shown and stored in JSON: bytes that are not UTF-8 (which the OS hands
    over as surrogate escapes) become backslash escapes (``b"caf\\xe9"`` -> ``"caf\\xe9"``); a
    valid name is returned unchanged, so existing fingerprints stay the same."""
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        try:
            return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        except UnicodeEncodeError:  # surrogates that did not come from the OS
            return name.encode("utf-8", "backslashreplace").decode("utf-8")


@dataclass
class _Bounds:
    """The collection folder's real path (no listing leaves it), and what listings left out."""

    real_root: str
    special: list[str] = field(default_factory=list)  # image names that are not regular files
    outside: list[str] = field(default_factory=list)  # links whose target is outside the folder

    def inside(self, real: str) -> bool:
        return real == self.real_root or real.startswith(self.real_root.rstrip(os.sep) + os.sep)

    def notes(self) -> list[str]:
        found = []
        if self.special:
            found.append(
                f"{len(self.special)} file(s) that are not regular files (FIFOs, devices, sockets) were "
                f"skipped, e.g. {self.special[0]}"
            )
        if self.outside:
            found.append(
                f"{len(self.outside)} link(s) leading outside the collection folder were not followed, "
                f"e.g. {self.outside[0]}"
            )
        return found


def _list_dir(
    path: str, real: str, bounds: _Bounds, prefix: str = "", strict: bool = True
) -> tuple[list[tuple[str, str, str]], list[tuple[str, str]]]:
    """The visible sub-folders ``(path, name, real path)`` and regular files ``(path, name)`` of
    the folder ``path`` (whose real path is ``real``), each sorted by name.

    Names are ``prefix`` + :func:`display_name` of the entry; paths stay as the OS gave them.
    A link is kept only when its target's real path is inside the collection folder; anything
    but folders and regular files (FIFOs, devices, sockets, links to them) is left out; both
    are recorded in ``bounds``. ``strict`` raises when ``path`` cannot be listed (else: empty).
    """
    try:
        with os.scandir(path) as it:
            entries = sorted((e for e in it if not e.name.startswith(".")), key=lambda e: e.name)
    except OSError as exc:
        if strict:
            raise DatasetUnavailableError(f"cannot list {path}: {exc.strerror or exc}") from exc
        log.warning("cannot list %s: %s", path, exc)
        return [], []
    dirs, files = [], []
    for e in entries:
        name = prefix + display_name(e.name)
        try:
            if e.is_symlink():
                target = os.path.realpath(e.path)
                if not bounds.inside(target):
                    bounds.outside.append(name)
                    continue
            else:
                target = os.path.join(real, e.name)
            if e.is_dir():
                dirs.append((e.path, name, target))
            elif e.is_file():  # a regular file (following a link), never a FIFO or device
                files.append((e.path, name))
            elif is_image_filename(e.name):
                bounds.special.append(name)
        except OSError:  # vanished or unreadable while listing
            continue
    return dirs, files


def _bounds_for(root: str | os.PathLike) -> _Bounds:
    return _Bounds(os.path.realpath(root))


def folder_splits(root: Path) -> list[str]:
    """Split sub-folders when ``root`` is laid out as train/ and/or test/ (nothing else), else []."""
    bounds = _bounds_for(root)
    dirs, _ = _list_dir(os.fspath(root), bounds.real_root, bounds)
    subdirs = {name for _, name, _ in dirs}
    if not subdirs or not subdirs & {"train", "test"} or not subdirs <= set(SPLIT_FOLDERS):
        return []
    return [s for s in SPLIT_FOLDERS if s in subdirs]


def _walk_images(
    folder: str, real: str, prefix: str, bounds: _Bounds, ancestors: frozenset = frozenset()
) -> list[tuple[str, str]]:
    """(path, name) of image files under ``folder``, recursively, hidden entries skipped, sorted
    by name; ``name`` is ``prefix`` + the path relative to ``folder`` with ``/`` separators.
    Links inside the collection folder are followed (a link back to an enclosing folder is not);
    links leaving it are not. (Plain strings: pathlib costs more than decoding for 50,000 tiny files.)"""
    ancestors = ancestors | {real}
    dirs, files = _list_dir(folder, real, bounds, prefix, strict=False)
    found = [(p, n) for p, n in files if is_image_filename(p)]
    for path, name, target in dirs:
        if target not in ancestors:
            found.extend(_walk_images(path, target, name + "/", bounds, ancestors))
    return sorted(found, key=lambda item: item[1])


def scan_folder(folder: Path, split: str, root: Path | None = None):
    """List a split folder: (paths, names, labels or None, classes, notes, fingerprint).

    Nothing outside ``root`` (the collection folder; ``folder`` itself by default) is listed:
    links whose real path leaves it are skipped, as are files that are not regular files; the
    notes say how many. Class and file names are made displayable (:func:`display_name`).
    """
    bounds = _bounds_for(root if root is not None else folder)
    real = os.path.realpath(folder)
    if not bounds.inside(real):
        raise DatasetUnavailableError(f"{folder} leads outside the collection folder")
    dirs, files = _list_dir(os.fspath(folder), real, bounds)
    notes = []
    class_files = {name: _walk_images(path, target, name + "/", bounds) for path, name, target in dirs}
    loose = [(p, n) for p, n in files if is_image_filename(p)]
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
    notes.extend(bounds.notes())
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
        return read_regular_file(path)
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
    sizes = [decoded_size(*s) for s in (probe_size(paths[i]) for i in picks) if s]
    if not sizes:
        return 0.0
    return float(np.mean([w * h * 3 for w, h in sizes])) * len(paths)


def open_folder(source, root: Path, folder: Path, split: str, max_pixels: int | None) -> ImageCollection:
    """The collection of ``split`` in ``folder``: decoded into memory when it fits, else lazy."""
    paths, names, labels, classes, notes, fp = scan_folder(folder, split, root)
    common = {
        "name": display_name(root.name or str(root)),
        "source": os.fspath(source),
        "split": split,
        "fingerprint": fp,
    }
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
    decode to more than twice ``EAGER_MAX_BYTES`` (the folder is then read lazily).

    Each file is read and decoded in turn (never a batch of file contents at once), large images
    reduced on decode (:data:`DECODE_SHORT_SIDE`)."""
    try:
        arrays: list[np.ndarray | None] = []
        errors: list[str] = []
        used = 0  # a soft limit was estimated; 2x is the hard one before switching to lazy
        for path, name in zip(paths, names, strict=True):
            decoded, errs = decode_all(
                [_read_bytes(path)],
                [name],
                max_pixels,
                budget=2 * EAGER_MAX_BYTES - used,
                short_side=DECODE_SHORT_SIDE,
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
        sizes=[decoded_size(*sizes[i]) for i in ok],
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
