"""Real pretrained image models on real pictures (the bundled CIFAR-10 sample). Slow: run with -m slow.

Measured with efficientnet_lite0 on 12 sample images per class (automobile, truck, frog, cat,
dog, airplane, ship): mean cosine within a class 0.55 vs 0.48 across classes; automobile-truck
0.545 vs automobile-frog 0.453; leave-one-out 1-NN accuracy 0.51 (chance 0.14). The asserts
below keep a margin under those numbers.
"""

from __future__ import annotations

import numpy as np
import pytest

from embeddings.errors import ModelUnavailableError
from embeddings.image.collections import open_collection
from embeddings.registry import get_image_embedder

pytestmark = pytest.mark.slow

CLASSES = ["automobile", "truck", "frog", "cat", "dog", "airplane", "ship"]
PER_CLASS = 12


@pytest.fixture(scope="module")
def subset():
    sample = open_collection("sample")
    ids = np.concatenate(
        [np.flatnonzero(sample.labels == sample.classes.index(c))[:PER_CLASS] for c in CLASSES]
    )
    return sample.get_images(ids), np.repeat(np.arange(len(CLASSES)), PER_CLASS)


def _check_semantics(vectors: np.ndarray, labels: np.ndarray) -> None:
    sims = vectors @ vectors.T
    same = labels[:, None] == labels[None, :]
    off_diagonal = ~np.eye(len(labels), dtype=bool)
    intra = sims[same & off_diagonal].mean()
    inter = sims[~same].mean()
    assert intra > inter + 0.03, (intra, inter)

    def between(a: str, b: str) -> float:
        return sims[np.ix_(labels == CLASSES.index(a), labels == CLASSES.index(b))].mean()

    assert between("automobile", "truck") > between("automobile", "frog") + 0.04
    np.fill_diagonal(sims, -np.inf)
    one_nn = (labels[sims.argmax(axis=1)] == labels).mean()
    assert one_nn > 0.35, one_nn


def test_efficientnet_lite0_groups_classes(subset):
    images, labels = subset
    embedder = get_image_embedder("efficientnet_lite0")
    vectors = embedder.embed(images)
    assert vectors.shape == (len(labels), 1280)
    _check_semantics(vectors, labels)


def test_resnet18_groups_classes(subset):
    try:
        embedder = get_image_embedder("resnet18")
    except ModelUnavailableError as exc:
        pytest.skip(f"ResNet18 weights unavailable offline: {exc}")
    images, labels = subset
    vectors = embedder.embed(images)
    assert vectors.shape == (len(labels), 512)
    _check_semantics(vectors, labels)
