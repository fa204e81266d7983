"""Search latency on the full 60,000-image CIFAR-10 index (train + test splits together).

Loads the two split indexes built by ``python -m embeddings build-index``, stacks them into
one 60,000-vector index in memory, and times single neighbour queries exact (flat) vs
approximate (HNSW), with the approximate index's recall@10.

    python benchmarks/bench_search_full.py --data ../shared/datasets/cifar10 --model efficientnet_lite0
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--queries", type=int, default=1000)
    args = parser.parse_args()

    import faiss

    from embeddings.bench import bench_search
    from embeddings.image.base import default_precision
    from embeddings.image.collections import open_collection
    from embeddings.index.service import get_or_build_index
    from embeddings.index.store import ImageIndex
    from embeddings.registry import get_image_embedder

    embedder = get_image_embedder(args.model).set_precision(default_precision())
    parts, seconds = [], 0.0
    for split in ("train", "test"):
        index, _ = get_or_build_index(open_collection(args.data, split), embedder)
        parts.append(index)
        seconds += index.manifest["build_seconds"]
        print(f"{split}: {index.count:,} vectors, built in {index.manifest['build_seconds']:.0f} s")
    vectors = np.ascontiguousarray(np.concatenate([p.embeddings for p in parts]))
    labels = np.concatenate([p.labels for p in parts])
    flat = faiss.IndexFlatIP(vectors.shape[1])
    flat.add(vectors)
    with tempfile.TemporaryDirectory() as tmp:
        manifest = {"files": {}, "built_at": "", "count": len(vectors), "dim": vectors.shape[1]}
        full = ImageIndex(Path(tmp), manifest, vectors, labels, parts[0].classes, flat)
        reports, recall = bench_search(full, n_queries=args.queries, k=10)
    print(f"full index: {full.count:,} vectors of {full.dim} dims; embedding all took {seconds:.0f} s")
    for report in reports:
        print(report.line())
    print(f"ratio p50 exact/approximate={reports[0].p50_ms / reports[1].p50_ms:.2f} recall@10={recall:.4f}")


if __name__ == "__main__":
    main()
