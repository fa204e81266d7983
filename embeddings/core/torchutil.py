"""PyTorch helpers shared by every torch model: the import with its install hint, the device,
inference-ready modules and deterministic random weights (for tests)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ..errors import MissingDependencyError


def require_torch():
    """Import torch, or raise :class:`MissingDependencyError` with the install command."""
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - torch is in requirements.txt
        raise MissingDependencyError(
            "image embedders need PyTorch: pip install torch==2.14.1 torchvision==0.29.1"
        ) from exc
    return torch


@lru_cache(maxsize=1)
def device() -> str:
    """``"cuda"`` when a GPU is usable, else ``"cpu"``."""
    torch = require_torch()
    return "cuda" if torch.cuda.is_available() else "cpu"


def prepare_for_inference(model):
    """Eval mode, no gradients, on the chosen device."""
    model.eval()
    model.requires_grad_(False)
    return model.to(device())


def random_init(build, seed: int = 0):
    """Build a model with deterministic random weights (for tests)."""
    torch = require_torch()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def to_numpy(features) -> np.ndarray:
    """float32 numpy from a numpy array or a (possibly bfloat16, possibly CUDA) tensor."""
    if hasattr(features, "detach"):
        features = features.detach().float().cpu().numpy()
    return np.asarray(features, dtype=np.float32)
