"""How CIFAR-10's test images sit against train: each test image's nearest train image (cosine),
its distribution, and contact sheets of random pairs per cosine band, to choose the
near-duplicate threshold by looking (README "Near-duplicates between CIFAR-10's test and train").

    python benchmarks/duplicate_bands.py [--data ../shared/datasets/cifar10] [--model efficientnet_lite0] [--out DIR]

Prints the quantiles and the number of test images per band, and writes ``band-<lo>-<hi>.png``
(16 random pairs a band, test left, train right, with ids and cosine) into ``--out``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

BANDS = [
    (0.95, 1.01),
    (0.93, 0.95),
    (0.91, 0.93),
    (0.90, 0.91),
    (0.89, 0.90),
    (0.88, 0.89),
    (0.86, 0.88),
    (0.84, 0.86),
]
PER_BAND = 16
TILE = 112


def load(data: str, split: str, model_id: str):
    from embeddings.image.base import default_precision
    from embeddings.image.collections import open_collection
    from embeddings.index.service import get_or_build_index
    from embeddings.registry import get_image_embedder

    collection = open_collection(data, split)
    embedder = get_image_embedder(model_id).set_precision(default_precision(), lazy=True)
    index, _ = get_or_build_index(collection, embedder)
    return collection, index


def sheet(test, train, pick, nearest, cosine, path: Path) -> None:
    from PIL import Image, ImageDraw

    width, height = 2 * TILE + 8, TILE + 14
    out = Image.new("RGB", (4 * (width + 10), 4 * (height + 6)), "white")
    draw = ImageDraw.Draw(out)
    left = test.get_images([int(i) for i in pick])
    right = train.get_images([int(nearest[i]) for i in pick])
    for n, (i, a, b) in enumerate(zip(pick, left, right, strict=True)):
        row, col = divmod(n, 4)
        x, y = col * (width + 10), row * (height + 6)
        out.paste(Image.fromarray(np.asarray(a)).resize((TILE, TILE), Image.NEAREST), (x, y))
        out.paste(Image.fromarray(np.asarray(b)).resize((TILE, TILE), Image.NEAREST), (x + TILE + 8, y))
        draw.text((x, y + TILE + 1), f"te{i} tr{nearest[i]} {cosine[i]:.3f}", fill="black")
    out.save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/datasets/cifar10")
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--out", default="screenshots/duplicate-bands")
    args = parser.parse_args()
    test, test_index = load(args.data, "test", args.model)
    train, train_index = load(args.data, "train", args.model)
    nearest = np.empty(test_index.count, dtype=np.int64)
    cosine = np.empty(test_index.count, dtype=np.float32)
    for start in range(0, test_index.count, 1024):
        stop = min(test_index.count, start + 1024)
        ids, scores = train_index.search(test_index.embeddings[start:stop], 1)
        nearest[start:stop], cosine[start:stop] = ids[:, 0], scores[:, 0]
    for q in (0.5, 0.9, 0.99, 1.0):
        print(f"quantile {q:.2f} of the nearest-train cosine: {np.quantile(cosine, q):.3f}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for lo, hi in BANDS:
        inside = np.flatnonzero((cosine >= lo) & (cosine < hi))
        pick = rng.choice(inside, size=min(PER_BAND, len(inside)), replace=False) if len(inside) else inside
        pick = pick[np.argsort(-cosine[pick])]
        if len(pick):
            sheet(test, train, pick, nearest, cosine, out / f"band-{lo:.2f}-{hi:.2f}.png")
        print(f"band {lo:.2f}-{min(hi, 1.0):.2f}: {len(inside)} test images")
    for threshold in (0.85, 0.88, 0.90, 0.92, 0.95):
        print(f"nearest-train cosine >= {threshold:.2f}: {(cosine >= threshold).sum()} test images")


if __name__ == "__main__":
    main()
