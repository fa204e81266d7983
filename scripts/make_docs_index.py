"""Make the shipped index of the bundled documents (``embeddings/data/precomputed/docindex-*.npz``).

Usage: ``python scripts/make_docs_index.py``

The bundled documents (``--data docs``, 2,186 Python standard-library docstrings) are split with
the default passage settings and embedded with the default offline text model (``local``) by the
ordinary document index build, in a temporary data folder (the shipped file is never used to make
itself), and the t-SNE map is computed as the Semantic search page computes it. The passage
vectors (float32), their spans, the exact index key they were made for, the sha256 of the
index's ``embeddings.npy`` and the map are written atomically (``np.savez_compressed``). Another
model, package version, corpus or split has another key or other spans, so the file is then
ignored and the index built as before (:func:`embeddings.index.shipped.shipped_passages_for`).
``tests/test_shipped_documents.py`` checks it against today's key and a fresh computation.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from embeddings.core.projection import DEFAULT_SEED  # noqa: E402
from embeddings.documents.passages import PassageSettings  # noqa: E402
from embeddings.documents.sources import open_documents  # noqa: E402
from embeddings.index.documents import PassageView, TextModelKey, build_document_index  # noqa: E402
from embeddings.index.shipped import save_shipped_documents, shipped_document_path  # noqa: E402
from embeddings.index.store import index_key  # noqa: E402
from embeddings.registry import OFFLINE_TEXT_MODEL, get_text_embedder  # noqa: E402

SOURCE = "docs"


def docs_map_params(count: int) -> tuple[str, float, int]:
    """The map the Semantic search page asks for (``ui.documents.doc_map_or_job``'s defaults)."""
    return ("tsne", min(30.0, max(2.0, (count - 1) / 3)), DEFAULT_SEED)


def make(model_id: str = OFFLINE_TEXT_MODEL, with_map: bool = True) -> Path:
    collection, settings = open_documents(SOURCE), PassageSettings()
    with tempfile.TemporaryDirectory(prefix="docs-index-") as data_dir:
        embedder = get_text_embedder(model_id)
        view, model_key = PassageView(collection, settings), TextModelKey(embedder)
        started = time.perf_counter()
        index = build_document_index(collection, settings, embedder, data_dir)  # never the shipped file
        built = time.perf_counter() - started
        key = index_key(view, model_key)
        assert index.manifest["key"] == key
        path = shipped_document_path(collection.describe()["name"], settings.label, model_id)
        params = docs_map_params(index.count) if with_map else None
        save_shipped_documents(path, index, key, params)
        os.chmod(path, 0o644)  # a package file, not a private temp file
    print(
        f"{model_id} {settings.label}: {index.count} documents, {len(index.spans)} passages, embedded in "
        f"{built:.1f} s, {time.perf_counter() - started:.1f} s in all -> {path} "
        f"({path.stat().st_size / 2**20:.2f} MB)"
    )
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-map", action="store_true", help="ship the vectors only")
    args = parser.parse_args()
    make(with_map=not args.no_map)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
