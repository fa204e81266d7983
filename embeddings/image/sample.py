"""The bundled sample: 2,000 CIFAR-10 test images (200 per class) in
``embeddings/data/cifar10_sample.npz`` (the original JPEG bytes, no pickle); works offline."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..config import PACKAGE_DATA
from ..core.fingerprint import file_sha256, fingerprint
from ..errors import DatasetUnavailableError
from .collection import ImageCollection
from .io import decode_all

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


def open_sample(source: str) -> ImageCollection:
    images, labels, classes, names = load_sample_arrays(SAMPLE_PATH)
    images.setflags(write=False)
    return ImageCollection(
        name="sample",
        source=source,
        split="test",
        images=images,
        fingerprint=sample_fingerprint(SAMPLE_PATH),
        classes=classes,
        labels=labels,
        names=names,
    )
