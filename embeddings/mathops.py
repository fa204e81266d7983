"""Vector math on numpy arrays: cosine similarity, neighbours, analogies, 2D/3D maps."""

from __future__ import annotations

import numpy as np

from .errors import InvalidInputError

DEFAULT_SEED = 0
SKLEARN_TSNE_MAX = 300


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


def check_perplexity(perplexity: float, n_points: int) -> None:
    """Raise :class:`InvalidInputError` unless 0 < perplexity < n_points."""
    if n_points < 2:
        raise InvalidInputError(f"a map needs at least 2 points, got {n_points}")
    if not perplexity > 0 or not perplexity < n_points:
        raise InvalidInputError(
            f"perplexity must be above 0 and below the number of points ({n_points}), got {perplexity}"
        )


def max_perplexity(n_points: int) -> float:
    """Largest sensible perplexity for ``n_points`` (scikit-learn needs it below n)."""
    return float(max(1, min(50, n_points - 1)))


def tsne(
    vectors: np.ndarray, perplexity: float = 30.0, n_components: int = 2, seed: int = DEFAULT_SEED
) -> np.ndarray:
    """Project ``vectors`` to 2 or 3 dimensions with t-SNE (cosine geometry, PCA init, fixed seed).

    Up to ``SKLEARN_TSNE_MAX`` points (and for 3-D) it is scikit-learn's t-SNE; larger 2-D maps
    use openTSNE (:func:`embeddings.maps.fast_tsne`), about twice as fast at equal
    trustworthiness, so a 1,000-word map stays interactive.
    """
    from sklearn.manifold import TSNE

    vectors = np.asarray(vectors, dtype=np.float32)
    check_perplexity(perplexity, len(vectors))
    if n_components not in (2, 3):
        raise InvalidInputError(f"n_components must be 2 or 3, got {n_components}")
    if n_components == 2 and len(vectors) > SKLEARN_TSNE_MAX:
        from .maps import fast_tsne

        return fast_tsne(vectors, perplexity=perplexity, seed=seed)
    model = TSNE(
        n_components=n_components,
        perplexity=perplexity,
        metric="cosine",
        init="pca",
        random_state=seed,
        method="barnes_hut" if n_components < 4 else "exact",
    )
    return model.fit_transform(vectors).astype(np.float32)


def pca(vectors: np.ndarray, n_components: int = 2) -> np.ndarray:
    """Project ``vectors`` onto their top principal components (deterministic SVD)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if len(vectors) < 2:
        raise InvalidInputError(f"PCA needs at least 2 points, got {len(vectors)}")
    if not isinstance(n_components, (int, np.integer)) or n_components < 1:
        raise InvalidInputError(f"n_components must be a positive integer, got {n_components}")
    centred = vectors - vectors.mean(axis=0, keepdims=True)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    components = vt[:n_components]
    # fix the sign so the result does not flip between runs
    signs = np.sign(components[np.arange(len(components)), np.abs(components).argmax(axis=1)])
    projected = centred @ (components * signs[:, None]).T
    if projected.shape[1] < n_components:  # fewer points than dimensions
        projected = np.pad(projected, ((0, 0), (0, n_components - projected.shape[1])))
    return projected.astype(np.float32)
