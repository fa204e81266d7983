"""Typed word lists for the text pages, as plain data: parsing, display labels, pair tables.

Pure helpers (no streamlit, no plotly): ``group: word, word`` parsing (:class:`Groups`,
:func:`parse_groups`), short unique labels, the upper-triangle pair tables, one-word
rankings, Spearman rank correlation, the t-SNE perplexity clamp, and which items an OpenAI
model will trim.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from ..errors import InvalidInputError
from .base import MAX_WORDS, check_total_chars, normalize_text, trimmed_indices

DEFAULT_WORDS = "king, queen, dog, cat, kitten, car, happy, joyful, sad"

DEFAULT_GROUPS = """\
animals: dog, cat, horse, cow, lion, tiger, elephant
vehicles: car, bus, truck, bicycle, train, airplane, boat
fruits: apple, banana, orange, grape, mango, pear, cherry
emotions: happy, sad, angry, afraid, joyful, calm, anxious"""

UNGROUPED = "ungrouped"

# Word-similarity display limits: printed values in cells, then no heatmap at all.
CELL_TEXT_MAX = 30
HEATMAP_MAX = 150


def _clean(part: str) -> str:
    return normalize_text(part)


def trimmed_items(max_chars: int | None, items: list[str]) -> list[str]:
    """Short labels of the items a model keeping ``max_chars`` characters of each input will cut
    (counted after the usual whitespace cleaning; ``None``: no limit, nothing is cut). The models
    trim the text themselves (the OpenAI ones: :data:`embeddings.text.base.MAX_TEXT_CHARS`); this
    only reports it. ``max_chars`` comes from :func:`embeddings.registry.max_chars`."""
    if max_chars is None:
        return []
    return [short_label(items[i]) for i in trimmed_indices(items, max_chars)]


# Every ASCII punctuation character CommonMark lets a backslash escape that Markdown, GitHub's
# extensions, KaTeX ($), Streamlit's :colour[...] / :icon: directives or HTML could act on.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~$:&=/\"'^])")


def escape_markdown(text: object) -> str:
    """``text`` escaped so that Streamlit's Markdown shows it as typed: no bold, math, link,
    image, HTML tag or icon; newlines become spaces (so no line can start a heading or list)."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(str(text).splitlines()))


def short_label(text: str, limit: int = 28) -> str:
    """``text`` cut to ``limit`` characters with an ellipsis (and its length when very long)."""
    if len(text) <= limit:
        return text
    suffix = f" ({len(text):,} chars)" if len(text) > 200 else ""
    return text[: max(1, limit - 1)].rstrip() + "…" + suffix


def unique_labels(texts: list[str], limit: int = 28) -> list[str]:
    """Short display labels, made unique (plotly merges equal category labels)."""
    labels: list[str] = []
    seen: dict[str, int] = {}
    for text in texts:
        label = short_label(text, limit)
        if label in seen:
            seen[label] += 1
            label = f"{label} ({seen[label]})"
        seen.setdefault(label, 1)
        labels.append(label)
    return labels


@dataclass
class Groups:
    """Words typed as ``group: word, word`` lines, flattened: one entry per point."""

    words: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.words)

    @property
    def group_names(self) -> list[str]:
        return list(dict.fromkeys(self.groups))


def parse_groups(raw: str, max_items: int = MAX_WORDS) -> Groups:
    """Parse lines of ``group: word, word, ...`` into words and their group names.

    Lines without a colon go to the group ``ungrouped``; blank lines and lines starting with
    ``#`` are skipped. Words are split on commas and semicolons; a word repeated (in any
    group, ignoring case) keeps its first group and is noted. Raises
    :class:`InvalidInputError` when no words are left or there are more than ``max_items``.
    """
    if not isinstance(raw, str):
        raise InvalidInputError("the groups must be text")
    result = Groups()
    seen: dict[str, str] = {}
    for line in raw.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, rest = line.partition(":")
        if sep:
            group = _clean(name) or UNGROUPED
        else:
            group, rest = UNGROUPED, line
        for part in re.split(r"[,;]", rest):
            word = _clean(part)
            if not word:
                continue
            key = word.casefold()
            if key in seen:
                result.notes.append(f"“{word}” appears twice; kept in group “{seen[key]}”.")
                continue
            seen[key] = group
            result.words.append(word)
            result.groups.append(group)
    if not result.words:
        raise InvalidInputError("no words to map: type lines like `animals: dog, cat, horse`")
    if len(result.words) > max_items:
        raise InvalidInputError(f"{len(result.words)} words is too many: at most {max_items} at once")
    check_total_chars(result.words)
    return result


def upper_triangle(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row indices, column indices and values of the strictly upper triangle (each pair once)."""
    rows, cols = np.triu_indices(len(matrix), k=1)
    return rows, cols, np.asarray(matrix)[rows, cols]


def similar_pairs(labels: list[str], sims: np.ndarray, k: int = 10):
    """Return (most similar, least similar) pairs as DataFrames sorted by cosine similarity.

    Each has columns ``word A``, ``word B``, ``cosine similarity`` and at most ``k`` rows;
    both are empty when there are fewer than two words.
    """
    import pandas as pd

    rows, cols, values = upper_triangle(sims)
    columns = ["word A", "word B", "cosine similarity"]
    if len(values) == 0:
        empty = pd.DataFrame(columns=columns)
        return empty, empty.copy()
    k = min(k, len(values))
    order = np.argsort(-values, kind="stable")
    top, bottom = order[:k], order[::-1][:k]

    def frame(idx: np.ndarray) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "word A": [labels[i] for i in rows[idx]],
                "word B": [labels[j] for j in cols[idx]],
                "cosine similarity": values[idx].astype(float).round(4),
            }
        )

    return frame(top), frame(bottom)


def ranking(labels: list[str], sims: np.ndarray, index: int) -> tuple[list[str], np.ndarray]:
    """Other items ordered by their similarity to item ``index`` (most similar first)."""
    scores = np.asarray(sims[index], dtype=float)
    others = [i for i in np.argsort(-scores, kind="stable") if i != index]
    return [labels[i] for i in others], scores[others]


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two equally long vectors (ties get average ranks)."""
    import pandas as pd

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise InvalidInputError("rank correlation needs two vectors of the same length")
    if len(a) < 2:
        raise InvalidInputError("rank correlation needs at least two pairs (three words)")
    ra, rb = pd.Series(a).rank().to_numpy(), pd.Series(b).rank().to_numpy()
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def clamp_perplexity(requested: float, n_points: int) -> tuple[float, str | None]:
    """The perplexity to use for ``n_points`` and, when it had to change, why.

    t-SNE needs ``0 < perplexity < n_points``; we use at most ``min(50, n_points - 1)``.
    """
    from ..core.projection import max_perplexity

    limit = max_perplexity(n_points)
    if requested <= limit:
        return float(requested), None
    return limit, (
        f"Perplexity {requested:g} is too high for {n_points} points: it must be below the number "
        f"of points, so the map uses {limit:g}. Add more words to use a higher value."
    )
