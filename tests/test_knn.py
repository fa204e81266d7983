"""k-NN classification (embeddings/index/knn.py) on hand-built vectors whose answers are known, and eval-knn."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from embeddings import cli
from embeddings.errors import InvalidInputError
from embeddings.index import knn, service
from tests.test_evaluation import LabelEmbedder, _collection


class VectorIndex:
    """The smallest index k-NN needs (what a document index exposes too): unit ``embeddings``, ``labels``,
    ``classes``, ``path``, brute-force ``search`` and ``neighbours`` (each item itself excluded)."""

    def __init__(self, vectors, labels, classes, path: Path):
        vectors = np.asarray(vectors, dtype=np.float32)
        self.embeddings = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        self.labels = None if labels is None else np.asarray(labels, dtype=np.int64)
        self.classes = list(classes)
        self.path = path
        path.mkdir(parents=True, exist_ok=True)

    def search(self, queries, k):
        queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        scores = queries @ self.embeddings.T
        ids = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return ids, np.take_along_axis(scores, ids, axis=1)

    def neighbours(self, ids, k):
        ids = np.atleast_1d(ids)
        scores = self.embeddings[ids] @ self.embeddings.T
        scores[np.arange(len(ids)), ids] = -np.inf  # itself excluded
        found = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return found, np.take_along_axis(scores, found, axis=1)


def _index(vectors, labels, tmp_path, classes=("a", "b", "c")):
    return VectorIndex(vectors, labels, classes, tmp_path / "index")


def _vote_index(labels, tmp_path):
    """An index whose item labels are ``labels``; only the labels matter to :func:`knn.vote`."""
    return _index(np.eye(len(labels), 3) + 0.01, labels, tmp_path)


# ---------------------------------------------------------------------------- the vote


def test_plain_and_weighted_votes_differ_in_a_constructed_case(tmp_path):
    index = _vote_index([0, 1, 1], tmp_path)
    # one very close "a" against two distant "b"s: 1 vote vs 2, but weight 0.9 vs 0.4
    result = knn.vote(index, [0, 1, 2], [0.9, 0.2, 0.2])
    assert result.plain_label == "b" and result.weighted_label == "a"
    assert result.counts.tolist() == [1, 2, 0]
    np.testing.assert_allclose(result.weights, [0.9, 0.4, 0.0])
    assert result.table() == {"class": ["b", "a"], "votes": [2, 1], "weight": [0.4, 0.9]}


def test_ties_go_to_the_class_of_the_nearest_neighbour(tmp_path):
    index = _vote_index([1, 0, 0, 1], tmp_path)
    assert knn.vote(index, [0, 1], [0.9, 0.8]).plain_label == "b"  # 1-1: b's neighbour ranks first
    assert knn.vote(index, [1, 0], [0.9, 0.8]).plain_label == "a"
    assert knn.vote(index, [0, 1, 2, 3], [0.9, 0.8, 0.7, 0.6]).plain_label == "b"  # 2-2
    # an exact weighted tie (0.5 = 0.25 + 0.25 in binary floating point) goes to the nearest, too
    tie = knn.vote(index, [1, 0, 3], [0.5, 0.25, 0.25])
    assert tie.weights[0] == tie.weights[1] == 0.5
    assert tie.weighted_label == "a" and tie.plain_label == "b"
    # no positive weight at all: negative cosines count 0, the nearest neighbour's class wins
    assert knn.vote(index, [0, 1, 2], [-0.1, -0.2, -0.3]).weighted_label == "b"


def test_vote_uses_the_first_k_and_predict_excludes_the_item(tmp_path):
    # items 0, 1 are "a" at one point, items 2, 3 "b" next to it, item 4 "c" far away
    vectors = [[1, 0, 0], [1, 0.01, 0], [0.9, 0.1, 0], [0.9, 0.11, 0], [0, 0, 1]]
    index = _index(vectors, [0, 0, 1, 1, 2], tmp_path)
    assert knn.vote(index, [2, 3, 0], [0.9, 0.9, 0.8], k=1).plain_label == "b"
    result = knn.predict(index, k=1, item=0)
    assert result.neighbour_ids.tolist() == [1]  # not itself
    assert knn.predict(index, k=4, item=0).neighbour_ids.tolist() == [1, 2, 3, 4]
    query = knn.predict(index, k=2, vector=np.array([0, 0.1, 1.0]))
    assert query.plain_label == "c" and query.k == 2


# ---------------------------------------------------------------------------- accuracy for every k


def _brute_force_votes(index, k_max):
    """Per item, per k: the plain and weighted winners, one item and one k at a time."""
    n = len(index.labels)
    cos = index.embeddings @ index.embeddings.T
    plain, weighted = np.empty((n, k_max), int), np.empty((n, k_max), int)
    for i in range(n):
        order = [j for j in np.argsort(-cos[i], kind="stable") if j != i][:k_max]
        for k in range(1, k_max + 1):
            near = order[:k]
            votes = Counter(int(index.labels[j]) for j in near)
            sums: dict[int, float] = {}
            for j in near:
                sums[int(index.labels[j])] = sums.get(int(index.labels[j]), 0.0) + max(0.0, float(cos[i, j]))
            first = {c: next(r for r, j in enumerate(near) if index.labels[j] == c) for c in votes}
            plain[i, k - 1] = min(votes, key=lambda c: (-votes[c], first[c]))
            weighted[i, k - 1] = min(sums, key=lambda c: (-sums[c], first[c]))
    return plain, weighted


def test_curve_equals_brute_force_for_every_k(tmp_path):
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 3, size=37)
    vectors = rng.normal(size=(37, 5)) + np.eye(3, 5)[labels] * 1.5
    index = _index(vectors, labels, tmp_path)
    curve = knn.compute_knn_curve(index, k_max=12)
    plain, weighted = _brute_force_votes(index, 12)
    for k in range(1, 13):
        assert curve.plain[k - 1] == pytest.approx((plain[:, k - 1] == labels).mean())
        assert curve.weighted[k - 1] == pytest.approx((weighted[:, k - 1] == labels).mean())
        for c in range(3):
            mask = labels == c
            assert curve.plain_correct[k - 1, c] == (plain[mask, k - 1] == c).sum()
    assert curve.queries == 37 and curve.leave_one_out
    assert curve.class_counts == np.bincount(labels, minlength=3).tolist()
    assert not np.array_equal(curve.plain, curve.weighted)  # the two votes really differ here


def test_leave_one_out_excludes_the_item_itself(tmp_path):
    # item 0 ("a") has two "b"s nearer than its only classmate: counted wrong at k = 1 unless it saw itself
    vectors = [[1, 0, 0], [0.95, 0.3, 0], [0.95, 0.31, 0], [0, 1, 0.2], [0, 0.2, 1], [0.1, 0.2, 1]]
    index = _index(vectors, [0, 1, 1, 0, 2, 2], tmp_path)
    curve = knn.compute_knn_curve(index, k_max=3)
    assert curve.per_class(1)["plain"][0] == 0.0  # neither "a" is right: 0 -> b, 3 -> c or b
    assert curve.per_class(1)["plain"][1:] == [1.0, 1.0]
    assert curve.plain[0] == pytest.approx(4 / 6)


def test_centroid_baseline_leaves_the_item_out_of_its_own_class_mean(tmp_path):
    # a = {(1,0), (0,1)}, b = {(0.6,0.8) twice}: with itself in, a's mean (0.5,0.5) is nearest to (1,0)
    # (cos 0.71 > 0.6); without it a's mean is (0,1) (cos 0): the honest answer is b
    vectors = [[1, 0, 0], [0, 1, 0], [0.6, 0.8, 0], [0.6, 0.8, 0], [0, 0, 1]]
    index = _index(vectors, [0, 0, 1, 1, 2], tmp_path)
    assert knn.centroid_predictions(index).tolist() == [1, 1, 1, 1, 0]  # "c" is alone: never c
    curve = knn.compute_knn_curve(index, k_max=2)
    assert curve.centroid == pytest.approx(2 / 5)
    assert curve.per_class(1)["centroid"] == [0.0, 1.0, 0.0]
    # against another split nothing is left out: (1,0) as a query gets a's full mean
    queries = _index([[1, 0, 0], [0, 0.1, 1]], [0, 2], tmp_path / "q")
    assert knn.centroid_predictions(index, queries).tolist() == [0, 2]


def test_queries_from_another_split_search_the_index(data_dir):
    train, _ = service.get_or_build_index(_collection([0, 0, 2, 2], split="train"), LabelEmbedder(), data_dir)
    test, _ = service.get_or_build_index(_collection([0, 1, 2]), LabelEmbedder(), data_dir)
    curve = knn.compute_knn_curve(train, k_max=2, queries=test)
    # a -> a (right), b -> a (wrong: b is nearest a), c -> c (right), at k = 1 and 2
    assert not curve.leave_one_out and curve.queries == 3
    assert curve.plain.tolist() == pytest.approx([2 / 3, 2 / 3])
    assert curve.per_class(2)["plain"] == [1.0, 0.0, 1.0]
    assert curve.centroid == pytest.approx(2 / 3)


def test_best_k_prefers_the_smaller_k_and_the_plain_vote(tmp_path):
    curve = knn.KnnCurve(
        3,
        ["a", "b"],
        4,
        True,
        [2, 2],
        np.array([[1, 1], [2, 1], [2, 1]]),
        np.array([[1, 1], [2, 1], [2, 2]]),
        np.array([1, 1]),
    )
    assert curve.best() == (3, 1.0, "weighted")
    curve.weighted_correct[2] = [2, 1]
    assert curve.best() == (2, 0.75, "plain")
    assert curve.lines()[-1] == "knn_accuracy@2=0.7500"


# ---------------------------------------------------------------------------- saved beside the index


def test_result_is_saved_beside_the_index_and_read_back(data_dir, monkeypatch):
    index, _ = service.get_or_build_index(_collection([0, 0, 0, 1, 1, 1, 2, 2, 2]), LabelEmbedder(), data_dir)
    assert knn.saved_knn_curve(index, 4) is None
    reports = []
    first = knn.knn_curve(index, 4, progress=lambda done, total: reports.append((done, total)))
    assert reports[0] == (0, 9) and reports[-1] == (9, 9)
    saved = list(Path(index.path).glob("knn-*.json"))
    assert len(saved) == 1 and saved[0] == knn.knn_path(index, 4)
    assert not list(Path(index.path).glob("*.tmp*")), "nothing half-written is left"
    monkeypatch.setattr(knn, "compute_knn_curve", lambda *a, **k: pytest.fail("computed again"))
    again = knn.knn_curve(index, 4)
    assert again.to_json() == first.to_json()
    assert knn.knn_path(index, 3) != saved[0]  # another k_max, another result


def test_a_damaged_or_foreign_result_is_computed_again(data_dir):
    index, _ = service.get_or_build_index(_collection([0, 0, 1, 1, 2, 2]), LabelEmbedder(), data_dir)
    curve = knn.knn_curve(index, 2)
    path = knn.knn_path(index, 2)
    path.write_text("{not json")
    assert knn.saved_knn_curve(index, 2) is None
    data = {"key": "another", "result": curve.to_json()}
    path.write_text(json.dumps(data))
    assert knn.saved_knn_curve(index, 2) is None  # made for other contents
    data["key"] = knn.knn_key(index, 2)
    data["result"]["plain_correct"] = [[1]]
    path.write_text(json.dumps(data))
    assert knn.saved_knn_curve(index, 2) is None  # the wrong shape
    assert knn.knn_curve(index, 2).to_json() == curve.to_json()
    assert knn.saved_knn_curve(index, 2) is not None


def test_the_key_follows_the_labels_and_the_vectors(tmp_path):
    index = _index(np.eye(4, 3) + 0.1, [0, 0, 1, 1], tmp_path)
    key = knn.knn_key(index, 2)
    index.labels = np.array([0, 1, 1, 0])
    assert knn.knn_key(index, 2) != key
    index.labels = np.array([0, 0, 1, 1])
    assert knn.knn_key(index, 2) == key
    index.embeddings = index.embeddings[::-1].copy()
    assert knn.knn_key(index, 2) != key


# ---------------------------------------------------------------------------- errors


def test_clear_errors(tmp_path):
    vectors = np.eye(4, 3) + 0.1
    unlabelled = _index(vectors, None, tmp_path / "u")
    with pytest.raises(InvalidInputError, match="needs class labels"):
        knn.compute_knn_curve(unlabelled, 2)
    with pytest.raises(InvalidInputError, match="needs class labels"):
        knn.predict(unlabelled, 1, item=0)
    one_class = _index(vectors, [1, 1, 1, 1], tmp_path / "one")
    with pytest.raises(InvalidInputError, match="at least two classes"):
        knn.compute_knn_curve(one_class, 2)
    index = _index(vectors, [0, 0, 1, 1], tmp_path / "ok")
    with pytest.raises(InvalidInputError, match="k=4 is more than the 3 other items"):
        knn.compute_knn_curve(index, 4)
    for bad in (0, -1, True, 2.5, "3"):
        with pytest.raises(InvalidInputError, match="positive integer"):
            knn.compute_knn_curve(index, bad)
    with pytest.raises(InvalidInputError, match="more than the 3 other items"):
        knn.predict(index, 4, item=0)
    with pytest.raises(InvalidInputError, match="either a stored item or a query vector"):
        knn.predict(index, 1)
    with pytest.raises(InvalidInputError, match="at least one neighbour"):
        knn.vote(index, [], [])
    other = _index(vectors, [0, 0, 1, 1], tmp_path / "other", classes=("x", "y", "z"))
    with pytest.raises(InvalidInputError, match="class names differ"):
        knn.compute_knn_curve(index, 2, queries=other)
    wide = _index(np.eye(2, 5) + 0.1, [0, 1], tmp_path / "wide")
    with pytest.raises(InvalidInputError, match="different dimensions"):
        knn.compute_knn_curve(index, 2, queries=wide)
    with pytest.raises(InvalidInputError, match="k=5 is more than the 4 items"):
        knn.compute_knn_curve(index, 5, queries=index)
    with pytest.raises(InvalidInputError, match="computed"):
        knn.compute_knn_curve(index, 2).per_class(3)


# ---------------------------------------------------------------------------- eval-knn


def _knn_cli(data_dir, *args):
    return cli.main(["--data-dir", str(data_dir), "eval-knn", "--model", "pixels", *args])


def test_cli_prints_every_k_and_ends_with_the_best(data_dir, tmp_path, capsys):
    from tests.image_fixtures import make_class_folder

    folder = tmp_path / "images"
    for split in ("train", "test"):
        make_class_folder(folder / split, classes=("cat", "dog", "owl"), per_class=4)
    assert _knn_cli(data_dir, "--data", str(folder), "--split", "test", "--k-max", "5") == 0
    out = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"knn_accuracy@(\d+)=(\d\.\d{4})", out[-1]), out[-1]
    k, acc = re.fullmatch(r"knn_accuracy@(\d+)=(\d\.\d{4})", out[-1]).groups()
    rows = {
        int(line.split()[0]): line.split()[1:]
        for line in out
        if re.match(r"\s*\d+\s+\d\.\d{4}\s+\d\.\d{4}$", line)
    }
    assert sorted(rows) == [1, 2, 3, 4, 5]
    assert max(max(float(v) for v in r) for r in rows.values()) == pytest.approx(float(acc))
    assert 1 <= int(k) <= 5 and any("nearest class centroid" in line for line in out)
    assert (
        _knn_cli(data_dir, "--data", str(folder), "--split", "train", "--query-split", "test", "--k-max", "3")
        == 0
    )
    out = capsys.readouterr().out.splitlines()
    assert "queries from another split, 12 queries" in out[0] and out[-1].startswith("knn_accuracy@")


def test_cli_errors_are_one_line(data_dir, tmp_path, capsys):
    from tests.image_fixtures import make_class_folder

    folder = make_class_folder(tmp_path / "images", classes=("cat", "dog"), per_class=2)
    assert _knn_cli(data_dir, "--data", str(folder), "--k-max", "4") == 2
    err = capsys.readouterr().err
    assert "error: k=4 is more than the 3 other items in the index (leave-one-out)" in err
    assert "Traceback" not in err
    flat = tmp_path / "flat"
    for i, name in enumerate(("a.png", "b.png", "c.png")):
        from tests.image_fixtures import solid, write_image

        write_image(flat / name, solid((10 * i, 20, 30)))
    assert _knn_cli(data_dir, "--data", str(flat), "--k-max", "1") == 2
    assert "needs class labels" in capsys.readouterr().err
