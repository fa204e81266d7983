"""Sidebar controls for the image side: image model, collection and split (shared by all pages)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import streamlit as st

IMAGE_MODEL_KEY = "image_model"
COLLECTION_KEY = "collection"
SPLIT_KEY = "split"
IMAGE_MODEL_ENV = "EMBEDDINGS_IMAGE_MODEL"
COLLECTION_ENV = "EMBEDDINGS_COLLECTION"


@dataclass(frozen=True)
class ImageSettings:
    """What the image pages show: which collection split, embedded by which model."""

    source: str
    split: str
    model_id: str
    precision: str
    model_reason: str


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


def _source_label(source: str) -> str:
    if source == "sample":
        return "CIFAR-10 sample (2,000 bundled images)"
    if source == "cifar10":
        return "CIFAR-10 (full, downloaded)"
    return f"Folder: {os.path.basename(os.path.normpath(source))}"


def image_model_choices() -> tuple[list[str], str, str]:
    """(model ids offered, default id, why that default)."""
    from embeddings.registry import image_model_ids, refresh_if_changed
    from ui.image_data import resolved_image_model

    default, reason = resolved_image_model()
    env = os.environ.get(IMAGE_MODEL_ENV, "").strip()
    refresh_if_changed()  # a head or fine-tuned run saved since the last look (two stat calls)
    models = image_model_ids()
    if env in models:
        default, reason = env, f"set by the environment variable `{IMAGE_MODEL_ENV}`"
    return models, default, reason


def render_image_controls() -> None:
    """Draw the collection, split and image model selectors."""
    from embeddings.image.collections import list_splits

    sources = available_sources()
    env = os.environ.get(COLLECTION_ENV, "").strip()
    if st.session_state.get(COLLECTION_KEY) not in sources:
        st.session_state[COLLECTION_KEY] = env if env in sources else sources[0]
    st.selectbox("Image collection", sources, key=COLLECTION_KEY, format_func=_source_label)
    splits = list_splits(st.session_state[COLLECTION_KEY])
    if st.session_state.get(SPLIT_KEY) not in splits:
        st.session_state[SPLIT_KEY] = "test" if "test" in splits else splits[0]
    if len(splits) > 1:
        st.selectbox("Split", splits, key=SPLIT_KEY)
    models, default, reason = image_model_choices()
    if st.session_state.get(IMAGE_MODEL_KEY) not in models:
        st.session_state[IMAGE_MODEL_KEY] = default
    from ui.image_data import unavailable_image_models

    missing = unavailable_image_models()
    st.selectbox(
        "Image model",
        models,
        key=IMAGE_MODEL_KEY,
        help=reason,
        format_func=lambda m: f"{m} (not downloaded)" if m in missing else m,
    )


def current_image_settings() -> ImageSettings:
    """The image settings chosen in the sidebar (defaults before the sidebar ran)."""
    from embeddings.image.base import default_precision

    models, default, reason = image_model_choices()
    model = st.session_state.get(IMAGE_MODEL_KEY) or default
    if model != default:
        reason = "chosen in the sidebar"
    source = st.session_state.get(COLLECTION_KEY) or available_sources()[0]
    split = st.session_state.get(SPLIT_KEY) or "test"
    return ImageSettings(source, split, model, default_precision(), reason)
