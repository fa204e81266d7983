"""Long documents: trimmed to their first characters, or split into overlapping passages.

A model reads a limited length (OpenAI about 8,000 tokens, which the seed trims by characters;
MiniLM 256 word pieces, about 1,000 characters of English). **Trim** keeps one passage per
document, its first ``trim_chars`` characters. **Chunk** splits a document into passages of at
most ``chunk_chars`` characters, each starting ``chunk_chars - overlap`` after the last (cut at a
space when there is one near the end), at most :data:`MAX_PASSAGES` per document; a document then
scores as its best passage. Either way :attr:`Passages.cut` lists the documents that lost text.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InvalidInputError
from ..text.base import MAX_TEXT_CHARS

MODES = ("chunk", "trim")
DEFAULT_MODE = "chunk"  # measured against trim: README "Measured quality"
DEFAULT_CHUNK_CHARS = 1000
DEFAULT_OVERLAP = 200
MAX_PASSAGES = 100  # per document: a 1 MB document keeps its first ~80,000 characters, and says so
MIN_CHUNK, MAX_CHUNK = 100, MAX_TEXT_CHARS


@dataclass(frozen=True)
class PassageSettings:
    """How documents become passages; part of every document index's key."""

    mode: str = DEFAULT_MODE
    chunk_chars: int = DEFAULT_CHUNK_CHARS
    overlap: int = DEFAULT_OVERLAP
    trim_chars: int = MAX_TEXT_CHARS

    def __post_init__(self):
        if self.mode not in MODES:
            raise InvalidInputError(f"unknown passage mode {self.mode!r}: choose chunk or trim")
        if not MIN_CHUNK <= self.chunk_chars <= MAX_CHUNK:
            raise InvalidInputError(
                f"chunk size must be {MIN_CHUNK}..{MAX_CHUNK:,} characters, got {self.chunk_chars}"
            )
        if not 0 <= self.overlap <= self.chunk_chars // 2:
            raise InvalidInputError(f"overlap must be 0..{self.chunk_chars // 2} characters (half a chunk)")
        if not MIN_CHUNK <= self.trim_chars <= 10 * MAX_TEXT_CHARS:
            raise InvalidInputError(f"trim length must be {MIN_CHUNK}..{10 * MAX_TEXT_CHARS:,} characters")

    @property
    def label(self) -> str:
        """A short name for folder names and keys: ``chunk1000-200`` or ``trim8000``."""
        if self.mode == "trim":
            return f"trim{self.trim_chars}"
        return f"chunk{self.chunk_chars}-{self.overlap}"

    def describe(self) -> str:
        """In words, for the page and the CLI."""
        if self.mode == "trim":
            return f"trimmed to the first {self.trim_chars:,} characters"
        return f"split into passages of {self.chunk_chars:,} characters overlapping by {self.overlap:,}"

    def as_dict(self) -> dict:
        if self.mode == "trim":
            return {"mode": "trim", "trim_chars": self.trim_chars}
        return {"mode": "chunk", "chunk_chars": self.chunk_chars, "overlap": self.overlap}


@dataclass
class Passages:
    """Every passage of a collection: ``doc[p]`` is its document, ``start[p]:end[p]`` its characters."""

    doc: np.ndarray
    start: np.ndarray
    end: np.ndarray
    cut: list[int]  # documents that lost text (trimmed, or past MAX_PASSAGES)

    def __len__(self) -> int:
        return int(self.doc.shape[0])

    def texts(self, collection) -> list[str]:
        return [collection.texts[d][s:e] for d, s, e in zip(self.doc, self.start, self.end, strict=True)]

    def spans(self) -> np.ndarray:
        """(P, 3) int64: document, start, end."""
        return np.stack([self.doc, self.start, self.end], axis=1).astype(np.int64)


def _chunk_spans(text: str, size: int, overlap: int) -> tuple[list[tuple[int, int]], bool]:
    spans, start, n = [], 0, len(text)
    while start < n and len(spans) < MAX_PASSAGES:
        end = min(n, start + size)
        if end < n:  # end at a space in the chunk's last fifth, if there is one
            space = text.rfind(" ", start + size * 4 // 5, end)
            space = max(space, text.rfind("\n", start + size * 4 // 5, end))
            if space > start:
                end = space
        if text[start:end].strip():
            spans.append((start, end))
        if end >= n:
            break
        start = max(end - overlap, start + 1)
        while start < end and not text[start - 1].isspace() and overlap:  # start at a word
            start += 1
            if end - start < overlap // 2:
                break
    return spans, start < n and len(spans) >= MAX_PASSAGES and spans[-1][1] < n


def split_passages(texts, settings: PassageSettings) -> Passages:
    """The passages of ``texts`` under ``settings`` (see the module docstring)."""
    doc, start, end, cut = [], [], [], []
    for i, text in enumerate(texts):
        if settings.mode == "trim":
            spans, lost = [(0, min(len(text), settings.trim_chars))], len(text) > settings.trim_chars
        else:
            spans, lost = _chunk_spans(text, settings.chunk_chars, settings.overlap)
            if not spans:
                spans = [(0, len(text))]
        for s, e in spans:
            doc.append(i)
            start.append(s)
            end.append(e)
        if lost:
            cut.append(i)
    as_int = lambda v: np.asarray(v, dtype=np.int64)  # noqa: E731
    return Passages(as_int(doc), as_int(start), as_int(end), cut)
