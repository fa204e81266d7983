"""An index's vectors and labels as a Parquet file, written once and kept beside the index.

Writing 10,000 x 1,280 float32 vectors takes seconds (README, Links and exports), so the file is
built once per index, keyed like the maps by the index's embeddings checksum, labels and classes,
written atomically; the app serves it from disk. The ``.npy`` downloads need no file: they are
the arrays themselves (:func:`embeddings.core.exports.array_npy`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..core.exports import class_names, write_vectors_parquet
from ..core.files import atomic_path
from ..core.fingerprint import fingerprint

EXPORT_FORMAT = "parquet-1"  # bump when the file's columns change


def labels_of(index):
    """Each image's class name (``""`` for an unlabelled collection)."""
    return class_names(index.labels, index.classes, index.count)


def parquet_path(index) -> Path:
    """Where the Parquet export of ``index`` lives (whether or not it exists yet)."""
    labels_sha = index.manifest.get("files", {}).get("labels.npy", {}).get("sha256", "")
    key = fingerprint(index.embeddings_sha256, labels_sha, index.classes, EXPORT_FORMAT)
    return Path(index.path) / f"export-{key}.parquet"


def saved_parquet(index) -> Path | None:
    """The Parquet export of ``index`` when it has been written, else None."""
    path = parquet_path(index)
    return path if path.is_file() else None


def write_parquet(
    index, metadata: dict[str, str], progress: Callable[[int, int], None] | None = None
) -> Path:
    """Write (once) and return the Parquet export of ``index``: ``id``, ``label``, ``vector``;
    ``metadata`` (model, collection, split) goes into the file's schema."""
    path = parquet_path(index)
    if path.is_file():
        return path
    with atomic_path(path) as tmp:
        write_vectors_parquet(str(tmp), index.embeddings, labels_of(index), metadata, progress)
    return path
