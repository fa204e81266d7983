"""Shared fixtures: a data folder under tmp_path, tiny image collections, deterministic embedders."""

from __future__ import annotations

import numpy as np
import pytest

from embeddings.core.fingerprint import fingerprint
from embeddings.models.baselines import PixelImageEmbedder
from tests.browser_support import app_url, browser, page  # noqa: F401  (browser-test fixtures)

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (40, 50, 230)}


class ArrayCollection:
    """An in-memory labelled image collection with the same interface as embeddings.image.collection.ImageCollection."""

    def __init__(self, images: np.ndarray, labels, classes, name="tiny", split="test", source="memory"):
        self.images = images
        self.labels = None if labels is None else np.asarray(labels, dtype=np.int64)
        self.classes = list(classes)
        self.name, self.split, self.source = name, split, source

    def __len__(self) -> int:
        return len(self.images)

    def get_images(self, ids):
        return self.images[np.asarray(ids, dtype=int)]

    def get_image(self, i):
        return self.images[i]

    def fingerprint(self) -> str:
        return fingerprint(self.images.tobytes().hex()[:4096], len(self.images), self.images.sum().item())

    def describe(self) -> dict:
        return {
            "name": self.name,
            "source": self.source,
            "split": self.split,
            "count": len(self),
            "classes": self.classes,
            "fingerprint": self.fingerprint(),
        }


def make_colour_images(per_class: int = 6, size: int = 8, seed: int = 0):
    """Noisy solid-colour squares, ``per_class`` of each colour in COLOURS (class order kept)."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for label, rgb in enumerate(COLOURS.values()):
        for _ in range(per_class):
            noise = rng.integers(-25, 26, size=(size, size, 3))
            images.append(np.clip(np.array(rgb) + noise, 0, 255).astype(np.uint8))
            labels.append(label)
    return np.stack(images), np.array(labels)


@pytest.fixture(autouse=True)
def _isolated_environment(tmp_path_factory, monkeypatch):
    """No test touches the user's data folder, uses an OpenAI key, or loads a big image model by default."""
    monkeypatch.setenv("EMBEDDINGS_DATA_DIR", str(tmp_path_factory.mktemp("default-data")))
    monkeypatch.setenv("EMBEDDINGS_IMAGE_MODEL", "pixels")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("EMBEDDINGS_FOLDERS", raising=False)
    monkeypatch.delenv("EMBEDDINGS_COLLECTION", raising=False)


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    """A fresh data folder, also exported as EMBEDDINGS_DATA_DIR."""
    path = tmp_path / "data"
    path.mkdir()
    monkeypatch.setenv("EMBEDDINGS_DATA_DIR", str(path))
    return path


@pytest.fixture
def colour_collection():
    images, labels = make_colour_images()
    return ArrayCollection(images, labels, list(COLOURS))


@pytest.fixture
def pixel_embedder():
    return PixelImageEmbedder()


@pytest.fixture
def add_model(request):
    """Register a model for one test: ``add_model(model_id, factory, kind="text", **spec fields)``;
    whatever it replaced (a built-in of the same id) is put back afterwards."""
    from embeddings import registry

    def add(model_id, factory, kind=registry.TEXT, description="a test model", **fields):
        previous = registry.register(registry.ModelSpec(model_id, kind, factory, description, **fields))
        request.addfinalizer(lambda: registry.unregister(model_id, restore=previous))

    return add
