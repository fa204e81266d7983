"""An index for vectors that do not fit in memory: FAISS IVF-PQ, searched memory-mapped, with exact
re-ranking of its top candidates from the memory-mapped ``embeddings.npy``.

IVF-PQ keeps ``m`` bytes per vector (PQ codes) grouped under ``nlist`` k-means centroids; a query
scans the ``nprobe`` nearest lists. The codes are approximate, so the best ``rerank`` candidates
are re-scored with the exact vectors (read from disk rows on demand, not loaded whole) and the top
``k`` of those are returned with exact cosine scores. Pure FAISS and NumPy: no index folder or
manifest here (that is :mod:`embeddings.index.ondisk`).
"""

from __future__ import annotations

import math
import re

import numpy as np

from ..errors import InvalidInputError

DEFAULT_PQ_M = 64  # bytes per vector
DEFAULT_NBITS = 8
DEFAULT_NPROBE = 128  # of 980 lists at 60,000 vectors: recall@10 0.99 with re-ranking (bench_scale.py)
DEFAULT_RERANK = 256
MIN_POINTS_PER_LIST = 39  # FAISS warns below 39 training points per centroid
TRAIN_POINTS_PER_LIST = 64  # the training sample: this many points per list (all vectors if fewer)
EXACT_CHUNK = 65536  # rows per step of a brute-force scan over memory-mapped vectors

_SPEC = re.compile(r"IVF(\d+),PQ(\d+)(?:x(\d+))?")


def parse_spec(spec: str) -> tuple[int, int, int]:
    """``"IVF4096,PQ64"`` (or ``"IVF4096,PQ64x8"``) -> (nlist, m, nbits)."""
    match = _SPEC.fullmatch(str(spec).replace(" ", ""))
    if not match:
        raise InvalidInputError(
            f"IVF-PQ spec {spec!r} is not of the form IVF<nlist>,PQ<m> (e.g. IVF1024,PQ64)"
        )
    nlist, m, nbits = int(match[1]), int(match[2]), int(match[3] or DEFAULT_NBITS)
    if nlist < 1 or m < 1 or not 1 <= nbits <= 16:
        raise InvalidInputError(f"IVF-PQ spec {spec!r}: nlist and m must be positive, nbits 1..16")
    return nlist, m, nbits


def default_spec(n: int, dim: int) -> str:
    """The spec for ``n`` vectors of ``dim`` dims: nlist = 4 * sqrt(n) (a common rule; at most n / 39 so
    every list has FAISS's minimum training points), m = the largest divisor of ``dim`` up to 64."""
    nlist = max(1, min(round(4 * math.sqrt(n)), n // MIN_POINTS_PER_LIST))
    m = max(d for d in range(1, min(DEFAULT_PQ_M, dim) + 1) if dim % d == 0)
    nbits = min(DEFAULT_NBITS, max(1, int(math.log2(max(2, n // MIN_POINTS_PER_LIST)))))
    return f"IVF{nlist},PQ{m}x{nbits}"


def check_spec(spec: str, n: int, dim: int) -> tuple[int, int, int]:
    """:func:`parse_spec`, and whether ``n`` vectors of ``dim`` dims can train it."""
    nlist, m, nbits = parse_spec(spec)
    if dim % m:
        raise InvalidInputError(f"IVF-PQ spec {spec}: PQ{m} must divide the {dim} dimensions")
    if nlist > n or 2**nbits > n:
        raise InvalidInputError(
            f"IVF-PQ spec {spec} needs at least {max(nlist, 2**nbits)} vectors to train; the index has {n} "
            f"(leave the spec out for one chosen for {n} vectors: {default_spec(n, dim)})"
        )
    return nlist, m, nbits


def train_size(n: int, nlist: int, nbits: int) -> int:
    """How many vectors train the index: ``TRAIN_POINTS_PER_LIST`` per list (and per PQ centroid), at most n."""
    return min(n, TRAIN_POINTS_PER_LIST * max(nlist, 2**nbits))


def train_ivfpq(vectors: np.ndarray, spec: str, seed: int = 0, add_chunk: int = EXACT_CHUNK):
    """Train an inner-product IVF-PQ index on a random sample of ``vectors`` (unit rows, may be a
    memory map) and add them all, ``add_chunk`` rows at a time; returns (index, training sample size)."""
    import faiss

    n, dim = vectors.shape
    nlist, m, nbits = check_spec(spec, n, dim)
    size = train_size(n, nlist, nbits)
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(n, size=size, replace=False))
    index = faiss.index_factory(dim, f"IVF{nlist},PQ{m}x{nbits}", faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = seed
    index.pq.cp.seed = seed
    index.do_polysemous_training = False  # Hamming pre-filtering, unused here: it took ~30x the training time
    index.train(np.ascontiguousarray(vectors[sample], dtype=np.float32))
    for start in range(0, n, add_chunk):
        index.add(np.ascontiguousarray(vectors[start : start + add_chunk], dtype=np.float32))
    return index, size


def open_ivfpq(path) -> object:
    """Read an IVF-PQ index memory-mapped (``IO_FLAG_MMAP``): its codes stay on disk, paged in as lists are scanned."""
    import faiss

    return faiss.read_index(str(path), faiss.IO_FLAG_MMAP)


def exact_search(vectors: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force top-``k`` inner products over ``vectors`` (a memory map is read ``EXACT_CHUNK`` rows
    at a time, so memory stays bounded); returns (scores, ids) like FAISS, best first."""
    n = vectors.shape[0]
    k = min(k, n)
    best_s = np.full((len(queries), 0), -np.inf, dtype=np.float32)
    best_i = np.zeros((len(queries), 0), dtype=np.int64)
    for start in range(0, n, EXACT_CHUNK):
        block = np.asarray(vectors[start : start + EXACT_CHUNK], dtype=np.float32)
        scores = queries @ block.T
        ids = np.broadcast_to(np.arange(start, start + len(block)), scores.shape)
        all_s = np.concatenate([best_s, scores], axis=1)
        all_i = np.concatenate([best_i, ids], axis=1)
        top = np.argpartition(-all_s, min(k, all_s.shape[1]) - 1, axis=1)[:, :k]
        best_s = np.take_along_axis(all_s, top, axis=1)
        best_i = np.take_along_axis(all_i, top, axis=1)
    order = np.argsort(-best_s, axis=1, kind="stable")
    return np.take_along_axis(best_s, order, axis=1), np.take_along_axis(best_i, order, axis=1)


class RerankedIVFPQ:
    """IVF-PQ candidates re-scored exactly: ``search(queries, k)`` -> (scores, ids) like a FAISS index.

    ``nprobe`` lists are scanned for ``max(rerank, k)`` candidates per query; their exact vectors are
    read from ``vectors`` (the memory-mapped ``embeddings.npy``) and the best ``k`` returned. A query
    whose lists hold fewer than ``k`` vectors falls back to a brute-force scan.
    """

    def __init__(self, ivf, vectors: np.ndarray, nprobe: int = DEFAULT_NPROBE, rerank: int = DEFAULT_RERANK):
        self.ivf = ivf
        self.vectors = vectors
        self.nprobe = int(nprobe)
        self.rerank = int(rerank)

    @property
    def ntotal(self) -> int:
        return int(self.ivf.ntotal)

    @property
    def d(self) -> int:
        return int(self.ivf.d)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        self.ivf.nprobe = min(self.nprobe, self.ivf.nlist)
        depth = min(max(self.rerank, k), self.ntotal)
        _, candidates = self.ivf.search(queries, depth)
        out_s = np.empty((len(queries), k), dtype=np.float32)
        out_i = np.empty((len(queries), k), dtype=np.int64)
        for row, (query, cand) in enumerate(zip(queries, candidates, strict=True)):
            cand = np.unique(cand[cand >= 0])  # sorted: the memory map is read in file order
            if len(cand) < k:
                scores, ids = exact_search(self.vectors, query[None], k)
                out_s[row], out_i[row] = scores[0], ids[0]
                continue
            scores = np.asarray(self.vectors[cand], dtype=np.float32) @ query
            top = np.argsort(-scores, kind="stable")[:k]
            out_s[row], out_i[row] = scores[top], cand[top]
        return out_s, out_i
