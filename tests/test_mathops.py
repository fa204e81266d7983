import numpy as np
import pytest

from embeddings.core import mathops as m
from embeddings.core import projection
from embeddings.errors import InvalidInputError


def test_cosine_matrix_range_and_known_values():
    v = np.array([[1, 0], [0, 2], [-3, 0], [1, 1]], dtype=np.float32)
    sim = m.cosine_similarity_matrix(v)
    assert sim[0, 1] == pytest.approx(0) and sim[0, 2] == pytest.approx(-1)
    assert sim[0, 3] == pytest.approx(np.sqrt(0.5))
    np.testing.assert_allclose(np.diag(sim), 1, atol=1e-6)
    assert sim.min() >= -1 and sim.max() <= 1
    with pytest.raises(InvalidInputError, match="dimension"):
        m.cosine_similarity_matrix(v, np.ones((2, 3)))


def test_normalize_keeps_zero_rows():
    out = m.normalize(np.array([[3, 4], [0, 0]]))
    np.testing.assert_allclose(out, [[0.6, 0.8], [0, 0]])
    assert out.dtype == np.float32


def test_top_k_order_ties_and_exclusion():
    ids, scores = m.top_k(np.array([0.5, 0.9, 0.9, 0.1]), 3, exclude=[2])
    assert ids.tolist() == [1, 0, 3]
    ids, _ = m.top_k(np.array([0.5, 0.9, 0.9]), 2)
    assert ids.tolist() == [1, 2]  # tie broken by lower index
    assert len(m.top_k(np.array([1.0, 2.0]), 10)[0]) == 2
    with pytest.raises(InvalidInputError):
        m.top_k(np.array([1.0]), 0)


def test_analogy_finds_parallelogram_and_excludes_inputs():
    # king - man + woman = queen in a toy space: gender on axis 0, royalty on axis 1
    words = {
        "man": [1, 0, 0.1],
        "woman": [-1, 0, 0.1],
        "king": [1, 1, 0.1],
        "queen": [-1, 1, 0.1],
        "dog": [0, 0, 1],
    }
    vecs = np.array(list(words.values()), dtype=np.float32)
    names = list(words)
    ids, scores = m.analogy(vecs, names.index("king"), names.index("man"), names.index("woman"), k=2)
    assert names[ids[0]] == "queen" and scores[0] > 0.9
    assert not {names.index("king"), names.index("man"), names.index("woman")} & set(ids.tolist())
    with pytest.raises(InvalidInputError, match="three different"):
        m.analogy(vecs, 0, 0, 1)
    with pytest.raises(InvalidInputError, match="out of range"):
        m.analogy(vecs, 0, 1, 99)


def test_tsne_validates_perplexity_and_is_seeded():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 5)).astype(np.float32)
    with pytest.raises(InvalidInputError, match="below the number of points"):
        projection.tsne(x, perplexity=12)
    with pytest.raises(InvalidInputError, match="at least 2"):
        projection.tsne(x[:1], perplexity=0.5)
    a = projection.tsne(x, perplexity=5, seed=3)
    b = projection.tsne(x, perplexity=5, seed=3)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (12, 2) and projection.tsne(x, perplexity=5, n_components=3).shape == (12, 3)
    assert projection.max_perplexity(12) == 11 and projection.max_perplexity(1000) == 50


def test_pca_projects_main_axis_and_handles_few_points():
    x = np.array([[0, 0, 0], [10, 0.1, 0], [20, -0.1, 0]], dtype=np.float32)
    p = projection.pca(x, 2)
    assert abs(p[2, 0] - p[0, 0]) == pytest.approx(20, rel=1e-3)
    assert projection.pca(x[:2], 3).shape == (2, 3)
    with pytest.raises(InvalidInputError):
        projection.pca(x[:1])


def test_large_2d_tsne_uses_the_fast_path_and_keeps_clusters():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 64)) * 5
    x = np.concatenate([c + rng.normal(size=(150, 64)) for c in centres]).astype(np.float32)
    assert len(x) > projection.SKLEARN_TSNE_MAX
    y = projection.tsne(x, perplexity=30, seed=0)
    assert y.shape == (450, 2)
    np.testing.assert_array_equal(y, projection.tsne(x, perplexity=30, seed=0))  # seeded
    labels = np.repeat(np.arange(3), 150)
    means = np.stack([y[labels == c].mean(axis=0) for c in range(3)])
    spread = max(np.linalg.norm(y[labels == c] - means[c], axis=1).mean() for c in range(3))
    assert min(np.linalg.norm(means[a] - means[b]) for a in range(3) for b in range(a + 1, 3)) > 2 * spread
