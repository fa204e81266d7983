import numpy as np
import pytest

from embeddings.errors import InvalidInputError
from embeddings.index import service
from embeddings.index.evaluation import evaluate_retrieval
from tests.conftest import ArrayCollection


class LabelEmbedder:
    """Embeds an image as a fixed vector per 'class' pixel value, to get known answers."""

    model_id, dim = "label-embedder", 3

    def fingerprint(self):
        return {"model_id": self.model_id}

    def embed(self, images, progress=None):
        table = {0: [1, 0, 0], 1: [0.8, 0.6, 0], 2: [0, 0, 1]}
        return np.array([table[int(img[0, 0, 0])] for img in images], dtype=np.float32)


def _collection(codes, split="test"):
    images = np.zeros((len(codes), 2, 2, 3), dtype=np.uint8)
    images[:, 0, 0, 0] = codes
    return ArrayCollection(images, codes, ["a", "b", "c"], split=split)


def test_leave_one_out_known_answer(data_dir):
    # 3 of class a, 3 of class b (close to a), 3 of class c (far)
    codes = [0, 0, 0, 1, 1, 1, 2, 2, 2]
    index, _ = service.get_or_build_index(_collection(codes), LabelEmbedder(), data_dir)
    result = evaluate_retrieval(index, k=2)
    # every item's 2 nearest others are its 2 classmates (cosine 1.0 beats 0.8)
    assert result.precision == pytest.approx(1.0)
    result = evaluate_retrieval(index, k=4)
    # a and b: 2 classmates + 2 of the other close class -> 0.5; c: 2 classmates + 2 of a (cos 0) -> 0.5
    assert result.per_class == pytest.approx({"a": 0.5, "b": 0.5, "c": 0.5})
    assert result.queries == 9
    assert result.confusion[0, 1] == pytest.approx(0.5) and result.confusion[2, 2] == pytest.approx(0.5)
    np.testing.assert_allclose(result.confusion.sum(axis=1), 1.0)
    assert result.lines()[-1] == "precision@4=0.5000 queries=9"


def test_queries_from_another_split(data_dir):
    train, _ = service.get_or_build_index(_collection([0, 0, 2, 2], split="train"), LabelEmbedder(), data_dir)
    test, _ = service.get_or_build_index(_collection([0, 1, 2]), LabelEmbedder(), data_dir)
    result = evaluate_retrieval(train, k=2, queries=test)
    # query a -> a,a (1.0); query b -> a,a (0.0); query c -> c,c (1.0)
    assert result.per_class == pytest.approx({"a": 1.0, "b": 0.0, "c": 1.0})
    assert result.precision == pytest.approx(2 / 3)


def test_unlabelled_index_rejected(data_dir):
    col = _collection([0, 1, 2])
    col.labels = None
    index, _ = service.get_or_build_index(col, LabelEmbedder(), data_dir)
    with pytest.raises(InvalidInputError, match="labels"):
        evaluate_retrieval(index, k=1)
