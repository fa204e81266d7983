"""Post-processed text embedders: centre on the vocabulary mean, remove top principal directions.

"All-but-the-top" (Mu & Viswanath, ICLR 2018): sentence/word vectors share a large common
mean and a few dominant directions (word frequency, mostly) that carry little meaning. A
:class:`PostProcessedTextEmbedder` wraps a base text model, subtracts the mean of the base
model's vectors over the 20,000-word vocabulary (:mod:`embeddings.vocab`) and, with
``directions > 0``, projects out that vocabulary's top principal directions, then
re-normalises. The statistics are computed once per base model and stored as
``<data_dir>/textpost/<model>-<key>.npz`` (arrays only, written atomically), keyed by the base
model's fingerprint, the vocabulary's sha256, the number of directions and the package version.

It is a new model id, so the base model's own vectors, vocabulary files and caches are
untouched. The one variant registered is the default text model ``local``: MiniLM's half
centred on MiniLM's vocabulary mean, WordLlama's half as it is (``local-raw`` is the same without
centring). Measured with ``eval-words`` on WS-353 and SimLex-999 (``benchmarks/bench_textpost.py``),
it is the one variant that raised both. The MiniLM statistics for the bundled vocabulary ship in
``embeddings/data/textpost/`` (keyed like the cache files), so the default needs no
20,000-word pass on first use.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

import numpy as np

from . import __version__, config
from .fileio import atomic_path, fingerprint
from .text import TextEmbedder, get_text_embedder, register_text_model
from .text_backends import LOCAL_DESCRIPTION

_STATS: dict[str, tuple[np.ndarray, np.ndarray]] = {}
BUNDLED_STATS = Path(__file__).resolve().parent / "data" / "textpost"
_LOCK = threading.Lock()


def vocabulary_statistics(
    base: TextEmbedder, directions: int, data_dir=None
) -> tuple[np.ndarray, np.ndarray]:
    """(mean, components) of ``base``'s vocabulary vectors: the mean and the top ``directions``
    principal directions (rows, unit length) of the centred vectors; cached on disk."""
    from .vocab import VOCAB_FILE, _vocab_sha, vocab_vectors

    key = fingerprint(base.fingerprint(), _vocab_sha(str(VOCAB_FILE)), directions, __version__)
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", base.model_id) or "model"
    path = config.data_dir(data_dir) / "textpost" / f"{slug}-{key}.npz"
    bundled = BUNDLED_STATS / path.name
    with _LOCK:
        if str(path) in _STATS:
            return _STATS[str(path)]
        try:
            with np.load(bundled if bundled.is_file() else path, allow_pickle=False) as arrays:
                mean, components = arrays["mean"], arrays["components"]
            if mean.shape != (base.dim,) or components.shape != (directions, base.dim):
                raise ValueError("wrong shape")
        except (OSError, ValueError, KeyError):
            vectors = np.asarray(vocab_vectors(base, data_dir=data_dir), dtype=np.float64)
            mean = vectors.mean(axis=0)
            if directions:
                _, _, vt = np.linalg.svd(vectors - mean, full_matrices=False)
                components = vt[:directions]
            else:
                components = np.zeros((0, base.dim))
            mean, components = mean.astype(np.float32), components.astype(np.float32)
            with atomic_path(path, suffix=".npz") as tmp:
                with open(tmp, "wb") as fh:
                    np.savez(fh, mean=mean, components=components)
        _STATS[str(path)] = (mean, components)
        return mean, components


class PostProcessedTextEmbedder(TextEmbedder):
    """``base`` vectors minus the vocabulary mean, minus their top ``directions`` principal components."""

    def __init__(self, base_id: str = "local-raw", directions: int = 0, data_dir=None):
        self.base = get_text_embedder(base_id)
        self.directions = int(directions)
        self.data_dir = data_dir
        self.dim = self.base.dim
        self.batch_size = self.base.batch_size
        suffix = "centred" if self.directions == 0 else f"abtt{self.directions}"
        self.model_id = f"{base_id}-{suffix}"
        what = "centred on the vocabulary mean"
        if self.directions:
            what += f", top {self.directions} principal directions removed"
        self.description = f"{self.base.description or base_id}, {what}"

    def fingerprint(self) -> str:
        return f"{self.base.fingerprint()}|postprocess:centre+pcs={self.directions}|{__version__}"

    def embed_batch(self, texts: list[str]) -> np.ndarray:
        mean, components = vocabulary_statistics(self.base, self.directions, self.data_dir)
        vectors = self.base.embed(texts) - mean
        if len(components):
            vectors -= (vectors @ components.T) @ components
        return vectors


class LocalCentredEmbedder(TextEmbedder):
    """The default offline text model ``local``: MiniLM's half centred on MiniLM's vocabulary
    mean, WordLlama's half as is; each half normalised, then concatenated (640-d).

    Measured (``eval-words``, Spearman, ``local-raw`` -> ``local``): WS-353 all 0.7384 -> 0.7467,
    sim 0.7422 -> 0.7437, rel 0.7048 -> 0.7035, SimLex-999 0.5233 -> 0.5320. Centring the whole
    ``local-raw`` vector, or removing principal directions, lowered WS-353.
    """

    model_id = "local"
    batch_size = 256
    description = LOCAL_DESCRIPTION

    def __init__(self, data_dir=None):
        self.minilm = PostProcessedTextEmbedder("minilm", 0, data_dir)
        self.wordllama = get_text_embedder("wordllama")
        self.dim = self.minilm.dim + self.wordllama.dim

    def fingerprint(self) -> str:
        return f"local:[{self.minilm.fingerprint()}]+[{self.wordllama.fingerprint()}]"

    def embed_batch(self, texts: list[str]) -> np.ndarray:
        from .mathops import normalize

        return np.concatenate(
            [normalize(self.minilm.embed_batch(texts)), normalize(self.wordllama.embed_batch(texts))], axis=1
        )


def _register() -> None:
    register_text_model("local", LocalCentredEmbedder)


_register()
