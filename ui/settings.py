"""What the sidebar has chosen, as small frozen values, and the functions that read them.

* :class:`TextSettings`: the text model every text page uses (:func:`current_text_settings`).
* :class:`ImageSettings`: collection split, image model, precision and data folder
  (:func:`current_image_settings`).
* :class:`IndexRequest`: what identifies one index on disk (collection fingerprint included),
  made from image settings by :func:`index_request`. The cached functions of :mod:`ui.cached`
  take it: a frozen dataclass is hashable, and ``st.cache_*`` keys on its fields.

Session-state keys (the sidebar's widget keys): ``TEXT_MODEL_KEY = "text_model"``,
``COLLECTION_KEY = "collection"``, ``SPLIT_KEY = "split"``, ``IMAGE_MODEL_KEY = "image_model"``.
The values are read from ``st.session_state`` (defaults before the sidebar ran); the widgets
that set them are in :mod:`ui.sidebar`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import streamlit as st

from embeddings.config import openai_api_key
from embeddings.errors import EmbeddingsError
from embeddings.registry import default_text_model_id, describe, text_model_ids

TEXT_MODEL_KEY = "text_model"
TEXT_MODEL_ENV = "EMBEDDINGS_TEXT_MODEL"
ANALOGY_MODEL_ENV = "EMBEDDINGS_ANALOGY_MODEL"
IMAGE_MODEL_KEY = "image_model"
COLLECTION_KEY = "collection"
SPLIT_KEY = "split"
IMAGE_MODEL_ENV = "EMBEDDINGS_IMAGE_MODEL"
COLLECTION_ENV = "EMBEDDINGS_COLLECTION"


@dataclass(frozen=True)
class TextSettings:
    """What the text pages use: the text model and why it is the active one."""

    model_id: str
    reason: str


@dataclass(frozen=True)
class ImageSettings:
    """What the image pages show: which collection split, embedded by which model, stored where."""

    source: str
    split: str
    model_id: str
    precision: str
    model_reason: str
    data_dir: str


@dataclass(frozen=True)
class IndexRequest:
    """What identifies one index: the collection split (and its fingerprint), the model, the data folder."""

    source: str
    split: str
    fingerprint: str
    model_id: str
    precision: str
    data_dir: str

    @property
    def job_key(self) -> str:
        """The background job key of this index's build."""
        return f"index:{self.data_dir}:{self.source}:{self.split}:{self.fingerprint}:{self.model_id}:{self.precision}"


# ---------------------------------------------------------------------------- text model


def available_text_models() -> list[str]:
    """Registered text model ids, or an empty list when the registry cannot load."""
    try:
        return text_model_ids()
    except (EmbeddingsError, ImportError):
        return []


def has_openai_key() -> bool:
    """Whether an OpenAI key is configured (the key itself never leaves this function)."""
    return openai_api_key() is not None


def openai_key_source() -> str | None:
    """``"environment"``, ``"secrets.toml"`` or ``None``: where the key comes from."""
    if os.environ.get("OPENAI_API_KEY", "").strip():
        return "environment"
    return "secrets.toml" if has_openai_key() else None


def default_text_model(models: list[str] | None = None) -> tuple[str, str]:
    """The default text model id and the reason it is the default.

    ``$EMBEDDINGS_TEXT_MODEL`` wins when it names a registered model; otherwise the OpenAI
    model when a key is set, else the offline ``local`` model.
    """
    models = available_text_models() if models is None else models
    env = os.environ.get(TEXT_MODEL_ENV, "").strip()
    if env and env in models:
        return env, f"set by the environment variable `{TEXT_MODEL_ENV}`"
    key = has_openai_key()
    model = default_text_model_id(key)
    if key:
        return model, "the default because an OpenAI key is set"
    return model, "the default because no OpenAI key is set (runs offline on this machine)"


def describe_text_model(model_id: str) -> str:
    """A one-line description of ``model_id`` without loading it ("" when unknown)."""
    try:
        return describe(model_id)
    except EmbeddingsError:
        return ""


def analogy_model() -> str:
    """The model the analogy tab offers first: ``$EMBEDDINGS_ANALOGY_MODEL`` if it names a text
    model, else the best measured offline one (:data:`embeddings.text.analogies.BEST_MODEL`)."""
    from embeddings.text.analogies import BEST_MODEL

    env = os.environ.get(ANALOGY_MODEL_ENV, "").strip()
    return env if env in text_model_ids() else BEST_MODEL


def current_text_model() -> str:
    """The text model id chosen in the sidebar (or the default before the sidebar ran)."""
    model = st.session_state.get(TEXT_MODEL_KEY)
    return model if model else default_text_model()[0]


def current_text_settings() -> TextSettings:
    """The text settings chosen in the sidebar, with why that model is active (for the home page)."""
    model = current_text_model()
    default, reason = default_text_model()
    return TextSettings(model, reason if model == default else "chosen in the sidebar")


# ---------------------------------------------------------------------------- image side


def current_data_dir() -> str:
    """The data folder in use (``$EMBEDDINGS_DATA_DIR`` or the per-user default)."""
    from embeddings.config import data_dir

    return str(data_dir())


def available_sources() -> list[str]:
    """``sample`` always; ``cifar10`` once downloaded; folders named in ``$EMBEDDINGS_FOLDERS``."""
    from embeddings.config import configured_folders
    from embeddings.image.collections import default_source

    sources = ["sample"]
    if default_source() == "cifar10":
        sources.insert(0, "cifar10")
    sources += [str(p) for p in configured_folders()]
    env = os.environ.get(COLLECTION_ENV, "").strip()
    if env and env not in sources and (env in ("sample", "cifar10") or os.path.isdir(env)):
        sources.insert(0, env)
    return sources
