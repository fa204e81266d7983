"""Approximate search beside an exact index: an HNSW index over the same vectors, built once
on disk (and recorded in the manifest), and its recall against exact search."""

from __future__ import annotations

import numpy as np

from ..core.files import write_json_atomic
from .store import (
    HNSW_EF_CONSTRUCTION,
    HNSW_EF_SEARCH,
    HNSW_M,
    MANIFEST,
    ImageIndex,
    build_lock,
    file_entry,
    replace_faiss_index,
    require_faiss,
)


def ensure_approximate(index: ImageIndex) -> ImageIndex:
    """Build (once, on disk) and attach an HNSW index over the same vectors for fast approximate search."""
    faiss = require_faiss()
    if index.approximate is not None:
        return index
    with build_lock(index.path):
        path = index.path / "index-hnsw.faiss"
        hnsw = faiss.IndexHNSWFlat(index.dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        hnsw.add(np.ascontiguousarray(index.embeddings))
        replace_faiss_index(hnsw, path)
        manifest = dict(index.manifest)
        manifest["files"] = dict(manifest["files"], **{"index-hnsw.faiss": file_entry(path)})
        manifest["hnsw"] = {"M": HNSW_M, "efConstruction": HNSW_EF_CONSTRUCTION, "efSearch": HNSW_EF_SEARCH}
        write_json_atomic(index.path / MANIFEST, manifest)
        index.manifest = manifest
    hnsw.hnsw.efSearch = HNSW_EF_SEARCH
    index.approximate = hnsw
    return index


def approximate_recall(index: ImageIndex, k: int = 10, n_queries: int = 1000, seed: int = 0) -> float:
    """Mean recall@k of the approximate index against exact search, on stored items as queries."""
    ensure_approximate(index)
    rng = np.random.default_rng(seed)
    ids = rng.choice(index.count, size=min(n_queries, index.count), replace=False)
    exact, _ = index.search(index.embeddings[ids], k)
    approx, _ = index.search(index.embeddings[ids], k, approximate=True)
    return recall_at_k(approx, exact)


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of each row of ``truth`` ids that the same row of ``found`` contains."""
    k = truth.shape[1]
    return float(np.mean([len(set(f) & set(t)) / k for f, t in zip(found, truth, strict=True)]))
