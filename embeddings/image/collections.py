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

import os

from ..config import data_dir as resolve_data_dir
from ..errors import InvalidInputError
from .cifar import CIFAR10_SPLITS, cifar10_fingerprint, cifar10_present, open_cifar10
from .collection import SOURCES, ImageCollection
from .folders import folder_root, folder_splits, open_folder, scan_folder
from .io import DEFAULT_MAX_PIXELS
from .sample import open_sample, sample_fingerprint

DEFAULT_SPLIT = "test"


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
            check_split(split, ["test"], "the sample")
            return open_sample(source)
        split = check_split(split, list(CIFAR10_SPLITS), "CIFAR-10")
        return open_cifar10(source, split, data_dir, download)
    root = folder_root(source)
    splits = folder_splits(root)
    if splits:
        split = check_split(split, splits, str(root))
        return open_folder(source, root, root / split, split, max_pixels)
    split = check_split(split, ["all"], str(root))
    return open_folder(source, root, root, "all", max_pixels)


def list_splits(source: str | os.PathLike, data_dir: str | os.PathLike | None = None) -> list[str]:
    """The splits ``source`` offers: ["test"] for the sample, ["train", "test"] for CIFAR-10,
    the split sub-folders of a folder (e.g. ["train", "test"]) or ["all"]."""
    if _is_named_source(source):
        return ["test"] if source.strip().lower() == "sample" else list(CIFAR10_SPLITS)
    root = folder_root(source)
    return folder_splits(root) or ["all"]


def default_source(data_dir: str | os.PathLike | None = None) -> str:
    """``"cifar10"`` when CIFAR-10 is already downloaded into the data dir, else ``"sample"``."""
    root = resolve_data_dir(data_dir) / "cifar10"
    return "cifar10" if cifar10_present(root) else "sample"


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
            check_split(split, ["test"], "the sample")
            return sample_fingerprint()
        return cifar10_fingerprint(check_split(split, list(CIFAR10_SPLITS), "CIFAR-10"))
    root = folder_root(source)
    splits = folder_splits(root)
    if splits:
        split = check_split(split, splits, str(root))
        folder = root / split
    else:
        split = check_split(split, ["all"], str(root))
        folder = root
    return scan_folder(folder, split, root)[-1]


def check_split(split: str | None, valid: list[str], what: str) -> str:
    if split is None:
        return DEFAULT_SPLIT if DEFAULT_SPLIT in valid else valid[0]
    if split not in valid:
        raise InvalidInputError(f"{what} has no split {split!r}; valid splits: {', '.join(valid)}")
    return split
