"""Past one machine, without Ray: sharded resumable builds (shards, checksums, the worker, assembly)
and the IVF-PQ index searched memory-mapped with exact re-ranking. The Ray engine itself is in
``test_ray_engine.py`` (slow)."""

from __future__ import annotations

import json
import logging
import sys

import numpy as np
import pytest

from embeddings.distributed import shards as sh
from embeddings.distributed.worker import ShardWorker, run_serially, worker_spec
from embeddings.errors import CorruptIndexError, IndexNotBuiltError, InvalidInputError
from embeddings.index import ivfpq, ondisk
from embeddings.index import store as idx
from embeddings.index.manifest import check_manifest
from tests.conftest import ArrayCollection, make_colour_images

ENGINE = {"name": "serial", "workers": 1}


def _sharded(collection, embedder, data_dir, shard_size=5, stop_after=None):
    folder = sh.shards_dir(collection, embedder, data_dir)
    worker = ShardWorker(worker_spec(collection, embedder, folder, data_dir), collection, embedder)
    return sh.build_sharded(
        collection, embedder, run_serially(worker), ENGINE, data_dir, shard_size, stop_after=stop_after
    )


def _shard_files(collection, embedder, data_dir):
    return sorted(sh.shards_dir(collection, embedder, data_dir).glob("shard-*.npy"))


def test_plan_covers_every_id_once():
    plan = sh.plan_shards(11, 4)
    assert [(s.start, s.stop) for s in plan] == [(0, 4), (4, 8), (8, 11)]
    with pytest.raises(InvalidInputError):
        sh.plan_shards(10, 0)


def test_sharded_build_equals_the_local_build_and_records_its_shards(
    colour_collection, pixel_embedder, data_dir
):
    local = idx.embed_collection(colour_collection, pixel_embedder)
    index, report = _sharded(colour_collection, pixel_embedder, data_dir)
    assert report.shards == 4 and len(report.embedded) == 4 and not report.reused  # 18 images, shards of 5
    np.testing.assert_array_equal(index.embeddings, local)
    engine = index.manifest["engine"]
    assert engine["name"] == "serial" and engine["shard_size"] == 5
    assert [(s["start"], s["stop"]) for s in engine["shards"]] == [(0, 5), (5, 10), (10, 15), (15, 18)]
    assert all(len(s["sha256"]) == 64 for s in engine["shards"])
    assert not sh.shards_dir(colour_collection, pixel_embedder, data_dir).exists()  # removed once assembled
    reloaded = idx.load_index(colour_collection, pixel_embedder, data_dir)
    assert reloaded.manifest["engine"] == engine


def test_a_killed_build_keeps_its_shards_and_the_next_run_embeds_only_the_rest(
    colour_collection, pixel_embedder, data_dir
):
    with pytest.raises(sh.BuildInterrupted):
        _sharded(colour_collection, pixel_embedder, data_dir, stop_after=2)
    assert len(_shard_files(colour_collection, pixel_embedder, data_dir)) == 2
    with pytest.raises(IndexNotBuiltError):  # nothing loadable was written
        idx.load_index(colour_collection, pixel_embedder, data_dir)
    index, report = _sharded(colour_collection, pixel_embedder, data_dir)
    assert [(s.start, s.stop) for s in report.reused] == [(0, 5), (5, 10)]
    assert [(s.start, s.stop) for s in report.embedded] == [(10, 15), (15, 18)]
    np.testing.assert_array_equal(index.embeddings, idx.embed_collection(colour_collection, pixel_embedder))


def test_a_damaged_or_unrecorded_shard_is_embedded_again(colour_collection, pixel_embedder, data_dir, caplog):
    with pytest.raises(sh.BuildInterrupted):
        _sharded(colour_collection, pixel_embedder, data_dir, stop_after=3)
    first, second, third = _shard_files(colour_collection, pixel_embedder, data_dir)
    data = bytearray(first.read_bytes())
    data[-1] ^= 0xFF  # one flipped bit in a vector: same size, wrong checksum
    first.write_bytes(bytes(data))
    third.with_suffix(".json").unlink()  # a shard whose record was never written: not finished
    with caplog.at_level(logging.WARNING):
        index, report = _sharded(colour_collection, pixel_embedder, data_dir)
    assert "does not match its checksum" in caplog.text
    assert [s.start for s in report.reused] == [5]
    assert [s.start for s in report.embedded] == [0, 10, 15]
    np.testing.assert_array_equal(index.embeddings, idx.embed_collection(colour_collection, pixel_embedder))


def test_shards_of_another_model_or_collection_never_match(colour_collection, pixel_embedder, data_dir):
    folder = data_dir / "some-shards"
    shard = sh.Shard(0, 5)
    key = sh.key_fingerprint(colour_collection, pixel_embedder)
    sh.write_shard(folder, shard, key, np.ones((5, pixel_embedder.dim), np.float32))
    assert sh.finished_shards(folder, [shard], key, pixel_embedder.dim)
    assert not sh.finished_shards(folder, [shard], "0" * 12, pixel_embedder.dim)
    other = ArrayCollection(*make_colour_images(seed=1), ["red", "green", "blue"])
    assert sh.key_fingerprint(other, pixel_embedder) != key
    with pytest.raises(CorruptIndexError, match="not this shard"):  # right key, wrong width
        sh.write_shard(folder, sh.Shard(5, 7), key, np.ones((2, 3), np.float32))
        sh.read_shard(folder, sh.Shard(5, 7), key, pixel_embedder.dim)


def test_a_worker_with_other_files_or_model_refuses_to_embed(colour_collection, pixel_embedder, data_dir):
    spec = worker_spec(colour_collection, pixel_embedder, data_dir / "s", data_dir)
    other = ArrayCollection(*make_colour_images(seed=3), ["red", "green", "blue"])
    with pytest.raises(InvalidInputError, match="differs from the driver's"):
        ShardWorker(spec, other, pixel_embedder)
    columns = ShardWorker(spec, colour_collection, pixel_embedder)({"start": [0, 5], "stop": [5, 9]})
    assert list(columns["start"]) == [0, 5] and json.loads(columns["record"][1])["stop"] == 9


def test_engine_field_of_the_wrong_shape_is_corrupt(colour_collection, pixel_embedder, data_dir):
    index, _ = _sharded(colour_collection, pixel_embedder, data_dir)
    good = index.manifest
    check_manifest(good)
    assert check_manifest({k: v for k, v in good.items() if k != "engine"})  # manifests from before: local
    gap = json.loads(json.dumps(good))
    del gap["engine"]["shards"][1]
    bad_sum = json.loads(json.dumps(good))
    bad_sum["engine"]["shards"][0]["sha256"] = "nope"
    for manifest in (gap, bad_sum, dict(good, engine={"name": "spark"})):
        with pytest.raises(CorruptIndexError):
            check_manifest(manifest)


# ------------------------------------------------------------------ IVF-PQ


class VectorModel:
    """A stand-in image model of ``dim`` dims (the IVF-PQ tests write its vectors directly)."""

    model_id = "synthetic"

    def __init__(self, dim: int):
        self.dim = dim

    def fingerprint(self) -> dict:
        return {"model_id": self.model_id, "dim": self.dim}


def clustered(n: int = 3000, dim: int = 32, clusters: int = 30, seed: int = 0) -> np.ndarray:
    """Unit vectors in ``clusters`` tight-ish Gaussian clusters."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim))
    vectors = centres[rng.integers(clusters, size=n)] + 0.35 * rng.standard_normal((n, dim))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture
def synthetic_index(data_dir):
    vectors = clustered()
    images = np.random.default_rng(1).integers(0, 255, size=(len(vectors), 2, 2, 3), dtype=np.uint8)
    collection = ArrayCollection(images, None, [], name="synthetic")
    model = VectorModel(vectors.shape[1])
    return collection, model, idx.write_index(collection, model, vectors, data_dir)


def test_default_spec_follows_the_collection_size():
    assert ivfpq.default_spec(60_000, 1280) == "IVF980,PQ64x8"  # 4 sqrt(n) lists
    assert ivfpq.default_spec(2_000, 768) == "IVF51,PQ64x5"  # at most n / 39 lists; 2^nbits <= n / 39
    assert ivfpq.default_spec(1_000_000, 1280) == "IVF4000,PQ64x8"
    assert ivfpq.parse_spec("IVF4096,PQ64") == (4096, 64, 8)
    for bad, n, dim in (("IVF,PQ", 100, 8), ("IVF10,PQ7", 1000, 32), ("IVF4096,PQ8", 1000, 32)):
        with pytest.raises(InvalidInputError):
            ivfpq.check_spec(bad, n, dim)


def test_ivfpq_is_memory_mapped_reranked_and_recalls_exact_search(synthetic_index, data_dir):
    collection, model, flat = synthetic_index
    exact = flat.embeddings.copy()
    index = ondisk.ensure_ivfpq(flat, "IVF32,PQ8x8", nprobe=8, rerank=200)
    params = index.manifest["ivfpq"]
    assert params["spec"] == "IVF32,PQ8x8" and params["train_size"] == 3000 and params["nlist"] == 32
    assert params["recall_at_10"] >= 0.95
    assert params["recall_at_10"] > params["recall_at_10_without_rerank"]  # PQ codes alone are rougher
    loaded = idx.load_index(collection, model, data_dir)  # the manifest names ivfpq: every load uses it
    assert isinstance(loaded.embeddings, np.memmap)
    assert isinstance(loaded.faiss_index, ivfpq.RerankedIVFPQ)
    queries = exact[:50]
    ids, scores = loaded.search(queries, 10)
    np.testing.assert_allclose(
        scores, np.einsum("qd,qkd->qk", queries, exact[ids]), atol=1e-5
    )  # exact cosines
    _, truth = ivfpq.exact_search(exact, queries, 10)
    from embeddings.index.approximate import recall_at_k

    assert recall_at_k(ids, truth) >= 0.95
    shallow = ivfpq.RerankedIVFPQ(loaded.faiss_index.ivf, loaded.embeddings, nprobe=1, rerank=10)
    assert recall_at_k(shallow.search(queries, 10)[1], truth) < recall_at_k(ids, truth)
    neighbours, _ = loaded.neighbours([0, 1], k=5)
    assert neighbours.shape == (2, 5) and 0 not in neighbours[0]


def test_ivfpq_parameters_change_without_retraining_and_flat_comes_back(synthetic_index, data_dir):
    collection, model, flat = synthetic_index
    index = ondisk.ensure_ivfpq(flat, "IVF32,PQ8x8")
    entry = index.manifest["files"]["index-ivfpq.faiss"]
    again = ondisk.ensure_ivfpq(index, "IVF32,PQ8x8", nprobe=4, rerank=50)
    assert again.manifest["files"]["index-ivfpq.faiss"] == entry  # same file: not trained again
    assert idx.load_index(collection, model, data_dir).faiss_index.rerank == 50
    back = ondisk.use_flat(again)
    assert back.manifest["index_kind"] == "flat"
    loaded = idx.load_index(collection, model, data_dir)
    assert not isinstance(loaded.embeddings, np.memmap) and not isinstance(
        loaded.faiss_index, ivfpq.RerankedIVFPQ
    )


def test_an_ivfpq_manifest_without_its_file_or_parameters_is_corrupt(synthetic_index):
    _, _, flat = synthetic_index
    index = ondisk.ensure_ivfpq(flat, "IVF16,PQ4x8")
    good = index.manifest
    files = {k: v for k, v in good["files"].items() if k != "index-ivfpq.faiss"}
    for manifest in (
        dict(good, files=files),
        dict(good, ivfpq={"spec": "IVF16,PQ4"}),
        dict(good, index_kind="lsh"),
    ):
        with pytest.raises(CorruptIndexError):
            check_manifest(manifest)


def test_cli_builds_ivfpq_and_search_uses_it(data_dir, capsys):
    from embeddings.cli import main

    assert (
        main(["build-index", "--data", "sample", "--model", "pixels", "--index", "ivfpq", "--rerank", "300"])
        == 0
    )
    out = capsys.readouterr().out
    assert (
        "IVF-PQ IVF51,PQ64x5" in out and "recall@10 against exact search" in out and "searched ivfpq" in out
    )
    assert main(["search", "--data", "sample", "--model", "pixels", "--id", "3", "--k", "5"]) == 0
    manifest = json.loads(next((data_dir / "indexes").glob("*/manifest.json")).read_text())
    assert manifest["index_kind"] == "ivfpq" and manifest["ivfpq"]["rerank"] == 300
    assert main(["build-index", "--data", "sample", "--model", "pixels", "--workers", "3"]) == 2
    assert "need --engine ray" in capsys.readouterr().err


def test_engine_ray_without_ray_says_how_to_install_it(data_dir, capsys, monkeypatch):
    from embeddings.cli import main

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError, as when it is not installed
    assert main(["build-index", "--data", "sample", "--model", "pixels", "--engine", "ray"]) == 2
    assert "pip install -r requirements-ray.txt" in capsys.readouterr().err
    assert not (data_dir / "indexes").exists() or not list((data_dir / "indexes").glob("*/manifest.json"))


def test_the_app_searches_an_index_whose_manifest_names_ivfpq(app_env):
    from embeddings.image.base import default_precision
    from embeddings.image.collections import open_collection
    from embeddings.index.service import get_or_build_index
    from embeddings.registry import get_image_embedder
    from tests.test_app_images import open_ready, text_of

    collection = open_collection("sample")
    embedder = get_image_embedder("pixels", app_env).set_precision(default_precision())
    index, _ = get_or_build_index(collection, embedder, app_env)
    index = ondisk.ensure_ivfpq(index)
    manifest = (index.path / "manifest.json").read_text()
    at = open_ready("pages/images.py")
    at.session_state["image_query"] = ("id", 7)
    at.run()
    assert not at.exception and "Top 10 neighbours" in text_of(at)
    assert len(at.get("image")) == 1 + 10
    assert (index.path / "manifest.json").read_text() == manifest  # loaded as it is, not rebuilt


def test_an_engine_worker_caps_its_inference_threads(monkeypatch):
    from embeddings.image import runtime

    monkeypatch.delenv(runtime.THREADS_ENV, raising=False)
    cores = runtime.cpu_threads()
    monkeypatch.setenv(runtime.THREADS_ENV, "1")
    assert runtime.cpu_threads() == 1
    monkeypatch.setenv(runtime.THREADS_ENV, "not a number")
    assert runtime.cpu_threads() == cores
