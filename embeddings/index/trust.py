"""How far to trust an index's map, point by point: computed once per map and k, saved beside it.

The file ``trust-<method>-k<k>-<key>.npy`` holds each image's kept-neighbour count and its
trustworthiness term (:class:`embeddings.core.trust.MapTrust`); its key is the map's key
(the index's embeddings checksum, method, perplexity, seed) plus ``k``, so another map, k or
index never reads it. Written atomically.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..core.files import load_npy, save_npy_atomic
from ..core.fingerprint import fingerprint
from ..core.projection import DEFAULT_SEED
from ..core.trust import DEFAULT_K, MapTrust, check_k, map_trust
from .maps import check_map_args, index_map, map_key

TRUST_VERSION = "trust-1"


def _trust_path(index, method: str, perplexity: float, seed: int, k: int):
    key = fingerprint(map_key(index, method, perplexity, seed), k, TRUST_VERSION)
    return index.path / f"trust-{method}-k{k}-{key}.npy"


def saved_map_trust(
    index, method: str = "tsne", perplexity: float = 30.0, seed: int = DEFAULT_SEED, k: int = DEFAULT_K
) -> MapTrust | None:
    """The neighbourhood preservation saved for this map and ``k``, or None (none yet, or unreadable)."""
    check_map_args(index, method, perplexity)
    k = check_k(k, index.count)
    path = _trust_path(index, method, perplexity, seed, k)
    if not path.exists():
        return None
    try:
        array = load_npy(path)
    except (OSError, ValueError):
        return None
    if array.shape != (index.count, 2) or not np.isfinite(array).all():
        return None
    kept = array[:, 0]
    if (kept < 0).any() or (kept > k).any() or (array[:, 1] < 0).any():
        return None
    return MapTrust.from_array(k, array)


def index_map_trust(
    index,
    method: str = "tsne",
    perplexity: float = 30.0,
    seed: int = DEFAULT_SEED,
    k: int = DEFAULT_K,
    progress: Callable[[int, int], None] | None = None,
) -> MapTrust:
    """How well ``index``'s map (computed first if need be) keeps each image's ``k`` nearest
    neighbours; computed on first use and saved beside the map."""
    found = saved_map_trust(index, method, perplexity, seed, k)
    if found is not None:
        return found
    layout = index_map(index, method, perplexity, seed)
    trust = map_trust(index.embeddings, layout, k, progress=progress)
    save_npy_atomic(_trust_path(index, method, perplexity, seed, trust.k), trust.as_array())
    return trust
