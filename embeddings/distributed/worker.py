"""The work one engine worker does, with no engine in it: open the collection and the image model once
(the same registry entry, precision and fingerprint as the local build), then embed shards of ids
and write them (:mod:`.shards`). Ray runs it as an actor class in ``map_batches``
(:mod:`.ray_engine`); :func:`run_serially` runs it in this process (tests, and the reference)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..errors import InvalidInputError
from ..index.store import embed_collection
from .shards import Shard, key_fingerprint, write_shard


def worker_spec(collection, embedder, shard_folder: Path, data_dir, threads: int | None = None) -> dict:
    """What a worker needs to rebuild the collection and the model on its own machine (plain JSON
    data: source, split, model id, precision, data folder, the expected key fingerprint, and the
    inference threads it may use; None: every core it sees)."""
    desc = collection.describe()
    return {
        "source": str(desc["source"]),
        "split": desc["split"],
        "model_id": embedder.model_id,
        "precision": getattr(embedder, "precision", None),
        "data_dir": str(data_dir),
        "shard_folder": str(shard_folder),
        "key": key_fingerprint(collection, embedder),
        "threads": threads,
    }


class _Ids:
    """Ids ``start..stop`` of a collection, as the collection :func:`embed_collection` embeds."""

    def __init__(self, collection, shard: Shard):
        self._collection, self._start, self._n = collection, shard.start, len(shard.ids)

    def __len__(self) -> int:
        return self._n

    def describe(self) -> dict:
        return self._collection.describe()

    def get_images(self, ids):
        return self._collection.get_images([self._start + int(i) for i in ids])

    def image_nbytes(self, i: int) -> int:
        return self._collection.image_nbytes(self._start + int(i))


class ShardWorker:
    """Embeds shards: ``worker({"start": [...], "stop": [...]})`` writes each shard and returns its
    records as columns (``start``, ``stop``, ``record`` JSON). Built once per worker process: the
    collection is opened (or given) and the model loaded here, and both are checked against the
    driver's key fingerprint, so a worker with other files or another model version fails loudly."""

    def __init__(self, spec: dict, collection=None, embedder=None):
        from ..image.collections import open_collection
        from ..image.runtime import THREADS_ENV
        from ..registry import get_image_embedder

        self.spec = dict(spec)
        if spec.get("threads"):  # a worker given n CPUs runs its model on n threads, not on every core
            os.environ[THREADS_ENV] = str(spec["threads"])
            import torch

            torch.set_num_threads(int(spec["threads"]))
        self.collection = collection or open_collection(
            spec["source"], spec["split"], data_dir=spec["data_dir"]
        )
        if embedder is None:
            embedder = get_image_embedder(spec["model_id"], spec["data_dir"])
            if spec.get("precision"):
                embedder = embedder.set_precision(spec["precision"])
        self.embedder = embedder
        found = key_fingerprint(self.collection, self.embedder)
        if found != spec["key"]:
            raise InvalidInputError(
                f"this worker's collection or model differs from the driver's (key {found}, expected "
                f"{spec['key']}): every worker needs the same files at {spec['source']} and the same package"
            )
        self.folder = Path(spec["shard_folder"])

    def embed(self, shard: Shard) -> dict:
        """Embed and write one shard; returns its record."""
        vectors = embed_collection(_Ids(self.collection, shard), self.embedder, workers=1, prefetch=2)
        return write_shard(self.folder, shard, self.spec["key"], vectors)

    def __call__(self, batch: dict) -> dict:
        records = [
            self.embed(Shard(int(a), int(b))) for a, b in zip(batch["start"], batch["stop"], strict=True)
        ]
        return {
            "start": np.array([r["start"] for r in records], dtype=np.int64),
            "stop": np.array([r["stop"] for r in records], dtype=np.int64),
            "record": np.array([json.dumps(r) for r in records], dtype=object),
        }


def run_serially(worker: ShardWorker) -> callable:
    """A shard runner (:data:`.shards.ShardRunner`) embedding the shards one after another in this process."""

    def run(shards: list[Shard]) -> Iterator[dict]:
        for shard in shards:
            yield worker.embed(shard)

    return run
