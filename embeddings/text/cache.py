"""A disk cache of remote embeddings, so the same text is never paid for twice.

One SQLite file, ``<data_dir>/embedding_cache.sqlite3``, holds one row per (model id,
sha256 of the exact text sent) with the vector as float32 bytes. The database runs in
WAL mode with a busy timeout, so several processes (app sessions, the CLI) can read and
write it at once; every write is a single transaction, so a process killed mid-write
leaves either all of a response's vectors or none of them. A connection is opened per
call, which makes one :class:`EmbeddingCache` safe to share between threads.

A file that is not a SQLite database (or is damaged beyond use) is moved aside to
``embedding_cache.sqlite3.corrupt-<time>`` and a fresh cache is started: it only costs
re-fetching. A row whose bytes do not match its dimension is treated as missing.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from contextlib import closing
from pathlib import Path

import numpy as np

from .. import config

log = logging.getLogger(__name__)

CACHE_FILENAME = "embedding_cache.sqlite3"
SCHEMA_VERSION = 1
BUSY_TIMEOUT_S = 30.0
_MAX_PARAMS = 500  # SQLite variables per statement, well under every build's limit
_CORRUPT_CODES = {11, 26}  # SQLITE_CORRUPT, SQLITE_NOTADB

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS vectors ("
    " model TEXT NOT NULL, text_sha256 TEXT NOT NULL, dim INTEGER NOT NULL,"
    " vector BLOB NOT NULL, created REAL NOT NULL,"
    " PRIMARY KEY (model, text_sha256)) WITHOUT ROWID",
)


def text_key(text: str) -> str:
    """The cache key of one text: hex sha256 of its UTF-8 bytes (exactly as sent)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def default_cache_path(data_dir: str | os.PathLike | None = None) -> Path:
    """``<data_dir>/embedding_cache.sqlite3`` (see :func:`embeddings.config.data_dir`)."""
    return config.data_dir(data_dir) / CACHE_FILENAME


class EmbeddingCache:
    """Vectors keyed by (model id, text) in a SQLite file; see the module docstring.

    ``path`` is the database file; by default ``<data_dir>/embedding_cache.sqlite3``.
    """

    def __init__(
        self,
        path: str | os.PathLike | None = None,
        *,
        data_dir: str | os.PathLike | None = None,
        timeout: float = BUSY_TIMEOUT_S,
    ) -> None:
        self.path = Path(path) if path is not None else default_cache_path(data_dir)
        self.timeout = float(timeout)
        self._ready = False
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"EmbeddingCache({str(self.path)!r})"

    # -- connections ---------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
        conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
        conn.execute("PRAGMA synchronous = NORMAL")
        return conn

    def _open(self) -> sqlite3.Connection:
        """A connection to a database with the schema in place (set up once per object)."""
        if not self._ready:
            with self._lock:
                if not self._ready:
                    self._setup()
                    self._ready = True
        return self._connect()

    def _setup(self) -> None:
        try:
            self._create_schema_retrying()
        except sqlite3.DatabaseError as exc:
            if not _is_corruption(exc):
                raise
            self._quarantine(exc)
            self._create_schema_retrying()

    def _create_schema_retrying(self) -> None:
        """Create the schema, retrying while another process holds the lock.

        Switching a new database to WAL needs an exclusive lock, and SQLite can answer "database
        is locked" at once (without its busy handler) when several processes do it together.
        """
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                return self._create_schema()
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def _create_schema(self) -> None:
        with closing(self._connect()) as conn:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":  # e.g. a file system without shared memory
                log.warning("embedding cache %s runs in %s journal mode, not WAL", self.path, mode)
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in _SCHEMA:
                    conn.execute(statement)
                conn.execute(
                    "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def _quarantine(self, exc: Exception) -> None:
        aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
        log.warning("embedding cache %s is unreadable (%s); moved aside to %s", self.path, exc, aside.name)
        for suffix in ("-wal", "-shm"):
            Path(str(self.path) + suffix).unlink(missing_ok=True)
        try:
            os.replace(self.path, aside)
        except FileNotFoundError:  # another process already moved it
            pass

    # -- reads and writes -------------------------------------------------------------------

    def get_many(self, model_id: str, texts: Sequence[str], dim: int) -> list[np.ndarray | None]:
        """Return the cached float32 vector for each text, or None where there is none.

        A damaged database or row is reported in the log and counts as a miss.
        """
        keys = [text_key(t) for t in texts]
        found: dict[str, np.ndarray] = {}
        try:
            with closing(self._open()) as conn:
                unique = list(dict.fromkeys(keys))
                for start in range(0, len(unique), _MAX_PARAMS):
                    chunk = unique[start : start + _MAX_PARAMS]
                    marks = ",".join("?" * len(chunk))
                    rows = conn.execute(
                        f"SELECT text_sha256, dim, vector FROM vectors WHERE model = ? AND text_sha256 IN ({marks})",
                        (model_id, *chunk),
                    ).fetchall()
                    for key, row_dim, blob in rows:
                        vector = _decode(blob, row_dim, dim)
                        if vector is None:
                            log.warning("ignoring a damaged cache row for %s", model_id)
                        else:
                            found[key] = vector
        except sqlite3.DatabaseError as exc:
            log.warning("embedding cache %s could not be read (%s); fetching instead", self.path, exc)
            return [None] * len(texts)
        return [found.get(k) for k in keys]

    def put_many(self, model_id: str, items: Iterable[tuple[str, np.ndarray]]) -> int:
        """Store ``(text, vector)`` pairs in one transaction (all or nothing); returns the count."""
        now = time.time()
        rows = []
        for text, vector in items:
            vector = np.asarray(vector, dtype=np.float32).reshape(-1)
            if not np.all(np.isfinite(vector)):
                raise ValueError("refusing to cache a vector with NaN or infinite values")
            rows.append((model_id, text_key(text), int(vector.size), vector.tobytes(), now))
        if not rows:
            return 0
        with closing(self._open()) as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(
                    "INSERT OR REPLACE INTO vectors (model, text_sha256, dim, vector, created) VALUES (?, ?, ?, ?, ?)",
                    rows,
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return len(rows)

    def count(self, model_id: str | None = None) -> int:
        """Number of cached vectors (for one model, or all)."""
        with closing(self._open()) as conn:
            if model_id is None:
                return int(conn.execute("SELECT COUNT(*) FROM vectors").fetchone()[0])
            return int(
                conn.execute("SELECT COUNT(*) FROM vectors WHERE model = ?", (model_id,)).fetchone()[0]
            )

    def clear(self, model_id: str | None = None) -> int:
        """Delete cached vectors (for one model, or all); returns how many were removed."""
        with closing(self._open()) as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                if model_id is None:
                    removed = conn.execute("DELETE FROM vectors").rowcount
                else:
                    removed = conn.execute("DELETE FROM vectors WHERE model = ?", (model_id,)).rowcount
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return int(removed)


def _decode(blob: bytes, row_dim: int, dim: int) -> np.ndarray | None:
    if row_dim != dim or not isinstance(blob, bytes) or len(blob) != 4 * dim:
        return None
    vector = np.frombuffer(blob, dtype=np.float32).copy()
    return vector if np.all(np.isfinite(vector)) else None


def _is_corruption(exc: sqlite3.DatabaseError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return (code & 0xFF) in _CORRUPT_CODES
    message = str(exc).lower()
    return "not a database" in message or "malformed" in message
