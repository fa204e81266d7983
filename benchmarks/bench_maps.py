"""Map speed and quality: openTSNE (what the app uses) vs plain scikit-learn t-SNE on the same points.

Prints seconds for each and scikit-learn's ``trustworthiness`` (k=10) of each layout, plus the
time to map 1,000 words with the local text model.

    python benchmarks/bench_maps.py --data ../shared/datasets/cifar10 --split test --model efficientnet_lite0
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
    parser.add_argument("--n", type=int, default=10000, help="points to map (default 10000)")
    parser.add_argument("--skip-sklearn", action="store_true")
    args = parser.parse_args()

    from sklearn.manifold import TSNE, trustworthiness

    from embeddings.core.projection import fast_tsne
    from embeddings.core.projection import tsne as sklearn_small_tsne
    from embeddings.image.base import default_precision
    from embeddings.image.collections import open_collection
    from embeddings.index.service import get_or_build_index
    from embeddings.registry import get_image_embedder

    collection = open_collection(args.data, args.split)
    embedder = get_image_embedder(args.model).set_precision(default_precision())
    index, _ = get_or_build_index(collection, embedder)
    x = np.asarray(index.embeddings[: args.n])
    print(f"{len(x):,} points of {x.shape[1]} dims ({args.model}, {args.split})")

    start = time.perf_counter()
    fast = fast_tsne(x)
    fast_s = time.perf_counter() - start
    fast_t = trustworthiness(x, fast, n_neighbors=10, metric="cosine")
    print(f"openTSNE (FFT, PCA init, approx. neighbours): {fast_s:.1f} s  trustworthiness@10={fast_t:.4f}")

    if not args.skip_sklearn:
        start = time.perf_counter()
        slow = TSNE(n_components=2, perplexity=30, metric="cosine", init="pca", random_state=0).fit_transform(
            x
        )
        slow_s = time.perf_counter() - start
        slow_t = trustworthiness(x, slow, n_neighbors=10, metric="cosine")
        print(f"scikit-learn TSNE (Barnes-Hut, defaults): {slow_s:.1f} s  trustworthiness@10={slow_t:.4f}")
        print(f"speedup={slow_s / fast_s:.2f} trustworthiness_ratio={fast_t / slow_t:.4f}")

    from embeddings.registry import get_text_embedder
    from embeddings.text.vocab import load_vocab

    words = load_vocab()[:1000]
    embedder = get_text_embedder("local")
    embedder.embed(["warm up"])
    start = time.perf_counter()
    vectors = embedder.embed(words)
    embed_s = time.perf_counter() - start
    start = time.perf_counter()
    sklearn_small_tsne(vectors, perplexity=30)
    map_s = time.perf_counter() - start
    print(f"1,000 words with local: embed {embed_s:.2f} s + t-SNE {map_s:.2f} s = {embed_s + map_s:.2f} s")


if __name__ == "__main__":
    main()
