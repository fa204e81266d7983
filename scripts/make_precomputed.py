"""Make the shipped vector tables (``embeddings/data/precomputed/<model>.npz``).

Usage: ``python scripts/make_precomputed.py [--model minilm]``

For each model: the 20,000-word vocabulary and the app's default word lists are embedded
with the model itself (its shipped table switched off), and written atomically with the
model's fingerprint, so a later version of the model ignores the table instead of using
wrong vectors. ``tests/test_precomputed.py`` checks the table against a fresh computation.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from embeddings.core.files import atomic_path  # noqa: E402
from embeddings.registry import get_text_embedder  # noqa: E402
from embeddings.text.base import (
    clean_text,  # noqa: E402
    parse_word_list,  # noqa: E402
)
from embeddings.text.precomputed import table_path  # noqa: E402
from embeddings.text.vocab import load_vocab  # noqa: E402
from embeddings.text.wordlists import DEFAULT_GROUPS, DEFAULT_WORDS, parse_groups  # noqa: E402

ANALOGY_DEFAULTS = ("king", "man", "woman")


def table_texts() -> list[str]:
    """The vocabulary, then the default word lists, cleaned, without repeats (order kept)."""
    texts = list(load_vocab()) + parse_word_list(DEFAULT_WORDS) + parse_groups(DEFAULT_GROUPS).words
    return list(dict.fromkeys(clean_text(t) for t in [*texts, *ANALOGY_DEFAULTS]))


def make(model_id: str) -> Path:
    embedder = get_text_embedder(model_id)
    embedder.use_precomputed = False
    texts = table_texts()
    started = time.perf_counter()
    vectors = np.ascontiguousarray(embedder.embed(texts), dtype=np.float32)
    path = Path(table_path(model_id))
    with atomic_path(path, suffix=".npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, texts=np.array(texts), vectors=vectors, fingerprint=np.array(embedder.fingerprint()))
    print(
        f"{model_id}: {len(texts)} texts, {vectors.shape[1]}-d, {time.perf_counter() - started:.1f} s -> {path}"
    )
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", help="text model id (default: minilm)")
    for model_id in parser.parse_args().model or ["minilm"]:
        make(model_id)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
