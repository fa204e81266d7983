"""Tiny dependency-free baseline embedders: character n-gram hashing for text, raw pixels for images.

They need no weights and no network, so they load instantly. They are the yardstick the
learned models are measured against, and the fast, deterministic models the tests use.
"""

from __future__ import annotations

import hashlib

import numpy as np

from ..image.base import ImageEmbedder, Preprocess
from ..text.base import TextEmbedder


class HashingTextEmbedder(TextEmbedder):
    """Bag of hashed character 3-grams (with word boundaries): spelling similarity, no meaning."""

    model_id = "hashing"

    def __init__(self, dim: int = 512, n: int = 3):
        self.dim = dim
        self.n = n

    def fingerprint(self) -> str:
        return f"{self.model_id}:dim={self.dim}:n={self.n}"

    def _vector(self, text: str) -> np.ndarray:
        vec = np.zeros(self.dim, dtype=np.float32)
        padded = f"<{text.lower()}>"
        for i in range(max(1, len(padded) - self.n + 1)):
            gram = padded[i : i + self.n].encode("utf-8")
            digest = hashlib.blake2b(gram, digest_size=8).digest()
            bucket = int.from_bytes(digest[:4], "little") % self.dim
            sign = 1.0 if digest[4] & 1 else -1.0
            vec[bucket] += sign
        if not vec.any():
            vec[0] = 1.0
        return vec

    def embed_batch(self, texts: list[str]) -> np.ndarray:
        return np.stack([self._vector(t) for t in texts])


class PixelImageEmbedder(ImageEmbedder):
    """The image itself, shrunk to 16x16 and centred: a baseline with no learned features."""

    model_id = "pixels"
    dim = 16 * 16 * 3
    batch_size = 256
    weights_id = "none"
    preprocess = Preprocess(resize=16, crop=16, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))

    def embed_batch(self, batch) -> np.ndarray:
        flat = batch.reshape(len(batch), -1).numpy()
        return flat - flat.mean(axis=1, keepdims=True)
