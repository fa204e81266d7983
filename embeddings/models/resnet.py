"""``resnet18``: torchvision's ResNet-18 with ``ResNet18_Weights.IMAGENET1K_V1``, ``fc`` removed
(512-d pooled features). The weights come from the torch hub cache, or are downloaded once
through :mod:`embeddings.core.downloads` (fast-failing); offline without them it raises
:class:`~embeddings.errors.ModelUnavailableError`. Loaded networks are cached per process;
the embedders themselves are cheap to create.
"""

from __future__ import annotations

import os
import re
import sys
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlparse

from ..core.downloads import DownloadError, download_once
from ..core.fingerprint import file_sha256
from ..core.torchutil import device, prepare_for_inference, random_init, require_torch
from ..errors import MissingDependencyError, ModelUnavailableError
from ..image.base import TorchImageEmbedder, preprocess_from_transforms

_HASH_IN_NAME = re.compile(r"-([a-f0-9]{6,})\.")  # torchvision's files carry a sha256 prefix


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
    match = _HASH_IN_NAME.search(path.name)
    try:
        return download_once(url, path, expected=("sha256", match.group(1)) if match else None)
    except DownloadError as exc:
        failure = str(exc)
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
    return prepare_for_inference(model)


class ResNet18Embedder(TorchImageEmbedder):
    """torchvision ResNet-18, ImageNet-1k weights, 512-d pooled features (``fc`` removed).

    ``weights=None`` builds deterministic random weights (tests only; not registered).
    """

    model_id = "resnet18"
    dim = 512
    batch_size = 64

    def __init__(self, weights: str | None = "IMAGENET1K_V1", download: bool = True):
        torch = require_torch()
        enum = _resnet18_weights()
        self.device = device()
        self.preprocess = preprocess_from_transforms(enum.transforms())
        if weights is None:
            from torchvision.models import resnet18

            model = random_init(lambda: resnet18(weights=None))
            model.fc = torch.nn.Identity()
            self.model = prepare_for_inference(model)
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


def resnet18_status(download: bool = False, data_dir=None) -> tuple[bool, str]:
    """(usable, the weights file or why not): usable when the weights are in the torch cache and
    intact, or (``download=True``) could be downloaded. ``data_dir`` is unused: the weights live
    in the torch hub cache."""
    try:
        path = ensure_resnet18_weights(download=download)
        if not _resnet18_file_ok(path):
            raise ModelUnavailableError(f"the cached ResNet18 weights {path} are damaged (sha256 mismatch)")
    except (ModelUnavailableError, MissingDependencyError) as exc:
        return False, str(exc)
    return True, str(path)
