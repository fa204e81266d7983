import numpy as np
import pytest

from embeddings.errors import InvalidInputError
from embeddings.index import maps, service
from tests.conftest import ArrayCollection, make_colour_images


@pytest.fixture
def colour_index(data_dir, pixel_embedder):
    images, labels = make_colour_images(per_class=30)
    index, _ = service.get_or_build_index(
        ArrayCollection(images, labels, ["r", "g", "b"]), pixel_embedder, data_dir
    )
    return index


def test_index_map_is_saved_and_reused(colour_index, monkeypatch):
    calls = []
    layout = maps.index_map(colour_index, perplexity=10, progress=lambda d, t: calls.append((d, t)))
    assert layout.shape == (colour_index.count, 2) and np.isfinite(layout).all()
    assert calls and calls[-1][0] == calls[-1][1]
    saved = list(colour_index.path.glob("map-tsne-*.npy"))
    assert len(saved) == 1

    def must_not_run(*a, **k):
        raise AssertionError("map recomputed instead of loaded")

    monkeypatch.setattr(maps, "fast_tsne", must_not_run)
    np.testing.assert_array_equal(maps.index_map(colour_index, perplexity=10), layout)


def test_map_keeps_classes_apart(colour_index):
    layout = maps.index_map(colour_index, perplexity=10)
    labels = colour_index.labels
    centroids = np.stack([layout[labels == c].mean(axis=0) for c in range(3)])
    spread = max(np.linalg.norm(layout[labels == c] - centroids[c], axis=1).mean() for c in range(3))
    gaps = [np.linalg.norm(centroids[a] - centroids[b]) for a in range(3) for b in range(a + 1, 3)]
    assert min(gaps) > 2 * spread


def test_corrupt_saved_map_is_recomputed(colour_index):
    layout = maps.index_map(colour_index, method="pca")
    path = next(colour_index.path.glob("map-pca-*.npy"))
    path.write_bytes(b"garbage")
    np.testing.assert_allclose(maps.index_map(colour_index, method="pca"), layout)


def test_bad_map_arguments(colour_index):
    with pytest.raises(InvalidInputError, match="perplexity"):
        maps.index_map(colour_index, perplexity=colour_index.count)
    with pytest.raises(InvalidInputError, match="method"):
        maps.index_map(colour_index, method="umap")
