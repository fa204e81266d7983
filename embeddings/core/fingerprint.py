"""Identity recipes, in one place: what names an artefact on disk and what says it is unchanged.

Every on-disk artefact (index, map, head, fine-tuned run, vocabulary vectors) is keyed by
:func:`fingerprint` of everything that changes it; files are identified by :func:`file_sha256`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from functools import lru_cache
from typing import Any

from .files import open_regular_file


def fingerprint(*parts: Any, length: int = 16) -> str:
    """Return a short stable hash of JSON-serialisable ``parts`` (order matters)."""
    blob = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:length]


def as_json(value: Any) -> Any:
    """``value`` in the form it takes once written to JSON and read back (tuples become lists),
    so an in-memory fingerprint compares equal to the one stored in a manifest."""
    return json.loads(json.dumps(value))


def slug(text: str) -> str:
    """A file-name-safe form of ``text`` (at most 60 characters) for readable folder names."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")[:60] or "x"


def sha256_file(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """Return the hex sha256 of a file's bytes; ``OSError`` at once for anything but a regular
    file (a FIFO or device never blocks the hash)."""
    digest = hashlib.sha256()
    with open_regular_file(path) as fh:
        while chunk := fh.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


@lru_cache(maxsize=64)
def _sha256_memo(path: str, size: int, mtime_ns: int) -> str:
    return sha256_file(path)


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file (weights, the bundled sample), computed once per process for each
    (path, size, modification time)."""
    st = os.stat(path)
    return _sha256_memo(str(path), st.st_size, st.st_mtime_ns)
