"""The bundled sample: 2,000 CIFAR-10 test images (200 per class) in
``embeddings/data/cifar10_sample.npz`` (the original JPEG bytes, no pickle); works offline."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np

from ..config import PACKAGE_DATA
from ..core.fingerprint import file_sha256, fingerprint
from ..errors import DatasetUnavailableError
from .collection import ImageCollection
from .io import decode_all, decode_image_bytes

SAMPLE_PATH = PACKAGE_DATA / "cifar10_sample.npz"


def sample_fingerprint(path: Path | None = None) -> str:
    path = Path(path or SAMPLE_PATH)
    try:
        path.stat()
    except OSError as exc:
        raise DatasetUnavailableError(f"the bundled sample {path} is missing ({exc.strerror})") from exc
    return fingerprint("sample", file_sha256(path), "test")


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
                decoded, errors = decode_all(datas, [f"sample image {i}" for i in range(len(datas))], None)
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


class JpegSampleCollection(ImageCollection):
    """The sample as its JPEG bytes, each image decoded on first use and kept (2,000 x 32 x 32 x 3
    = 6 MB at most): the Home page and the gallery need a few images, not all 2,000 (decoding
    them all took about a second of every cold start)."""

    def __init__(self, blob: np.ndarray, offsets: np.ndarray, path: Path, **kwargs):
        self._blob = blob
        self._offsets = offsets
        self._path = path
        self._decoded: dict[int, np.ndarray] = {}
        self._lock = threading.Lock()
        super().__init__(images=None, **kwargs)

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def _one(self, i: int) -> np.ndarray:
        found = self._decoded.get(i)
        if found is not None:
            return found
        data = self._blob[self._offsets[i] : self._offsets[i + 1]].tobytes()
        try:
            image = decode_image_bytes(data, max_pixels=None, name=f"sample image {i}")
        except Exception as exc:  # noqa: BLE001 - any decode failure means the bundled file is damaged
            raise DatasetUnavailableError(f"the sample file {self._path} is damaged: {exc}") from exc
        image.setflags(write=False)
        with self._lock:
            return self._decoded.setdefault(i, image)

    def _fetch(self, ids: np.ndarray) -> np.ndarray | list[np.ndarray]:
        images = [self._one(int(i)) for i in ids]
        if images and all(img.shape == images[0].shape for img in images):
            return np.stack(images)
        return images if images else np.zeros((0, 32, 32, 3), dtype=np.uint8)

    def image_nbytes(self, i: int) -> int:
        return int(self._one(int(i)).nbytes)


def open_sample(source: str) -> ImageCollection:
    """The bundled sample as a collection; its images are decoded on demand."""
    path = SAMPLE_PATH
    try:
        with np.load(path, allow_pickle=False) as npz:
            if "images" in npz:  # raw pixels: nothing to decode
                blob = offsets = None
            else:
                labels = npz["labels"].astype(np.int64)
                classes = [str(c) for c in npz["classes"]]
                names = [str(n) for n in npz["names"]] if "names" in npz else None
                blob, offsets = npz["jpeg_bytes"], npz["jpeg_offsets"].astype(np.int64)
    except (OSError, KeyError, ValueError) as exc:
        raise DatasetUnavailableError(f"cannot read the bundled sample {path}: {exc}") from exc
    common = dict(name="sample", source=source, split="test", fingerprint=sample_fingerprint(path))
    if blob is None:
        images, labels, classes, names = load_sample_arrays(path)
        images.setflags(write=False)
        return ImageCollection(images=images, classes=classes, labels=labels, names=names, **common)
    if offsets.ndim != 1 or len(offsets) != len(labels) + 1 or offsets[0] != 0 or offsets[-1] > len(blob):
        raise DatasetUnavailableError(
            f"the sample file {path} has unexpected shapes {offsets.shape}, {labels.shape}"
        )
    if np.any(np.diff(offsets) <= 0):
        raise DatasetUnavailableError(f"the sample file {path} is damaged: empty or overlapping images")
    return JpegSampleCollection(blob, offsets, path, classes=classes, labels=labels, names=names, **common)
