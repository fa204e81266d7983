"""torchvision's CIFAR-10 in ``<data_dir>/cifar10/``: downloaded once (through
:mod:`embeddings.core.downloads`, fast-failing offline, md5-checked) and cached as ``.npy``
arrays; splits ``train`` and ``test``."""

from __future__ import annotations

import logging
import os
import shutil
import tarfile
import tempfile
from pathlib import Path

import numpy as np

from ..config import data_dir as resolve_data_dir
from ..core.files import load_npy, save_npy_atomic, write_json_atomic
from ..core.fingerprint import fingerprint
from ..errors import DatasetUnavailableError
from .collection import ImageCollection

log = logging.getLogger(__name__)


# torchvision's CIFAR-10 archive (same values as torchvision.datasets.CIFAR10).
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"


CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"


CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"


CIFAR10_FOLDER = "cifar-10-batches-py"


CIFAR10_SPLITS = ("train", "test")


DOWNLOAD_TIMEOUT_S = 5.0


# A JPEG copy of CIFAR-10 in folder layout, suggested when the download is impossible.
SHARED_CIFAR10_JPEG = Path("/work/shared/datasets/cifar10")


def cifar10_fingerprint(split: str) -> str:
    return fingerprint("cifar10", CIFAR10_MD5, split)


def _cifar_cache_paths(root: Path, split: str) -> tuple[Path, Path, Path]:
    cache = root / "cache"
    return cache / f"{split}_images.npy", cache / f"{split}_labels.npy", cache / f"{split}_meta.json"


def _cifar_batches_present(root: Path) -> bool:
    batches = root / CIFAR10_FOLDER
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]
    return all((batches / n).is_file() for n in names)


def cifar10_present(root: Path) -> bool:
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
    from ..core.downloads import download_file

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


def open_cifar10(source: str, split: str, data_dir, download: bool) -> ImageCollection:
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
        fingerprint=cifar10_fingerprint(split),
        classes=classes,
        labels=labels,
        names=[f"{split}/{i:05d}" for i in range(len(images))],
    )
