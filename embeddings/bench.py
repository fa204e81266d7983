"""Benchmarks that report ratios against a baseline measured in the same run."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np


@dataclass
class LatencyReport:
    """Per-query latency percentiles in milliseconds."""

    label: str
    p50_ms: float
    p99_ms: float
    queries: int

    def line(self) -> str:
        return f"{self.label:>12s}: p50={self.p50_ms:.3f} ms  p99={self.p99_ms:.3f} ms  over {self.queries} queries"


def _latencies(fn, ids) -> np.ndarray:
    out = np.empty(len(ids), dtype=np.float64)
    for i, q in enumerate(ids):
        start = time.perf_counter()
        fn(int(q))
        out[i] = time.perf_counter() - start
    return out * 1000.0


def bench_search(
    index, n_queries: int = 1000, k: int = 10, seed: int = 0
) -> tuple[list[LatencyReport], float]:
    """Time single neighbour queries (one image at a time, as a click does), exact and approximate.

    Returns the latency reports and the approximate index's recall@k against exact search
    over the same queries.
    """
    from .index import ensure_approximate, recall_at_k

    ensure_approximate(index)
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, index.count, size=n_queries)
    index.neighbours([0], k)  # warm up both
    index.neighbours([0], k, approximate=True)
    reports = []
    for label, approximate in (("exact", False), ("approximate", True)):
        lat = _latencies(lambda q, a=approximate: index.neighbours([q], k, approximate=a), ids)
        reports.append(
            LatencyReport(label, float(np.percentile(lat, 50)), float(np.percentile(lat, 99)), n_queries)
        )
    exact, _ = index.neighbours(ids, k)
    approx, _ = index.neighbours(ids, k, approximate=True)
    return reports, recall_at_k(approx, exact)
