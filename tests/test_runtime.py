"""The ``onnx`` precision: exported once per fingerprint into the data folder, reused, atomic, and a
fallback to ``fast`` (with the reason) for models that cannot be exported."""

import logging

import numpy as np
import pytest
import torch

from embeddings.adapt.heads import AdaptedImageEmbedder, ProjectionHead
from embeddings.image import runtime
from embeddings.image.base import Preprocess
from embeddings.models.baselines import PixelImageEmbedder
from tests.test_images import TinyConvEmbedder, _images

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")


def _exports(data_dir):
    folder = data_dir / runtime.RUNTIME_FOLDER
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.fixture
def count_exports(monkeypatch):
    calls = []
    real = runtime.export_onnx

    def counting(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(runtime, "export_onnx", counting)
    return calls


def test_export_written_once_and_reused(data_dir, count_exports):
    first = TinyConvEmbedder().set_precision("onnx")
    assert first.precision == "onnx" and first.runtime_fallback == ""
    files = _exports(data_dir)
    assert len(files) == 1 and files[0].startswith("tiny-conv-") and files[0].endswith(".onnx")
    second = TinyConvEmbedder().set_precision("onnx")
    assert len(count_exports) == 1  # the second embedder loaded the file
    assert _exports(data_dir) == files
    np.testing.assert_array_equal(first.embed(_images(5)), second.embed(_images(5)))
    assert first.fingerprint()["precision"] == "onnx"


def test_onnx_vectors_match_fp32_and_any_batch_size(data_dir):
    fp32 = TinyConvEmbedder().set_precision("fp32").embed(_images(9))
    onnx = TinyConvEmbedder().set_precision("onnx")
    onnx.batch_size = 4  # batches of 4, 4 and 1 through the dynamic batch axis
    np.testing.assert_allclose(onnx.embed(_images(9)), fp32, atol=1e-5)


def test_changed_fingerprint_gives_a_new_file(data_dir, count_exports):
    TinyConvEmbedder().set_precision("onnx")
    other_size = TinyConvEmbedder()
    other_size.preprocess = Preprocess(resize=20, crop=20, mean=(0.5,) * 3, std=(0.25,) * 3)
    other_size.set_precision("onnx")
    other_weights = TinyConvEmbedder()
    with torch.no_grad():
        other_weights.model[0].bias.add_(1.0)  # same weights id, different numbers
    other_weights.set_precision("onnx")
    assert len(count_exports) == 3 and len(_exports(data_dir)) == 3
    assert other_size.embed(_images(2)).shape == (2, 8)


def test_runtime_key_names_versions_and_opset(data_dir):
    key = runtime.runtime_key(TinyConvEmbedder())
    assert key["opset"] == runtime.OPSET and key["torch"] == torch.__version__
    assert key["onnxruntime"] and key["preprocess"]["crop"] == 12 and key["weights"] == "seed0"


def test_failed_export_leaves_no_file_and_falls_back(data_dir, monkeypatch, caplog):
    def half_written(model, args, path, **kwargs):
        with open(path, "wb") as fh:
            fh.write(b"\x08\x07 half an onnx file")
        raise RuntimeError("exporter crashed")

    monkeypatch.setattr(torch.onnx, "export", half_written)
    with caplog.at_level(logging.WARNING):
        emb = TinyConvEmbedder().set_precision("onnx")
    assert emb.precision == "fast" and "exporter crashed" in emb.runtime_fallback
    assert "running fast instead" in caplog.text
    assert list((data_dir / runtime.RUNTIME_FOLDER).iterdir()) == []  # no partial or temp file
    fp32 = TinyConvEmbedder().set_precision("fp32").embed(_images(4))
    np.testing.assert_allclose(emb.embed(_images(4)), fp32, atol=1e-5)


def test_damaged_export_is_exported_again(data_dir, count_exports):
    TinyConvEmbedder().set_precision("onnx")
    (path,) = (data_dir / runtime.RUNTIME_FOLDER).iterdir()
    path.write_bytes(b"not onnx")
    emb = TinyConvEmbedder().set_precision("onnx")
    assert emb.precision == "onnx" and len(count_exports) == 2
    assert path.stat().st_size > 100


class UntraceableEmbedder(TinyConvEmbedder):
    traceable = False


@pytest.mark.parametrize(
    "make,reason",
    [(PixelImageEmbedder, "no torch module"), (UntraceableEmbedder, "not traceable")],
)
def test_non_exportable_models_fall_back_to_fast_with_the_reason(data_dir, make, reason, caplog):
    with caplog.at_level(logging.WARNING):
        emb = make().set_precision("onnx")
    assert emb.precision == "fast" and reason in emb.runtime_fallback
    assert reason in caplog.text
    assert emb.fingerprint()["precision"] == "fast"  # what really runs
    assert emb.embed(_images(3)).shape == (3, emb.dim)
    assert _exports(data_dir) == []
    assert emb.set_precision("fp32").runtime_fallback == ""


def test_export_goes_to_the_embedders_data_dir_when_given(tmp_path, data_dir):
    emb = TinyConvEmbedder()
    emb.runtime_data_dir = tmp_path / "elsewhere"
    emb.set_precision("onnx")
    assert len(list((tmp_path / "elsewhere" / runtime.RUNTIME_FOLDER).iterdir())) == 1
    assert _exports(data_dir) == []


def test_adapted_embedder_runs_its_base_on_onnx(data_dir):
    base = TinyConvEmbedder()
    rng = np.random.default_rng(0)
    head = ProjectionHead("lda", np.zeros(8), rng.normal(size=(8, 4)), np.zeros(4), list("abcd"), "f" * 16)
    adapted = AdaptedImageEmbedder(base, head).set_precision("onnx")
    assert adapted.precision == "onnx" and adapted.runtime_fallback == ""
    ref = AdaptedImageEmbedder(TinyConvEmbedder(), head).set_precision("fp32")
    np.testing.assert_allclose(adapted.embed(_images(4)), ref.embed(_images(4)), atol=1e-5)


def test_lite0_random_weights_onnx_agrees_with_fp32(data_dir):
    pytest.importorskip("timm")
    from embeddings.models.efficientnet import EfficientNetLite0Embedder

    images = _images(6, size=32)
    fp32 = EfficientNetLite0Embedder(weights=None).set_precision("fp32").embed(images)
    onnx = EfficientNetLite0Embedder(weights=None).set_precision("onnx")
    assert onnx.precision == "onnx", onnx.runtime_fallback
    vectors = onnx.embed(images)
    assert (np.sum(vectors * fp32, axis=1) > 0.9999).all()


def test_bench_images_reports_every_mode_and_the_default_last(data_dir, add_model, monkeypatch):
    import re

    from embeddings.bench import bench_images
    from embeddings.registry import IMAGE

    monkeypatch.setattr("embeddings.image.base.bf16_supported", lambda: True)
    add_model("tiny-conv", TinyConvEmbedder, kind=IMAGE)
    report = bench_images("tiny-conv", list(_images(24)), batch_size=8, data_dir=data_dir)
    lines = report.lines()
    assert lines[0].startswith("tiny-conv: preprocessing ")
    assert lines[1].startswith("tiny-conv: fp32 eager baseline ") and lines[1].endswith(" images/s")
    assert [line.split()[1] for line in lines[2:-1]] == ["fast", "onnx", "bf16"]
    assert all(
        re.search(r"images/s \(\d+\.\d\dx\), agreement@10 with fp32 \d\.\d{4}$", x) for x in lines[2:-1]
    )
    assert re.fullmatch(r"speedup=\d+\.\d\d agreement@10=\d\.\d{4}", lines[-1])
    assert report.default == "onnx" and report.modes["onnx"][1] == pytest.approx(1.0)
    assert len(_exports(data_dir)) == 1  # exported into the data folder it was given


def test_bench_images_reports_a_fallback_under_what_ran(data_dir, monkeypatch):
    from embeddings.bench import bench_images

    monkeypatch.setattr("embeddings.image.base.bf16_supported", lambda: True)
    report = bench_images("pixels", list(_images(24)), batch_size=8)
    assert report.default == "fast" and list(report.modes) == ["fast", "bf16"]
    assert report.lines()[-1].startswith("speedup=")


def test_bench_images_leaves_out_emulated_bf16_and_says_why(data_dir, monkeypatch):
    from embeddings.bench import bench_images

    monkeypatch.setattr("embeddings.image.base.bf16_supported", lambda: False)
    report = bench_images("pixels", list(_images(24)), batch_size=8)
    lines = report.lines()
    assert list(report.modes) == ["fast"]
    assert lines[-2].startswith("pixels: bf16 not measured: this CPU has no native bfloat16")
    assert lines[-1].startswith("speedup=")


def test_bf16_on_a_cpu_without_it_warns(monkeypatch, caplog):
    monkeypatch.setattr("embeddings.image.base.bf16_supported", lambda: False)
    with caplog.at_level(logging.WARNING, logger="embeddings.image.base"):
        emb = PixelImageEmbedder().set_precision("bf16")
    assert emb.precision == "bf16" and "emulated" in emb.precision_note
    assert "emulated" in caplog.text
    monkeypatch.setattr("embeddings.image.base.bf16_supported", lambda: True)
    assert PixelImageEmbedder().set_precision("bf16").precision_note == ""
    assert emb.set_precision("onnx").precision_note == ""


def test_the_cli_warns_before_building_with_emulated_bf16(data_dir, monkeypatch, capsys):
    from embeddings import cli

    monkeypatch.setattr("embeddings.image.base.bf16_supported", lambda: False)
    argv = ["--data-dir", str(data_dir), "build-index", "--data", "sample", "--model", "pixels"]
    assert cli.main([*argv, "--precision", "bf16"]) == 0
    err = capsys.readouterr().err
    assert "warning: this CPU has no native bfloat16" in err and "use onnx" in err


def test_lazy_onnx_exports_on_the_first_embed_not_before(data_dir, count_exports):
    emb = TinyConvEmbedder().set_precision("onnx", lazy=True)
    assert emb.precision == "onnx" and count_exports == [] and _exports(data_dir) == []
    eager = TinyConvEmbedder().set_precision("fp32")
    assert emb.fingerprint() == {**eager.fingerprint(), "precision": "onnx"}
    np.testing.assert_allclose(emb.embed(_images(3)), eager.embed(_images(3)), atol=1e-5)
    assert len(count_exports) == 1 and emb.precision == "onnx"


@pytest.mark.parametrize("make", [PixelImageEmbedder, UntraceableEmbedder])
def test_lazy_onnx_still_falls_back_at_once_when_the_cheap_checks_fail(data_dir, make):
    emb = make().set_precision("onnx", lazy=True)
    assert emb.precision == "fast" and emb.runtime_fallback
