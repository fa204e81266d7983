import numpy as np
import pytest
import torch

from embeddings.errors import InvalidInputError, UnknownModelError
from embeddings.image import base as images
from embeddings.image.base import ImageEmbedder, Preprocess
from embeddings.registry import get_image_embedder


class TinyConvEmbedder(ImageEmbedder):
    model_id, dim, batch_size, weights_id = "tiny-conv", 8, 4, "seed0"
    preprocess = Preprocess(resize=16, crop=12, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))

    def __init__(self):
        torch.manual_seed(0)
        self.model = torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()
        ).eval()

    def embed_batch(self, batch):
        return self.model(batch)


def _images(n=10, size=10, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)


def test_preprocess_resize_crop_normalise():
    pre = Preprocess(resize=16, crop=12, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    white = np.full((1, 8, 8, 3), 255, dtype=np.uint8)
    out = pre(white)
    assert tuple(out.shape) == (1, 3, 12, 12)
    torch.testing.assert_close(out, torch.ones_like(out))  # (1 - 0.5) / 0.5
    mixed = pre([np.zeros((8, 16, 3), np.uint8), np.zeros((20, 10, 3), np.uint8)])  # different sizes
    assert tuple(mixed.shape) == (2, 3, 12, 12)
    with pytest.raises(InvalidInputError, match="uint8 RGB"):
        pre([np.zeros((8, 8), np.uint8)])
    with pytest.raises(InvalidInputError):
        pre([])


def test_embed_batches_normalises_and_reports_progress():
    emb = TinyConvEmbedder()
    seen = []
    vecs = emb.embed(_images(10), progress=lambda d, t: seen.append((d, t)))
    assert vecs.shape == (10, 8) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1, atol=1e-5)
    assert seen == [(4, 10), (8, 10), (10, 10)]
    np.testing.assert_array_equal(vecs, emb.embed(_images(10)))  # deterministic
    assert emb.embed(np.zeros((0, 4, 4, 3), np.uint8)).shape == (0, 8)


@pytest.mark.parametrize("mode,min_cosine", [("fast", 0.99999), ("onnx", 0.99999), ("bf16", 0.99)])
def test_fast_modes_close_to_fp32_and_fingerprinted_apart(mode, min_cosine):
    fp32 = TinyConvEmbedder().set_precision("fp32")
    other = TinyConvEmbedder().set_precision(mode)
    a, b = fp32.embed(_images(6)), other.embed(_images(10)[:6])
    assert (np.sum(a * b, axis=1) > min_cosine).all()
    assert fp32.fingerprint() != other.fingerprint()
    assert other.embed(_images(3)).shape == (3, 8)  # a batch size other than the traced one
    with pytest.raises(InvalidInputError, match="precision"):
        fp32.set_precision("int4")


def test_default_precision_env(monkeypatch):
    monkeypatch.delenv(images.PRECISION_ENV, raising=False)
    assert images.default_precision() == "onnx"
    monkeypatch.setenv(images.PRECISION_ENV, "fp32")
    assert images.default_precision() == "fp32"
    monkeypatch.setenv(images.PRECISION_ENV, "fp16")
    with pytest.raises(InvalidInputError, match="EMBEDDINGS_PRECISION"):
        images.default_precision()


def test_unknown_image_model_lists_valid_ids():
    with pytest.raises(UnknownModelError) as err:
        get_image_embedder("resnet1800")
    assert "pixels" in str(err.value) and "valid ids" in str(err.value)
