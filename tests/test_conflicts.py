"""Label conflicts and near-duplicate pairs (embeddings.index.conflicts) on constructed vectors with
known answers, the saved results' reuse and keys, the errors, and the two CLI commands."""

from __future__ import annotations

import hashlib
import re

import numpy as np
import pytest

from embeddings import cli
from embeddings.errors import InvalidInputError
from embeddings.index import conflicts
from embeddings.index.store import ImageIndex, require_faiss
from tests.image_fixtures import write_image

DIM = 64
CLASSES = ["a", "b", "c"]


def make_index(folder, vectors, labels=None, classes=CLASSES) -> ImageIndex:
    """An ImageIndex over ``vectors`` (normalised) in ``folder``: the interface the module works on."""
    vectors = np.ascontiguousarray(vectors / np.linalg.norm(vectors, axis=1, keepdims=True), np.float32)
    folder.mkdir(parents=True, exist_ok=True)
    flat = require_faiss().IndexFlatIP(vectors.shape[1])
    flat.add(vectors)
    sha = hashlib.sha256(vectors.tobytes()).hexdigest()
    manifest = {"files": {"embeddings.npy": {"sha256": sha}}}
    labels = None if labels is None else np.asarray(labels, dtype=np.int64)
    return ImageIndex(folder, manifest, vectors, labels, list(classes) if labels is not None else [], flat)


def clusters(per_class: int = 12, seed: int = 0, noise: float = 1.0):
    """Three clusters (cosine about 0.5 inside one, about 0 between), labelled by cluster."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, DIM))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    vectors, labels = [], []
    for c in range(3):
        points = centres[c] + noise * rng.normal(size=(per_class, DIM)) / np.sqrt(DIM)
        vectors.append(points)
        labels += [c] * per_class
    return np.concatenate(vectors), np.array(labels), centres


# ---------------------------------------------------------------------------- label conflicts


def test_mislabelled_items_are_found_ranked_with_the_neighbours_label(tmp_path):
    vectors, labels, _ = clusters()
    wrong = {3: 1, 15: 2, 30: 0}  # item -> the label it is given (its cluster says otherwise)
    true = labels.copy()
    for i, lab in wrong.items():
        labels[i] = lab
    index = make_index(tmp_path / "idx", vectors, labels)
    found = conflicts.find_label_conflicts(index, k=5)
    assert sorted(found.ids.tolist()) == sorted(wrong)
    for row in found.rows():
        assert row["share"] == 1.0 and row["majority_share"] == 1.0
        assert row["neighbours_say"] == CLASSES[true[row["id"]]]
        assert row["label"] == CLASSES[wrong[row["id"]]]
    assert found.per_class == {"a": 1, "b": 1, "c": 1}
    assert found.lines()[-1] == f"label_conflicts=3 items={len(labels)} k=5"


def test_ranking_is_share_then_the_similarity_weighted_share():
    labels = np.array([0, 0, 0, 1, 1, 1, 0])
    found = np.array([[3, 4, 1], [3, 4, 2], [3, 1, 2], [0, 1, 2], [5, 3, 6], [4, 3, 0], [0, 1, 2]])
    scores = np.array(
        [[0.9, 0.9, 0.1], [0.2, 0.2, 0.9], [0.5, 0.5, 0.5], [0.5, 0.5, 0.5], [1, 1, 1], [1, 1, 1], [1, 1, 1]]
    )
    arrays = conflicts.disagreement_from_neighbours(labels, found, scores, 2)
    share, weighted, majority = arrays["share"], arrays["weighted"], arrays["majority"]
    np.testing.assert_allclose(share, [2 / 3, 2 / 3, 1 / 3, 1, 1 / 3, 1 / 3, 0])
    np.testing.assert_allclose(weighted[:2], [1.8 / 1.9, 0.4 / 1.3])
    assert majority.tolist() == [1, 1, 1, 0, 0, 0, -1]
    np.testing.assert_allclose(arrays["other_cosine"], [0.9, 0.2, 0.5, 0.5, 1, 1, 0])
    scored = conflicts.NeighbourDisagreement(3, ["x", "y"], labels, **arrays)
    ranked = scored.conflicts(0.5)
    assert ranked.ids.tolist() == [3, 0, 1]  # full disagreement first; then 0 outweighs 1 at 2/3
    # 2, 4 and 5 tie at 1/3 (weighted too, one other neighbour each): the closer other neighbour first
    assert scored.conflicts(0.3).ids.tolist() == [3, 0, 1, 4, 5, 2]
    assert ranked.per_class == {"x": 2, "y": 1}


def test_label_conflicts_are_saved_beside_the_index_keyed_and_reused(tmp_path, monkeypatch):
    vectors, labels, _ = clusters()
    labels[3] = 1
    index = make_index(tmp_path / "idx", vectors, labels)
    first = conflicts.find_label_conflicts(index, k=5)
    saved = list(index.path.glob("conflicts-k5-*.npz"))
    assert len(saved) == 1 and not list(index.path.glob(".*tmp"))

    def no_search(*args, **kwargs):
        raise AssertionError("searched again instead of reusing the saved result")

    monkeypatch.setattr(index, "neighbours", no_search)
    again = conflicts.find_label_conflicts(index, k=5, min_share=0.4)  # min share is a filter, not a key
    assert again.scores.seconds == 0.0
    np.testing.assert_array_equal(again.scores.share, first.scores.share)
    with pytest.raises(AssertionError, match="searched again"):
        conflicts.find_label_conflicts(index, k=4)  # another k is another result
    monkeypatch.undo()
    relabelled = make_index(tmp_path / "idx", vectors, np.where(np.arange(len(labels)) == 3, 0, labels))
    assert len(conflicts.find_label_conflicts(relabelled, k=5)) == 0  # new labels: computed afresh
    assert len(list(index.path.glob("conflicts-k5-*.npz"))) == 2
    saved[0].write_bytes(b"not an npz")  # a damaged file is computed again, not trusted
    assert conflicts.find_label_conflicts(index, k=5).ids.tolist() == [3]


def test_label_conflict_errors(tmp_path):
    vectors, labels, _ = clusters(per_class=3)
    with pytest.raises(InvalidInputError, match="needs class labels"):
        conflicts.find_label_conflicts(make_index(tmp_path / "u", vectors))
    index = make_index(tmp_path / "l", vectors, labels)
    with pytest.raises(InvalidInputError, match="k=9 needs more than the 9 items"):
        conflicts.find_label_conflicts(index, k=9)
    for bad in (0, -1, True, 2.5):
        with pytest.raises(InvalidInputError, match="positive integer"):
            conflicts.find_label_conflicts(index, k=bad)
    for share in (0, 1.5, float("nan")):
        with pytest.raises(InvalidInputError, match="min share"):
            conflicts.find_label_conflicts(index, k=2, min_share=share)


# ---------------------------------------------------------------------------- near-duplicates


def with_copies(vectors, pairs, rng, jitter=0.02):
    """``vectors`` where item j of each (i, j) is item i plus a little noise (cosine about 0.9998)."""
    out = vectors.copy()
    for i, j in pairs:
        out[j] = vectors[i] / np.linalg.norm(vectors[i]) + jitter * rng.normal(size=DIM) / np.sqrt(DIM)
    return out


def test_near_duplicates_within_a_split_are_each_listed_once(tmp_path):
    vectors, labels, _ = clusters()
    planted = [(0, 5), (7, 20), (13, 35), (21, 22)]
    vectors = with_copies(vectors, planted, np.random.default_rng(1))
    index = make_index(tmp_path / "idx", vectors, labels)
    pairs = conflicts.find_duplicates(index, threshold=0.95)
    assert sorted(zip(pairs.first.tolist(), pairs.second.tolist(), strict=True)) == sorted(planted)
    assert (pairs.first < pairs.second).all() and (pairs.cosine >= 0.95).all()
    assert list(pairs.cosine) == sorted(pairs.cosine, reverse=True)
    assert pairs.items().tolist() == sorted({i for p in planted for i in p})
    assert pairs.per_class(labels, CLASSES) == {"a": 3, "b": 4, "c": 1}  # 0 5 7 | 13 20 21 22 | 35
    assert pairs.mixed(labels) == 2  # (7, 20) and (13, 35) cross clusters' labels
    assert pairs.lines(labels, None, CLASSES)[-1] == "duplicates=4 items=8 threshold=0.950"
    # the whole cluster is within 0.8 of nothing; a low threshold lists more, from the same search
    low = conflicts.duplicate_candidates(index).at(0.8)
    assert set(zip(low.first.tolist(), low.second.tolist(), strict=True)) >= set(planted)
    pairs_once = list(zip(low.first.tolist(), low.second.tolist(), strict=True))
    assert len(pairs_once) == len(set(pairs_once))


def test_near_duplicates_across_two_splits(tmp_path):
    rng = np.random.default_rng(2)
    train, train_labels, centres = clusters(per_class=20, seed=3)
    test = np.concatenate([centres[c] + rng.normal(size=(6, DIM)) / np.sqrt(DIM) for c in range(3)])
    test_labels = np.repeat(np.arange(3), 6)
    leaked = {0: 4, 7: 25, 8: 26, 16: 50}  # test item -> the train item it copies
    for i, j in leaked.items():
        test[i] = train[j] + 0.02 * rng.normal(size=DIM) / np.sqrt(DIM)
    train_index = make_index(tmp_path / "train", train, train_labels)
    test_index = make_index(tmp_path / "test", test, test_labels)
    pairs = conflicts.find_duplicates(test_index, train_index, threshold=0.95)
    assert dict(zip(pairs.first.tolist(), pairs.second.tolist(), strict=True)) == leaked
    assert pairs.cross and pairs.items().tolist() == sorted(leaked)
    assert pairs.per_class(test_labels, CLASSES) == {"a": 1, "b": 2, "c": 1}
    assert pairs.mixed(test_labels, train_labels) == 0
    last = pairs.lines(test_labels, train_labels, CLASSES, names=("test", "train"))[-1]
    assert last == "duplicates=4 items=4 threshold=0.950"
    assert list(test_index.path.glob("duplicates-cross-*.npz")) and not list(
        train_index.path.glob("duplicates-*.npz")
    )
    # the other direction, and within one split, are other results
    back = conflicts.find_duplicates(train_index, test_index, threshold=0.95)
    assert sorted(back.first.tolist()) == sorted(leaked.values())
    assert len(conflicts.find_duplicates(test_index, threshold=0.95)) == 0


def test_duplicate_candidates_are_saved_keyed_by_both_indexes_and_reused(tmp_path, monkeypatch):
    vectors, labels, _ = clusters()
    vectors = with_copies(vectors, [(0, 1)], np.random.default_rng(4))
    a = make_index(tmp_path / "a", vectors, labels)
    b = make_index(tmp_path / "b", vectors[::-1].copy(), labels[::-1].copy())
    first = conflicts.duplicate_candidates(a, b)
    assert first.seconds >= 0 and len(list(a.path.glob("duplicates-cross-*.npz"))) == 1

    def no_search(*args, **kwargs):
        raise AssertionError("searched again")

    monkeypatch.setattr(b, "search", no_search)
    again = conflicts.duplicate_candidates(a, b)
    assert again.seconds == 0.0
    np.testing.assert_array_equal(again.first, first.first)
    np.testing.assert_array_equal(again.cosine, first.cosine)
    c = make_index(tmp_path / "c", vectors[::-1] + 0.01, labels)  # another partner: another key
    monkeypatch.setattr(c, "search", no_search)
    with pytest.raises(AssertionError, match="searched again"):
        conflicts.duplicate_candidates(a, c)
    # thresholds are filters of one saved search
    assert len(first.at(0.99)) <= len(first.at(0.9)) <= len(first.at(0.8))


def test_duplicate_errors(tmp_path):
    vectors, labels, _ = clusters(per_class=3)
    index = make_index(tmp_path / "i", vectors, labels)
    for bad in (1.5, 0.5, -1, float("nan")):  # 0.5 is below the floor the saved search went down to
        with pytest.raises(InvalidInputError, match="threshold"):
            conflicts.duplicate_candidates(index).at(bad)
    with pytest.raises(InvalidInputError, match="threshold must be between"):
        conflicts.find_duplicates(index, threshold=1.01)
    other = make_index(tmp_path / "o", np.ones((4, 8)), [0, 1, 2, 0])
    with pytest.raises(InvalidInputError, match="differ in dimension"):
        conflicts.find_duplicates(index, other)
    lonely = make_index(tmp_path / "one", vectors[:1], labels[:1])
    with pytest.raises(InvalidInputError, match="at least two"):
        conflicts.find_duplicates(lonely)
    unlabelled = make_index(tmp_path / "u", vectors)  # duplicates need no labels
    assert conflicts.find_duplicates(unlabelled, threshold=0.99).lines()[-1].startswith("duplicates=")


# ---------------------------------------------------------------------------- the CLI


def colour_folder(root):
    """train/ and test/ of noisy red, green and blue squares; test's first red is train's red 0, and
    train's green 2 is a red square filed under green (a label conflict)."""
    rng = np.random.default_rng(0)
    colours = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (40, 50, 230)}

    def square(rgb):
        return np.clip(np.array(rgb) + rng.integers(-60, 61, size=(16, 16, 3)), 0, 255).astype(np.uint8)

    kept = {}
    for split, n in (("train", 8), ("test", 4)):
        for name, rgb in colours.items():
            for i in range(n):
                image = square(colours["red"] if (split, name, i) == ("train", "green", 2) else rgb)
                kept[(split, name, i)] = image
                write_image(root / split / name / f"{i:03d}.png", image)
    write_image(root / "test" / "red" / "000.png", kept[("train", "red", 0)])
    return root


def count_line(out: str, name: str) -> dict[str, str]:
    last = out.strip().splitlines()[-1]
    assert re.fullmatch(rf"{name}=\d+( \w+=[\d.]+)+", last), last
    return dict(part.split("=") for part in last.split())


def test_cli_find_duplicates_within_and_across_splits(tmp_path, data_dir, capsys):
    root = colour_folder(tmp_path / "colours")
    argv = ["--data-dir", str(data_dir), "find-duplicates", "--data", str(root), "--model", "pixels"]
    assert cli.main([*argv, "--split", "test", "--against", "train", "--threshold", "0.999"]) == 0
    out, err = capsys.readouterr()
    assert count_line(out, "duplicates") == {"duplicates": "1", "items": "1", "threshold": "0.999"}
    assert "red  1" in out and "computed in" in err
    assert cli.main([*argv, "--split", "test", "--threshold", "0.999"]) == 0  # within test: none
    assert count_line(capsys.readouterr().out, "duplicates")["duplicates"] == "0"
    assert cli.main([*argv, "--split", "test", "--against", "train", "--threshold", "1.5"]) == 2
    assert "threshold must be between" in capsys.readouterr().err


def test_cli_find_label_conflicts(tmp_path, data_dir, capsys):
    root = colour_folder(tmp_path / "colours")
    argv = ["--data-dir", str(data_dir), "find-label-conflicts", "--data", str(root), "--model", "pixels"]
    assert cli.main([*argv, "--split", "train", "--k", "5"]) == 0
    out, err = capsys.readouterr()
    assert count_line(out, "label_conflicts") == {"label_conflicts": "1", "items": "24", "k": "5"}
    rank1 = out.splitlines()[1].split()
    assert rank1[:4] == ["1", "10", "green", "red"]  # train/green/002.png: id 8 + 2, its neighbours red
    assert cli.main([*argv, "--split", "train"]) == 0  # the default k=10
    assert count_line(capsys.readouterr().out, "label_conflicts")["k"] == "10"
    assert cli.main([*argv, "--split", "train", "--k", "50"]) == 2
    assert "k=50 needs more than the 24 items" in capsys.readouterr().err
