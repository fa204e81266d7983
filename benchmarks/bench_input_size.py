"""Which input size suits small images? Lite0 on the default runtime at several sizes.

    python benchmarks/bench_input_size.py --data ../shared/datasets/cifar10 --sizes 96,128,160,192,224

For each size (part of ``Preprocess``, hence of the model fingerprint and of the ONNX export's)
it embeds the whole CIFAR-10 test split (10,000 images, 32 x 32) with ``efficientnet_lite0`` at
the default precision and prints leave-one-out precision@10 (an in-memory index,
``embeddings.index.evaluation.evaluate_retrieval``) and images/s of the model (preprocessing
excluded). 224 stays the default unless a smaller size scores at least as well.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def loo_precision(vectors: np.ndarray, labels, classes, k: int = 10) -> float:
    """Leave-one-out precision@k of unit ``vectors`` on an in-memory flat index."""
    import faiss

    from embeddings.index.evaluation import evaluate_retrieval
    from embeddings.index.store import ImageIndex

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    flat = faiss.IndexFlatIP(vectors.shape[1])
    flat.add(vectors)
    index = ImageIndex(Path("."), {}, vectors, np.asarray(labels), list(classes), flat)
    return evaluate_retrieval(index, k=k).precision


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/datasets/cifar10")
    parser.add_argument("--split", default="test")
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--sizes", default="96,128,160,192,224")
    parser.add_argument("--limit", type=int, default=None, help="only the first N images (a quick look)")
    args = parser.parse_args()

    from embeddings.image.base import DEFAULT_PRECISION
    from embeddings.image.collections import open_collection
    from embeddings.registry import get_image_embedder

    collection = open_collection(args.data, args.split)
    n = args.limit or len(collection)
    images = collection.get_images(list(range(n)))
    labels = np.asarray(collection.labels)[:n]
    data_dir = Path(tempfile.mkdtemp(prefix="bench-input-size-"))
    rows = []
    for size in [int(s) for s in args.sizes.split(",")]:
        embedder = get_image_embedder(args.model, data_dir)
        embedder.preprocess = dataclasses.replace(embedder.preprocess, resize=size, crop=size)
        embedder.set_precision(DEFAULT_PRECISION)
        embedder.embed_prepared(embedder.prepare_batch(images[:64]))  # warm-up
        out, seconds = [], 0.0
        for s in range(0, n, 64):
            batch = embedder.prepare_batch(images[s : s + 64])
            start = time.perf_counter()
            out.append(embedder.embed_prepared(batch))
            seconds += time.perf_counter() - start
        precision = loo_precision(np.concatenate(out), labels, collection.classes)
        rows.append((size, precision, n / seconds, embedder.precision))
        print(f"  {size} px done: precision@10 {precision:.4f}, {n / seconds:.1f} images/s", flush=True)
    print(f"\n{args.model}, {args.split} split, {n} images, leave-one-out, precision {rows[0][3]}")
    print("| input size | precision@10 | images/s |")
    print("|---|---|---|")
    for size, precision, ips, _ in rows:
        print(f"| {size} | {precision:.4f} | {ips:.1f} |")
    best = max(rows, key=lambda r: (r[1], -r[0]))
    print(f"best precision@10 at {best[0]} px")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
