"""Sidebar controls shared by every page, kept in ``st.session_state``.

``app.py`` calls :func:`render_sidebar` on every run, before the page runs, so the
widgets below live across page switches and pages read their values with the accessors
(:func:`current_text_model`). To add a control (image model, collection), write a
``_something_control()`` function like :func:`_text_model_control`, give its widget a key
constant here, add an accessor, and call it from :func:`render_sidebar`.

Session-state keys:

* ``TEXT_MODEL_KEY = "text_model"``: the text model id every text page uses.

Every page file starts with :func:`require_router` (see its docstring for why).
"""

from __future__ import annotations

import os

import streamlit as st

from embeddings.config import openai_api_key
from embeddings.errors import EmbeddingsError
from embeddings.registry import default_text_model_id, describe, needs_key, text_model_ids

TEXT_MODEL_KEY = "text_model"
TEXT_MODEL_ENV = "EMBEDDINGS_TEXT_MODEL"

KEY_HELP = (
    "To use OpenAI's embedding models, set the environment variable `OPENAI_API_KEY` before "
    'starting the app, or put `OPENAI_API_KEY = "sk-..."` in `.streamlit/secrets.toml` '
    "(git ignores that file), then restart the app."
)


def render_sidebar() -> None:
    """Draw the shared controls in the sidebar (below the page navigation)."""
    with st.sidebar:
        _text_model_control()
        st.divider()
        from ui.image_controls import render_image_controls

        render_image_controls()
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


def current_text_model() -> str:
    """The text model id chosen in the sidebar (or the default before the sidebar ran)."""
    model = st.session_state.get(TEXT_MODEL_KEY)
    return model if model else default_text_model()[0]


def text_model_reason() -> str:
    """Why the current text model is active, in words for the home page."""
    default, reason = default_text_model()
    return reason if current_text_model() == default else "chosen in the sidebar"


# ---------------------------------------------------------------------------- OpenAI key


def _openai_key_status() -> None:
    st.divider()
    source = openai_key_source()
    if source:
        st.caption(f"OpenAI key: set (from {source})")
    else:
        st.caption("OpenAI key: not set — using the local model", help=KEY_HELP)
