"""How well a map keeps neighbourhoods: per-point neighbourhood preservation and trustworthiness.

For high-dimensional vectors ``X`` (cosine) and their 2-D or 3-D layout ``Y`` (Euclidean):

* a point's **share kept** is the fraction of its k nearest neighbours in ``X`` that are also
  among its k nearest points in ``Y``;
* the map's **trustworthiness** (Venna & Kaski 2001; the same formula as
  ``sklearn.manifold.trustworthiness``) penalises each map neighbour that is not a true
  neighbour by how far down the true ranking it sits:
  ``T(k) = 1 - 2 / (n k (2n - 3k - 1)) * sum_i sum_{j in U_i} (r(i, j) - k)``.

Both are computed from k-NN sets, in blocks of rows, never the ``n x n`` rank matrix:
the true rank of a map neighbour is one plus the number of points more similar to ``i``
than it, counted on the block's row of similarities. Memory is ``block x n`` floats.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..errors import InvalidInputError
from .mathops import normalize

DEFAULT_K = 10
BLOCK_ROWS = 512  # rows of the similarity matrix held at once: 512 x 10,000 float32 = 20 MB


@dataclass(frozen=True)
class MapTrust:
    """Per-point neighbourhood preservation of one map at one ``k``.

    ``kept[i]``: how many of point i's k true nearest neighbours are among its k nearest on the
    map; ``penalty[i]``: point i's term of the trustworthiness sum, ``sum (r(i, j) - k)`` over its
    map neighbours j that are not true neighbours.
    """

    k: int
    kept: np.ndarray
    penalty: np.ndarray

    @property
    def n(self) -> int:
        return int(len(self.kept))

    @property
    def shares(self) -> np.ndarray:
        """Each point's share of its k true neighbours kept on the map (0..1)."""
        return self.kept.astype(np.float64) / self.k

    @property
    def mean_share(self) -> float:
        return float(self.shares.mean())

    @property
    def trustworthiness(self) -> float:
        """Venna & Kaski's trustworthiness of the whole map (1.0: no false neighbours)."""
        n, k = self.n, self.k
        return float(1.0 - 2.0 / (n * k * (2.0 * n - 3.0 * k - 1.0)) * float(self.penalty.sum()))

    def histogram(self) -> np.ndarray:
        """How many points kept 0, 1, …, k of their neighbours (length k + 1)."""
        return np.bincount(self.kept.astype(np.int64), minlength=self.k + 1)

    def as_array(self) -> np.ndarray:
        """(n, 2) float64: kept, penalty, the form saved to disk (:meth:`from_array` reads it)."""
        return np.stack([self.kept.astype(np.float64), self.penalty.astype(np.float64)], axis=1)

    @classmethod
    def from_array(cls, k: int, array: np.ndarray) -> MapTrust:
        return cls(int(k), array[:, 0].astype(np.int64), array[:, 1].astype(np.float64))


def max_k(n_points: int) -> int:
    """The largest k trustworthiness is defined for with ``n_points`` points (k < n / 2)."""
    return max(0, (n_points - 1) // 2)


def check_k(k, n_points: int) -> int:
    """``k`` as an int, or :class:`InvalidInputError` unless 1 <= k < n_points / 2."""
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool):
        raise InvalidInputError(f"k must be a whole number, got {k!r}")
    if n_points < 3:
        raise InvalidInputError(f"neighbourhoods need at least 3 points, got {n_points}")
    if not 1 <= k <= max_k(n_points):
        raise InvalidInputError(
            f"k must be between 1 and {max_k(n_points)} (below half the {n_points} points), got {k}"
        )
    return int(k)


def map_neighbours(layout: np.ndarray, k: int) -> np.ndarray:
    """(n, k) indices of each point's k nearest other points on the map (Euclidean), nearest first."""
    from scipy.spatial import cKDTree

    layout = np.asarray(layout, dtype=np.float64)
    n = len(layout)
    _, found = cKDTree(layout).query(layout, k=k + 1)
    found = np.asarray(found).reshape(n, k + 1)
    keep = found != np.arange(n)[:, None]
    # a point with k or more exact duplicates on the map may not come back first: drop the extra one
    missing_self = keep.all(axis=1)
    keep[missing_self, -1] = False
    return found[keep].reshape(n, k)


def map_trust(
    vectors: np.ndarray,
    layout: np.ndarray,
    k: int = DEFAULT_K,
    progress: Callable[[int, int], None] | None = None,
) -> MapTrust:
    """Neighbourhood preservation of ``layout`` (n, 2 or 3) for ``vectors`` (n, d; cosine).

    ``progress(done, total)`` (points scored so far, all points) is called after each block of rows.
    """
    vectors = np.asarray(vectors, dtype=np.float32)
    layout = np.asarray(layout, dtype=np.float64)
    if vectors.ndim != 2 or layout.ndim != 2 or len(vectors) != len(layout):
        raise InvalidInputError(
            f"expected one map point per vector: got vectors {vectors.shape} and layout {layout.shape}"
        )
    if layout.shape[1] not in (2, 3):
        raise InvalidInputError(f"a map has 2 or 3 columns, got {layout.shape[1]}")
    if not (np.isfinite(vectors).all() and np.isfinite(layout).all()):
        raise InvalidInputError("the vectors or the map contain NaN or infinite values")
    n = len(vectors)
    k = check_k(k, n)
    unit = normalize(vectors)
    on_map = map_neighbours(layout, k)
    kept = np.zeros(n, dtype=np.int64)
    penalty = np.zeros(n, dtype=np.float64)
    for start in range(0, n, BLOCK_ROWS):
        stop = min(n, start + BLOCK_ROWS)
        rows = np.arange(start, stop)
        sims = unit[start:stop] @ unit.T
        sims[rows - start, rows] = -np.inf  # a point is not its own neighbour
        true = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        mine = on_map[start:stop]
        is_true = (mine[:, :, None] == true[:, None, :]).any(axis=2)  # (block, k)
        kept[start:stop] = is_true.sum(axis=1)
        # rank of each map neighbour in the true ordering: 1 + how many points are more similar
        target = np.take_along_axis(sims, mine, axis=1)  # (block, k)
        for col in range(k):
            false = ~is_true[:, col]
            if not false.any():
                continue
            ranks = 1 + (sims[false] > target[false, col][:, None]).sum(axis=1)
            penalty[start:stop][false] += np.maximum(ranks - k, 0)
        if progress:
            progress(stop, n)
    return MapTrust(k, kept, penalty)


def true_neighbours(vectors: np.ndarray, k: int) -> np.ndarray:
    """(n, k) indices of each vector's k most cosine-similar others, most similar first (n x n at once:
    for small sets such as word maps)."""
    unit = normalize(np.asarray(vectors, dtype=np.float32))
    k = check_k(k, len(unit))
    sims = unit @ unit.T
    np.fill_diagonal(sims, -np.inf)
    return np.argsort(-sims, axis=1, kind="stable")[:, :k]


@dataclass(frozen=True)
class LayoutComparison:
    """Two maps of the same vectors: each one's :class:`MapTrust`, and per point which true
    neighbours only one of them keeps nearby."""

    first: MapTrust
    second: MapTrust
    only_first: list[list[int]]
    only_second: list[list[int]]

    def most_different(self, top: int = 10) -> list[int]:
        """Points whose kept share differs most between the maps, biggest difference first (ties: lower index)."""
        diff = np.abs(self.first.kept - self.second.kept)
        order = np.argsort(-diff, kind="stable")
        return [int(i) for i in order[:top] if diff[i] > 0]


def compare_layouts(
    vectors: np.ndarray, first: np.ndarray, second: np.ndarray, k: int = DEFAULT_K
) -> LayoutComparison:
    """Compare how two layouts of ``vectors`` (e.g. t-SNE and PCA) keep each point's k true neighbours."""
    trust_a, trust_b = map_trust(vectors, first, k), map_trust(vectors, second, k)
    true = true_neighbours(vectors, k)
    near_a, near_b = map_neighbours(first, k), map_neighbours(second, k)
    only_a, only_b = [], []
    for i, row in enumerate(true):
        in_a, in_b = set(near_a[i].tolist()), set(near_b[i].tolist())
        only_a.append([int(j) for j in row if j in in_a and j not in in_b])
        only_b.append([int(j) for j in row if j in in_b and j not in in_a])
    return LayoutComparison(trust_a, trust_b, only_a, only_b)
