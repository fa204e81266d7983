"""Cached wrappers around the ``embeddings`` package, and how pages show its errors.

* ``st.cache_resource`` holds objects shared by all sessions: :func:`load_text_embedder`.
* ``st.cache_data`` holds arrays keyed by every argument that decides them:
  :func:`embed_texts`, :func:`text_map`.
* :func:`vocabulary` keeps one embedded vocabulary per text model (``embeddings.vocab``
  also stores it on disk) in a process-wide store (a ``cache_resource`` dict) filled
  *outside* any cached call, so its progress bar is drawn live and never replayed; 20k x 640
  floats are too big to copy on every rerun as ``cache_data`` would.

Nothing here catches errors: a failed call raises (and is not cached), and the page shows
it with :func:`show_error`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import streamlit as st
from streamlit.logger import get_logger

from embeddings.errors import AuthenticationError, EmbeddingsError, ModelUnavailableError, RemoteServiceError
from embeddings.registry import get_text_embedder
from embeddings.text.base import TextEmbedder

from . import is_openai_model

Progress = Callable[[int, int], None]
log = get_logger(__name__)  # Streamlit's logger: its lines reach the server log


@st.cache_resource(show_spinner=False, max_entries=8)
def load_text_embedder(model_id: str) -> TextEmbedder:
    """The text embedder for ``model_id``, built once per process (logged: "loaded text model ...")."""
    embedder = get_text_embedder(model_id)
    log.info("loaded text model %s", model_id)
    return embedder


@st.cache_data(show_spinner=False, max_entries=64)
def embed_texts(model_id: str, texts: tuple[str, ...]) -> np.ndarray:
    """Unit vectors, one row per text, from ``model_id``."""
    return load_text_embedder(model_id).embed(list(texts))


@st.cache_data(show_spinner=False, max_entries=32)
def text_map(
    model_id: str, texts: tuple[str, ...], method: str, n_components: int, perplexity: float, seed: int
) -> np.ndarray:
    """2-D or 3-D coordinates of ``texts`` embedded with ``model_id``: ``method`` is "t-SNE" or "PCA"."""
    from embeddings.core.projection import pca, tsne

    vectors = embed_texts(model_id, texts)
    if method == "PCA":
        return pca(vectors, n_components)
    return tsne(vectors, perplexity=perplexity, n_components=n_components, seed=seed)


# ---------------------------------------------------------------------------- vocabulary


@dataclass(frozen=True)
class Vocabulary:
    """The English vocabulary embedded with one text model (rows of ``vectors`` match ``words``)."""

    model_id: str
    words: list[str]
    vectors: np.ndarray

    def __len__(self) -> int:
        return len(self.words)


@st.cache_resource(show_spinner=False)
def _vocabulary_store() -> dict:
    return {"lock": threading.Lock(), "locks": {}, "vocabularies": {}}


def vocabulary_ready(model_id: str) -> bool:
    """Whether :func:`vocabulary` for ``model_id`` would return at once."""
    return model_id in _vocabulary_store()["vocabularies"]


def vocabulary(model_id: str, progress: Progress | None = None) -> Vocabulary:
    """The vocabulary embedded with ``model_id``: computed (or read from disk) once per process.

    ``progress(done, total)`` is called while embedding; concurrent sessions asking for the
    same model wait for the first one instead of embedding twice.
    """
    store = _vocabulary_store()
    found = store["vocabularies"].get(model_id)
    if found is not None:
        return found
    with store["lock"]:
        lock = store["locks"].setdefault(model_id, threading.Lock())
    with lock:
        found = store["vocabularies"].get(model_id)
        if found is None:
            found = _build_vocabulary(model_id, progress)
            store["vocabularies"][model_id] = found
    return found


def _build_vocabulary(model_id: str, progress: Progress | None) -> Vocabulary:
    from embeddings.text import vocab

    words = vocab.load_vocab()
    vectors = vocab.vocab_vectors(load_text_embedder(model_id), progress=progress)
    return Vocabulary(model_id, words, vectors)


# ---------------------------------------------------------------------------- errors

HINT_LOCAL = (
    "You can keep exploring offline: choose the `local` text model in the sidebar "
    "(it needs no key and no network)."
)


def show_error(exc: EmbeddingsError, model_id: str | None = None) -> None:
    """Show an error from the package as a message (never a traceback), with a hint when useful."""
    st.error(str(exc), icon=":material/error:")
    remote = isinstance(exc, (AuthenticationError, RemoteServiceError))
    if remote or (model_id and is_openai_model(model_id) and isinstance(exc, ModelUnavailableError)):
        st.info(HINT_LOCAL, icon=":material/lightbulb:")
