"""What the image pages show, as plain numpy: tiles, frames, class summaries, map checks.

Pure helpers (no streamlit, no plotly): tiling thumbnails into one image, the green/red frame
and its caption mark, the most confused class pairs and super-group purity of a confusion
matrix, class names and precision of neighbours in an index, and how many of an image's
true neighbours a 2-D map keeps close.
"""

from __future__ import annotations

import numpy as np

SAME_CLASS = (46, 160, 67)
OTHER_CLASS = (207, 34, 46)
CIFAR_VEHICLES = {"airplane", "automobile", "ship", "truck"}


def mosaic(thumbs: list[np.ndarray], columns: int, gap: int = 6, background: int = 255) -> np.ndarray:
    """Tile equally sized H x W x 3 thumbnails into one image, row by row (make them with
    :func:`embeddings.image.io.thumbnail`, which fits any image into one tile size)."""
    if not thumbs:
        raise ValueError("no thumbnails to tile")
    h, w = thumbs[0].shape[:2]
    odd = next((t.shape for t in thumbs if t.shape != thumbs[0].shape), None)
    if odd is not None:
        raise ValueError(f"thumbnails must share one size: {thumbs[0].shape} and {odd}")
    rows = -(-len(thumbs) // columns)
    out = np.full((rows * (h + gap) - gap, columns * (w + gap) - gap, 3), background, dtype=np.uint8)
    for i, thumb in enumerate(thumbs):
        r, c = divmod(i, columns)
        out[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = thumb
    return out


def framed(thumb: np.ndarray, same_class: bool | None, width: int = 5) -> np.ndarray:
    """The thumbnail with a green (same class) or red (other class) frame; None leaves it bare."""
    if same_class is None:
        return thumb
    out = thumb.copy()
    colour = SAME_CLASS if same_class else OTHER_CLASS
    out[:width], out[-width:], out[:, :width], out[:, -width:] = colour, colour, colour, colour
    return out


def class_mark(same_class: bool | None) -> str:
    """The caption prefix matching :func:`framed`: "✓ " same class, "✗ " another, "" unknown."""
    return "" if same_class is None else ("✓ " if same_class else "✗ ")


def worst_confusions(confusion: np.ndarray, classes: list[str], top: int = 3) -> list[tuple[str, str, float]]:
    """The largest off-diagonal shares: (query class, neighbour class, share), largest first."""
    off = confusion.copy()
    np.fill_diagonal(off, -1)
    flat = np.argsort(off, axis=None)[::-1][:top]
    return [
        (classes[i], classes[j], float(off[i, j]))
        for i, j in zip(*np.unravel_index(flat, off.shape), strict=True)
    ]


def group_purity(confusion: np.ndarray, classes: list[str], group: set[str]) -> tuple[float, float] | None:
    """(share of neighbours in the same super-group for queries in ``group``, and for the rest).

    None when the class names do not split into the group and the rest (not CIFAR-10 like).
    """
    inside = [i for i, c in enumerate(classes) if c in group]
    outside = [i for i, c in enumerate(classes) if c not in group]
    if not inside or not outside:
        return None
    in_share = float(confusion[np.ix_(inside, inside)].sum(axis=1).mean())
    out_share = float(confusion[np.ix_(outside, outside)].sum(axis=1).mean())
    return in_share, out_share


def valid_image_id(value, count: int) -> bool:
    """Whether ``value`` is an image id of an index with ``count`` images (a clicked or stored id)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and 0 <= value < count


def class_name(index, i: int) -> str | None:
    """Class name of stored item ``i``, or None for unlabelled collections."""
    if index.labels is None or not index.classes:
        return None
    return index.classes[int(index.labels[i])]


def precision_of(index, ids, query_label: str | None) -> float | None:
    """Share of ``ids`` whose class is ``query_label`` (None without labels)."""
    if query_label is None or index.labels is None:
        return None
    return float(np.mean([class_name(index, int(i)) == query_label for i in ids]))


def kept_on_map(layout: np.ndarray, selected: int, ids: np.ndarray) -> float:
    """Share of ``ids`` (the true neighbours of ``selected``) that are also its nearest points on ``layout``."""
    d = np.linalg.norm(layout - layout[selected], axis=1)
    d[selected] = np.inf
    nearest_2d = set(np.argsort(d)[: len(ids)].tolist())
    return len(nearest_2d & set(ids.tolist())) / len(ids)
