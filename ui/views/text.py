"""Text page sections that are not charts: the box words are typed into, and how a page shows an
error from the package."""

from __future__ import annotations

import streamlit as st

from embeddings.errors import AuthenticationError, EmbeddingsError, ModelUnavailableError, RemoteServiceError
from embeddings.registry import needs_key

HINT_LOCAL = (
    "You can keep exploring offline: choose the `local` text model in the sidebar "
    "(it needs no key and no network)."
)


def show_error(exc: EmbeddingsError, model_id: str | None = None) -> None:
    """Show an error from the package as a message (never a traceback), with a hint when useful."""
    st.error(str(exc), icon=":material/error:")
    remote = isinstance(exc, (AuthenticationError, RemoteServiceError))
    if remote or (model_id and needs_key(model_id) and isinstance(exc, ModelUnavailableError)):
        st.info(HINT_LOCAL, icon=":material/lightbulb:")


def word_box(label: str, default: str, *, key: str, height: int, help: str) -> str:
    """The text area words are typed into, kept for the session (Ctrl+Enter applies it); a page
    passes ``key`` as a literal keyword, so tests/test_safety.py sees every text box."""
    return st.text_area(label, value=default, key=key, height=height, persist_state="session", help=help)
