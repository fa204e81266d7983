"""Benchmarks that report ratios against a baseline measured in the same run."""

from __future__ import annotations

import copy
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
    from .index.approximate import ensure_approximate, recall_at_k

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


@dataclass
class ThroughputReport:
    """Images per second of the fp32 eager baseline and of each faster mode, and how far they agree."""

    model_id: str
    n: int
    baseline_ips: float
    modes: dict[str, tuple[float, float]]  # precision -> (images/s, agreement@10 with the baseline)
    default: str
    preprocess_ips: float | None = None  # preprocessing alone (the same for every mode)
    skipped: dict[str, str] | None = None  # precision -> why it was not measured

    @property
    def speedup(self) -> float:
        return self.modes[self.default][0] / self.baseline_ips

    def lines(self) -> list[str]:
        out = []
        if self.preprocess_ips:
            out.append(
                f"{self.model_id}: preprocessing {self.preprocess_ips:.1f} images/s (the same for every mode)"
            )
        out.append(f"{self.model_id}: fp32 eager baseline {self.baseline_ips:.1f} images/s")
        for mode, (ips, agreement) in self.modes.items():
            out.append(
                f"{self.model_id}: {mode} {ips:.1f} images/s ({ips / self.baseline_ips:.2f}x), "
                f"agreement@10 with fp32 {agreement:.4f}"
            )
        for mode, why in (self.skipped or {}).items():
            out.append(f"{self.model_id}: {mode} not measured: {why}")
        out.append(f"speedup={self.speedup:.2f} agreement@10={self.modes[self.default][1]:.4f}")
        return out


def neighbour_agreement(a: np.ndarray, b: np.ndarray, k: int = 10) -> float:
    """Mean overlap of each item's top-``k`` neighbour sets (itself excluded) under vectors ``a`` and ``b``."""
    from .index.approximate import recall_at_k

    def knn(v: np.ndarray) -> np.ndarray:
        sims = v @ v.T
        np.fill_diagonal(sims, -np.inf)
        return np.argsort(-sims, axis=1, kind="stable")[:, :k]

    return recall_at_k(knn(b), knn(a))


def _time_interleaved(embedders: dict, batches) -> dict[str, tuple[float, np.ndarray]]:
    """{name: (images/s, vectors)} of each embedder's network (and normalisation) on the same
    preprocessed batches, taking turns batch by batch, so a burst of load from other work on a
    shared machine hits every mode alike instead of whichever ran at that moment."""
    for embedder in embedders.values():
        embedder.embed_prepared(batches[0])  # warm-up: weights, kernels, allocator, frozen graph
    seconds = dict.fromkeys(embedders, 0.0)
    vectors: dict[str, list] = {name: [] for name in embedders}
    for batch in batches:
        for name, embedder in embedders.items():
            start = time.perf_counter()
            vectors[name].append(embedder.embed_prepared(batch))
            seconds[name] += time.perf_counter() - start
    n = sum(len(b) for b in batches)
    return {name: (n / seconds[name], np.concatenate(vectors[name])) for name in embedders}


def bench_images(
    model_id: str,
    images,
    modes: tuple[str, ...] = ("fast", "onnx", "bf16"),
    batch_size: int = 64,
    default: str | None = None,
    data_dir=None,
) -> ThroughputReport:
    """Embed the same images with plain fp32 eager PyTorch and with each faster mode; compare.

    The summary line (``speedup=… agreement@10=…``) reports ``default`` (the default precision,
    :data:`embeddings.image.base.DEFAULT_PRECISION`, unless given; it must be one of ``modes``).
    A mode that fell back (``onnx`` on a model that cannot be exported) is reported under the
    precision that really ran. Every mode runs on the same preprocessed batches (preprocessing
    is the same for all of them, and an index build overlaps it with the model), so images/s
    is the network's; :attr:`ThroughputReport.preprocess_ips` is preprocessing's own rate. The
    modes take turns batch by batch (see :func:`_time_interleaved`). ``bf16`` is left out (and
    the report says why) on a CPU without native bfloat16, where it is emulated and only slow.
    """
    from .image.base import BF16_EMULATED, DEFAULT_PRECISION, bf16_supported
    from .registry import get_image_embedder

    default = default or DEFAULT_PRECISION
    skipped = {}
    if "bf16" in modes and default != "bf16" and not bf16_supported():
        modes = tuple(m for m in modes if m != "bf16")
        skipped["bf16"] = BF16_EMULATED
    if default not in modes:
        modes = (*modes, default)
    baseline = get_image_embedder(model_id, data_dir).set_precision("fp32")
    if getattr(baseline, "model", None) is not None:
        # Its own copy: embedders of one model share a cached module, which ``fast`` and ``bf16``
        # turn channels-last in place, and the baseline is plain eager on the module as loaded.
        baseline.model = copy.deepcopy(baseline.model)
    baseline.prepare_batch(images[:batch_size])  # warm-up
    start = time.perf_counter()
    batches = [baseline.prepare_batch(images[s : s + batch_size]) for s in range(0, len(images), batch_size)]
    preprocess_ips = len(images) / (time.perf_counter() - start)
    embedders = {"fp32": baseline}
    ran = {}
    for mode in modes:
        embedder = get_image_embedder(model_id, data_dir).set_precision(mode)
        ran[mode] = embedder.precision
        embedders.setdefault(embedder.precision, embedder)  # a fallback already measured runs once
    timed = _time_interleaved(embedders, batches)
    baseline_ips, exact = timed.pop("fp32")
    results = {mode: (ips, neighbour_agreement(exact, vectors)) for mode, (ips, vectors) in timed.items()}
    return ThroughputReport(
        model_id, len(images), baseline_ips, results, ran[default], preprocess_ips, skipped or None
    )
