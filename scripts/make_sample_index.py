"""Make the shipped index of the bundled sample (``embeddings/data/precomputed/index-*.npz``).

Usage: ``python scripts/make_sample_index.py [--model efficientnet_lite0] [--precision onnx]``

The bundled 2,000-image sample is embedded with the model at the precision (the default
offline image model at the default precision unless given) by the ordinary index build, in a
temporary data folder (the shipped file is never used to make itself), and its t-SNE map is
computed as the app computes it. The vectors, the exact index key they were made for, the
sha256 of the index's ``embeddings.npy`` and the map are written atomically; a later model,
precision, package version or sample has another key, so the file is then ignored
(:mod:`embeddings.index.shipped`). ``tests/test_shipped_index.py`` checks it against a fresh
computation.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from embeddings.core.projection import DEFAULT_SEED, max_perplexity  # noqa: E402
from embeddings.image.base import DEFAULT_PRECISION  # noqa: E402
from embeddings.image.collections import open_collection  # noqa: E402
from embeddings.index.shipped import save_shipped_index, shipped_path  # noqa: E402
from embeddings.index.store import load_or_build  # noqa: E402
from embeddings.registry import get_image_embedder  # noqa: E402

DEFAULT_MODEL = "efficientnet_lite0"


def make(model_id: str, precision: str, with_map: bool = True) -> Path:
    collection = open_collection("sample", download=False)
    desc = collection.describe()
    with tempfile.TemporaryDirectory(prefix="sample-index-") as data_dir:
        embedder = get_image_embedder(model_id, data_dir).set_precision(precision)
        if embedder.precision != precision:
            raise SystemExit(
                f"{model_id} runs {embedder.precision}, not {precision}: {embedder.runtime_fallback}"
            )
        started = time.perf_counter()
        index, _ = load_or_build(collection, embedder, data_dir)  # never the shipped file
        built = time.perf_counter() - started
        params = None
        if with_map:
            params = ("tsne", min(30.0, max_perplexity(index.count)), DEFAULT_SEED)  # as ui/views/image.py
        path = shipped_path(desc["name"], desc["split"], model_id, precision)
        save_shipped_index(path, collection, embedder, index.embeddings, Path(data_dir) / "installed", params)
    print(
        f"{model_id} {precision}: {index.count} images, embedded in {built:.1f} s, "
        f"{time.perf_counter() - started:.1f} s in all -> {path} ({path.stat().st_size / 2**20:.1f} MB)"
    )
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"image model id (default: {DEFAULT_MODEL})")
    parser.add_argument("--precision", action="append", help=f"precision (default: {DEFAULT_PRECISION})")
    parser.add_argument("--no-map", action="store_true", help="ship the vectors only")
    args = parser.parse_args()
    for precision in args.precision or [DEFAULT_PRECISION]:
        make(args.model, precision, with_map=not args.no_map)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
