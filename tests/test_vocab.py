"""The bundled vocabulary, its on-disk vector cache, nearest words and analogies."""

from __future__ import annotations

import re

import numpy as np
import pytest
from text_fixtures import HashEmbedder, TableEmbedder

from embeddings.core.files import save_npy_atomic
from embeddings.core.mathops import normalize
from embeddings.errors import InvalidInputError
from embeddings.text import vocab


@pytest.fixture(autouse=True)
def fresh_memo():
    vocab.clear_memo()
    yield
    vocab.clear_memo()


def test_vocabulary_file():
    words = vocab.load_vocab()
    assert len(words) >= 20_000
    assert len(set(words)) == len(words)
    assert words[:3] == ["the", "to", "and"]
    assert all(re.fullmatch(r"[a-z]+", w) for w in words)
    assert {w for w in words if len(w) == 1} == {"a", "i"}
    for common in ("king", "queen", "man", "woman", "cat", "kitten", "happy", "paris", "france"):
        assert common in words


def test_vectors_are_embedded_once_then_loaded_from_disk(tmp_path):
    embedder = HashEmbedder(dim=8)
    progress = []
    first = vocab.vocab_vectors(embedder, data_dir=tmp_path, progress=lambda d, t: progress.append((d, t)))
    n = len(vocab.load_vocab())
    assert first.shape == (n, 8) and first.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)
    assert embedder.embedded == n and progress[-1] == (n, n)
    path = vocab.vocab_cache_path(embedder, tmp_path)
    assert path.parent == tmp_path / "vocab" and path.suffix == ".npy" and path.exists()

    assert vocab.vocab_vectors(embedder, data_dir=tmp_path) is first  # kept in memory
    vocab.clear_memo()  # as in a new process
    again = vocab.vocab_vectors(embedder, data_dir=tmp_path)
    assert embedder.embedded == n  # not embedded again
    np.testing.assert_array_equal(again, first)
    assert not again.flags.writeable


def test_cache_key_follows_the_model_fingerprint(tmp_path):
    a = vocab.vocab_cache_path(HashEmbedder(dim=8, tag="v1"), tmp_path)
    b = vocab.vocab_cache_path(HashEmbedder(dim=8, tag="v2"), tmp_path)
    assert a != b


def _corrupt_garbage(path, n):
    path.write_bytes(b"\x93NUMPY garbage" * 10)


def _corrupt_truncated(path, n):
    path.write_bytes(path.read_bytes()[:1000])


def _corrupt_shape(path, n):
    save_npy_atomic(path, np.ones((n - 1, 8), dtype=np.float32))


def _corrupt_dtype(path, n):
    save_npy_atomic(path, normalize(np.ones((n, 8))).astype(np.float64))


def _corrupt_values(path, n):
    save_npy_atomic(path, np.full((n, 8), np.nan, dtype=np.float32))


def _corrupt_pickle(path, n):
    with open(path, "wb") as fh:
        np.save(fh, np.array([{"x": 1}], dtype=object), allow_pickle=True)


@pytest.mark.parametrize(
    "corrupt",
    [_corrupt_garbage, _corrupt_truncated, _corrupt_shape, _corrupt_dtype, _corrupt_values, _corrupt_pickle],
)
def test_a_damaged_file_is_rebuilt(tmp_path, corrupt):
    embedder = HashEmbedder(dim=8)
    good = vocab.vocab_vectors(embedder, data_dir=tmp_path).copy()
    path = vocab.vocab_cache_path(embedder, tmp_path)
    n = len(good)
    corrupt(path, n)
    vocab.clear_memo()
    rebuilt = vocab.vocab_vectors(embedder, data_dir=tmp_path)
    assert embedder.embedded == 2 * n
    np.testing.assert_array_equal(rebuilt, good)
    np.testing.assert_array_equal(np.load(path, allow_pickle=False), good)


# a tiny hand-made vocabulary: royalty, male, female, fruit, animal
TABLE = {
    "king": [1, 1, 0, 0, 0],
    "queen": [1, 0, 1, 0, 0],
    "man": [0, 1, 0, 0, 0],
    "woman": [0, 0, 1, 0, 0],
    "apple": [0, 0, 0, 1, 0],
    "cat": [0, 0, 0, 0, 1],
    "kitten": [0, 0.2, 0, 0, 1],
    "princess": [0.8, 0, 1, 0, 0.1],  # not in the vocabulary below: embedded directly
}
WORDS = ["king", "queen", "man", "woman", "apple", "cat", "kitten"]


@pytest.fixture
def table():
    embedder = TableEmbedder(TABLE)
    vectors = embedder.embed(WORDS)
    embedder.calls.clear()
    return embedder, vectors


def test_nearest_words(table):
    embedder, vectors = table
    cat = vectors[WORDS.index("cat")]
    result = vocab.nearest_words(cat, WORDS, vectors, k=2)
    assert [w for w, _ in result[0]] == ["cat", "kitten"]
    assert result[0][0][1] == pytest.approx(1.0)
    excluded = vocab.nearest_words(np.stack([cat, vectors[0]]), WORDS, vectors, k=1, exclude=["CAT", "king"])
    assert [r[0][0] for r in excluded] == ["kitten", "man"]
    per_query = vocab.nearest_words(
        np.stack([cat, cat]), WORDS, vectors, k=1, exclude_per_query=[["cat"], ["kitten", "cat"]]
    )
    assert [r[0][0] for r in per_query] == ["kitten", "king"]  # ties break by lower index


def test_nearest_words_checks_shapes(table):
    _, vectors = table
    with pytest.raises(InvalidInputError):
        vocab.nearest_words(np.ones(3), WORDS, vectors, k=1)
    with pytest.raises(InvalidInputError):
        vocab.nearest_words(np.ones(5), WORDS[:-1], vectors, k=1)
    with pytest.raises(InvalidInputError):
        vocab.nearest_words(np.ones(5), WORDS, vectors, k=0)


def test_analogy_excludes_the_inputs(table):
    embedder, vectors = table
    result = vocab.analogy_words("king", "man", "woman", embedder, k=3, words=WORDS, vectors=vectors)
    assert result[0][0] == "queen"
    assert not {"king", "man", "woman"} & {w for w, _ in result}
    assert embedder.calls == []  # all three came from the vocabulary
    capitalised = vocab.analogy_words("King", "Man", "Woman", embedder, k=1, words=WORDS, vectors=vectors)
    assert capitalised[0][0] == "queen"


def test_analogy_embeds_words_outside_the_vocabulary(table):
    embedder, vectors = table
    result = vocab.analogy_words("princess", "woman", "man", embedder, k=1, words=WORDS, vectors=vectors)
    assert result[0][0] == "king"
    assert embedder.calls == [["princess"]]


@pytest.mark.parametrize(
    "a, b, c, problem",
    [
        ("", "man", "woman", "a is empty"),
        ("king", "   ", "woman", "b is empty"),
        ("king", "man", None, "c is empty"),
        ("king", "man", "king", "three different"),
        ("king", "Man", "man", "three different"),
    ],
)
def test_analogy_input_errors(table, a, b, c, problem):
    embedder, vectors = table
    with pytest.raises(InvalidInputError, match=problem):
        vocab.analogy_words(a, b, c, embedder, words=WORDS, vectors=vectors)


def test_analogy_and_similar_words_with_the_real_vocabulary_cache(tmp_path):
    embedder = HashEmbedder(dim=8)
    result = vocab.analogy_words("king", "man", "woman", embedder, k=4, data_dir=tmp_path)
    assert len(result) == 4 and not {"king", "man", "woman"} & {w for w, _ in result}
    similar = vocab.similar_words(["cat", "zzzunknown"], embedder, k=3, data_dir=tmp_path)
    assert len(similar) == 2 and "cat" not in [w for w, _ in similar[0]]
    assert embedder.embedded == len(vocab.load_vocab()) + 2  # the vocabulary once, then the queries
