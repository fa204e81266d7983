"""The whole sidebar: text model, image collection, split and image model, OpenAI key status.

``app.py`` calls :func:`render_sidebar` on every run, before the page runs, so the widgets
below live across page switches; pages read their values with the accessors of
:mod:`ui.settings` (:func:`~ui.settings.current_text_settings`,
:func:`~ui.settings.current_image_settings`), which also holds the session-state keys. To add a
control, write a ``_something_control()`` function like :func:`_text_model_control`, give its
widget a key constant and an accessor in :mod:`ui.settings`, and call it from
:func:`render_sidebar`.

Every page file starts with :func:`require_router` (see its docstring for why).
"""

from __future__ import annotations

import os

import streamlit as st

from embeddings.registry import needs_key
from ui.cached import image_model_choices
from ui.settings import (
    COLLECTION_ENV,
    COLLECTION_KEY,
    IMAGE_MODEL_KEY,
    SPLIT_KEY,
    TEXT_MODEL_ENV,
    TEXT_MODEL_KEY,
    available_sources,
    available_text_models,
    current_text_model,
    default_text_model,
    describe_text_model,
    has_openai_key,
    openai_key_source,
)
from ui.views.text import plain

KEY_HELP = (
    "To use OpenAI's embedding models, set the environment variable `OPENAI_API_KEY` before "
    'starting the app, or put `OPENAI_API_KEY = "sk-..."` in `.streamlit/secrets.toml` '
    "(git ignores that file), then restart the app."
)


def render_sidebar() -> None:
    """Draw the shared controls in the sidebar (below the page navigation)."""
    from ui.views.links import restore_sidebar

    restore_sidebar()  # a link's text model, collection, split and image model, before the widgets
    with st.sidebar:
        _text_model_control()
        st.divider()
        _image_controls()
        _openai_key_status()


def require_router() -> None:
    """Make sure this page runs inside ``app.py`` (its sidebar, page config and navigation).

    Call it first in every page file. Because the pages live in a folder named ``pages/``,
    Streamlit runs a requested page *directly* (its legacy folder mode) until some run has
    called ``st.navigation``: the first request after a server start that opens a deep link
    such as ``/words``, and every rerun of a non-default page under ``AppTest``. This
    switches that mode off and reruns, so ``app.py`` routes to the same page.
    """
    try:
        from streamlit.runtime.pages_manager import PagesManager
    except ImportError:  # pragma: no cover - internal module moved; nothing to fix then
        return
    if getattr(PagesManager, "uses_pages_directory", False):
        PagesManager.uses_pages_directory = False
        st.rerun()


# ---------------------------------------------------------------------------- text model


def _model_label(model_id: str) -> str:
    if needs_key(model_id) and not has_openai_key():
        return f"{model_id} (needs a key)"
    return model_id


def _text_model_control() -> None:
    models = available_text_models()
    if not models:
        st.error("No text models could be loaded; check the installation.")
        return
    default, _ = default_text_model(models)
    if st.session_state.get(TEXT_MODEL_KEY) not in models:
        st.session_state[TEXT_MODEL_KEY] = default if default in models else models[0]
    env = os.environ.get(TEXT_MODEL_ENV, "").strip()
    if env and env not in models:
        st.warning(f"`{TEXT_MODEL_ENV}={env}` is not a known text model; using `{default}`.")
    st.selectbox(
        "Text model",
        models,
        key=TEXT_MODEL_KEY,
        format_func=_model_label,
        help="The model that turns words and phrases into vectors on the text pages.",
    )
    description = describe_text_model(current_text_model())
    if description:
        st.caption(description)


# ---------------------------------------------------------------------------- image side


def _source_label(source: str) -> str:
    """A collection's name, short enough for the sidebar's width (the full one is its ``help``)."""
    if source == "sample":
        return "CIFAR-10 sample"
    if source == "cifar10":
        return "CIFAR-10 (full)"
    return f"Folder: {os.path.basename(os.path.normpath(source))}"


def _source_help(source: str) -> str:
    """The collection's full description, shown on hover."""
    if source == "sample":
        return "CIFAR-10 sample: 2,000 test images (200 per class) bundled with the app."
    if source == "cifar10":
        return "CIFAR-10 in full, downloaded into the data folder."
    return f"Image folder `{source}` (from `EMBEDDINGS_FOLDERS`)."


def _image_controls() -> None:
    """The collection, split and image model selectors."""
    from embeddings.image.collections import list_splits

    sources = available_sources()
    env = os.environ.get(COLLECTION_ENV, "").strip()
    if st.session_state.get(COLLECTION_KEY) not in sources:
        st.session_state[COLLECTION_KEY] = env if env in sources else sources[0]
    st.selectbox(
        "Image collection",
        sources,
        key=COLLECTION_KEY,
        format_func=_source_label,
        help=_source_help(st.session_state[COLLECTION_KEY]),
    )
    splits = list_splits(st.session_state[COLLECTION_KEY])
    if st.session_state.get(SPLIT_KEY) not in splits:
        st.session_state[SPLIT_KEY] = "test" if "test" in splits else splits[0]
    if len(splits) > 1:
        st.selectbox("Split", splits, key=SPLIT_KEY)
    models, default, reason = image_model_choices()
    if st.session_state.get(IMAGE_MODEL_KEY) not in models:
        st.session_state[IMAGE_MODEL_KEY] = default
    from ui.cached import unavailable_image_models

    missing = unavailable_image_models()
    st.selectbox(
        "Image model",
        models,
        key=IMAGE_MODEL_KEY,
        help=plain(reason),
        format_func=lambda m: f"{m} (not downloaded)" if m in missing else m,
    )


# ---------------------------------------------------------------------------- OpenAI key


def _openai_key_status() -> None:
    st.divider()
    source = openai_key_source()
    if source:
        st.caption(f"OpenAI key: set (from {source})")
    else:
        st.caption(no_key_note(current_text_model()), help=KEY_HELP)


def no_key_note(model_id: str) -> str:
    """The key status when none is set, true for the chosen text model ``model_id``."""
    if needs_key(model_id):
        return f"OpenAI key: not set — `{model_id}` needs one: add a key, or choose an offline model above"
    return f"OpenAI key: not set — `{model_id}` runs offline and needs none"
