"""Vector math on numpy arrays: normalising, cosine similarity, top-k neighbours, analogies."""

from __future__ import annotations

import numpy as np

from ..errors import InvalidInputError


def normalize(vectors: np.ndarray) -> np.ndarray:
    """Return float32 rows scaled to unit L2 norm (zero rows stay zero)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim == 1:
        vectors = vectors[None, :]
    if vectors.ndim != 2:
        raise InvalidInputError(f"expected a 2-D array of vectors, got shape {vectors.shape}")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)


def cosine_similarity_matrix(a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """Return the cosine similarity of every row of ``a`` with every row of ``b`` (or ``a``).

    Values lie in [-1, 1]; it is the dot product of the normalised vectors.
    """
    a_n = normalize(a)
    b_n = a_n if b is None else normalize(b)
    if a_n.shape[1] != b_n.shape[1]:
        raise InvalidInputError(f"dimension mismatch: {a_n.shape[1]} vs {b_n.shape[1]}")
    return np.clip(a_n @ b_n.T, -1.0, 1.0)


def top_k(
    scores: np.ndarray, k: int, exclude: np.ndarray | list | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Return (indices, scores) of the ``k`` largest entries of a 1-D score vector.

    ``exclude`` lists indices that must not be returned. Ties break by lower index.
    """
    scores = np.asarray(scores, dtype=np.float32).copy()
    if scores.ndim != 1:
        raise InvalidInputError("top_k expects a 1-D score vector")
    if exclude is not None and len(exclude):
        scores[np.asarray(exclude, dtype=int)] = -np.inf
    available = int(np.isfinite(scores).sum())
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise InvalidInputError(f"k must be a positive integer, got {k!r}")
    k = min(int(k), available)
    order = np.lexsort((np.arange(len(scores)), -scores))[:k]
    return order, scores[order]


def analogy(vectors: np.ndarray, a: int, b: int, c: int, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Answer ``a - b + c`` (e.g. king - man + woman) over the rows of ``vectors``.

    Rows ``a``, ``b`` and ``c`` are excluded from the answers. Returns (indices, cosine scores).
    """
    n = len(vectors)
    for name, idx in (("a", a), ("b", b), ("c", c)):
        if not 0 <= idx < n:
            raise InvalidInputError(f"analogy index {name}={idx} is out of range for {n} vectors")
    if len({a, b, c}) < 3:
        raise InvalidInputError("an analogy needs three different words (a - b + c)")
    unit = normalize(vectors)
    target = normalize(unit[a] - unit[b] + unit[c])[0]
    return top_k(unit @ target, k, exclude=[a, b, c])
