"""Text page sections that are not charts: the box words are typed into, and how a page shows an
error from the package."""

from __future__ import annotations

import streamlit as st

from embeddings.errors import AuthenticationError, EmbeddingsError, ModelUnavailableError, RemoteServiceError
from embeddings.registry import needs_key
from embeddings.text.wordlists import escape_markdown

HINT_LOCAL = (
    "You can keep exploring offline: choose the `local` text model in the sidebar "
    "(it needs no key and no network)."
)


def embedding_message(model_id: str, count: int) -> str:
    """What a spinner says while ``count`` texts are embedded; for OpenAI, how long it may wait and the way out."""
    if needs_key(model_id):
        from embeddings.models.openai import total_timeout_from_env

        return (
            f"Asking OpenAI ({model_id}) for {count:,} vectors; it gives up after "
            f"{total_timeout_from_env():g} s per request. Not answering? Choose the `local` text model "
            "in the sidebar (offline, no key)."
        )
    return f"Embedding {count:,} items with {model_id}…"


def show_error(exc: EmbeddingsError, model_id: str | None = None) -> None:
    """Show an error from the package as a message (never a traceback), with a hint when useful."""
    st.error(escape_markdown(exc), icon=":material/error:")
    remote = isinstance(exc, (AuthenticationError, RemoteServiceError))
    if remote or (model_id and needs_key(model_id) and isinstance(exc, ModelUnavailableError)):
        st.info(HINT_LOCAL, icon=":material/lightbulb:")


def word_box(label: str, default: str, *, key: str, height: int, help: str) -> str:
    """The text area words are typed into, kept for the session (Ctrl+Enter applies it); a page
    passes ``key`` as a literal keyword, so tests/test_safety.py sees every text box."""
    return st.text_area(label, value=default, key=key, height=height, persist_state="session", help=help)
