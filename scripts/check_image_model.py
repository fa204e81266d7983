"""Check an image model's quality: leave-one-out precision@k of its embeddings on a collection.

Embeds every image of a labelled collection, finds each image's k nearest neighbours
(cosine, faiss IndexFlatIP, the image itself left out) and reports the fraction with the
same class, overall and per class, plus load and embedding speed.

    python scripts/check_image_model.py --model efficientnet_lite0 \
        --data /work/shared/datasets/cifar10 --split test

Reference: efficientnet_lite0 on the CIFAR-10 test split gives precision@10 ~ 0.62.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from embeddings.image.collections import open_collection
from embeddings.registry import get_image_embedder


def precision_at_k(vectors: np.ndarray, labels: np.ndarray, k: int = 10) -> np.ndarray:
    """Per-item leave-one-out precision@k with faiss IndexFlatIP on unit vectors."""
    import faiss

    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    _, ids = index.search(np.ascontiguousarray(vectors, dtype=np.float32), k + 1)
    own = np.arange(len(vectors))[:, None]
    # drop the query itself (normally column 0, but ties with duplicates can reorder)
    neighbours = np.array([row[row != i][:k] for row, i in zip(ids, own[:, 0], strict=True)])
    return (labels[neighbours] == labels[:, None]).mean(axis=1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--data", default="/work/shared/datasets/cifar10", help="sample, cifar10 or a folder")
    parser.add_argument("--split", default=None)
    parser.add_argument("--limit", type=int, default=None, help="use only the first N images (quick runs)")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--save", type=Path, default=None, help="save the vectors to this .npy file")
    parser.add_argument(
        "--vectors", type=Path, default=None, help="load vectors from this .npy instead of embedding"
    )
    args = parser.parse_args(argv)

    start = time.perf_counter()
    collection = open_collection(args.data, split=args.split)
    print(f"opened {collection!r} in {time.perf_counter() - start:.2f} s (skipped {collection.skipped})")
    if collection.labels is None:
        parser.error("the collection has no labels")
    n = len(collection) if args.limit is None else min(args.limit, len(collection))
    labels = collection.labels[:n]

    if args.vectors:
        vectors = np.load(args.vectors, allow_pickle=False)[:n]
    else:
        start = time.perf_counter()
        embedder = get_image_embedder(args.model)
        if args.batch_size:
            embedder.batch_size = args.batch_size
        print(f"loaded {args.model} in {time.perf_counter() - start:.2f} s ({embedder.weights_id})")
        images = collection.get_images(np.arange(n))
        embedder.embed(images[: min(8, n)])  # warm-up
        last = [time.perf_counter()]

        def progress(done: int, total: int) -> None:
            if time.perf_counter() - last[0] > 30:
                last[0] = time.perf_counter()
                print(f"  {done}/{total}", flush=True)

        start = time.perf_counter()
        vectors = embedder.embed(images, progress=progress)
        seconds = time.perf_counter() - start
        print(f"embedded {n} images in {seconds:.1f} s: {n / seconds:.1f} images/s, dim {vectors.shape[1]}")
        if args.save:
            np.save(args.save, vectors, allow_pickle=False)

    per_item = precision_at_k(vectors, labels, args.k)
    print(f"leave-one-out precision@{args.k}: {per_item.mean():.4f} over {n} images")
    for c, name in enumerate(collection.classes):
        mask = labels == c
        if mask.any():
            print(f"  {name:12s} {per_item[mask].mean():.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
