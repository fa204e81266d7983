"""WordLlama ``l2_supercat`` (256-d): the weights and tokenizer bundled in the ``wordllama``
wheel, loaded once per process and never from the network."""

from __future__ import annotations

import functools
import importlib.util
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from ..core.deps import package_version, require
from ..core.fingerprint import file_sha256
from ..errors import MissingDependencyError, ModelUnavailableError
from ..text.base import TextEmbedder

_LOAD_LOCK = threading.RLock()


PIP_WORDLLAMA = "pip install wordllama==0.4.0.post1"


WORDLLAMA_CONFIG = "l2_supercat"


WORDLLAMA_DIM = 256


WORDLLAMA_TOKENIZER = "l2_supercat_tokenizer_config.json"


@contextmanager
def _keep_root_logging() -> Iterator[None]:
    """Undo ``logging.basicConfig`` calls made by imports (wordllama configures the root logger)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        for handler in list(root.handlers):
            if handler not in handlers:
                root.removeHandler(handler)
        root.setLevel(level)


def wordllama_files() -> tuple[Path, Path]:
    """(weights, tokenizer) paths inside the installed wordllama package."""
    spec = importlib.util.find_spec("wordllama")
    if spec is None or not spec.origin:
        raise MissingDependencyError(f"the wordllama model needs the 'wordllama' package: {PIP_WORDLLAMA}")
    package = Path(spec.origin).parent
    weights = package / "weights" / f"{WORDLLAMA_CONFIG}_{WORDLLAMA_DIM}.safetensors"
    tokenizer = package / "tokenizers" / WORDLLAMA_TOKENIZER
    for path in (weights, tokenizer):
        if not path.is_file():
            raise ModelUnavailableError(
                f"wordllama's bundled file {path.name} is missing; reinstall: pip install --force-reinstall "
                f"wordllama=={package_version('wordllama')}"
            )
    return weights, tokenizer


def load_wordllama() -> Any:
    """The WordLlama model (``WordLlamaInference``), loaded once per process without network.

    ``WordLlama.load`` looks for the bundled tokenizer in ``wordllama/tokenizer/`` but it
    ships in ``wordllama/tokenizers/``; pointing ``cache_dir`` at the package folder makes
    its cache lookup (``<cache_dir>/tokenizers/``) find it, and ``disable_download`` makes
    sure nothing is ever fetched.
    """
    with _LOAD_LOCK:
        return _load_wordllama()


@functools.lru_cache(maxsize=1)
def _load_wordllama() -> Any:
    weights, _ = wordllama_files()
    with _keep_root_logging():
        wordllama = require("wordllama", PIP_WORDLLAMA, "the wordllama model")
    try:
        return wordllama.WordLlama.load(
            WORDLLAMA_CONFIG, dim=WORDLLAMA_DIM, cache_dir=weights.parent.parent, disable_download=True
        )
    except (OSError, ValueError) as exc:
        raise ModelUnavailableError(f"could not load the bundled WordLlama model: {exc}") from exc


class WordLlamaEmbedder(TextEmbedder):
    """WordLlama ``l2_supercat`` 256-d: mean of token embeddings from a Llama-2 vocabulary."""

    model_id = "wordllama"
    dim = WORDLLAMA_DIM
    batch_size = 1024
    max_chars = None

    def fingerprint(self) -> str:
        weights, tokenizer = wordllama_files()
        return (
            f"wordllama:{WORDLLAMA_CONFIG}_{WORDLLAMA_DIM}:{file_sha256(weights)[:16]}:"
            f"{file_sha256(tokenizer)[:12]}:wordllama-{package_version('wordllama')}"
        )

    def embed_batch(self, texts: list[str]) -> np.ndarray:
        return load_wordllama().embed(list(texts), norm=False, batch_size=256)
