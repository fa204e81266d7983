"""The fast adaptation tier: projection heads on frozen embeddings, adapted models and indexes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from image_fixtures import make_class_folder

from embeddings import cli
from embeddings.adapt import heads as adapt
from embeddings.adapt import saved
from embeddings.core.mathops import normalize
from embeddings.errors import InvalidInputError, ModelUnavailableError
from embeddings.index import service
from embeddings.index import store as idx
from embeddings.index.evaluation import evaluate_retrieval, score_neighbours
from embeddings.registry import get_image_embedder, image_model_ids
from tests.conftest import ArrayCollection, make_colour_images


def nuisance_vectors(n_per_class=60, seed=0):
    """Two classes told apart only by a small signal in dim 4; dims 0-3 carry large class-free noise,
    so plain cosine neighbours are near chance and a linear head should fix that."""
    rng = np.random.default_rng(seed)
    labels = np.repeat([0, 1], n_per_class)
    x = np.zeros((2 * n_per_class, 5))
    x[:, :4] = rng.normal(0, 5.0, size=(2 * n_per_class, 4))
    x[:, 4] = np.where(labels == 0, 1.0, -1.0) + rng.normal(0, 0.2, size=2 * n_per_class)
    return normalize(x.astype(np.float32)), labels


def _precision(vectors, labels, k=5):
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, -np.inf)
    found = np.argsort(-sims, axis=1)[:, :k]
    return score_neighbours(found, labels, labels, ["a", "b"]).precision


@pytest.mark.parametrize("method", adapt.HEAD_METHODS)
def test_head_separates_classes_hidden_under_noise(method):
    train, train_labels = nuisance_vectors(seed=0)
    test, test_labels = nuisance_vectors(seed=1)
    head = adapt.fit_head(train, train_labels, ["a", "b"], method)
    assert head.dim == (1 if method == "lda" else 2) and head.input_dim == 5
    out = head.apply(test)
    assert out.dtype == np.float32 and out.shape == (len(test), head.dim)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    assert _precision(test, test_labels) < 0.75
    assert _precision(out, test_labels) > 0.95
    again = adapt.fit_head(train, train_labels, ["a", "b"], method)
    np.testing.assert_array_equal(again.apply(test), out)  # deterministic


def test_fit_head_rejects_bad_input():
    x, y = nuisance_vectors()
    with pytest.raises(InvalidInputError, match="unknown head method"):
        adapt.fit_head(x, y, ["a", "b"], "svm")
    with pytest.raises(InvalidInputError, match="no training vectors"):
        adapt.fit_head(x, np.zeros_like(y), ["a", "b"], "lda")
    with pytest.raises(InvalidInputError, match="labels"):
        adapt.fit_head(x, None, ["a", "b"])
    head = adapt.fit_head(x, y, ["a", "b"], "lda")
    with pytest.raises(InvalidInputError, match="5-d"):
        head.apply(np.ones((2, 3), dtype=np.float32))


def _train_test(split_seed=0):
    images, labels = make_colour_images(per_class=8, seed=split_seed)
    train = ArrayCollection(images, labels, ["red", "green", "blue"], split="train")
    images, labels = make_colour_images(per_class=4, seed=split_seed + 1)
    test = ArrayCollection(images, labels, ["red", "green", "blue"], split="test")
    return train, test


def test_head_saved_under_fingerprint_and_reloaded(pixel_embedder, data_dir):
    train, _ = _train_test()
    index, _ = service.get_or_build_index(train, pixel_embedder, data_dir)
    head, how = adapt.get_or_fit_head(index, pixel_embedder, "lda", data_dir)
    assert how == "fitted"
    folder = adapt.head_dir("pixels", "lda", head.fingerprint, data_dir)
    assert sorted(p.name for p in folder.iterdir()) == ["head.json", "head.npz"]
    info = json.loads((folder / "head.json").read_text())
    assert info["training_embeddings_sha256"] == index.manifest["files"]["embeddings.npy"]["sha256"]
    assert info["base_fingerprint"]["model_id"] == "pixels" and info["package_version"]
    with np.load(folder / "head.npz", allow_pickle=False) as arrays:  # plain arrays, no pickle
        assert set(arrays.files) == {"mean", "weight", "bias"}
    again, how = adapt.get_or_fit_head(index, pixel_embedder, "lda", data_dir)
    assert how == "loaded" and again.fingerprint == head.fingerprint
    np.testing.assert_array_equal(again.weight, head.weight)
    other, _ = adapt.get_or_fit_head(index, pixel_embedder, "logreg", data_dir)
    assert other.fingerprint != head.fingerprint  # the method is part of the fingerprint
    # a damaged head is refitted, never used
    (folder / "head.npz").write_bytes(b"garbage")
    with pytest.raises(ModelUnavailableError, match="damaged"):
        adapt.load_head(folder)
    _, how = adapt.get_or_fit_head(index, pixel_embedder, "lda", data_dir)
    assert how == "fitted"


def test_head_fingerprint_follows_training_embeddings(pixel_embedder, data_dir):
    train, _ = _train_test()
    other_train, _ = _train_test(split_seed=5)
    a, _ = adapt.get_or_fit_head(
        service.get_or_build_index(train, pixel_embedder, data_dir)[0], pixel_embedder, "lda"
    )
    other_index, _ = service.get_or_build_index(
        ArrayCollection(
            other_train.images, other_train.labels, other_train.classes, name="other", split="train"
        ),
        pixel_embedder,
        data_dir,
    )
    b, _ = adapt.get_or_fit_head(other_index, pixel_embedder, "lda")
    assert a.fingerprint != b.fingerprint


def test_adapted_embedder_and_index_without_reembedding(pixel_embedder, data_dir, monkeypatch):
    train, test = _train_test()
    train_index, _ = service.get_or_build_index(train, pixel_embedder, data_dir)
    test_index, _ = service.get_or_build_index(test, pixel_embedder, data_dir)
    head, _ = adapt.get_or_fit_head(train_index, pixel_embedder, "logreg", data_dir)
    adapted = adapt.AdaptedImageEmbedder(pixel_embedder, head)
    assert adapted.model_id == f"pixels-logreg-{head.fingerprint[:8]}"
    fp = adapted.fingerprint()
    assert fp["head"]["fingerprint"] == head.fingerprint and fp["weights"] == pixel_embedder.weights_id
    direct = adapted.embed(test.images)
    np.testing.assert_allclose(direct, head.apply(pixel_embedder.embed(test.images)), atol=1e-6)

    calls = []
    monkeypatch.setattr(adapted.base, "embed", lambda *a, **k: calls.append(1))  # must not be needed
    derived = service.adapt_index(test_index, adapted, data_dir)
    assert not calls and derived.dim == head.dim and derived.count == len(test)
    np.testing.assert_allclose(derived.embeddings, direct, atol=1e-5)
    assert derived.manifest["derived_from"]["path"] == str(test_index.path)
    assert derived.manifest["key"]["model"]["head"]["fingerprint"] == head.fingerprint
    # the derived index is an ordinary index: it loads for (collection, adapted) and is reused
    assert idx.load_index(test, adapted, data_dir).count == len(test)
    again, status = service.get_or_build_index(test, adapted, data_dir)
    assert status.action == "loaded"
    result = evaluate_retrieval(service.adapt_index(train_index, adapted, data_dir), k=3, queries=derived)
    assert result.precision == pytest.approx(1.0)


def test_get_or_build_any_index_derives_from_base(pixel_embedder, data_dir):
    train, test = _train_test()
    train_index, _ = service.get_or_build_index(train, pixel_embedder, data_dir)
    head, _ = adapt.get_or_fit_head(train_index, pixel_embedder, "lda", data_dir)
    adapted = adapt.AdaptedImageEmbedder(pixel_embedder, head)
    index, status = service.get_or_build_index(test, adapted, data_dir)
    assert status.action == "built" and "head" in status.reason
    assert idx.load_index(test, pixel_embedder, data_dir).count == len(test)  # base index built on the way


def test_saved_heads_become_model_ids(pixel_embedder, data_dir, tmp_path, monkeypatch):
    train, test = _train_test()
    index, _ = service.get_or_build_index(train, pixel_embedder, data_dir)
    head, _ = adapt.get_or_fit_head(index, pixel_embedder, "lda", data_dir)
    model_id = f"pixels-lda-{head.fingerprint[:8]}"
    assert model_id in image_model_ids()
    embedder = get_image_embedder(model_id)
    assert isinstance(embedder, adapt.AdaptedImageEmbedder) and embedder.dim == head.dim
    np.testing.assert_allclose(
        embedder.embed(test.images), head.apply(pixel_embedder.embed(test.images)), atol=1e-6
    )
    monkeypatch.setenv("EMBEDDINGS_DATA_DIR", str(tmp_path / "elsewhere"))
    assert model_id not in image_model_ids()  # ids follow the data dir


def test_training_index_must_match_base(pixel_embedder, data_dir):
    train, _ = _train_test()
    index, _ = service.get_or_build_index(train, pixel_embedder, data_dir)
    head, _ = adapt.get_or_fit_head(index, pixel_embedder, "lda", data_dir)
    adapted = adapt.AdaptedImageEmbedder(pixel_embedder, head)
    adapted_index = service.adapt_index(index, adapted, data_dir)
    with pytest.raises(InvalidInputError, match="not built with"):
        adapt.get_or_fit_head(adapted_index, pixel_embedder, "lda", data_dir)
    with pytest.raises(InvalidInputError, match="not built with"):
        service.adapt_index(adapted_index, adapted, data_dir)


# ----------------------------------------------------------------------------- command line


@pytest.fixture
def split_folder(tmp_path):
    root = tmp_path / "colours"
    make_class_folder(root / "train", classes=("red", "green", "blue"), per_class=6)
    make_class_folder(root / "test", classes=("red", "green", "blue"), per_class=3)
    return root


def _run(argv, capsys):
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_eval_images_adapt_head(split_folder, data_dir, capsys):
    base = [
        "--data-dir",
        str(data_dir),
        "eval-images",
        "--data",
        str(split_folder),
        "--model",
        "pixels",
        "--k",
        "2",
    ]
    code, out, err = _run([*base, "--split", "test", "--index-split", "train", "--adapt", "head"], capsys)
    assert code == 0, err
    last = out.strip().splitlines()[-1]
    assert last.startswith("precision@2=") and last.endswith("queries=9")
    assert "logreg head fitted" in err and "adapted model: pixels-logreg-" in err
    code, _, err = _run([*base, "--split", "test", "--index-split", "train", "--adapt", "head"], capsys)
    assert code == 0 and "logreg head loaded" in err  # nothing refitted
    code, out, err = _run(
        [*base, "--split", "test", "--index-split", "train", "--adapt", "head", "--head-method", "lda"],
        capsys,
    )
    assert code == 0 and "lda head fitted" in err


def test_cli_adapt_needs_another_index_split(split_folder, data_dir, capsys):
    base = ["--data-dir", str(data_dir), "eval-images", "--data", str(split_folder), "--model", "pixels"]
    for extra in ([], ["--index-split", "test"]):
        code, _, err = _run([*base, "--split", "test", "--adapt", "head", *extra], capsys)
        assert code == 2 and "--adapt needs --index-split" in err


def test_cli_adapt_finetune_without_weights_is_a_clear_error(split_folder, data_dir, capsys):
    argv = ["--data-dir", str(data_dir), "eval-images", "--data", str(split_folder), "--model", "pixels"]
    code, _, err = _run([*argv, "--split", "test", "--index-split", "train", "--adapt", "finetune"], capsys)
    assert code == 2 and "no fine-tuned weights for pixels" in err and "finetune --data" in err


def test_cli_fit_head_prints_model_id(split_folder, data_dir, capsys):
    code, out, err = _run(
        [
            "--data-dir",
            str(data_dir),
            "fit-head",
            "--data",
            str(split_folder),
            "--model",
            "pixels",
            "--method",
            "lda",
        ],
        capsys,
    )
    assert code == 0, err
    model_id = out.splitlines()[0].removeprefix("model id: ")
    assert model_id.startswith("pixels-lda-") and model_id in image_model_ids()
    code, out, err = _run(
        [
            "--data-dir",
            str(data_dir),
            "search",
            "--data",
            str(split_folder),
            "--split",
            "test",
            "--model",
            model_id,
            "--id",
            "0",
            "--k",
            "2",
        ],
        capsys,
    )
    assert code == 0, err
    assert "head applied to the base index" in err  # derived, not re-embedded


def test_bundled_head_matches_the_offline_model_and_is_an_honest_after(data_dir):
    """The shipped Lite0 head loads (sha256-checked), was fitted on CIFAR-10 *train* only, and still
    matches today's efficientnet_lite0 'fast' fingerprint: a change to its weights or preprocessing
    must fail here instead of silently pairing a stale head with new vectors."""
    pytest.importorskip("timm")
    found = [(m, f, i) for m, f, i in saved.saved_heads(data_dir) if f.parent == saved.BUNDLED_HEADS]
    assert len(found) == 1
    model_id, folder, info = found[0]
    assert model_id.startswith("efficientnet_lite0-logreg-")
    assert info["training_collection"]["split"] == "train" and info["train_count"] == 50000
    head = adapt.load_head(folder)
    assert (head.input_dim, head.dim) == (1280, 10) and head.classes[3] == "cat"
    lite0 = get_image_embedder("efficientnet_lite0").set_precision("fast")
    assert info["base_fingerprint"] == json.loads(json.dumps(lite0.fingerprint()))
    assert model_id in image_model_ids()  # usable as a model id without fitting anything
    assert not adapt.heads_root(data_dir).exists()  # nothing written to the data dir
