"""Turn an index folder into one searched from disk: train its IVF-PQ index (:mod:`.ivfpq`) once,
record the spec, training sample, search parameters and measured recall@10 in the manifest, and
name ``ivfpq`` as the folder's search kind, so :func:`~embeddings.index.store.load_index` (the CLI
and the app) memory-maps the vectors and searches IVF-PQ with exact re-ranking from then on."""

from __future__ import annotations

import numpy as np

from ..core.files import load_npy, write_json_atomic
from .approximate import recall_at_k
from .ivfpq import (
    DEFAULT_NPROBE,
    DEFAULT_RERANK,
    RerankedIVFPQ,
    default_spec,
    exact_search,
    open_ivfpq,
    parse_spec,
    train_ivfpq,
)
from .store import MANIFEST, ImageIndex, build_lock, file_entry, replace_faiss_index

IVFPQ_FILE = "index-ivfpq.faiss"
RECALL_QUERIES = 1000


def ivfpq_recall(
    index: ImageIndex, searcher: RerankedIVFPQ, k: int = 10, n_queries: int = RECALL_QUERIES, seed: int = 0
) -> dict:
    """recall@k against exact search, on ``n_queries`` stored vectors as queries, of IVF-PQ alone
    (``ivfpq``) and with exact re-ranking (``reranked``)."""
    rng = np.random.default_rng(seed)
    ids = np.sort(rng.choice(index.count, size=min(n_queries, index.count), replace=False))
    queries = np.ascontiguousarray(index.embeddings[ids], dtype=np.float32)
    k = min(k, index.count)
    _, truth = exact_search(index.embeddings, queries, k)
    searcher.ivf.nprobe = min(searcher.nprobe, searcher.ivf.nlist)
    _, coarse = searcher.ivf.search(queries, k)
    _, fine = searcher.search(queries, k)
    return {
        "queries": len(ids),
        f"recall_at_{k}": round(recall_at_k(fine, truth), 4),
        f"recall_at_{k}_without_rerank": round(recall_at_k(coarse, truth), 4),
    }


def _open(index: ImageIndex, manifest: dict) -> ImageIndex:
    vectors = load_npy(index.path / "embeddings.npy", mmap=True)
    params = manifest["ivfpq"]
    searcher = RerankedIVFPQ(open_ivfpq(index.path / IVFPQ_FILE), vectors, params["nprobe"], params["rerank"])
    return ImageIndex(
        index.path, manifest, vectors, index.labels, list(index.classes), searcher, index.approximate
    )


def ensure_ivfpq(
    index: ImageIndex,
    spec: str | None = None,
    nprobe: int = DEFAULT_NPROBE,
    rerank: int = DEFAULT_RERANK,
    seed: int = 0,
) -> ImageIndex:
    """The index searched through IVF-PQ ``spec`` (default :func:`~.ivfpq.default_spec` for its size)
    with exact re-ranking of ``rerank`` candidates from ``nprobe`` lists: trained once and saved beside
    the vectors (a folder already holding that spec only has its search parameters updated); the
    manifest names it, so every later load searches it. Returns the index re-opened memory-mapped."""
    spec = spec or default_spec(index.count, index.dim)
    nlist, m, nbits = parse_spec(spec)
    if nprobe < 1 or rerank < 1:
        raise ValueError("nprobe and rerank must be positive")
    with build_lock(index.path):
        manifest = dict(index.manifest)
        old = manifest.get("ivfpq") or {}
        path = index.path / IVFPQ_FILE
        if old.get("spec") == spec and old.get("seed") == seed and IVFPQ_FILE in manifest["files"]:
            params = dict(old, nprobe=int(nprobe), rerank=int(rerank))
        else:
            ivf, size = train_ivfpq(index.embeddings, spec, seed=seed)
            replace_faiss_index(ivf, path)
            manifest["files"] = dict(manifest["files"], **{IVFPQ_FILE: file_entry(path)})
            params = {"spec": spec, "nlist": nlist, "m": m, "nbits": nbits, "train_size": size, "seed": seed}
            params.update(nprobe=int(nprobe), rerank=int(rerank))
        searcher = RerankedIVFPQ(open_ivfpq(path), index.embeddings, params["nprobe"], params["rerank"])
        params.update(ivfpq_recall(index, searcher))
        manifest.update(index_kind="ivfpq", ivfpq=params)
        write_json_atomic(index.path / MANIFEST, manifest)
    return _open(index, manifest)


def use_flat(index: ImageIndex) -> ImageIndex:
    """Name the exact flat index as the folder's search kind again (the IVF-PQ file stays, unused);
    returns the index with its vectors in memory and exact search."""
    from .store import require_faiss

    if index.manifest.get("index_kind", "flat") == "flat":
        return index
    with build_lock(index.path):
        manifest = dict(index.manifest, index_kind="flat")
        write_json_atomic(index.path / MANIFEST, manifest)
    flat = require_faiss().read_index(str(index.path / "index-flat.faiss"))
    vectors = load_npy(index.path / "embeddings.npy")
    return ImageIndex(
        index.path, manifest, vectors, index.labels, list(index.classes), flat, index.approximate
    )
