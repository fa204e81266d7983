"""The bytes of every download: CSV tables, ``.npy`` arrays and Parquet, named after model and data.

Plain functions of arrays and names (no streamlit): the app hands them to download buttons that
build the file only when clicked, and the tests read the bytes back.

* :func:`export_name`: ``similarity-minilm-words.csv``, ``vectors-efficientnet_lite0-cifar10-test.npy``.
* :func:`similarity_matrix_csv`, :func:`pairs_csv`: the Word similarity page's numbers.
* :func:`neighbours_csv`: an image query's neighbours with scores and labels.
* :func:`map_csv`: map coordinates with their labels (word, image and document maps).
* :func:`document_hits_csv`: a Semantic search query's ranked documents with the passage that matched.
* :func:`array_npy`, :func:`write_vectors_parquet`: a collection's vectors and labels.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Sequence

import numpy as np

CSV_MIME = "text/csv"
NPY_MIME = "application/octet-stream"
PARQUET_MIME = "application/vnd.apache.parquet"


def name_part(text: str) -> str:
    """``text`` as part of a file name: lower case, runs of other characters as one ``-``
    (a folder collection's path gives its last folder's name)."""
    text = str(text).rstrip("/\\")
    text = re.split(r"[/\\]", text)[-1] or text
    return re.sub(r"[^a-z0-9._]+", "-", text.lower()).strip("-.")[:60] or "x"


def export_name(what: str, model: str, data: str, ext: str) -> str:
    """The download's file name: ``{what}-{model}-{data}.{ext}``, each part file-name safe."""
    return f"{name_part(what)}-{name_part(model)}-{name_part(data)}.{ext.lstrip('.')}"


def _csv(frame) -> bytes:
    return frame.to_csv(index=False, float_format="%.6f", lineterminator="\n").encode("utf-8")


def similarity_matrix_csv(items: Sequence[str], sims: np.ndarray) -> bytes:
    """The n x n cosine-similarity matrix: a first column ``item``, then one column per item."""
    import pandas as pd

    sims = np.asarray(sims, dtype=np.float64)
    if sims.shape != (len(items), len(items)):
        raise ValueError(f"a {len(items)}-item matrix must be {len(items)} x {len(items)}, got {sims.shape}")
    frame = pd.DataFrame(sims, columns=list(items))
    frame.insert(0, "item", list(items))
    return _csv(frame)


def pairs_csv(items: Sequence[str], sims: np.ndarray) -> bytes:
    """Every pair once (``word A``, ``word B``, ``cosine similarity``), most similar first; the
    page's most and least similar tables are its first and last rows."""
    import pandas as pd

    sims = np.asarray(sims, dtype=np.float64)
    rows, cols = np.triu_indices(len(items), k=1)
    values = sims[rows, cols]
    order = np.argsort(-values, kind="stable")
    return _csv(
        pd.DataFrame(
            {
                "word A": [items[i] for i in rows[order]],
                "word B": [items[j] for j in cols[order]],
                "cosine similarity": values[order],
            }
        )
    )


def neighbours_csv(
    query: str, ids: Sequence[int], scores: Sequence[float], labels: Sequence[str | None]
) -> bytes:
    """One row per neighbour: ``rank`` (1 = nearest), ``id``, ``label``, ``cosine``, and the ``query``."""
    import pandas as pd

    if not len(ids) == len(scores) == len(labels):
        raise ValueError("ids, scores and labels must have the same length")
    return _csv(
        pd.DataFrame(
            {
                "query": [query] * len(ids),
                "rank": np.arange(1, len(ids) + 1),
                "id": np.asarray(ids, dtype=np.int64),
                "label": ["" if label is None else label for label in labels],
                "cosine": np.asarray(scores, dtype=np.float64),
            }
        )
    )


def document_hits_csv(query: str, rows: Sequence[dict]) -> bytes:
    """One row per ranked document: ``query``, ``rank``, ``id``, ``title``, ``group``, ``cosine`` and
    the whole ``matching passage`` (``rows``: dicts with those keys but ``query``, best first)."""
    import pandas as pd

    columns = ["rank", "id", "title", "group", "cosine", "matching passage"]
    frame = pd.DataFrame([{name: row.get(name, "") for name in columns} for row in rows], columns=columns)
    frame.insert(0, "query", [query] * len(frame))
    return _csv(frame)


def map_csv(coords: np.ndarray, columns: dict[str, Sequence]) -> bytes:
    """Map coordinates ``x``, ``y`` (and ``z`` for a 3-D map) after the named ``columns``
    (e.g. ``{"word": ..., "group": ...}`` or ``{"id": ..., "label": ...}``), one row per point."""
    import pandas as pd

    coords = np.asarray(coords, dtype=np.float64)
    if coords.ndim != 2 or coords.shape[1] not in (2, 3):
        raise ValueError(f"map coordinates must be (n, 2) or (n, 3), got {coords.shape}")
    frame = pd.DataFrame({name: list(values) for name, values in columns.items()})
    if len(frame.columns) and len(frame) != len(coords):
        raise ValueError(f"{len(frame)} labels for {len(coords)} points")
    for axis, name in enumerate("xyz"[: coords.shape[1]]):
        frame[name] = coords[:, axis]
    return _csv(frame)


def array_npy(array: np.ndarray) -> bytes:
    """``array`` as ``.npy`` bytes (``np.load(..., allow_pickle=False)`` reads it back):
    vectors as float32 rows, labels as fixed-width strings, never objects."""
    array = np.asarray(array)
    if array.dtype == object:
        array = array.astype(str)
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def class_names(labels: np.ndarray | None, classes: Sequence[str], count: int) -> np.ndarray:
    """Each item's class name (``""`` for an unlabelled collection) as a string array."""
    if labels is None or not len(classes):
        return np.full(count, "", dtype="<U1")
    return np.asarray(classes, dtype=str)[np.asarray(labels, dtype=np.int64)]


PARQUET_ROWS = 1000  # rows per row group: the unit of progress


def write_vectors_parquet(
    sink,
    vectors: np.ndarray,
    labels: Sequence[str],
    metadata: dict[str, str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> None:
    """Write a Parquet table to ``sink`` (a path or binary file): ``id`` (int64, the row),
    ``label`` (string) and ``vector`` (a fixed-size list of float32), zstd-compressed, with
    ``metadata`` (model, collection, ...) in its schema; ``progress(rows done, rows)`` after each
    row group of :data:`PARQUET_ROWS`."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.ndim != 2:
        raise ValueError(f"vectors must be (n, d), got {vectors.shape}")
    n, dim = vectors.shape
    if len(labels) != n:
        raise ValueError(f"{len(labels)} labels for {n} vectors")
    schema = pa.schema(
        [("id", pa.int64()), ("label", pa.string()), ("vector", pa.list_(pa.float32(), dim))],
        metadata={str(k): str(v) for k, v in (metadata or {}).items()},
    )
    with pq.ParquetWriter(sink, schema, compression="zstd") as writer:
        for start in range(0, max(n, 1), PARQUET_ROWS):
            stop = min(n, start + PARQUET_ROWS)
            chunk = vectors[start:stop]
            batch = pa.table(
                {
                    "id": pa.array(np.arange(start, stop, dtype=np.int64)),
                    "label": pa.array([str(x) for x in labels[start:stop]], pa.string()),
                    "vector": pa.FixedSizeListArray.from_arrays(pa.array(chunk.reshape(-1)), dim),
                },
                schema=schema,
            )
            writer.write_table(batch)
            if progress is not None:
                progress(stop, n)


def vectors_parquet(
    vectors: np.ndarray, labels: Sequence[str], metadata: dict[str, str] | None = None
) -> bytes:
    """:func:`write_vectors_parquet` into bytes."""
    buffer = io.BytesIO()
    write_vectors_parquet(buffer, vectors, labels, metadata)
    return buffer.getvalue()
