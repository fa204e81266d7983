"""The SQLite embedding cache: round trips, WAL, concurrent writers, kills mid-write, corruption."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import threading
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest

from embeddings.text.cache import EmbeddingCache, default_cache_path, text_key

REPO = Path(__file__).resolve().parent.parent


def vec(seed: int, dim: int = 4) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(dim).astype(np.float32)


def run_python(code: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=check,
    )


def test_round_trip_and_misses(tmp_path):
    cache = EmbeddingCache(tmp_path / "c.sqlite3")
    assert cache.get_many("m", ["a", "b"], 4) == [None, None]
    assert cache.put_many("m", [("a", vec(1)), ("b", vec(2))]) == 2
    got = cache.get_many("m", ["b", "x", "a", "a"], 4)
    np.testing.assert_array_equal(got[0], vec(2))
    assert got[1] is None
    np.testing.assert_array_equal(got[2], vec(1))
    np.testing.assert_array_equal(got[3], vec(1))
    assert got[0].dtype == np.float32
    assert cache.get_many("other-model", ["a"], 4) == [None]  # keyed by model too
    assert cache.get_many("m", ["a"], 8) == [None]  # a different dimension is a miss
    assert cache.count() == 2 and cache.count("m") == 2 and cache.count("other-model") == 0
    assert cache.clear("m") == 2 and cache.count() == 0


def test_keys_are_exact_text(tmp_path):
    cache = EmbeddingCache(tmp_path / "c.sqlite3")
    cache.put_many("m", [("Cat", vec(1))])
    assert cache.get_many("m", ["cat", "Cat ", "Cat"], 4)[:2] == [None, None]
    assert text_key("Cat") != text_key("cat")


def test_default_path_and_wal_mode(tmp_path):
    assert default_cache_path(tmp_path) == tmp_path / "embedding_cache.sqlite3"
    cache = EmbeddingCache(data_dir=tmp_path)
    cache.put_many("m", [("a", vec(1))])
    with closing(sqlite3.connect(cache.path)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_many_lookups_in_one_call(tmp_path):
    cache = EmbeddingCache(tmp_path / "c.sqlite3")
    texts = [f"w{i}" for i in range(1300)]  # more than one IN (...) chunk
    cache.put_many("m", [(t, vec(i)) for i, t in enumerate(texts)])
    got = cache.get_many("m", texts, 4)
    assert all(g is not None for g in got)
    np.testing.assert_array_equal(got[1299], vec(1299))


def test_non_finite_vectors_are_refused_and_nothing_is_written(tmp_path):
    cache = EmbeddingCache(tmp_path / "c.sqlite3")
    bad = vec(2)
    bad[1] = np.nan
    with pytest.raises(ValueError):
        cache.put_many("m", [("a", vec(1)), ("b", bad)])
    assert cache.count() == 0


def test_damaged_row_is_a_miss(tmp_path):
    cache = EmbeddingCache(tmp_path / "c.sqlite3")
    cache.put_many("m", [("a", vec(1))])
    with closing(sqlite3.connect(cache.path)) as conn, conn:
        conn.execute("UPDATE vectors SET vector = ?", (b"\x00\x01\x02",))
    assert cache.get_many("m", ["a"], 4) == [None]
    cache.put_many("m", [("a", vec(1))])  # re-fetched vectors replace it
    np.testing.assert_array_equal(cache.get_many("m", ["a"], 4)[0], vec(1))


def test_corrupt_file_is_moved_aside_and_replaced(tmp_path):
    path = tmp_path / "c.sqlite3"
    path.write_bytes(b"this is not a sqlite database at all" * 100)
    cache = EmbeddingCache(path)
    assert cache.get_many("m", ["a"], 4) == [None]
    cache.put_many("m", [("a", vec(1))])
    assert cache.count() == 1
    assert len(list(tmp_path.glob("c.sqlite3.corrupt-*"))) == 1


def test_threads_share_one_cache(tmp_path):
    cache = EmbeddingCache(tmp_path / "c.sqlite3")
    errors = []

    def work(worker: int) -> None:
        try:
            for i in range(40):
                text = f"t{worker}-{i}"
                cache.put_many("m", [(text, vec(worker * 1000 + i))])
                got = cache.get_many("m", [text], 4)[0]
                np.testing.assert_array_equal(got, vec(worker * 1000 + i))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert cache.count() == 160


WRITER = """
    import sys
    import numpy as np
    from embeddings.text.cache import EmbeddingCache
    path, worker = sys.argv[1], int(sys.argv[2])
    cache = EmbeddingCache(path)
    for i in range(60):
        vector = np.full(4, worker * 1000 + i, dtype=np.float32)
        cache.put_many("m", [(f"w{worker}-{i}", vector), ("shared", vector)])
        assert cache.get_many("m", [f"w{worker}-{i}"], 4)[0] is not None
"""


def test_concurrent_processes(tmp_path):
    path = tmp_path / "c.sqlite3"
    procs = [
        subprocess.Popen([sys.executable, "-c", textwrap.dedent(WRITER), str(path), str(w)], cwd=REPO)
        for w in range(3)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
    cache = EmbeddingCache(path)
    assert cache.count() == 3 * 60 + 1
    for w in range(3):
        got = cache.get_many("m", [f"w{w}-{i}" for i in range(60)], 4)
        np.testing.assert_array_equal(np.stack(got)[:, 0], np.arange(60) + w * 1000)


def test_kill_mid_write_leaves_nothing_half_written(tmp_path):
    path = tmp_path / "c.sqlite3"
    cache = EmbeddingCache(path)
    cache.put_many("m", [("before", vec(1))])
    killed = run_python(
        """
        import os, signal, sys, time
        import numpy as np
        from embeddings.text.cache import EmbeddingCache, text_key
        cache = EmbeddingCache(sys.argv[1])
        conn = cache._open()
        conn.execute("BEGIN IMMEDIATE")
        rows = [("m", text_key(f"x{i}"), 4, np.ones(4, np.float32).tobytes(), time.time()) for i in range(500)]
        conn.executemany("INSERT INTO vectors VALUES (?, ?, ?, ?, ?)", rows)
        os.kill(os.getpid(), signal.SIGKILL)  # dies holding the write lock, before COMMIT
        """,
        str(path),
        check=False,
    )
    assert killed.returncode != 0
    assert cache.count() == 1
    assert cache.get_many("m", ["x0"], 4) == [None]
    cache.put_many("m", [("after", vec(2))])  # the lock was released; writing works
    assert cache.count() == 2
