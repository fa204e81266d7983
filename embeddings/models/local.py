"""The offline default text models: MiniLM and WordLlama side by side (640-d).

``local-raw`` (:class:`LocalEmbedder`) concatenates unit MiniLM and unit WordLlama vectors.
The default ``local`` (:class:`LocalCentredEmbedder`) first post-processes MiniLM's half the
"all-but-the-top" way (Mu & Viswanath, ICLR 2018): sentence/word vectors share a large common
mean and a few dominant directions (word frequency, mostly) that carry little meaning. A
:class:`PostProcessedTextEmbedder` wraps a base text model, subtracts the mean of the base
model's vectors over the 20,000-word vocabulary (:mod:`embeddings.text.vocab`) and, with
``directions > 0``, projects out that vocabulary's top principal directions. The statistics are
computed once per base model and stored as ``<data_dir>/textpost/<model>-<key>.npz`` (arrays
only, written atomically), keyed by the base model's fingerprint, the vocabulary's sha256, the
number of directions and the package version. The MiniLM statistics for the bundled vocabulary
ship in ``embeddings/data/textpost/`` (keyed like the cache files), so the default needs no
20,000-word pass on first use. Measured with ``eval-words`` on WS-353 and SimLex-999
(``benchmarks/bench_textpost.py``), centring MiniLM's half is the one variant that raised both.

Both models take their two parts ready-made: the registry builds ``minilm`` and ``wordllama``
and passes them in, so this module imports no other model module.
"""

from __future__ import annotations

import threading

import numpy as np

from .. import __version__, config
from ..core.files import atomic_path
from ..core.fingerprint import fingerprint, slug
from ..core.mathops import normalize
from ..text import vocab
from ..text.base import TextEmbedder


class LocalEmbedder(TextEmbedder):
    """``local-raw``: unit MiniLM and unit WordLlama vectors side by side (640-d).

    Each half is normalised before concatenating, so both weigh the same in the cosine. The
    default ``local`` (:class:`LocalCentredEmbedder`) centres the MiniLM half
    first, which measured higher on WS-353 and SimLex-999.
    """

    model_id = "local-raw"
    batch_size = 256
    max_chars = None

    def __init__(self, minilm: TextEmbedder, wordllama: TextEmbedder) -> None:
        self.minilm = minilm
        self.wordllama = wordllama
        self.dim = minilm.dim + wordllama.dim

    def fingerprint(self) -> str:
        return f"local-raw:[{self.minilm.fingerprint()}]+[{self.wordllama.fingerprint()}]"

    def embed_batch(self, texts: list[str]) -> np.ndarray:
        a = self.minilm.embed(texts)  # unit rows; shipped vectors where the table has them
        b = normalize(self.wordllama.embed_batch(texts))
        return np.concatenate([a, b], axis=1)


_STATS: dict[str, tuple[np.ndarray, np.ndarray]] = {}
BUNDLED_STATS = config.PACKAGE_DATA / "textpost"
_LOCK = threading.Lock()


def vocabulary_statistics(
    base: TextEmbedder, directions: int, data_dir=None
) -> tuple[np.ndarray, np.ndarray]:
    """(mean, components) of ``base``'s vocabulary vectors: the mean and the top ``directions``
    principal directions (rows, unit length) of the centred vectors; cached on disk."""
    key = fingerprint(base.fingerprint(), vocab.vocab_sha(str(vocab.VOCAB_FILE)), directions, __version__)
    path = config.data_dir(data_dir) / "textpost" / f"{slug(base.model_id)}-{key}.npz"
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
            vectors = np.asarray(vocab.vocab_vectors(base, data_dir=data_dir), dtype=np.float64)
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

    def __init__(self, base: TextEmbedder, directions: int = 0, data_dir=None):
        self.base = base
        self.directions = int(directions)
        self.data_dir = data_dir
        self.dim = self.base.dim
        self.batch_size = self.base.batch_size
        suffix = "centred" if self.directions == 0 else f"abtt{self.directions}"
        self.model_id = f"{base.model_id}-{suffix}"
        what = "centred on the vocabulary mean"
        if self.directions:
            what += f", top {self.directions} principal directions removed"
        self.description = f"{self.base.description or base.model_id}, {what}"

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

    def __init__(self, minilm: TextEmbedder, wordllama: TextEmbedder, data_dir=None):
        self.minilm = PostProcessedTextEmbedder(minilm, 0, data_dir)
        self.wordllama = wordllama
        self.dim = self.minilm.dim + self.wordllama.dim

    def fingerprint(self) -> str:
        return f"local:[{self.minilm.fingerprint()}]+[{self.wordllama.fingerprint()}]"

    def embed_batch(self, texts: list[str]) -> np.ndarray:
        return np.concatenate(
            [normalize(self.minilm.embed_batch(texts)), normalize(self.wordllama.embed_batch(texts))], axis=1
        )
