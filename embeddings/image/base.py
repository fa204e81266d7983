"""The image embedder interface: one method per backend.

A backend subclasses :class:`ImageEmbedder` (or :class:`TorchImageEmbedder` for a torch module)
and implements :meth:`ImageEmbedder.embed_batch` on a float tensor batch that
:class:`Preprocess` produced; :meth:`ImageEmbedder.embed` adds preprocessing, batching,
``torch.inference_mode``, the precision setting and normalisation for all of them. Model ids
and factories live in :mod:`embeddings.registry`, not here.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from ..core.mathops import normalize
from ..core.torchutil import require_torch, to_numpy
from ..errors import InvalidInputError
from .io import check_image_array

log = logging.getLogger(__name__)
ImageArray = np.ndarray  # H x W x 3, uint8, RGB
BATCH_RESIZE_MAX_PIXELS = 256 * 256
# Resizing the shorter side never makes the longer one more than this many times ``resize``.
STRIP_SIDE_FACTOR = 4


@dataclass(frozen=True)
class Preprocess:
    """Resize (shorter side), centre-crop and normalise uint8 RGB images into a float batch.

    ``resize`` equal to ``crop`` means a plain resize to ``crop`` x ``crop``. The dataclass's
    fields are the preprocessing fingerprint stored in every index manifest.
    """

    resize: int
    crop: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bilinear"
    antialias: bool = True

    def describe(self) -> dict:
        """JSON-serialisable description (part of the index fingerprint)."""
        return asdict(self)

    def __call__(self, images: Sequence[ImageArray] | np.ndarray):
        """Return a float32 NCHW tensor for a list (or N x H x W x 3 array) of uint8 RGB images."""
        torch = require_torch()
        import torch.nn.functional as F

        arrays = [check_image_array(img) for img in images]
        if not arrays:
            raise InvalidInputError("no images to preprocess")
        # Small images of one size (CIFAR) are resized as one batch; anything else one by one, so a
        # batch of large photos is never held in float32 at full size all at once.
        same_size = all(a.shape == arrays[0].shape for a in arrays)
        small = arrays[0].shape[0] * arrays[0].shape[1] <= BATCH_RESIZE_MAX_PIXELS
        groups = [np.stack(arrays)] if same_size and small else [a[None] for a in arrays]
        out = []
        for group in groups:
            batch = torch.from_numpy(np.ascontiguousarray(group)).permute(0, 3, 1, 2).float().div_(255.0)
            h, w = batch.shape[-2:]
            if self.resize == self.crop:
                size = (self.crop, self.crop)
            else:
                scale = self.resize / min(h, w)
                size = (max(self.crop, round(h * scale)), max(self.crop, round(w * scale)))
                limit = STRIP_SIDE_FACTOR * self.resize
                if max(size) > limit:
                    # A long strip (a 10 x 100,000 panorama would resize to 256 x 2,560,000, gigabytes
                    # of floats): keep only the middle that the centre crop uses, with wide margins.
                    keep_h, keep_w = min(h, math.ceil(limit / scale)), min(w, math.ceil(limit / scale))
                    top, left = (h - keep_h) // 2, (w - keep_w) // 2
                    batch = batch[..., top : top + keep_h, left : left + keep_w]
                    h, w = keep_h, keep_w
                    size = (max(self.crop, round(h * scale)), max(self.crop, round(w * scale)))
            if (h, w) != size:
                batch = F.interpolate(
                    batch, size=size, mode=self.interpolation, align_corners=False, antialias=self.antialias
                )
            top = (batch.shape[-2] - self.crop) // 2
            left = (batch.shape[-1] - self.crop) // 2
            batch = batch[..., top : top + self.crop, left : left + self.crop]
            out.append(batch)
        # A fresh tensor of ours (never the caller's array): normalise it in place (the same
        # float ops as ``(batch - mean) / std``, without two more batch-sized temporaries).
        batch = torch.cat(out) if len(out) > 1 else out[0].contiguous()
        mean = torch.tensor(self.mean).view(1, 3, 1, 1)
        std = torch.tensor(self.std).view(1, 3, 1, 1)
        return batch.sub_(mean).div_(std)


PRECISIONS = ("fp32", "fast", "onnx", "bf16")
DEFAULT_PRECISION = "onnx"
PRECISION_ENV = "EMBEDDINGS_PRECISION"
# Precisions that run the same float32 math (vectors agree to about 1e-6, top-10 neighbours
# 1.000): what was fitted on one model's vectors in one of them applies in the others.
FLOAT32_PRECISIONS = ("fp32", "fast", "onnx")


def same_math_fingerprint(model_fingerprint: dict) -> dict:
    """``model_fingerprint`` with any float32 precision written as ``float32`` (for matching a
    projection head to a base model; the index itself keeps the exact precision)."""
    if model_fingerprint.get("precision") in FLOAT32_PRECISIONS:
        return {**model_fingerprint, "precision": "float32"}
    return model_fingerprint


def bf16_supported() -> bool:
    """True on CUDA, or on CPUs with native bfloat16 matrix instructions (AVX-512 BF16 or AMX)."""
    torch = require_torch()
    if torch.cuda.is_available():
        return True
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            flags = next((line for line in fh if line.startswith("flags")), "")
    except OSError:
        return False
    return bool({"avx512_bf16", "amx_bf16"} & set(flags.split()))


BF16_EMULATED = (
    "this CPU has no native bfloat16 instructions (AVX-512 BF16 or AMX), so bf16 is emulated and "
    "runs several times slower than fp32 (0.13x on an AVX2 AMD EPYC); use onnx, the default"
)


def default_precision() -> str:
    """``$EMBEDDINGS_PRECISION`` if set, else ``onnx`` (float32 math on ONNX Runtime)."""
    wanted = os.environ.get(PRECISION_ENV, "").strip().lower()
    if wanted:
        if wanted not in PRECISIONS:
            raise InvalidInputError(f"{PRECISION_ENV}={wanted!r}; choose one of {', '.join(PRECISIONS)}")
        return wanted
    return DEFAULT_PRECISION


class ImageEmbedder:
    """Turns uint8 RGB images into float32, L2-normalised vectors.

    ``precision`` picks how the network runs:

    * ``fp32``: plain eager float32 PyTorch, the exact reference;
    * ``fast``: the same float32 math in a frozen TorchScript graph (batch norm folded into
      the convolutions, oneDNN kernels) on channels-last tensors: several times faster on CPU
      with the same neighbours;
    * ``onnx`` (default): the same float32 math exported once to ONNX and run on ONNX Runtime
      (:mod:`embeddings.image.runtime`; the export is kept in ``<data_dir>/runtime``): faster
      again, with the same neighbours. A model that cannot be exported falls back to ``fast``
      when the precision is set: :attr:`precision` then reads ``fast`` (so the fingerprint says
      what really runs) and :attr:`runtime_fallback` says why;
    * ``bf16``: ``fast`` under bfloat16 autocast: faster again on CPUs with AMX/AVX-512 BF16,
      but it moves neighbours (measured: top-10 agreement about 0.87-0.89), so opt-in only.

    ``fast``, ``onnx`` and ``bf16`` need ``embed_batch(batch)`` to be ``self.model(batch)`` (set
    ``traceable = False`` otherwise, and they fall back to eager, or ``onnx`` to ``fast``, which
    falls back to eager). The precision is part of the fingerprint, so an index built one way is
    never loaded as another.
    """

    model_id: str = ""
    dim: int = 0
    batch_size: int = 64
    preprocess: Preprocess
    weights_id: str = ""  # names the exact weights (e.g. torchvision enum, sha256)
    description: str = ""

    def embed_batch(self, batch) -> np.ndarray:
        """Return (n, dim) features for a preprocessed NCHW float tensor; one per backend."""
        raise NotImplementedError

    precision: str = "fp32"
    device: str = "cpu"
    # Where the ``onnx`` export is kept: None means embeddings.config.data_dir() (the env var).
    runtime_data_dir: str | os.PathLike | None = None
    runtime_fallback: str = ""  # why ``onnx`` was asked for but ``fast`` runs ("" otherwise)
    precision_note: str = ""  # a warning about the chosen precision on this machine (emulated bf16)
    lazy_model: bool = False  # ``model`` is loaded on first access (its fingerprint needs no network)

    def fingerprint(self) -> dict:
        """Everything that changes this model's vectors: id, weights, preprocessing, precision."""
        return {
            "model_id": self.model_id,
            "weights": self.weights_id,
            "preprocess": self.preprocess.describe(),
            "precision": self.precision,
        }

    def set_precision(self, precision: str, lazy: bool = False) -> ImageEmbedder:
        """Switch inference to one of :data:`PRECISIONS`; returns self.

        ``onnx`` loads (exporting it first if needed) the ONNX Runtime session now, so that a
        model which cannot be exported is known at once: it then runs ``fast``, ``precision``
        says ``fast`` and :attr:`runtime_fallback` the reason (also logged as a warning).
        ``lazy=True`` (the app) makes only the checks that need no network (onnxruntime and onnx
        installed, a traceable model; on the CPU, unless the model loads lazily) and loads the
        session on the first embed, so a stored index is searched without loading the model; an
        export that fails then still falls back to ``fast`` (and the fingerprint says so from
        then on).
        """
        if precision not in PRECISIONS:
            raise InvalidInputError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
        self.runtime_fallback = ""
        self.precision = precision
        self.precision_note = ""
        if precision == "bf16" and not bf16_supported():
            self.precision_note = BF16_EMULATED
            log.warning("%s: %s", self.model_id, BF16_EMULATED)
        if precision == "onnx" and not (lazy and self._lazy_runtime_ok()):
            self._runtime_session()
        return self

    def _lazy_runtime_ok(self) -> bool:
        """Whether the ``onnx`` session may wait for the first embed (the cheap checks pass)."""
        import importlib.util

        if not getattr(self, "traceable", True):
            return False
        if not self.lazy_model:  # a loaded model: its module and device are known at no cost
            if getattr(self, "model", None) is None or str(getattr(self, "device", "cpu")) != "cpu":
                return False
        # A lazy model's device is found with torch on the first embed; not on the CPU, it then
        # falls back to ``fast`` as an unexportable model does.
        return all(importlib.util.find_spec(name) is not None for name in ("onnxruntime", "onnx"))

    def _runtime_session(self):
        """The ONNX Runtime session (loaded once per embedder), or None after a fallback to ``fast``."""
        session = getattr(self, "_onnx_session", None)
        if session is not None:
            return session
        from .runtime import RuntimeUnavailable, load_session

        try:
            session = load_session(self, self.runtime_data_dir)
        except RuntimeUnavailable as exc:
            self.runtime_fallback = str(exc)
            self.precision = "fast"
            log.warning("%s: onnx precision unavailable, running fast instead: %s", self.model_id, exc)
            return None
        self._onnx_session = session
        return session

    traceable: bool = True

    def _optimised_module(self, example):
        """The model frozen into an optimised TorchScript graph (built once per embedder)."""
        torch = require_torch()
        module = getattr(self, "_frozen", None)
        if module is None:
            import warnings

            model = self.model.to(memory_format=torch.channels_last)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # tracer notes about data-dependent shapes
                traced = torch.jit.trace(model, example, check_trace=False)
                module = torch.jit.optimize_for_inference(torch.jit.freeze(traced.eval()))
            self._frozen = module
        return module

    def _run(self, batch):
        """Run the network in the configured precision (see the class docstring)."""
        torch = require_torch()
        model = getattr(self, "model", None)
        if self.precision == "fp32" or model is None or not self.traceable:
            return self.embed_batch(batch)
        if self.precision == "onnx":
            session = self._runtime_session()
            if session is not None:
                return session(batch)
        batch = batch.to(self.device).contiguous(memory_format=torch.channels_last)
        if self.precision == "bf16":
            device_type = "cuda" if str(self.device).startswith("cuda") else "cpu"
            with torch.autocast(device_type, dtype=torch.bfloat16):
                return model.to(memory_format=torch.channels_last)(batch)
        return self._optimised_module(batch)(batch)

    def prepare_batch(self, images: Sequence[ImageArray] | np.ndarray):
        """Preprocess one batch of images (thread-safe: the index build calls it from worker
        threads while the previous batch runs through the network)."""
        torch = require_torch()
        with torch.inference_mode():
            return self.preprocess(images)

    def embed_prepared(self, batch) -> np.ndarray:
        """(n, dim) unit vectors for one batch from :meth:`prepare_batch`."""
        torch = require_torch()
        with torch.inference_mode():
            feats = to_numpy(self._run(batch)).reshape(len(batch), -1)
        if feats.shape[1] != self.dim:
            raise RuntimeError(f"{self.model_id} produced {feats.shape[1]}-d vectors, expected {self.dim}")
        return normalize(feats)

    def embed(
        self, images: Sequence[ImageArray] | np.ndarray, progress: Callable[[int, int], None] | None = None
    ) -> np.ndarray:
        """Embed images in batches under ``torch.inference_mode``; returns (n, dim) unit vectors."""
        n = len(images)
        if n == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        chunks = []
        for start in range(0, n, self.batch_size):
            chunks.append(self.embed_prepared(self.prepare_batch(images[start : start + self.batch_size])))
            if progress:
                progress(min(start + self.batch_size, n), n)
        return np.concatenate(chunks)


def preprocess_from_transforms(transforms) -> Preprocess:
    """Turn torchvision's ``weights.transforms()`` (ImageClassification) into a :class:`Preprocess`."""
    resize = transforms.resize_size
    crop = transforms.crop_size
    interpolation = transforms.interpolation
    return Preprocess(
        resize=int(resize[0] if isinstance(resize, (list, tuple)) else resize),
        crop=int(crop[0] if isinstance(crop, (list, tuple)) else crop),
        mean=tuple(float(m) for m in transforms.mean),
        std=tuple(float(s) for s in transforms.std),
        interpolation=str(getattr(interpolation, "value", interpolation)),
        antialias=bool(transforms.antialias),
    )


class TorchImageEmbedder(ImageEmbedder):
    """A torch module (``self.model``, on ``self.device``) mapping a preprocessed NCHW batch to
    pooled features. :meth:`ImageEmbedder.embed` converts the returned tensor to float32 numpy
    and applies the precision setting (fp32, or bf16 autocast + channels-last)."""

    model = None

    def embed_batch(self, batch):
        return self.model(batch.to(self.device))
