"""k-NN accuracy for every k: one search with k_max and cumulative votes (what the app and
``eval-knn`` do) against one search per k, on the same index in the same run.

Prints seconds for each, their ratio, and whether the two give the same accuracies.

    python benchmarks/bench_knn.py --data ../shared/datasets/cifar10 --split test --model efficientnet_lite0
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--k-max", type=int, default=50)
    args = parser.parse_args()

    from embeddings.image.base import default_precision
    from embeddings.image.collections import open_collection
    from embeddings.index.knn import compute_knn_curve, vote_curve
    from embeddings.index.service import get_or_build_index
    from embeddings.registry import get_image_embedder

    collection = open_collection(args.data, args.split)
    embedder = get_image_embedder(args.model).set_precision(default_precision())
    index, _ = get_or_build_index(collection, embedder)
    n, classes = index.count, len(index.classes)
    print(f"{n:,} items of {index.dim} dims ({args.model}, {args.split}), k = 1..{args.k_max}")

    started = time.perf_counter()
    curve = compute_knn_curve(index, args.k_max)
    once = time.perf_counter() - started

    started = time.perf_counter()
    per_k = []
    for k in range(1, args.k_max + 1):  # one leave-one-out search per k, then the vote of exactly k
        found, scores = index.neighbours(np.arange(n), k)
        plain, _ = vote_curve(index.labels[found], scores, classes)
        per_k.append(float((plain[:, -1] == index.labels).mean()))
    each = time.perf_counter() - started

    same = np.allclose(per_k, curve.plain)
    print(f"one search + cumulative votes: {once:.1f} s")
    print(f"one search per k:              {each:.1f} s")
    print(f"ratio {each / once:.1f}x, same plain accuracies: {same}")


if __name__ == "__main__":
    main()
