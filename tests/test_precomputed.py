"""Shipped vectors for known texts: used when the model's fingerprint matches, ignored otherwise."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from text_fixtures import HashEmbedder

from embeddings.core.mathops import normalize
from embeddings.registry import get_text_embedder
from embeddings.text import precomputed

REPO = Path(__file__).resolve().parent.parent


class Counting(HashEmbedder):
    model_id = "fake-table"

    def __init__(self, tag: str = ""):
        super().__init__(dim=8, tag=tag)
        self.seen: list[str] = []

    def embed_batch(self, texts):
        self.seen += list(texts)
        return super().embed_batch(texts)


def write_table(folder: Path, embedder, texts, vectors=None, fingerprint=None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    vectors = embedder.embed(texts) if vectors is None else vectors
    np.savez(
        folder / "fake-table.npz",
        texts=np.array(texts),
        vectors=np.asarray(vectors, dtype=np.float32),
        fingerprint=np.array(fingerprint or embedder.fingerprint()),
    )


@pytest.fixture
def table_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(precomputed, "PRECOMPUTED_DIR", tmp_path / "precomputed")
    return tmp_path / "precomputed"


def test_known_texts_take_the_table_and_only_the_rest_is_embedded(table_dir):
    maker = Counting()
    write_table(table_dir, maker, ["cat", "dog", "car"])
    embedder = Counting()
    vectors = embedder.embed(["dog", "kitten", "car", "tiger"])
    assert embedder.seen == ["kitten", "tiger"]  # the model saw only what the table lacks, in order
    fresh = Counting()
    fresh.use_precomputed = False
    np.testing.assert_allclose(vectors, fresh.embed(["dog", "kitten", "car", "tiger"]), atol=1e-6)
    embedder.seen.clear()
    embedder.embed(["cat", "dog"])
    assert embedder.seen == []  # all known: no model call at all


def test_a_table_made_by_another_version_of_the_model_is_ignored(table_dir):
    write_table(table_dir, Counting(), ["cat"], vectors=np.ones((1, 8)), fingerprint="fake-hash:old")
    embedder = Counting()
    vector = embedder.embed(["cat"])
    assert embedder.seen == ["cat"]  # a miss, never the old vectors
    assert not np.allclose(vector, normalize(np.ones((1, 8))))


@pytest.mark.parametrize("damage", ["nan", "shape", "garbage"])
def test_a_damaged_table_is_ignored(table_dir, damage):
    maker = Counting()
    if damage == "garbage":
        table_dir.mkdir(parents=True)
        (table_dir / "fake-table.npz").write_bytes(b"not a zip")
    else:
        vectors = np.full((2, 8), np.nan) if damage == "nan" else np.ones((3, 8))
        write_table(table_dir, maker, ["cat", "dog"], vectors=vectors)
    embedder = Counting()
    embedder.embed(["cat", "dog"])
    assert embedder.seen == ["cat", "dog"]


def _make_precomputed():
    spec = importlib.util.spec_from_file_location(
        "make_precomputed", REPO / "scripts" / "make_precomputed.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_shipped_minilm_table_matches_a_fresh_computation():
    """The table is what scripts/make_precomputed.py makes: this model's fingerprint, the
    vocabulary and default lists, and vectors a fresh MiniLM pass reproduces."""
    minilm = get_text_embedder("minilm")
    table = precomputed.precomputed_for(minilm)
    assert table is not None, "no table for this MiniLM: run python scripts/make_precomputed.py"
    texts = _make_precomputed().table_texts()
    assert table.rows == {t: i for i, t in enumerate(texts)} and table.vectors.shape == (len(texts), 384)
    rng = np.random.default_rng(0)
    sample = [texts[i] for i in sorted(rng.choice(len(texts), 48, replace=False))] + ["king", "queen"]
    fresh = get_text_embedder("minilm")
    fresh.use_precomputed = False
    cosines = np.sum(fresh.embed(sample) * table.vectors[[table.rows[t] for t in sample]], axis=1)
    assert cosines.min() > 0.9999, cosines.min()
