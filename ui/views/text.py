"""Text page sections that are not charts: the box words are typed into, and how a page shows an
error from the package."""

from __future__ import annotations

import re

import numpy as np
import streamlit as st

from embeddings.errors import AuthenticationError, EmbeddingsError, ModelUnavailableError, RemoteServiceError
from embeddings.registry import needs_key
from embeddings.text.wordlists import escape_markdown

HINT_LOCAL = (
    "You can keep exploring offline: choose the `local` text model in the sidebar "
    "(it needs no key and no network)."
)
HINT_OTHER = (
    "The sidebar's text model is not the problem: pick a model that needs no key (such as `local`) "
    "instead of `{model}` here."
)


def offline_hint(model_id: str | None) -> str:
    """What to do when ``model_id`` (an OpenAI model) fails: switch the sidebar's model when it is
    that one, else pick another model where ``model_id`` was chosen (e.g. "Compare two models")."""
    from ui.settings import current_text_model

    if model_id is None or model_id == current_text_model():
        return HINT_LOCAL
    return HINT_OTHER.format(model=model_id)


# What plain() takes out of the package's precise messages (they stay whole under "Details").
_INNERMOST_TECHNICAL = re.compile(r"\s*\([^()]*(?:/|\\|Errno|errno)[^()]*\)")  # (a path), ([Errno -2] ...)
_PLAIN_REPLACEMENTS = (
    (re.compile(r"\s+from\s+https?://\S+?(?=[\s;,)]|$)"), ""),  # "downloaded from <URL>"
    (re.compile(r"https?://\S+?(?=[\s;,)]|$)"), "the internet"),
    (re.compile(r"\s+in\s+(?:/|~/|[A-Za-z]:\\)\S+"), " in the folder shown under Details"),
    (re.compile(r"\b[\w.-]+\.(?:safetensors|pth|bin|onnx|npz|pt): "), ""),  # "file.safetensors: offline"
    (re.compile(r"offline: the host name could not be resolved"), "this machine seems to be offline"),
)


def plain(message: object) -> str:
    """``message`` without paths, URLs or errno text: what a person needs to read. The full
    text goes to a "Details" expander (:func:`show_problem`)."""
    text, previous = str(message), None
    while text != previous:  # innermost parentheses first: "(offline (… [Errno -2] …))"
        previous, text = text, _INNERMOST_TECHNICAL.sub("", text)
    for pattern, replacement in _PLAIN_REPLACEMENTS:
        text = pattern.sub(replacement, text)
    return text


def details(message: object) -> None:
    """The full text of ``message`` in a "Details" expander, when :func:`plain` left anything out."""
    if plain(message) != str(message):
        with st.expander("Details"):
            st.code(str(message), language=None, wrap_lines=True)


def show_problem(message: object, todo: str = "", kind: str = "error", icon: str | None = None) -> None:
    """A short plain message (``kind``: error, warning or info) and what to do; paths, URLs and
    errno text in "Details"."""
    short = plain(message)
    if todo and not short.rstrip().endswith((".", "!", "?", ":")):
        short = short.rstrip() + "."
    text = escape_markdown(short) + (f" {todo}" if todo else "")
    getattr(st, kind)(text, icon=icon)
    details(message)


def embedding_message(model_id: str, count: int) -> str:
    """What a spinner says while ``count`` texts are embedded; for OpenAI, how long it may wait and the way out."""
    if needs_key(model_id):
        from embeddings.models.openai import total_timeout_from_env

        return (
            f"Asking OpenAI ({model_id}) for {count:,} vectors; it gives up after "
            f"{total_timeout_from_env():g} s per request. Not answering? {offline_hint(model_id)}"
        )
    return f"Embedding {count:,} items with {model_id}…"


def show_error(exc: EmbeddingsError, model_id: str | None = None) -> None:
    """Show an error from the package as a message (never a traceback), with a hint when useful."""
    show_problem(exc, icon=":material/error:")
    remote = isinstance(exc, (AuthenticationError, RemoteServiceError))
    if remote or (model_id and needs_key(model_id) and isinstance(exc, ModelUnavailableError)):
        st.info(offline_hint(model_id), icon=":material/lightbulb:")


def similarity_column(values, label: str = "cosine similarity"):
    """A bar from 0 to 1 when every value is non-negative; with a negative among them, the plain
    number (a −1..1 bar would draw 0 as half full)."""
    if np.size(values) and float(np.nanmin(values)) < 0:
        return st.column_config.NumberColumn(
            label, format="%.3f", width="medium", help="Negative: the vectors point in opposite directions."
        )
    return st.column_config.ProgressColumn(label, format="%.3f", min_value=0.0, max_value=1.0, width="medium")


def word_box(label: str, default: str, *, key: str, height: int, help: str) -> str:
    """The text area words are typed into, kept for the session (Ctrl+Enter applies it); a page
    passes ``key`` as a literal keyword, so tests/test_safety.py sees every text box."""
    return st.text_area(label, value=default, key=key, height=height, persist_state="session", help=help)
