"""Fine-tuning's training data: the images loaded once (uint8), CIFAR-style augmentation, and the
batches of a run, drawn from (seed, epoch, step) so that a resumed run sees the same ones."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.torchutil import require_torch

LOAD_CHUNK = 2048


def load_training_images(collection, ids: np.ndarray, size: int, progress=None) -> np.ndarray:
    """uint8 (n, h, w, 3) images: at their own size when they all share one, else resized to ``size``."""
    from PIL import Image

    first = np.asarray(collection.get_images([int(ids[0])])[0])
    out = None
    for start in range(0, len(ids), LOAD_CHUNK):
        chunk = [np.asarray(img) for img in collection.get_images(ids[start : start + LOAD_CHUNK].tolist())]
        if out is None:
            same = all(a.shape == first.shape for a in chunk)
            shape = first.shape if same else (size, size, 3)
            out = np.empty((len(ids), *shape), dtype=np.uint8)
        for j, img in enumerate(chunk):
            if img.shape != out.shape[1:]:
                img = np.asarray(Image.fromarray(img).resize(out.shape[1:3][::-1], Image.BILINEAR))
            out[start + j] = img
        if progress:
            progress(min(start + LOAD_CHUNK, len(ids)), len(ids))
    return out


def augment(images: np.ndarray, rng: np.random.Generator, resolution: int, mean, std):
    """Pad-crop (zero pad 1/8 of the side) and horizontal flip, resize, normalise: float NCHW tensor."""
    torch = require_torch()
    import torch.nn.functional as F

    n, h, w, _ = images.shape
    pad = max(1, h // 8)
    padded = np.zeros((n, h + 2 * pad, w + 2 * pad, 3), dtype=np.uint8)
    padded[:, pad : pad + h, pad : pad + w] = images
    dy = rng.integers(0, 2 * pad + 1, size=n)
    dx = rng.integers(0, 2 * pad + 1, size=n)
    flip = rng.random(n) < 0.5
    out = np.empty_like(images)
    for i in range(n):
        crop = padded[i, dy[i] : dy[i] + h, dx[i] : dx[i] + w]
        out[i] = crop[:, ::-1] if flip[i] else crop
    return _to_input(out, resolution, mean, std, torch, F)


def _to_input(images: np.ndarray, resolution: int, mean, std, torch=None, F=None):
    torch = torch or require_torch()
    if F is None:
        import torch.nn.functional as F
    batch = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255.0)
    if batch.shape[-2:] != (resolution, resolution):
        batch = F.interpolate(
            batch, size=(resolution, resolution), mode="bilinear", align_corners=False, antialias=True
        )
    batch = (batch - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    return batch.contiguous(memory_format=torch.channels_last)


@dataclass(frozen=True)
class TrainingSet:
    """The training images and labels of a run, and its schedule's length in steps."""

    images: np.ndarray
    labels: np.ndarray
    seed: int
    batch_size: int
    epochs: int
    resolution: int
    mean: tuple
    std: tuple

    @property
    def steps_per_epoch(self) -> int:
        return len(self.labels) // self.batch_size

    @property
    def total(self) -> int:
        return self.steps_per_epoch * self.epochs

    def batch(self, epoch: int, i: int):
        """Batch ``i`` of ``epoch`` as (augmented float NCHW tensor, label tensor)."""
        torch = require_torch()
        perm = np.random.default_rng([self.seed, epoch]).permutation(len(self.labels))
        batch_ids = perm[i * self.batch_size : (i + 1) * self.batch_size]
        rng = np.random.default_rng([self.seed, epoch, i, 1])
        x = augment(self.images[batch_ids], rng, self.resolution, self.mean, self.std)
        return x, torch.from_numpy(self.labels[batch_ids])
