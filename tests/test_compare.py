"""Before/after comparison helpers for the image page."""

from __future__ import annotations

import numpy as np
import pytest

from embeddings.adapt import heads as adapt
from embeddings.errors import InvalidInputError
from embeddings.index import compare, service
from tests.conftest import ArrayCollection, make_colour_images


def _indexes(pixel_embedder, data_dir):
    images, labels = make_colour_images(per_class=8, seed=0)
    train = ArrayCollection(images, labels, ["red", "green", "blue"], split="train")
    images, labels = make_colour_images(per_class=4, seed=1)
    test = ArrayCollection(images, labels, ["red", "green", "blue"], split="test")
    return service.get_or_build_index(train, pixel_embedder, data_dir)[0], service.get_or_build_index(
        test, pixel_embedder, data_dir
    )[0]


def test_variants_neighbours_and_table(pixel_embedder, data_dir):
    train, test = _indexes(pixel_embedder, data_dir)
    assert [v.name for v in compare.base_variants(test, pixel_embedder, data_dir)] == ["pixels"]
    adapt.get_or_fit_head(train, pixel_embedder, "lda", data_dir)
    variants = compare.base_variants(test, pixel_embedder, data_dir, rerank_methods=("none", "aqe"))
    names = [v.name for v in variants]
    assert names == ["pixels", "pixels + aqe", "lda head (tiny train)", "lda head (tiny train) + aqe"]
    assert all(v.note == "" for v in variants)  # fitted on train, shown on test: honest
    side = compare.neighbours_side_by_side(variants, query_id=0, k=3)
    assert set(side) == set(names)
    for n in side.values():
        assert n.ids.shape == (3,) and 0 not in n.ids and n.same_class.all()
    results = compare.precision_by_variant(variants, k=3)
    table = compare.per_class_table(results)
    assert table["class"] == ["red", "green", "blue", "all"]
    assert table["pixels"][-1] == pytest.approx(results["pixels"].precision)
    # shown on the split the head was fitted on: flagged
    flagged = compare.base_variants(train, pixel_embedder, data_dir)
    assert flagged[1].note.startswith("head fitted on these labels")


def test_bad_variants(pixel_embedder, data_dir):
    train, test = _indexes(pixel_embedder, data_dir)
    with pytest.raises(InvalidInputError, match="no variants"):
        compare.neighbours_side_by_side([], 0)
    mixed = [compare.Variant("a", train), compare.Variant("b", test)]
    with pytest.raises(InvalidInputError, match="different collections"):
        compare.neighbours_side_by_side(mixed, 0)
    assert np.isnan(compare.per_class_table({}).get("x", [np.nan])[0])
