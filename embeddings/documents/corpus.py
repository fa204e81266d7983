"""The bundled default collection: Python standard-library docstrings grouped by library area.

``embeddings/data/stdlib_docs.jsonl.gz`` (made by ``scripts/make_docs_corpus.py``, PSF License
in ``stdlib_docs.LICENSE``) holds one JSON object per line: ``id``, ``title``, ``text``, ``group``.
"""

from __future__ import annotations

import functools
import gzip
import json

from ..config import PACKAGE_DATA
from ..errors import DatasetUnavailableError
from .collection import DocumentCollection

BUNDLED = "docs"  # the source name of the bundled collection (CLI ``--data docs``, the page's default)
CORPUS_FILE = PACKAGE_DATA / "stdlib_docs.jsonl.gz"
CORPUS_NAME = "stdlib-docs"


@functools.lru_cache(maxsize=1)
def bundled_collection() -> DocumentCollection:
    """The Python standard library's docstrings (2,186 documents in 17 groups)."""
    try:
        with gzip.open(CORPUS_FILE, "rt", encoding="utf-8") as fh:
            rows = [json.loads(line) for line in fh if line.strip()]
    except (OSError, ValueError, EOFError) as exc:
        raise DatasetUnavailableError(
            f"the bundled documents could not be read ({CORPUS_FILE}: {exc})"
        ) from exc
    return DocumentCollection(
        CORPUS_NAME,
        BUNDLED,
        [r["id"] for r in rows],
        [r["title"] for r in rows],
        [r["text"] for r in rows],
        [r["group"] for r in rows],
    )
