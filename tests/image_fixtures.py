"""Helpers for the image IO, dataset and backend tests: tiny images, folders, a fake CIFAR archive.

Import with ``from image_fixtures import ...`` (pytest puts ``tests/`` on ``sys.path``).
Everything is made in the test's tmp_path; nothing needs the network or /work/shared.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def rgb(h: int = 8, w: int = 8, seed: int = 0) -> np.ndarray:
    """A random H x W x 3 uint8 image."""
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def solid(colour, h: int = 8, w: int = 8) -> np.ndarray:
    return np.broadcast_to(np.asarray(colour, dtype=np.uint8), (h, w, 3)).copy()


def encode(arr_or_img, fmt: str = "PNG", **kwargs) -> bytes:
    """Encode an array or PIL image into file bytes."""
    img = arr_or_img if isinstance(arr_or_img, Image.Image) else Image.fromarray(arr_or_img)
    buffer = io.BytesIO()
    img.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def write_image(path: Path, arr: np.ndarray, fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = (
        fmt
        or {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".bmp": "BMP", ".gif": "GIF"}[path.suffix.lower()]
    )
    path.write_bytes(encode(arr, fmt, **({"quality": 95} if fmt == "JPEG" else {})))
    return path


def make_class_folder(
    root: Path, classes=("cat", "dog"), per_class: int = 3, size: int = 8, ext: str = ".png"
):
    """root/<class>/<i>.<ext> with solid-ish colours per class; returns root."""
    for k, name in enumerate(classes):
        for i in range(per_class):
            img = solid((40 * k + 20, 200 - 30 * k, 10 * i), size, size)
            write_image(root / name / f"{i:03d}{ext}", img)
    return root


def truncated_jpeg(seed: int = 0) -> bytes:
    data = encode(rgb(64, 64, seed), "JPEG", quality=90)
    return data[: len(data) // 2]


def png_header_claiming(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims width x height (no pixel data): a cheap decompression bomb."""
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", len(ihdr))
        + chunk
        + struct.pack(">I", zlib.crc32(chunk) & 0xFFFFFFFF)
        + b"\x00\x00\x00\x00IEND\xaeB`\x82"
    )


def md5(path: Path) -> str:
    return hashlib.md5(Path(path).read_bytes(), usedforsecurity=False).hexdigest()


def fake_cifar_archive(folder: Path, per_batch: int = 4, test_count: int = 6) -> tuple[Path, dict[str, str]]:
    """A tiny archive in the official CIFAR-10 python layout (pickled batches, as in the real one).

    Returns (archive path, {file name: md5} for every batch, "batches.meta" and the archive).
    """
    rng = np.random.default_rng(0)
    src = folder / "build" / "cifar-10-batches-py"
    src.mkdir(parents=True)

    def batch(name: str, n: int, offset: int) -> None:
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        labels = [(offset + i) % 10 for i in range(n)]
        with open(src / name, "wb") as fh:
            pickle.dump({"batch_label": name, "labels": labels, "data": data}, fh)

    for b in range(1, 6):
        batch(f"data_batch_{b}", per_batch, b)
    batch("test_batch", test_count, 0)
    with open(src / "batches.meta", "wb") as fh:
        pickle.dump({"label_names": CIFAR_CLASSES, "num_cases_per_batch": per_batch}, fh)
    sums = {p.name: md5(p) for p in src.iterdir()}
    archive = folder / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src, arcname="cifar-10-batches-py")
    sums["archive"] = md5(archive)
    return archive, sums


def patch_cifar_checksums(monkeypatch, sums: dict[str, str], archive: Path) -> None:
    """Point embeddings.image.cifar and torchvision's CIFAR10 at the fake archive's checksums."""
    from torchvision.datasets import CIFAR10

    from embeddings.image import cifar

    monkeypatch.setattr(cifar, "CIFAR10_URL", archive.resolve().as_uri())
    monkeypatch.setattr(cifar, "CIFAR10_MD5", sums["archive"])
    monkeypatch.setattr(
        CIFAR10, "train_list", [[f"data_batch_{b}", sums[f"data_batch_{b}"]] for b in range(1, 6)]
    )
    monkeypatch.setattr(CIFAR10, "test_list", [["test_batch", sums["test_batch"]]])
    monkeypatch.setattr(
        CIFAR10, "meta", {"filename": "batches.meta", "key": "label_names", "md5": sums["batches.meta"]}
    )


def set_mtime(path: Path, ns: int) -> None:
    os.utime(path, ns=(ns, ns))
