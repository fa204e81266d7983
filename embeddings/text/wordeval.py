"""Word-similarity evaluation: Spearman correlation between model cosine and human scores.

Files hold one ``word1 word2 score`` triple per line, separated by spaces or tabs
(WordSim-353, SimLex-999, MEN ...). Blank lines and lines starting with ``#`` are skipped.
"""

from __future__ import annotations

import errno
import math
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..core.files import open_regular_file
from ..errors import InvalidInputError

if TYPE_CHECKING:
    from .base import TextEmbedder

Pair = tuple[str, str, float]


@dataclass(frozen=True)
class WordEvalResult:
    """Spearman's rho between cosine similarity and human score, over ``pairs`` pairs."""

    spearman: float
    pairs: int


def parse_pairs(text: str, source: str = "input") -> list[Pair]:
    """Parse ``word1 word2 score`` lines; malformed lines raise :class:`InvalidInputError` with their number."""
    pairs: list[Pair] = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        fields = stripped.split()
        if len(fields) != 3:
            raise InvalidInputError(
                f"{source}, line {number}: expected 'word1 word2 score', got {len(fields)} fields: {stripped[:80]!r}"
            )
        try:
            score = float(fields[2])
        except ValueError:
            raise InvalidInputError(f"{source}, line {number}: score {fields[2]!r} is not a number") from None
        if not math.isfinite(score):
            raise InvalidInputError(f"{source}, line {number}: score {fields[2]!r} is not a finite number")
        pairs.append((fields[0], fields[1], score))
    return pairs


def load_pairs(path: str | os.PathLike) -> list[Pair]:
    """Read a word-pair file (UTF-8, optional BOM) into ``(word1, word2, score)`` tuples."""
    try:
        with open_regular_file(path) as fh:  # a FIFO or a device fails here instead of blocking
            text = fh.read().decode("utf-8-sig")
    except FileNotFoundError:
        raise InvalidInputError(f"word-pair file not found: {path}") from None
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"{path} is not UTF-8 text: {exc}") from None
    except OSError as exc:
        if exc.errno == errno.EINVAL and not os.path.isdir(path):
            raise InvalidInputError(
                f"{path} is not a regular file (a device, a FIFO or a socket): give a text file of word pairs"
            ) from None
        if os.path.isdir(path):
            raise InvalidInputError(f"{path} is a folder: give a text file of word pairs") from None
        raise InvalidInputError(f"cannot read {path}: {exc}") from None
    pairs = parse_pairs(text, source=str(path))
    if not pairs:
        raise InvalidInputError(f"{path} has no word pairs")
    return pairs


def pair_cosines(pairs: list[Pair], embedder: TextEmbedder) -> np.ndarray:
    """Cosine similarity of each pair under ``embedder``; every distinct word is embedded once."""
    words = list(dict.fromkeys(w for a, b, _ in pairs for w in (a, b)))
    vectors = embedder.embed(words)
    row = {w: i for i, w in enumerate(words)}
    a = vectors[[row[p[0]] for p in pairs]]
    b = vectors[[row[p[1]] for p in pairs]]
    return np.clip(np.einsum("ij,ij->i", a, b), -1.0, 1.0)


def evaluate_words(pairs: list[Pair], embedder: TextEmbedder) -> WordEvalResult:
    """Spearman correlation (``scipy.stats.spearmanr``) between cosine and human score."""
    from scipy.stats import spearmanr

    if len(pairs) < 2:
        raise InvalidInputError(f"need at least 2 word pairs to correlate, got {len(pairs)}")
    human = np.array([p[2] for p in pairs], dtype=np.float64)
    if np.all(human == human[0]):
        raise InvalidInputError("all human scores are equal; a correlation is undefined")
    cosines = pair_cosines(pairs, embedder).astype(np.float64)
    rho = spearmanr(cosines, human).statistic
    return WordEvalResult(spearman=float(rho), pairs=len(pairs))  # NaN if every cosine is equal
