"""Measure the "Better neighbours" variants on CIFAR-10: projection heads and label-free re-ranking.

Usage (from the repository root, with the CIFAR-10 JPEG folder in ../shared):

    python benchmarks/bench_better_neighbours.py heads  --data ../shared/datasets/cifar10
    python benchmarks/bench_better_neighbours.py rerank --data ../shared/datasets/cifar10

Both reuse (or build) the same indexes as ``python -m embeddings build-index`` (default model
efficientnet_lite0, precision ``fast``). ``heads`` first picks each method's parameters on a
held-out 10% of the *train* split (fitted on the other 90%), then fits on the whole train split
and reports test-queries-vs-train-index precision@10: the test labels are only used to score.
``rerank`` reports precision@10 of test queries against the train index for each re-ranking
setting (no labels are used by any of them).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from embeddings.adapt import heads as adapt
from embeddings.image.collections import open_collection
from embeddings.index import rerank
from embeddings.index.evaluation import evaluate_retrieval, score_neighbours
from embeddings.index.service import get_or_build_index
from embeddings.registry import get_image_embedder


def precision_at(
    gallery: np.ndarray, gallery_labels, queries: np.ndarray, query_labels, classes, k=10
) -> float:
    import faiss

    flat = faiss.IndexFlatIP(gallery.shape[1])
    flat.add(np.ascontiguousarray(gallery, dtype=np.float32))
    _, found = flat.search(np.ascontiguousarray(queries, dtype=np.float32), k)
    return score_neighbours(found, query_labels, gallery_labels, classes).precision


def indexes(args):
    embedder = get_image_embedder(args.model).set_precision(args.precision)
    train, _ = get_or_build_index(open_collection(args.data, "train"), embedder, args.data_dir)
    test, _ = get_or_build_index(open_collection(args.data, "test"), embedder, args.data_dir)
    return embedder, train, test


def cmd_heads(args) -> None:
    embedder, train, test = indexes(args)
    base = evaluate_retrieval(train, k=10, queries=test).precision
    print(f"unadapted {args.model}: test->train precision@10={base:.4f}")
    rng = np.random.default_rng(0)
    held = rng.permutation(train.count)[: train.count // 10]
    fit_mask = np.ones(train.count, dtype=bool)
    fit_mask[held] = False
    x_fit, y_fit = train.embeddings[fit_mask], train.labels[fit_mask]
    x_val, y_val = train.embeddings[held], train.labels[held]
    grid = {
        "lda": [{"shrinkage": s} for s in (0.0, 0.01, 0.1, 0.3)],
        "logreg": [{"l2": c} for c in (3e-4, 1e-3, 3e-3, 1e-2, 3e-2)],
    }
    print("selection on train (fit on 90%, held-out 10% of train queries the 90%):")
    chosen = {}
    for method, options in grid.items():
        best = None
        for params in options:
            started = time.perf_counter()
            head = adapt.fit_head(x_fit, y_fit, train.classes, method, **params)
            took = time.perf_counter() - started
            extra = f" train_acc={head.meta['train_accuracy']:.4f}" if "train_accuracy" in head.meta else ""
            outputs = adapt.LOGREG_OUTPUTS if method == "logreg" else ("linear",)
            for output in outputs:
                head.output = output
                p = precision_at(head.apply(x_fit), y_fit, head.apply(x_val), y_val, train.classes)
                full = {**params, "output": output} if method == "logreg" else params
                print(f"  {method} {full}: val precision@10={p:.4f} fit={took:.1f}s{extra}", flush=True)
                if best is None or p > best[0]:
                    best = (p, full)
        chosen[method] = best[1]
    print("final (fit on all 50,000 train vectors; test queries, train index):")
    for method, params in chosen.items():
        started = time.perf_counter()
        head = adapt.fit_head(train.embeddings, train.labels, train.classes, method, **params)
        took = time.perf_counter() - started
        p = precision_at(
            head.apply(train.embeddings),
            train.labels,
            head.apply(test.embeddings),
            test.labels,
            train.classes,
        )
        print(f"  {method} {params}: test->train precision@10={p:.4f} fit={took:.1f}s", flush=True)


def cmd_rerank(args) -> None:
    _, train, test = indexes(args)
    settings = [("none", {})]
    settings += [("whiten", {"dims": d, "shrink": s}) for d in (128, 256, 512, 1280) for s in (0.1, 1.0)]
    settings += [("aqe", {"n": n}) for n in (1, 3, 5, 10)]
    settings += [("kreciprocal", {"k1": k1, "k2": k2, "lam": 0.3}) for k1, k2 in ((20, 6), (10, 3), (30, 6))]
    for method, params in settings:
        started = time.perf_counter()
        result = rerank.evaluate_reranked(train, 10, method, queries=test, **params)
        took = time.perf_counter() - started
        print(f"{method} {params}: test->train precision@10={result.precision:.4f} ({took:.1f}s)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["heads", "rerank"])
    parser.add_argument("--data", default="../shared/datasets/cifar10")
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--precision", default="fast")
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()
    {"heads": cmd_heads, "rerank": cmd_rerank}[args.what](args)


if __name__ == "__main__":
    main()
