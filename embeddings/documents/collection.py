"""A collection of text documents: ids, titles, texts, optional group labels, a content fingerprint."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..core.fingerprint import fingerprint
from ..errors import InvalidInputError

MAX_DOCUMENTS = 20_000  # more than this is refused before anything is embedded
MAX_TOTAL_CHARS = 12_000_000  # a 10 MB upload decodes to at most ~10 M characters


class DocumentCollection:
    """Documents in a fixed order; row ``i`` of an index is document ``i``.

    ``labels`` (ints into ``classes``) come from the documents' groups; a collection whose
    documents have no group has ``labels`` None and no classes. The fingerprint follows every
    id, title, text and group, so any changed byte gives another index.
    """

    def __init__(
        self,
        name: str,
        source: str,
        ids: Sequence[str],
        titles: Sequence[str],
        texts: Sequence[str],
        groups: Sequence[str | None] | None = None,
    ):
        n = len(texts)
        if n == 0:
            raise InvalidInputError(f"{name} holds no documents with text")
        if n > MAX_DOCUMENTS:
            raise InvalidInputError(
                f"{n:,} documents is more than the {MAX_DOCUMENTS:,} one collection may hold: "
                "keep the ones you want to search, or join short ones into longer documents"
            )
        if not (len(ids) == len(titles) == n) or (groups is not None and len(groups) != n):
            raise InvalidInputError("ids, titles, texts and groups must have one entry per document")
        total = sum(len(t) for t in texts)
        if total > MAX_TOTAL_CHARS:
            raise InvalidInputError(
                f"{total:,} characters is more than the {MAX_TOTAL_CHARS:,} a collection may hold"
            )
        self.name, self.source = name, source
        self.ids, self.titles, self.texts = list(ids), list(titles), list(texts)
        named = [g for g in (groups or []) if g]
        if named and len(named) == n:
            self.classes = sorted(set(named))
            lookup = {c: i for i, c in enumerate(self.classes)}
            self.labels: np.ndarray | None = np.array([lookup[g] for g in groups], dtype=np.int64)
        else:  # no groups, or only some documents have one: unlabelled
            self.classes, self.labels = [], None
        self.groups = [self.classes[i] for i in self.labels] if self.labels is not None else [""] * n
        self._fingerprint = fingerprint(name, self.ids, self.titles, self.texts, self.groups, length=16)

    def __len__(self) -> int:
        return len(self.texts)

    def fingerprint(self) -> str:
        """Changes with any id, title, text or group."""
        return self._fingerprint

    def describe(self) -> dict:
        """What an index key records of the collection (the index module adds the passage settings)."""
        return {
            "name": self.name,
            "source": self.source,
            "count": len(self),
            "fingerprint": self._fingerprint,
            "classes": list(self.classes),
        }

    def first_line(self, i: int, limit: int = 120) -> str:
        """Document ``i``'s title, else its first non-empty line, cut to ``limit`` characters."""
        title = self.titles[i].strip()
        if not title:
            title = next((line.strip() for line in self.texts[i].splitlines() if line.strip()), "")
        return title if len(title) <= limit else title[: limit - 1] + "…"
