"""The text embedder interface, and the cleaning every text goes through before a model sees it.

A backend subclasses :class:`TextEmbedder` and implements :meth:`TextEmbedder.embed_batch`;
:meth:`TextEmbedder.embed` adds validation, batching and normalisation for all of them.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from ..core.mathops import normalize
from ..errors import InvalidInputError, WorkCancelledError
from .precomputed import precomputed_for

MAX_TEXT_CHARS = 8000  # OpenAI's embedding models take about 8k tokens; we trim by characters
MAX_WORDS = 2000  # the most items one request from the app may embed
# The most characters one request may embed, summed over its items: local models read every
# character (300 items of 20,000 took 87-105 s and 0.8 GB on 2 cores), so this bounds a
# request at a few seconds. 2,000 items of 500 characters fit.
MAX_REQUEST_CHARS = 1_000_000


def check_total_chars(texts: Iterable[str], limit: int = MAX_REQUEST_CHARS) -> None:
    """Raise :class:`InvalidInputError` when ``texts`` hold more than ``limit`` characters together."""
    total = sum(len(t) for t in texts)
    if total > limit:
        raise InvalidInputError(
            f"{total:,} characters is too much text at once: at most {limit:,} per request. "
            "Use fewer or shorter items (split the list, or keep the part of each text that matters)."
        )


class TextEmbedder:
    """Turns a list of strings into float32, L2-normalised vectors (one row per string)."""

    model_id: str = ""
    dim: int = 0
    batch_size: int = 256
    description: str = ""

    def embed_batch(self, texts: list[str]) -> np.ndarray:
        """Return one vector per text (any scale); implemented by each backend."""
        raise NotImplementedError

    def fingerprint(self) -> str:
        """A string that changes whenever this model's vectors could change."""
        return self.model_id

    def embed(
        self,
        texts: Sequence[str],
        progress: Callable[[int, int], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> np.ndarray:
        """Embed ``texts`` in batches; returns an (n, dim) float32 array of unit vectors.

        Raises :class:`InvalidInputError` when the texts hold more than
        :data:`MAX_REQUEST_CHARS` characters together (after cleaning), and
        :class:`WorkCancelledError` when ``should_stop()`` is true before a batch (so stopped
        work ends after at most the batch in progress). Texts the model's shipped table knows
        (:mod:`embeddings.text.precomputed`) take their stored vectors; only the rest are embedded.
        """
        texts = [clean_text(t) for t in texts]
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        check_total_chars(texts)
        table = precomputed_for(self) if self.use_precomputed else None
        if table is not None:  # shipped vectors for known texts; the model embeds only the rest
            rows = table.lookup(texts)
            out = np.empty((len(texts), self.dim), dtype=np.float32)
            known = [i for i, r in enumerate(rows) if r is not None]
            out[known] = table.vectors[[rows[i] for i in known]]
            missing = [i for i, r in enumerate(rows) if r is None]
            if missing:
                out[missing] = self._embed_batches([texts[i] for i in missing], progress, should_stop)
            elif progress:
                progress(len(texts), len(texts))
            return normalize(out)
        return normalize(self._embed_batches(texts, progress, should_stop))

    use_precomputed: bool = True  # False for the script that makes the tables

    def _embed_batches(self, texts: list[str], progress, should_stop) -> np.ndarray:
        chunks = []
        for start in range(0, len(texts), self.batch_size):
            if should_stop is not None and should_stop():
                raise WorkCancelledError(
                    f"{self.model_id}: stopped after {start:,} of {len(texts):,} texts (nobody is waiting)"
                )
            batch = texts[start : start + self.batch_size]
            vectors = np.asarray(self.embed_batch(batch), dtype=np.float32)
            if vectors.shape != (len(batch), self.dim):
                raise RuntimeError(
                    f"{self.model_id} returned shape {vectors.shape} for {len(batch)} texts, "
                    f"expected ({len(batch)}, {self.dim})"
                )
            chunks.append(vectors)
            if progress:
                progress(min(start + len(batch), len(texts)), len(texts))
        return np.concatenate(chunks)


# Control characters; lone UTF-16 surrogates (not encodable as UTF-8, so no model or hash can
# take them); invisible characters that only hide or reorder text (zero-width space, word
# joiner, byte-order mark, bidi embeddings/overrides/isolates). Zero-width (non-)joiners stay:
# emoji sequences and Persian/Indic scripts need them.
_CONTROL = re.compile(
    r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\u200b\u2060\ufeff\u202a-\u202e\u2066-\u2069]"
)


def normalize_text(text: str) -> str:
    """NFC, control and invisible formatting characters replaced by spaces, whitespace collapsed."""
    return " ".join(_CONTROL.sub(" ", unicodedata.normalize("NFC", text)).split())


def clean_text(text: str) -> str:
    """Normalise one input with :func:`normalize_text`.

    Raises :class:`InvalidInputError` for non-strings and for text that is empty after cleaning.
    """
    if not isinstance(text, str):
        raise InvalidInputError(f"expected text, got {type(text).__name__}")
    cleaned = normalize_text(text)
    if not cleaned:
        raise InvalidInputError("an input is empty or only whitespace/control characters")
    return cleaned


def trim_text(text: str, limit: int = MAX_TEXT_CHARS) -> tuple[str, bool]:
    """Return ``text`` cut to ``limit`` characters and whether it was cut."""
    return (text[:limit], True) if len(text) > limit else (text, False)


def parse_word_list(raw: str, max_items: int = MAX_WORDS) -> list[str]:
    """Split user input on commas and newlines into cleaned, de-duplicated items (order kept).

    Phrases are allowed. Raises :class:`InvalidInputError` when nothing is left or there are
    more than ``max_items`` items.
    """
    if not isinstance(raw, str):
        raise InvalidInputError("the word list must be text")
    items = _split_items(raw)[0]
    if not items:
        raise InvalidInputError("the word list is empty: type words separated by commas or new lines")
    if len(items) > max_items:
        raise InvalidInputError(f"{len(items)} items is too many: at most {max_items} at once")
    check_total_chars(items)
    return items


def duplicate_items(raw: str) -> list[tuple[str, str]]:
    """``(dropped, kept)`` for each item :func:`parse_word_list` leaves out as a repeat of an
    earlier one (case ignored), in input order: ``"cat, Cat, CAT"`` gives ``[("Cat", "cat"),
    ("CAT", "cat")]``. Not text: ``[]`` (``parse_word_list`` says why)."""
    return _split_items(raw)[1] if isinstance(raw, str) else []


def _split_items(raw: str) -> tuple[list[str], list[tuple[str, str]]]:
    """The cleaned items of ``raw`` split on commas, new lines and semicolons: the first of each
    (case ignored) in order, and ``(dropped, kept)`` for every later repeat."""
    kept: dict[str, str] = {}
    dropped = []
    for part in re.split(r"[,\n;]", raw):
        cleaned = normalize_text(part)
        if not cleaned:
            continue
        key = cleaned.casefold()
        if key in kept:
            dropped.append((cleaned, kept[key]))
        else:
            kept[key] = cleaned
    return list(kept.values()), dropped


def iter_batches(items: Sequence, size: int) -> Iterable[Sequence]:
    """Yield consecutive slices of ``items`` of at most ``size``."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def trimmed_indices(texts: Sequence[str], limit: int = MAX_TEXT_CHARS) -> list[int]:
    """Indices of ``texts`` that the OpenAI models will cut to ``limit`` characters.

    Counts characters after the same cleaning :meth:`TextEmbedder.embed` applies (so runs
    of whitespace count once). Inputs that are not valid text are skipped here; ``embed``
    reports them.
    """
    out = []
    for i, text in enumerate(texts):
        try:
            cleaned = clean_text(text)
        except InvalidInputError:
            continue
        if trim_text(cleaned, limit)[1]:
            out.append(i)
    return out
