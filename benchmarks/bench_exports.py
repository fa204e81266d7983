"""How long the collection downloads take to build: vectors and labels as ``.npy`` bytes (built on
each click) and the Parquet file (written once per index, beside it, then read from disk on click).

    EMBEDDINGS_DATA_DIR=... python benchmarks/bench_exports.py --data ../shared/datasets/cifar10 --split test
"""

from __future__ import annotations

import argparse
import os
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--model", default="efficientnet_lite0")
    args = parser.parse_args()

    from embeddings.core.exports import array_npy
    from embeddings.image.base import default_precision
    from embeddings.image.collections import open_collection
    from embeddings.index.exports import labels_of, parquet_path, write_parquet
    from embeddings.index.service import get_or_build_index
    from embeddings.registry import get_image_embedder

    collection = open_collection(args.data, args.split)
    embedder = get_image_embedder(args.model).set_precision(default_precision(), lazy=True)
    index, _ = get_or_build_index(collection, embedder)
    print(f"{index.count:,} vectors of {index.dim} float32 ({args.model}, {args.split})")

    def timed(what, build):
        start = time.perf_counter()
        result = build()
        seconds = time.perf_counter() - start
        size = len(result) if isinstance(result, bytes) else os.path.getsize(result)
        print(f"{what}: {size / 1e6:,.1f} MB in {seconds:.2f} s")
        return result

    timed("vectors .npy bytes (each click)", lambda: array_npy(index.embeddings))
    timed("labels .npy bytes (each click)", lambda: array_npy(labels_of(index)))
    parquet_path(index).unlink(missing_ok=True)
    path = timed("Parquet file written beside the index (once per index)", lambda: write_parquet(index, {}))
    timed("Parquet bytes read from disk (each click)", path.read_bytes)
    start = time.perf_counter()
    for _ in range(100):
        parquet_path(index).is_file()
    print(
        f"looking for the saved Parquet file (each rerun of the page): {(time.perf_counter() - start) * 10:.2f} ms"
    )


if __name__ == "__main__":
    main()
