"""The clip / clip-text models: availability offline, and the code path on an untrained ViT-B-32."""

from __future__ import annotations

import socket
import time
import urllib.error

import numpy as np
import pytest

from embeddings import registry
from embeddings.core import downloads
from embeddings.errors import ModelUnavailableError
from embeddings.models import clip as clip_backend
from embeddings.models import resnet as image_backends
from embeddings.registry import image_model_ids, text_model_ids


@pytest.fixture
def offline(monkeypatch):
    """No network: every download fails the way a missing DNS does; no Hugging Face cache."""

    def fail(url, dest, expected=None, timeout=None):
        raise urllib.error.URLError(socket.gaierror(-3, "Temporary failure in name resolution"))

    monkeypatch.setattr(downloads, "download_file", fail)
    monkeypatch.setattr(clip_backend, "_hf_cached", lambda name: None)
    downloads.clear_download_failures()
    yield
    downloads.clear_download_failures()


def test_registered():
    assert "clip" in image_model_ids()
    assert "clip-text" in text_model_ids()


def test_offline_without_weights_is_unavailable_with_reason(offline, data_dir):
    started = time.monotonic()
    ok, reason = clip_backend.clip_status(download=True, data_dir=data_dir)
    assert not ok and "offline" in reason and "not cached" in reason
    assert time.monotonic() - started < 5
    with pytest.raises(ModelUnavailableError, match="could not be downloaded"):
        clip_backend.ClipImageEmbedder(data_dir=data_dir)
    with pytest.raises(ModelUnavailableError, match="downloading is disabled"):
        clip_backend.ensure_clip_weights(download=False, data_dir=data_dir)


def test_resolve_falls_back_with_the_reason(offline, data_dir, monkeypatch):
    monkeypatch.setattr(image_backends, "resnet18_weights_path", lambda: data_dir / "no-resnet.pth")
    model_id, reason = registry.resolve_image_model("clip", data_dir=data_dir)
    assert model_id == "efficientnet_lite0"
    assert reason.startswith("CLIP is unavailable") and "offline" in reason


def test_cached_weights_are_found_and_bad_ones_reported(offline, data_dir):
    folder = clip_backend.clip_weights_dir(data_dir)
    folder.mkdir(parents=True)
    (folder / "open_clip_model.safetensors").write_bytes(b"not weights")
    ok, reason = clip_backend.clip_status(data_dir=data_dir)
    assert ok and "open_clip_model.safetensors" in reason
    with pytest.raises(ModelUnavailableError, match="cannot load the CLIP weights"):
        clip_backend.ClipImageEmbedder(data_dir=data_dir)


def test_untrained_model_embeds_images_and_text_in_one_space(colour_collection):
    images = clip_backend.ClipImageEmbedder(pretrained=None).set_precision("fp32")
    texts = clip_backend.ClipTextEmbedder(pretrained=None)
    assert images.weights_id == texts.weights_id == "random-init(seed=0)"
    assert images.fingerprint()["preprocess"]["interpolation"] == "bicubic"
    vectors = images.embed(colour_collection.images[:4])
    words = texts.embed(["a red square", "a photo of a cat"])
    assert vectors.shape == (4, 512) and words.shape == (2, 512)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(words, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(images.embed(colour_collection.images[:4]), vectors, atol=1e-6)
    assert np.isfinite(vectors @ words.T).all()  # same space: text queries can search images
    assert texts.fingerprint() == "clip-text:random-init(seed=0)"
