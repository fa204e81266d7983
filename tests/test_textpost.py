"""Post-processed text models: vocabulary-mean centring and top principal directions removed."""

from __future__ import annotations

import numpy as np
import pytest

from embeddings import textpost, vocab
from embeddings.text import get_text_embedder, text_model_ids
from embeddings.vocab import load_vocab, vocab_vectors


@pytest.fixture(autouse=True)
def small_vocabulary(tmp_path, monkeypatch):
    """The first 300 words of the real vocabulary, so the statistics take milliseconds."""
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(load_vocab()[:300]) + "\n", encoding="utf-8")
    monkeypatch.setattr(vocab, "VOCAB_FILE", path)
    textpost._STATS.clear()
    yield
    textpost._STATS.clear()


def test_centring_and_directions_on_the_vocabulary(data_dir):
    base = get_text_embedder("hashing")
    post = textpost.PostProcessedTextEmbedder("hashing", directions=2, data_dir=data_dir)
    assert post.model_id == "hashing-abtt2" and post.dim == base.dim
    assert post.fingerprint() != base.fingerprint()
    mean, components = textpost.vocabulary_statistics(base, 2, data_dir)
    np.testing.assert_allclose(mean, np.asarray(vocab_vectors(base, data_dir)).mean(axis=0), atol=1e-5)
    np.testing.assert_allclose(components @ components.T, np.eye(2), atol=1e-5)
    words = load_vocab()[:50]
    raw = post.embed_batch(words)  # before the final normalisation
    np.testing.assert_allclose(raw @ components.T, 0.0, atol=1e-5)  # directions removed
    vectors = post.embed(words)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    files = list((data_dir / "textpost").glob("hashing-*.npz"))
    assert len(files) == 1
    with np.load(files[0], allow_pickle=False) as arrays:
        assert set(arrays.files) == {"mean", "components"}
    # a second embedder reuses the saved statistics
    textpost._STATS.clear()
    again = textpost.PostProcessedTextEmbedder("hashing", directions=2, data_dir=data_dir)
    np.testing.assert_allclose(again.embed(words), vectors, atol=1e-6)


def test_centred_only():
    post = textpost.PostProcessedTextEmbedder("hashing", directions=0)
    assert post.model_id == "hashing-centred"
    assert post.embed(["cat", "dog"]).shape == (2, 512)


def test_registered_without_touching_local():
    assert "local-centred" in text_model_ids() and "local" in text_model_ids()
    assert textpost.LocalCentredEmbedder.model_id == "local-centred"
