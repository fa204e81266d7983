"""Where the map lies, on a built index: trustworthiness and mean share of neighbours kept for the
app's t-SNE map and for PCA, the time to score a map, and the same from scikit-learn for reference.

Uses the index (and the t-SNE map, if saved) the app would use; computes what is missing. The
scoring here is the app's (``embeddings.core.trust.map_trust``) run directly, not the saved file.

    python benchmarks/bench_trust.py --data /work/shared/datasets/cifar10 --split test
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument(
        "--sklearn-n", type=int, default=10000, help="points for scikit-learn's reference (0: skip)"
    )
    args = parser.parse_args()

    from embeddings.core.projection import max_perplexity, pca
    from embeddings.core.trust import map_trust
    from embeddings.image.base import default_precision
    from embeddings.image.collections import open_collection
    from embeddings.index.maps import index_map, saved_index_map
    from embeddings.index.service import get_or_build_index
    from embeddings.registry import get_image_embedder

    collection = open_collection(args.data, args.split)
    embedder = get_image_embedder(args.model).set_precision(default_precision())
    index, _ = get_or_build_index(collection, embedder)
    x = np.asarray(index.embeddings)
    perplexity = min(30.0, max_perplexity(index.count))
    print(f"{index.count:,} points of {index.dim} dims ({args.model}, {args.split}), k={args.k}")
    saved = saved_index_map(index, "tsne", perplexity, 0)
    start = time.perf_counter()
    layouts = {"t-SNE": saved if saved is not None else index_map(index, "tsne", perplexity, 0)}
    print(
        f"t-SNE map: {'saved' if saved is not None else f'computed in {time.perf_counter() - start:.1f} s'}"
    )
    layouts["PCA"] = pca(x, 2)
    scores = {}
    for name, layout in layouts.items():
        start = time.perf_counter()
        found = map_trust(x, layout, args.k)
        seconds = time.perf_counter() - start
        scores[name] = found
        hist = " ".join(str(int(c)) for c in found.histogram())
        print(
            f"{name}: trustworthiness@{args.k}={found.trustworthiness:.4f}  mean share kept={found.mean_share:.4f}  "
            f"scored in {seconds:.2f} s  points by neighbours kept 0..{args.k}: {hist}"
        )
    print(f"peak memory so far: {peak_mb():,.0f} MB")
    if args.sklearn_n:
        from sklearn.manifold import trustworthiness

        n = min(args.sklearn_n, index.count)
        for name, layout in layouts.items():
            start = time.perf_counter()
            ref = trustworthiness(x[:n], layout[:n], n_neighbors=args.k, metric="cosine")
            seconds = time.perf_counter() - start
            ours = (
                map_trust(x[:n], layout[:n], args.k).trustworthiness
                if n < index.count
                else scores[name].trustworthiness
            )
            print(f"scikit-learn on {n:,} points, {name}: {ref:.4f} in {seconds:.2f} s (ours {ours:.4f})")
        print(f"peak memory after scikit-learn: {peak_mb():,.0f} MB")


def peak_mb() -> float:
    """This process's peak resident memory (Linux reports KB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    main()
