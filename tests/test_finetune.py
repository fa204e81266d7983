"""The deep tier: resumable fine-tuning of an image backbone (on a tiny network and tiny images)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from image_fixtures import make_class_folder
from safetensors.torch import load_file

from embeddings import cli
from embeddings.adapt import finetune, finetuned, saved, trainingdata
from embeddings.errors import InvalidInputError, ModelUnavailableError
from embeddings.image.base import ImageEmbedder, Preprocess
from embeddings.registry import get_image_embedder, image_model_ids
from tests.conftest import ArrayCollection, make_colour_images


class TinyConvEmbedder(ImageEmbedder):
    model_id, dim, batch_size, weights_id = "tiny-conv", 8, 16, "seed0"
    preprocess = Preprocess(resize=16, crop=16, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))

    def __init__(self):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            self.model = torch.nn.Sequential(
                torch.nn.Conv2d(3, 8, 3, padding=1),
                torch.nn.BatchNorm2d(8),
                torch.nn.ReLU(),
                torch.nn.AdaptiveAvgPool2d(1),
                torch.nn.Flatten(),
            ).eval()

    def embed_batch(self, batch):
        return self.model(batch)


@pytest.fixture
def tiny(add_model):
    add_model("tiny-conv", TinyConvEmbedder, kind="image")
    return TinyConvEmbedder()


@pytest.fixture
def train_collection():
    images, labels = make_colour_images(per_class=6, size=8)
    return ArrayCollection(images, labels, ["red", "green", "blue"], split="train")


CFG = finetune.FinetuneConfig(resolution=16, epochs=2, batch_size=4, peak_lr=0.05, bf16=False)


def test_one_cycle_schedule():
    cfg = finetune.FinetuneConfig(peak_lr=0.1, warmup=0.2)
    lrs = [finetune.one_cycle_lr(s, 100, cfg) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1 / 25)
    assert max(lrs) == pytest.approx(0.1, rel=1e-3) and int(np.argmax(lrs)) == 20
    assert lrs[-1] < 0.002 and all(a >= b for a, b in zip(lrs[20:], lrs[21:], strict=False))


def test_bf16_defaults_off_on_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert finetune.FinetuneConfig().resolved().bf16 is False
    assert finetune.FinetuneConfig(bf16=True).resolved().bf16 is True


def test_augment_is_deterministic_and_shaped():
    images, _ = make_colour_images(per_class=2, size=8)
    a = trainingdata.augment(images, np.random.default_rng(1), 16, (0.5,) * 3, (0.5,) * 3)
    b = trainingdata.augment(images, np.random.default_rng(1), 16, (0.5,) * 3, (0.5,) * 3)
    assert tuple(a.shape) == (len(images), 3, 16, 16) and a.dtype == torch.float32
    torch.testing.assert_close(a, b)


def test_finetune_resumes_to_the_same_weights(tiny, train_collection, tmp_path):
    whole = finetune.finetune(train_collection, tiny, CFG, tmp_path / "a", checkpoint_every=2)
    assert whole.done and whole.step == whole.total_steps == 8  # 18 // 4 = 4 steps x 2 epochs

    first = finetune.finetune(train_collection, tiny, CFG, tmp_path / "b", checkpoint_every=100, max_steps=3)
    assert not first.done and first.step == 3
    state = json.loads((first.folder / "state.json").read_text())
    assert state["step"] == 3 and (first.folder / state["checkpoint"]).is_file()
    second = finetune.finetune(train_collection, tiny, CFG, tmp_path / "b", checkpoint_every=100)
    assert second.done and second.model_id == whole.model_id  # same run, same fingerprint
    assert not list(second.folder.glob("ckpt-*")) and not (second.folder / "state.json").exists()

    a = load_file(str(whole.folder / "weights.safetensors"))
    b = load_file(str(second.folder / "weights.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)
    base = tiny.model.state_dict()
    assert not torch.equal(a["0.weight"], base["0.weight"])  # it did train
    # rerunning a finished run does nothing
    again = finetune.finetune(train_collection, tiny, CFG, tmp_path / "a")
    assert again.done and again.seconds_this_run == 0.0


def test_damaged_checkpoint_starts_again(tiny, train_collection, tmp_path):
    first = finetune.finetune(train_collection, tiny, CFG, tmp_path, max_steps=2)
    state = json.loads((first.folder / "state.json").read_text())
    (first.folder / state["checkpoint"]).write_bytes(b"broken")
    messages = []
    finetune.finetune(train_collection, tiny, CFG, tmp_path, max_steps=1, say=messages.append)
    assert any(m.startswith("starting") for m in messages)


def test_finetuned_model_is_registered_and_embeds(tiny, train_collection, data_dir):
    result = finetune.finetune(train_collection, tiny, CFG, data_dir)
    assert result.model_id in image_model_ids()
    assert saved.latest_finetuned("tiny-conv", data_dir) == result.model_id
    embedder = get_image_embedder(result.model_id)
    assert isinstance(embedder, finetuned.FinetunedImageEmbedder)
    assert embedder.dim == 8 and embedder.preprocess.resize == 16
    assert embedder.fingerprint()["weights"].startswith("fine-tuned ")
    vectors = embedder.set_precision("fp32").embed(train_collection.images[:5])
    assert vectors.shape == (5, 8)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    info = json.loads((result.folder / "model.json").read_text())
    assert info["training_collection"]["split"] == "train" and info["config"]["epochs"] == 2


def test_errors(tiny, train_collection, data_dir, pixel_embedder):
    with pytest.raises(ModelUnavailableError, match="no fine-tuned weights for tiny-conv"):
        saved.latest_finetuned("tiny-conv", data_dir)
    with pytest.raises(InvalidInputError, match="no trainable network"):
        finetune.finetune(train_collection, pixel_embedder, CFG, data_dir)
    unlabelled = ArrayCollection(train_collection.images, None, [], split="train")
    with pytest.raises(InvalidInputError, match="labels"):
        finetune.finetune(unlabelled, tiny, CFG, data_dir)
    with pytest.raises(InvalidInputError, match="subset"):
        finetune.finetune(
            train_collection, tiny, finetune.FinetuneConfig(resolution=16, subset=10_000), data_dir
        )


def test_cli_finetune_then_eval(tiny, tmp_path, data_dir, capsys):
    root = tmp_path / "colours"
    make_class_folder(root / "train", classes=("red", "green", "blue"), per_class=6)
    make_class_folder(root / "test", classes=("red", "green", "blue"), per_class=3)
    common = ["--data-dir", str(data_dir)]
    ft = [*common, "finetune", "--data", str(root), "--model", "tiny-conv", "--resolution", "16"]
    ft += ["--epochs", "1", "--batch-size", "4", "--bf16", "off"]
    assert cli.main(ft) == 0
    out, err = capsys.readouterr()
    assert out.strip().splitlines()[-1].startswith("finetune done: model=tiny-conv-ft-")
    ev = [*common, "eval-images", "--data", str(root), "--model", "tiny-conv", "--precision", "fp32"]
    assert (
        cli.main([*ev, "--split", "test", "--index-split", "train", "--adapt", "finetune", "--k", "2"]) == 0
    )
    out, err = capsys.readouterr()
    assert "fine-tuned model: tiny-conv-ft-" in err
    assert out.strip().splitlines()[-1].startswith("precision@2=") and out.strip().endswith("queries=9")
    # the queries must not be the images it was trained on
    assert cli.main([*ev, "--split", "train", "--index-split", "test", "--adapt", "finetune"]) == 2
    assert "trained on the query split" in capsys.readouterr().err
