"""The Ray engine end to end on a local 2-worker cluster: the bundled sample embedded with ``pixels`` by
``--engine ray`` equals the local build, a build stopped halfway resumes from its shards, and the app
loads and searches the result (also once it is switched to IVF-PQ). Slow (a cluster starts, actors
import the package): ``pytest -m slow -k ray``, run by ``.ci/run``. Skips without Ray."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("ray", reason="the Ray engine needs Ray: pip install -r requirements-ray.txt")

pytestmark = pytest.mark.slow


def test_ray_build_equals_local_resumes_and_the_app_searches_it(app_env, tmp_path):
    from embeddings.distributed.ray_engine import build_with_ray, ray_cluster
    from embeddings.distributed.shards import BuildInterrupted, shards_dir
    from embeddings.image.base import default_precision
    from embeddings.image.collections import open_collection
    from embeddings.index import ondisk
    from embeddings.index.store import build_index
    from embeddings.registry import get_image_embedder
    from tests.test_app_images import open_ready, text_of

    collection = open_collection("sample")
    embedder = get_image_embedder("pixels", app_env).set_precision(default_precision())
    local = build_index(collection, embedder, tmp_path / "local").embeddings
    with ray_cluster(workers=2) as ray:
        assert ray.cluster_resources()["CPU"] == 2
        with pytest.raises(BuildInterrupted):  # killed after 3 of its 8 shards reached the driver
            build_with_ray(collection, embedder, app_env, workers=2, shard_size=250, stop_after=3)
        left = len(list(shards_dir(collection, embedder, app_env).glob("shard-*.json")))
        assert 3 <= left <= 8
        index, report = build_with_ray(collection, embedder, app_env, workers=2, shard_size=250)
    assert len(report.reused) == left and len(report.embedded) == 8 - left
    cosine = np.sum(index.embeddings * local, axis=1)
    assert cosine.min() >= 0.9999
    engine = index.manifest["engine"]
    assert engine["name"] == "ray" and engine["workers"] == 2 and len(engine["shards"]) == 8
    manifest = (index.path / "manifest.json").read_text()

    at = open_ready("pages/images.py")  # the app finds the Ray-built index and loads it
    at.session_state["image_query"] = ("id", 7)
    at.run()
    assert not at.exception and "Top 10 neighbours" in text_of(at)
    assert (index.path / "manifest.json").read_text() == manifest  # loaded, not rebuilt locally

    ondisk.ensure_ivfpq(index)
    at = open_ready("pages/images.py")
    at.session_state["image_query"] = ("id", 8)
    at.run()
    assert not at.exception and "Top 10 neighbours" in text_of(at)
    assert json.loads((index.path / "manifest.json").read_text())["engine"] == engine
