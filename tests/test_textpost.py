"""Post-processed text models: vocabulary-mean centring and top principal directions removed."""

from __future__ import annotations

import numpy as np
import pytest

from embeddings.models import local as textpost
from embeddings.registry import get_text_embedder, text_model_ids
from embeddings.text import vocab
from embeddings.text.vocab import load_vocab, vocab_vectors

REAL_VOCAB = vocab.VOCAB_FILE


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
    post = textpost.PostProcessedTextEmbedder(get_text_embedder("hashing"), directions=2, data_dir=data_dir)
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
    again = textpost.PostProcessedTextEmbedder(get_text_embedder("hashing"), directions=2, data_dir=data_dir)
    np.testing.assert_allclose(again.embed(words), vectors, atol=1e-6)


def test_centred_only():
    post = textpost.PostProcessedTextEmbedder(get_text_embedder("hashing"), directions=0)
    assert post.model_id == "hashing-centred"
    assert post.embed(["cat", "dog"]).shape == (2, 512)


def test_default_local_is_the_centred_combination(data_dir):
    from embeddings.core.mathops import normalize

    assert {"local", "local-raw"} <= set(text_model_ids())
    local, raw = get_text_embedder("local"), get_text_embedder("local-raw")
    assert local.model_id == "local" and raw.model_id == "local-raw" and local.dim == raw.dim == 640
    assert local.fingerprint() != raw.fingerprint()  # caches never mix the two
    words = ["cat", "kitten", "car"]
    minilm = get_text_embedder("minilm")
    mean, _ = textpost.vocabulary_statistics(minilm, 0, data_dir)
    want = normalize(
        np.hstack([normalize(minilm.embed(words) - mean), raw.embed(words)[:, 384:] * np.sqrt(2)])
    )
    np.testing.assert_allclose(local.embed(words), want, atol=1e-5)


def test_bundled_minilm_statistics_are_used_for_the_real_vocabulary(data_dir, monkeypatch):
    """The shipped file is found by the same key as the cache: no 20,000-word pass on first use."""
    monkeypatch.setattr(vocab, "VOCAB_FILE", REAL_VOCAB)

    def no_pass(*args, **kwargs):
        raise AssertionError("the vocabulary was embedded although its statistics ship with the package")

    monkeypatch.setattr(vocab, "vocab_vectors", no_pass)
    mean, components = textpost.vocabulary_statistics(get_text_embedder("minilm"), 0, data_dir)
    assert mean.shape == (384,) and components.shape == (0, 384)
    assert not (data_dir / "textpost").exists()  # nothing computed or written
