"""2-D maps of an index's embeddings, computed once and kept beside the index on disk.

Large maps use openTSNE's FFT-accelerated t-SNE (PCA initialisation, approximate
neighbours), which lays out 10,000 points in well under a minute on two cores where
scikit-learn's exact settings take minutes. The result is keyed by the index's
embeddings checksum and the map parameters, and written atomically.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..core.files import load_npy, save_npy_atomic
from ..core.fingerprint import fingerprint
from ..core.projection import DEFAULT_SEED, check_perplexity, fast_tsne, pca
from ..errors import InvalidInputError

MAP_METHODS = ("tsne", "pca")


def map_key(index, method: str, perplexity: float, seed: int) -> str:
    """The fingerprint of a map: the index's embeddings checksum and every map parameter."""
    return fingerprint(index.embeddings_sha256, method, perplexity, seed, "openTSNE-2")


def _map_path(index, method: str, perplexity: float, seed: int):
    return index.path / f"map-{method}-{map_key(index, method, perplexity, seed)}.npy"


def check_map_args(index, method: str, perplexity: float) -> None:
    if method not in MAP_METHODS:
        raise InvalidInputError(f"unknown map method {method!r}; choose one of {', '.join(MAP_METHODS)}")
    if method == "tsne":
        check_perplexity(perplexity, index.count)


def saved_index_map(index, method: str = "tsne", perplexity: float = 30.0, seed: int = DEFAULT_SEED):
    """The map saved on disk for these settings, or None when there is none (or it is unreadable)."""
    check_map_args(index, method, perplexity)
    path = _map_path(index, method, perplexity, seed)
    if not path.exists():
        return None
    try:
        layout = load_npy(path)
    except (OSError, ValueError):
        return None
    return layout if layout.shape == (index.count, 2) and np.isfinite(layout).all() else None


def index_map(
    index,
    method: str = "tsne",
    perplexity: float = 30.0,
    seed: int = DEFAULT_SEED,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Return the (n, 2) map of ``index``'s embeddings, computing and saving it on first use."""
    layout = saved_index_map(index, method, perplexity, seed)
    if layout is not None:
        return layout
    if method == "tsne":
        layout = fast_tsne(index.embeddings, perplexity=perplexity, seed=seed, progress=progress)
    else:
        layout = pca(index.embeddings, 2)
    save_npy_atomic(_map_path(index, method, perplexity, seed), layout)
    return layout
