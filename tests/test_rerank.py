"""Re-ranking without labels: whitening, average query expansion, k-reciprocal re-ranking."""

from __future__ import annotations

import numpy as np
import pytest

from embeddings.core.mathops import normalize
from embeddings.errors import InvalidInputError
from embeddings.index import rerank
from embeddings.index.evaluation import evaluate_retrieval
from embeddings.index.store import write_index
from tests.conftest import ArrayCollection


class VectorEmbedder:
    """Stands in for an embedder whose vectors were computed elsewhere (write_index needs only this)."""

    def __init__(self, dim):
        self.model_id, self.dim = "vectors", dim

    def fingerprint(self):
        return {"model_id": self.model_id, "dim": self.dim}


def clustered(n_per_class=30, n_classes=3, dim=8, spread=0.35, seed=0, split="train"):
    rng = np.random.default_rng(seed)
    centres = normalize(np.random.default_rng(99).normal(size=(n_classes, dim)))
    labels = np.repeat(np.arange(n_classes), n_per_class)
    vectors = normalize(centres[labels] + spread * rng.normal(size=(len(labels), dim)))
    images = np.zeros((len(labels), 2, 2, 3), dtype=np.uint8)
    images[:, 0, 0, 0] = np.arange(len(labels)) % 256
    images[:, 0, 0, 1] = np.arange(len(labels)) // 256
    collection = ArrayCollection(
        images, labels, [f"c{i}" for i in range(n_classes)], split=split, name=f"v{seed}"
    )
    return collection, vectors


@pytest.fixture
def gallery(data_dir):
    collection, vectors = clustered()
    return write_index(collection, VectorEmbedder(vectors.shape[1]), vectors, data_dir)


@pytest.fixture
def queries(data_dir):
    collection, vectors = clustered(n_per_class=10, seed=1, split="test")
    return write_index(collection, VectorEmbedder(vectors.shape[1]), vectors, data_dir)


def test_none_is_plain_search(gallery, queries):
    ids, scores = rerank.rerank_search(gallery, queries.embeddings, 5, "none")
    plain_ids, plain_scores = gallery.search(queries.embeddings, 5)
    np.testing.assert_array_equal(ids, plain_ids)
    np.testing.assert_allclose(scores, plain_scores)
    ids, _ = rerank.rerank_neighbours(gallery, [0, 1, 2], 4, "none")
    np.testing.assert_array_equal(ids, gallery.neighbours([0, 1, 2], 4)[0])
    plain = evaluate_retrieval(gallery, 5, queries=queries)
    assert rerank.evaluate_reranked(gallery, 5, "none", queries=queries).precision == plain.precision


def test_whitening_decorrelates_the_index():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 6)) @ rng.normal(size=(6, 6))
    w = rerank.fit_whitening(x, dims=None, shrink=0.0)
    projected = (x - w.mean) @ w.projection
    np.testing.assert_allclose(np.cov(projected, rowvar=False), np.eye(6), atol=1e-3)
    assert rerank.fit_whitening(x, dims=3).projection.shape == (6, 3)
    again = rerank.fit_whitening(x, dims=3)
    np.testing.assert_array_equal(again.projection, rerank.fit_whitening(x, dims=3).projection)


@pytest.mark.parametrize("method", ["whiten", "aqe", "kreciprocal"])
def test_methods_on_clusters(method, gallery, queries):
    params = {"dims": 2} if method == "whiten" else {}  # the 2 directions that separate 3 clusters
    ids, scores = rerank.rerank_search(gallery, queries.embeddings, 5, method, **params)
    assert ids.shape == scores.shape == (queries.count, 5)
    assert (gallery.labels[ids] == queries.labels[:, None]).mean() > 0.9
    assert np.all(np.abs(scores) <= 1.0 + 1e-6)
    for row in ids:
        assert len(set(row.tolist())) == 5  # no duplicates
    # leave-one-out: an item never comes back as its own neighbour
    own, _ = rerank.rerank_neighbours(gallery, np.arange(gallery.count), 4, method, **params)
    assert (own != np.arange(gallery.count)[:, None]).all()
    result = rerank.evaluate_reranked(gallery, 5, method, queries=queries, **params)
    assert result.precision > 0.9 and result.queries == queries.count
    # deterministic
    again, _ = rerank.rerank_search(gallery, queries.embeddings, 5, method, **params)
    np.testing.assert_array_equal(again, ids)


def test_kreciprocal_with_lambda_one_keeps_the_original_order(gallery, queries):
    ids, _ = rerank.search_kreciprocal(gallery, queries.embeddings, 5, lam=1.0, k1=6, k2=3, candidates=20)
    np.testing.assert_array_equal(ids, gallery.search(queries.embeddings, 5)[0])


def test_bad_arguments(gallery, queries):
    with pytest.raises(InvalidInputError, match="unknown re-ranking"):
        rerank.rerank_search(gallery, queries.embeddings, 5, "magic")
    with pytest.raises(InvalidInputError, match="k must be"):
        rerank.rerank_search(gallery, queries.embeddings, 0, "aqe")
    with pytest.raises(InvalidInputError, match="-d"):
        rerank.rerank_search(gallery, np.ones((1, 3), np.float32), 5, "aqe")
    with pytest.raises(InvalidInputError, match="image ids"):
        rerank.rerank_neighbours(gallery, [gallery.count], 5, "aqe")
