"""CLIP (open_clip ViT-B-32): image embeddings for the index and text embeddings in the same space.

Registered ids: image model ``clip`` and text model ``clip-text``. Both use one shared
network, open_clip's ``ViT-B-32`` with the public ``laion2b_s34b_b79k`` weights. The weights
file is downloaded once (when online) from the Hugging Face hub into
``<data_dir>/models/clip/`` with the same fast-failing downloader as ResNet18 (a dead network
fails within seconds); a copy already in the Hugging Face cache is used as it is. Offline with
no cached copy, :func:`clip_status` and :func:`embeddings.registry.resolve_image_model`
report CLIP unavailable with the reason, and building an embedder raises
:class:`~embeddings.errors.ModelUnavailableError`.

Images: bicubic resize to 224 x 224 and CLIP's mean/std (``open_clip``'s own transform
resizes the shorter side and centre-crops; for square images such as CIFAR-10 that is the
same). Text: open_clip's tokenizer (its BPE vocabulary ships in the package). Both outputs
are the L2-normalised 512-d joint-space projections, so a text query can search an image
index built with ``clip``.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..config import data_dir as resolve_data_dir
from ..core.downloads import DownloadError, download_once, hf_cache_may_hold
from ..core.fingerprint import file_sha256
from ..core.torchutil import device, require_torch
from ..errors import MissingDependencyError, ModelUnavailableError
from ..image.base import ImageEmbedder, Preprocess
from ..text.base import TextEmbedder

CLIP_ARCH = "ViT-B-32"
CLIP_TAG = "laion2b_s34b_b79k"
CLIP_HF_REPO = "laion/CLIP-ViT-B-32-laion2B-s34B-b79K"
CLIP_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")  # tried in this order
CLIP_DIM = 512
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
CLIP_PREPROCESS = Preprocess(resize=224, crop=224, mean=CLIP_MEAN, std=CLIP_STD, interpolation="bicubic")
OPEN_CLIP_PIP = "pip install open_clip_torch==3.3.0"


def _require_open_clip():
    try:
        import open_clip
    except ImportError as exc:
        raise MissingDependencyError(f"the clip models need open_clip: {OPEN_CLIP_PIP}") from exc
    return open_clip


def clip_weights_dir(data_dir=None) -> Path:
    return resolve_data_dir(data_dir) / "models" / "clip" / f"{CLIP_ARCH}-{CLIP_TAG}"


def _hf_cached(filename: str) -> Path | None:
    """The file from the Hugging Face cache, when ``huggingface_hub`` is installed and has it."""
    if not hf_cache_may_hold(CLIP_HF_REPO) or importlib.util.find_spec("huggingface_hub") is None:
        return None
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(CLIP_HF_REPO, filename)
    except Exception:  # any cache layout problem just means "not cached"
        return None
    return Path(found) if isinstance(found, str) and Path(found).is_file() else None


def cached_clip_weights(data_dir=None) -> Path | None:
    """The CLIP weights file if it is on this machine (our data dir or the HF cache), else None."""
    for name in CLIP_FILES:
        path = clip_weights_dir(data_dir) / name
        if path.is_file():
            return path
    for name in CLIP_FILES:
        path = _hf_cached(name)
        if path is not None:
            return path
    return None


def ensure_clip_weights(download: bool = True, data_dir=None) -> Path:
    """Return the CLIP weights file, downloading it once when allowed (seconds to fail offline)."""
    found = cached_clip_weights(data_dir)
    if found is not None:
        return found
    folder = clip_weights_dir(data_dir)
    where = f"CLIP {CLIP_ARCH} ({CLIP_TAG}) weights are not cached in {folder} or the Hugging Face cache"
    if not download:
        raise ModelUnavailableError(f"{where} and downloading is disabled")
    failures = []
    for name in CLIP_FILES:
        url = f"https://huggingface.co/{CLIP_HF_REPO}/resolve/main/{name}"
        path = folder / name
        try:
            return download_once(url, path)
        except DownloadError as exc:
            failure = str(exc)
        failures.append(f"{name}: {failure}")
        if failure.startswith("offline"):
            break  # no point trying the second file
    raise ModelUnavailableError(f"{where} and could not be downloaded ({'; '.join(failures)})")


def clip_status(download: bool = False, data_dir=None) -> tuple[bool, str]:
    """(usable, reason) for the clip models; ``download=True`` tries a (fast-failing) download."""
    if importlib.util.find_spec("open_clip") is None:
        return False, f"the clip models need open_clip: {OPEN_CLIP_PIP}"
    try:
        path = ensure_clip_weights(download=download, data_dir=data_dir)
    except ModelUnavailableError as exc:
        return False, str(exc)
    return True, f"CLIP {CLIP_ARCH} {CLIP_TAG} weights at {path}"


@lru_cache(maxsize=2)
def _load_clip(path: str | None, size: int = 0, mtime_ns: int = 0):
    """open_clip's ViT-B-32 with the weights at ``path`` (``None``: deterministic random init)."""
    torch = require_torch()
    open_clip = _require_open_clip()
    import logging

    quiet = logging.getLogger()
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # open_clip logs a warning for a model without weights
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = open_clip.create_model(CLIP_ARCH, pretrained=None)
    finally:
        quiet.setLevel(level)
    if path is not None:
        try:
            open_clip.load_checkpoint(model, path)
        except Exception as exc:
            raise ModelUnavailableError(
                f"cannot load the CLIP weights {path} ({exc}); delete the file"
            ) from exc
    model.eval()
    model.requires_grad_(False)
    return model.to(device())


def _model_and_weights_id(pretrained: str | None, download: bool, data_dir=None):
    if pretrained is None:
        return _load_clip(None), "random-init(seed=0)"
    if pretrained != CLIP_TAG:
        raise ModelUnavailableError(f"unknown CLIP weights {pretrained!r}; only {CLIP_TAG} is supported")
    path = ensure_clip_weights(download=download, data_dir=data_dir)
    st = path.stat()
    model = _load_clip(str(path), st.st_size, st.st_mtime_ns)
    return model, f"open_clip {CLIP_ARCH} {CLIP_TAG} {path.name} sha256:{file_sha256(path)}"


class ClipImageEmbedder(ImageEmbedder):
    """CLIP ViT-B-32 image tower: 512-d joint-space embeddings (``pretrained=None``: random, tests)."""

    model_id = "clip"
    dim = CLIP_DIM
    batch_size = 64

    def __init__(self, pretrained: str | None = CLIP_TAG, download: bool = True, data_dir=None):
        clip, self.weights_id = _model_and_weights_id(pretrained, download, data_dir)
        self.model = clip.visual
        self.device = device()
        self.preprocess = CLIP_PREPROCESS

    def embed_batch(self, batch):
        return self.model(batch.to(self.device))


class ClipTextEmbedder(TextEmbedder):
    """CLIP ViT-B-32 text tower: 512-d embeddings in the same space as the ``clip`` image model."""

    model_id = "clip-text"
    dim = CLIP_DIM
    batch_size = 128

    def __init__(self, pretrained: str | None = CLIP_TAG, download: bool = True, data_dir=None):
        self.model, self.weights_id = _model_and_weights_id(pretrained, download, data_dir)
        self.device = device()
        self.tokenizer = _require_open_clip().get_tokenizer(CLIP_ARCH)

    def fingerprint(self) -> str:
        return f"{self.model_id}:{self.weights_id}"

    def embed_batch(self, texts: list[str]) -> np.ndarray:
        torch = require_torch()
        with torch.inference_mode():
            tokens = self.tokenizer(texts).to(self.device)
            return self.model.encode_text(tokens).float().cpu().numpy()
