"""Build embeddings/data/cifar10_sample.npz: 2,000 CIFAR-10 test images, 200 per class.

    python scripts/make_sample.py /work/shared/datasets/cifar10/test

The input is a CIFAR-10 split in image-folder layout (``<class>/<file>.jpg``). For each class
(sorted names = the official label order) 200 files are chosen with a fixed seed from the
name-sorted file list, so the result is deterministic. The npz (no pickles) holds:

* ``jpeg_bytes`` (uint8, all files' original bytes concatenated) and ``jpeg_offsets``
  (int64, n + 1): the files exactly as they are in the folder, so the sample decodes to the
  same pixels as the folder copy; or ``images`` (uint8 n x 32 x 32 x 3) with ``--format array``;
* ``labels`` (int64), ``classes`` (unicode), ``names`` (unicode, ``<class>/<file>``).

The script prints the size of both storage options (compressed pixels vs original JPEG bytes).
"""

from __future__ import annotations

import argparse
import io
import sys
import zipfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from embeddings.core.files import atomic_path
from embeddings.core.fingerprint import sha256_file
from embeddings.image.io import decode_image_bytes, is_image_filename
from embeddings.image.sample import SAMPLE_PATH, load_sample_arrays


def choose_files(folder: Path, per_class: int, seed: int) -> tuple[list[str], list[Path], list[int]]:
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise SystemExit(f"{folder} has no class sub-folders")
    rng = np.random.default_rng(seed)
    files, labels = [], []
    for k, name in enumerate(classes):
        found = sorted(p for p in (folder / name).iterdir() if is_image_filename(p.name))
        if len(found) < per_class:
            raise SystemExit(f"{folder / name} has {len(found)} images, fewer than {per_class}")
        picks = np.sort(rng.choice(len(found), size=per_class, replace=False))
        files.extend(found[i] for i in picks)
        labels.extend([k] * per_class)
    return classes, files, labels


def npz_bytes(**arrays) -> bytes:
    """Like ``np.savez_compressed`` but byte-for-byte reproducible (fixed zip timestamps), so
    rebuilding the sample does not change its sha256 (which is the sample's fingerprint)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(info, "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, np.asanyarray(array), allow_pickle=False)
    return buffer.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "folder", type=Path, help="a CIFAR-10 split folder, e.g. /work/shared/datasets/cifar10/test"
    )
    parser.add_argument("--out", type=Path, default=SAMPLE_PATH)
    parser.add_argument("--per-class", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--format", choices=["jpeg", "array"], default="jpeg")
    args = parser.parse_args(argv)

    classes, files, labels = choose_files(args.folder, args.per_class, args.seed)
    datas = [p.read_bytes() for p in files]
    images = np.stack([decode_image_bytes(d, name=str(p)) for d, p in zip(datas, files, strict=True)])
    common = {
        "labels": np.asarray(labels, dtype=np.int64),
        "classes": np.asarray(classes, dtype=np.str_),
        "names": np.asarray([f"{p.parent.name}/{p.name}" for p in files], dtype=np.str_),
    }
    offsets = np.concatenate([[0], np.cumsum([len(d) for d in datas])]).astype(np.int64)
    as_jpeg = npz_bytes(
        jpeg_bytes=np.frombuffer(b"".join(datas), dtype=np.uint8), jpeg_offsets=offsets, **common
    )
    as_array = npz_bytes(images=images, **common)
    print(f"{len(files)} images {images.shape}, raw pixels {images.nbytes / 1e6:.2f} MB")
    print(f"  zip-deflated(images):          {len(as_array) / 1e6:.2f} MB")
    print(
        f"  zip-deflated(jpeg bytes):      {len(as_jpeg) / 1e6:.2f} MB (files total {offsets[-1] / 1e6:.2f} MB)"
    )

    with atomic_path(args.out, suffix=".npz") as tmp:
        tmp.write_bytes(as_jpeg if args.format == "jpeg" else as_array)
    args.out.chmod(0o644)  # atomic_path's temp file is 0600
    check, check_labels, check_classes, _ = load_sample_arrays(args.out)
    assert np.array_equal(check, images) and np.array_equal(check_labels, common["labels"])
    assert check_classes == classes
    print(
        f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB, {args.format}), sha256 {sha256_file(args.out)}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
