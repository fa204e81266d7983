"""Vector shards: a sharded build's unit of work, of resumption and of checksums.

A build splits the collection's ids into consecutive shards of ``shard_size``; each is embedded on
its own (by any engine) and saved as ``shard-<start>-<stop>-<key>.npy`` plus a ``.json`` record of its
sha256, size and shape, both written atomically, the record last, in
``<data dir>/shards/<index folder name>/``. ``<key>`` is a fingerprint of the index key (model,
weights, preprocessing, collection), so a shard made for anything else never matches. A shard
counts as done only when its record exists and the file matches it; a build killed halfway thus
leaves finished shards that the next run keeps (and embeds only the rest), and a damaged shard is
deleted and embedded again. :func:`build_sharded` assembles the shards in id order into the normal
index (:mod:`embeddings.index.store`), with the engine and every shard's checksum in the manifest,
then deletes them.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config import data_dir as resolve_data_dir
from ..core.files import load_npy, save_npy_atomic, write_json_atomic
from ..core.fingerprint import fingerprint, sha256_file
from ..errors import CorruptIndexError, InvalidInputError
from ..index.store import ImageIndex, build_lock, build_locked, index_dir, index_key

log = logging.getLogger(__name__)

DEFAULT_SHARD_SIZE = 1024


@dataclass(frozen=True)
class Shard:
    """Ids ``start..stop`` of the collection, embedded as one file."""

    start: int
    stop: int

    @property
    def ids(self) -> range:
        return range(self.start, self.stop)


def plan_shards(count: int, shard_size: int = DEFAULT_SHARD_SIZE) -> list[Shard]:
    """Consecutive shards of ``shard_size`` ids covering ``0..count`` (the last one shorter)."""
    if not isinstance(shard_size, int) or shard_size < 1:
        raise InvalidInputError(f"the shard size must be a positive integer, got {shard_size!r}")
    return [Shard(start, min(start + shard_size, count)) for start in range(0, count, shard_size)]


def key_fingerprint(collection, embedder) -> str:
    """The fingerprint of everything that decides the vectors (the index key): part of every shard's name."""
    return fingerprint(json.dumps(index_key(collection, embedder), sort_keys=True), length=12)


def shards_dir(collection, embedder, data_dir=None) -> Path:
    """Where the shards of (collection, embedder)'s index are written while it is built."""
    folder = index_dir(collection, embedder, data_dir)
    return resolve_data_dir(data_dir) / "shards" / folder.name


def shard_path(folder: Path, shard: Shard, key: str) -> Path:
    """The ``.npy`` file of ``shard`` (its ``.json`` record sits beside it)."""
    return Path(folder) / f"shard-{shard.start:09d}-{shard.stop:09d}-{key}.npy"


def write_shard(folder: Path, shard: Shard, key: str, vectors: np.ndarray) -> dict:
    """Save ``vectors`` (one row per id of ``shard``) and then its record; returns the record."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[0] != len(shard.ids):
        raise InvalidInputError(f"shard {shard.start}..{shard.stop} got {vectors.shape} vectors")
    Path(folder).mkdir(parents=True, exist_ok=True)
    path = shard_path(folder, shard, key)
    save_npy_atomic(path, vectors)
    record = {
        "start": shard.start,
        "stop": shard.stop,
        "dim": int(vectors.shape[1]),
        "key": key,
        "sha256": sha256_file(path),
        "bytes": path.stat().st_size,
    }
    write_json_atomic(path.with_suffix(".json"), record)
    return record


def read_shard(folder: Path, shard: Shard, key: str, dim: int) -> tuple[dict, np.ndarray]:
    """The record and vectors of a finished shard; raises :class:`CorruptIndexError` when the
    record is missing or unreadable, or the file does not match its size, checksum or shape."""
    path = shard_path(folder, shard, key)
    try:
        record = json.loads(path.with_suffix(".json").read_text("utf-8"))
        wanted = {"start": shard.start, "stop": shard.stop, "dim": dim, "key": key}
        if not isinstance(record, dict) or any(record.get(k) != v for k, v in wanted.items()):
            raise CorruptIndexError(f"shard record {path.name} is not this shard's")
        if path.stat().st_size != record.get("bytes") or sha256_file(path) != record.get("sha256"):
            raise CorruptIndexError(f"shard {path.name} does not match its checksum")
        vectors = load_npy(path)
    except (OSError, ValueError) as exc:
        raise CorruptIndexError(f"shard {path.name} could not be read: {exc}") from exc
    if (
        vectors.shape != (len(shard.ids), dim)
        or vectors.dtype != np.float32
        or not np.isfinite(vectors).all()
    ):
        raise CorruptIndexError(f"shard {path.name} holds {vectors.dtype} {vectors.shape}, not its vectors")
    return record, vectors


def finished_shards(folder: Path, plan: list[Shard], key: str, dim: int) -> dict[Shard, dict]:
    """The shards of ``plan`` already on disk and intact (records by shard); damaged ones are deleted
    (logged) so that they are embedded again."""
    done = {}
    for shard in plan:
        path = shard_path(folder, shard, key)
        if not path.with_suffix(".json").exists():
            continue
        try:
            done[shard] = read_shard(folder, shard, key, dim)[0]
        except CorruptIndexError as exc:
            log.warning("embedding shard %d..%d again: %s", shard.start, shard.stop, exc)
            path.unlink(missing_ok=True)
            path.with_suffix(".json").unlink(missing_ok=True)
    return done


class BuildInterrupted(RuntimeError):
    """Raised by :func:`build_sharded` when asked to stop after some shards (a build killed halfway, in tests)."""


@dataclass
class ShardedBuild:
    """What a sharded build did: how many shards, which were embedded in this run and which kept from an earlier one."""

    shards: int
    embedded: list[Shard] = field(default_factory=list)
    reused: list[Shard] = field(default_factory=list)


# Runs the given shards somewhere and yields each one's record as it finishes (any order).
ShardRunner = Callable[[list[Shard]], Iterable[dict]]


def build_sharded(
    collection,
    embedder,
    run: ShardRunner,
    engine: dict,
    data_dir=None,
    shard_size: int = DEFAULT_SHARD_SIZE,
    progress: Callable[[int, int], None] | None = None,
    stop_after: int | None = None,
) -> tuple[ImageIndex, ShardedBuild]:
    """Build (collection, embedder)'s index from shards: keep the intact shards an earlier run left,
    ``run`` the others, then assemble them in id order into the normal index, with ``engine`` (its
    name, workers...) and the shards' checksums in the manifest, under the index's build lock.
    ``stop_after``: raise :class:`BuildInterrupted` once that many shards were embedded in this run
    (what a killed build leaves, for tests)."""
    n = len(collection)
    if n == 0:
        raise InvalidInputError(f"collection {collection.describe()['name']} has no images")
    data_dir = resolve_data_dir(data_dir)
    folder = index_dir(collection, embedder, data_dir)
    folder.parent.mkdir(parents=True, exist_ok=True)
    shard_folder = shards_dir(collection, embedder, data_dir)
    key = key_fingerprint(collection, embedder)
    plan = plan_shards(n, shard_size)
    with build_lock(folder):
        records = finished_shards(shard_folder, plan, key, embedder.dim)
        report = ShardedBuild(len(plan), reused=[s for s in plan if s in records])
        todo = [s for s in plan if s not in records]
        done_ids = sum(len(s.ids) for s in records)
        if progress:
            progress(done_ids, n)
        by_start = {s.start: s for s in todo}
        for record in _take(run(todo) if todo else (), stop_after):
            shard = by_start.pop(record["start"])
            records[shard] = record
            report.embedded.append(shard)
            done_ids += len(shard.ids)
            if progress:
                progress(done_ids, n)
        if by_start:
            raise BuildInterrupted(f"{len(by_start)} of {len(plan)} shards were not embedded")
        vectors = np.empty((n, embedder.dim), dtype=np.float32)
        for (
            shard
        ) in plan:  # read back and checked against its checksum: what the workers wrote is what is built
            records[shard], vectors[shard.start : shard.stop] = read_shard(
                shard_folder, shard, key, embedder.dim
            )
        shards = [{k: records[s][k] for k in ("start", "stop", "sha256", "bytes")} for s in plan]
        extra = {"engine": {**engine, "shard_size": shard_size, "shards": shards}}
        index = build_locked(collection, embedder, folder, data_dir, None, vectors=vectors, extra=extra)
    shutil.rmtree(shard_folder, ignore_errors=True)
    return index, report


def _take(records: Iterable[dict], stop_after: int | None) -> Iterator[dict]:
    for count, record in enumerate(records, start=1):
        yield record
        if stop_after is not None and count >= stop_after:
            raise BuildInterrupted(f"stopped after {count} shards, as asked")
