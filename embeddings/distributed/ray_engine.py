"""``build-index --engine ray``: embed a collection on a Ray cluster with Ray Data.

The shards to embed (:mod:`.shards`) become a dataset of id ranges; ``map_batches`` runs
:class:`.worker.ShardWorker` on a fixed actor pool (one model load per actor, ``num_cpus`` or
``num_gpus`` each), every actor opens the collection's files itself and writes its shards to the
shared data folder; the driver collects the shard records as they finish and assembles the index.
Without an address a local cluster of ``workers`` CPUs is started (small object store, no dashboard)
and shut down afterwards; with one (``auto``, ``HOST:PORT``, ``ray://HOST:10001``) the build joins
that cluster, whose nodes must see the same files and data folder. Ray is an optional extra
(``requirements-ray.txt``), imported only here.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..config import data_dir as resolve_data_dir
from ..core.deps import package_version, require
from ..errors import EmbeddingsError
from .shards import DEFAULT_SHARD_SIZE, Shard, build_sharded, shards_dir
from .worker import ShardWorker, worker_spec

log = logging.getLogger(__name__)

RAY_INSTALL = "pip install -r requirements-ray.txt"
DEFAULT_WORKERS = 2
OBJECT_STORE_BYTES = 300 * 2**20  # the dataset holds id ranges and shard records only: vectors go to files
PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the folder holding ``embeddings/``


class RayEngineError(EmbeddingsError):
    """The Ray build failed on the cluster (a worker's error, a lost node): its message says which."""


def require_ray():
    """Import Ray and Ray Data, or raise :class:`MissingDependencyError` with the install command."""
    ray = require("ray", RAY_INSTALL, "--engine ray")
    require("ray.data", RAY_INSTALL, "--engine ray (Ray Data)")
    return ray


@contextmanager
def ray_cluster(address: str | None = None, workers: int = DEFAULT_WORKERS, verbose: bool = False):
    """Connect to the cluster at ``address``, or start a local one of ``workers`` CPUs; yields ``ray``
    and shuts the connection (and a local cluster) down afterwards. A session already connected
    (``ray.init`` called by the caller) is used as it is and left running."""
    ray = require_ray()
    if ray.is_initialized():
        yield ray
        return
    if address:
        # the package travels to the cluster's workers; the images and data folder must be shared
        env = {"py_modules": [str(PACKAGE_ROOT / "embeddings")], "excludes": ["*.pyc", "__pycache__"]}
        options = {"address": address, "runtime_env": env}
    else:
        path = os.pathsep.join(p for p in (str(PACKAGE_ROOT), os.environ.get("PYTHONPATH", "")) if p)
        options = {
            "num_cpus": workers,
            "num_gpus": 0,
            "object_store_memory": OBJECT_STORE_BYTES,
            "include_dashboard": False,
            "runtime_env": {"env_vars": {"PYTHONPATH": path}},
        }
    if not verbose:
        logging.getLogger("ray.data").setLevel(logging.WARNING)
    ray.init(log_to_driver=verbose, logging_level=logging.INFO if verbose else logging.WARNING, **options)
    try:
        yield ray
    finally:
        ray.shutdown()


def ray_runner(ray, spec: dict, workers: int, gpus_per_worker: float = 0):
    """A shard runner (:data:`.shards.ShardRunner`) on Ray Data: one row per shard, ``map_batches``
    on a fixed pool of ``workers`` :class:`ShardWorker` actors, records yielded as they stream back."""
    import ray.data

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the CLI draws its own bar from the shard records

    def run(shards: list[Shard]) -> Iterator[dict]:
        rows = [{"start": s.start, "stop": s.stop} for s in shards]
        dataset = ray.data.from_items(rows, override_num_blocks=len(rows)).map_batches(
            ShardWorker,
            fn_constructor_kwargs={"spec": spec},
            batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=workers),
            **({"num_gpus": gpus_per_worker} if gpus_per_worker else {"num_cpus": 1}),
        )
        try:
            for row in dataset.iter_rows():
                yield json.loads(row["record"])
        except EmbeddingsError:
            raise
        except Exception as exc:  # a worker's error arrives wrapped by Ray: keep its first line
            cause = getattr(exc, "cause", None) or exc
            if isinstance(cause, EmbeddingsError):
                raise type(cause)(str(cause)) from exc
            first = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
            raise RayEngineError(f"the Ray build failed: {first} (-v shows the workers' logs)") from exc

    return run


def build_with_ray(
    collection,
    embedder,
    data_dir=None,
    address: str | None = None,
    workers: int = DEFAULT_WORKERS,
    shard_size: int = DEFAULT_SHARD_SIZE,
    gpus_per_worker: float = 0,
    progress=None,
    stop_after: int | None = None,
    verbose: bool = False,
):
    """Build (collection, embedder)'s index on Ray (resuming from the shards an earlier run left);
    returns ``(index, ShardedBuild)``. ``stop_after``: stop after that many shards (tests)."""
    data_dir = resolve_data_dir(data_dir)
    if not isinstance(workers, int) or workers < 1:
        raise EmbeddingsError(f"--workers must be a positive integer, got {workers!r}")
    if getattr(embedder, "precision", None) == "onnx":
        embedder.embed(
            collection.get_images([0])
        )  # exports the ONNX file once, here, before the workers load it
    threads = None if gpus_per_worker else 1  # a CPU actor holds one CPU: its model gets one thread
    spec = worker_spec(collection, embedder, shards_dir(collection, embedder, data_dir), data_dir, threads)
    with ray_cluster(address, workers, verbose) as ray:
        engine = {
            "name": "ray",
            "ray_version": package_version("ray"),
            "address": address or "local",
            "workers": workers,
            "gpus_per_worker": gpus_per_worker,
        }
        run = ray_runner(ray, spec, workers, gpus_per_worker)
        return build_sharded(
            collection, embedder, run, engine, data_dir, shard_size, progress=progress, stop_after=stop_after
        )
