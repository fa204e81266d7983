"""The index manifest's schema: every field the code reads, its type and range, checked in one
place before any use, so a manifest that is valid JSON but wrong in shape is a
:class:`~embeddings.errors.CorruptIndexError` (and the index is rebuilt), never a ``KeyError``."""

from __future__ import annotations

import math
import os
import re
from datetime import datetime

from ..errors import CorruptIndexError

REQUIRED_FILES = ("embeddings.npy", "index-flat.faiss")  # every index; plus labels.npy when labelled


# the only names a manifest may list (a document index adds its passages: embeddings.index.documents)
INDEX_FILES = (
    *REQUIRED_FILES,
    "labels.npy",
    "index-hnsw.faiss",
    "index-ivfpq.faiss",
    "passages.npy",
    "passage_spans.npy",
)

SEARCH_KINDS = ("flat", "ivfpq")  # what ``index_kind`` may name (absent: flat, as in older manifests)
ENGINES = ("local", "serial", "ray")  # local: embed_collection; serial and ray: sharded builds
IVFPQ_INTS = ("nlist", "m", "nbits", "train_size", "nprobe", "rerank")


SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def _is_int(value, low: int | None = None) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and (low is None or value >= low)


def _is_str(value) -> bool:
    return isinstance(value, str) and bool(value)


def _manifest_problem(m) -> str | None:
    """What is wrong with a manifest's shape, or None: the schema of every field that the package
    (load, maps, approximate search, adaptation, the CLI) and the app read, with types and ranges."""
    if not isinstance(m, dict):
        return "it is not a JSON object"
    key = m.get("key")
    if not isinstance(key, dict):
        return "key is missing or not an object"
    if not _is_int(key.get("format"), 1):
        return "key.format is not a format version"
    if not _is_str(key.get("package_version")):
        return "key.package_version is not a string"
    model = key.get("model")
    if not isinstance(model, dict) or not _is_str(model.get("model_id")):
        return "key.model has no model id"
    if "precision" in model and not _is_str(model["precision"]):
        return "key.model.precision is not a string"
    coll = key.get("collection")
    if not isinstance(coll, dict):
        return "key.collection is missing or not an object"
    for name in ("name", "source", "split", "fingerprint"):
        if not isinstance(coll.get(name), str):
            return f"key.collection.{name} is not a string"
    if not _is_int(m.get("count"), 1):
        return "count is not an integer of at least 1"
    if coll.get("count") != m["count"]:
        return "count differs from key.collection.count"
    if not _is_int(m.get("dim"), 1):
        return "dim is not an integer of at least 1"
    classes = m.get("classes")
    if not isinstance(classes, list) or not all(_is_str(c) for c in classes):
        return "classes is not a list of names"
    if len(set(classes)) != len(classes):
        return "classes has duplicates"
    built = m.get("built_at")
    try:
        datetime.fromisoformat(built)
    except (TypeError, ValueError):
        return "built_at is not an ISO date and time"
    seconds = m.get("build_seconds", 0)
    if not (isinstance(seconds, (int, float)) and not isinstance(seconds, bool) and math.isfinite(seconds)):
        return "build_seconds is not a number"
    if seconds < 0:
        return "build_seconds is not a duration"
    files = m.get("files")
    if not isinstance(files, dict):
        return "files is missing or not an object"
    for name, entry in files.items():
        if "/" in name or "\\" in name or "\0" in name or name in ("", ".", "..") or os.path.isabs(name):
            return f"file name {name!r} leaves the index folder"
        if name not in INDEX_FILES:
            return f"file {name!r} is not an index file"
        if not isinstance(entry, dict) or not _is_int(entry.get("bytes"), 0):
            return f"files.{name}.bytes is not a size"
        if not isinstance(entry.get("sha256"), str) or not SHA256_HEX.fullmatch(entry["sha256"]):
            return f"files.{name}.sha256 is not a sha256"
    missing = [name for name in REQUIRED_FILES if name not in files]
    if missing:
        return f"files does not list {', '.join(missing)}"
    if "labels.npy" in files and not classes:
        return "labels.npy is listed but there are no classes"
    hnsw = m.get("hnsw", {})
    if not isinstance(hnsw, dict) or not all(_is_int(v, 1) for v in hnsw.values()):
        return "hnsw is not a set of positive integers"
    problem = _engine_problem(m.get("engine", {"name": "local"}), m["count"])
    if problem:
        return problem
    kind = m.get("index_kind", "flat")
    if kind not in SEARCH_KINDS:
        return f"index_kind {kind!r} is not one of {', '.join(SEARCH_KINDS)}"
    ivfpq = m.get("ivfpq")
    if kind == "ivfpq" and ("index-ivfpq.faiss" not in files or not isinstance(ivfpq, dict)):
        return "index_kind is ivfpq but there is no IVF-PQ index or no ivfpq parameters"
    if ivfpq is not None:
        if not isinstance(ivfpq, dict) or not _is_str(ivfpq.get("spec")):
            return "ivfpq.spec is not a FAISS factory string"
        if not all(_is_int(ivfpq.get(name), 1) for name in IVFPQ_INTS):
            return f"ivfpq.{{{','.join(IVFPQ_INTS)}}} are not all positive integers"
    derived = m.get("derived_from", {})
    if not isinstance(derived, dict) or not all(isinstance(v, str) for v in derived.values()):
        return "derived_from is not a set of strings"
    passages = m.get("passages", {})
    if not isinstance(passages, dict) or not all(_is_int(v, 0) or _is_str(v) for v in passages.values()):
        return "passages is not a set of settings"
    cut = m.get("cut", [])
    if not isinstance(cut, list) or not all(_is_int(v, 0) and v < m["count"] for v in cut):
        return "cut is not a list of document numbers"
    return None


def _engine_problem(engine, count: int) -> str | None:
    """What is wrong with ``engine`` (how the vectors were embedded: ``{"name": "local"}``, or a sharded
    build's ``{"name": "ray", "workers": n, "shard_size": s, "shards": [{"start", "stop", "sha256", "bytes"}, ...]}``
    whose shards cover ids ``0..count`` in order), or None. Manifests from before this field load as local."""
    if not isinstance(engine, dict) or engine.get("name") not in ENGINES:
        return f"engine.name is not one of {', '.join(ENGINES)}"
    if engine["name"] == "local":
        return None
    if not _is_int(engine.get("workers"), 1) or not _is_int(engine.get("shard_size"), 1):
        return "engine.workers or engine.shard_size is not a positive integer"
    shards = engine.get("shards")
    if not isinstance(shards, list) or not shards:
        return "engine.shards is not a list of shards"
    end = 0
    for shard in shards:
        if (
            not isinstance(shard, dict)
            or shard.get("start") != end
            or not _is_int(shard.get("stop"), end + 1)
        ):
            return "engine.shards do not cover the ids in order"
        if not isinstance(shard.get("sha256"), str) or not SHA256_HEX.fullmatch(shard["sha256"]):
            return "an engine shard's sha256 is not a sha256"
        if not _is_int(shard.get("bytes"), 0):
            return "an engine shard's bytes is not a size"
        end = shard["stop"]
    if end != count:
        return f"engine.shards cover {end} ids, not the index's {count}"
    return None


def check_manifest(manifest) -> dict:
    """Return ``manifest`` if its shape is right (:func:`_manifest_problem`), else raise
    :class:`CorruptIndexError` naming the first problem; nothing reads a manifest unchecked."""
    problem = _manifest_problem(manifest)
    if problem:
        raise CorruptIndexError(f"the index manifest is damaged: {problem}")
    return manifest
