"""Atomic writes for every artefact the package puts on disk (temp file in the same folder,
then ``os.replace``), and pickle-free ``.npy`` loading."""

from __future__ import annotations

import errno
import json
import os
import stat
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np


@contextmanager
def atomic_path(final: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temp path in ``final``'s folder; on success ``os.replace`` it onto ``final``.

    On any exception the temp file is removed and ``final`` is untouched, so a reader
    never sees a half-written file.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=suffix + ".tmp")
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, final)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    write_bytes_atomic(path, json.dumps(obj, indent=2, sort_keys=True).encode("utf-8"))


def save_npy_atomic(path: str | os.PathLike, array: np.ndarray) -> None:
    """Save ``array`` as ``.npy`` atomically (never pickled).

    NumPy reports a short write ("1536000 requested and 1310688 written", no errno) when the disk
    fills mid-array; it is raised as the ``ENOSPC`` it is, so every caller sees a full disk.
    """
    with atomic_path(path, suffix=".npy") as tmp:
        with open(tmp, "wb") as fh:
            try:
                np.save(fh, np.ascontiguousarray(array), allow_pickle=False)
            except OSError as exc:
                if exc.errno is None and "requested and" in str(exc) and "written" in str(exc):
                    detail = f"{os.strerror(errno.ENOSPC)} (short write: {exc})"
                    raise OSError(errno.ENOSPC, detail, os.fspath(tmp)) from exc
                raise


def load_npy(path: str | os.PathLike, mmap: bool = False) -> np.ndarray:
    """Load a ``.npy`` file without ever unpickling."""
    return np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)


def open_regular_file(path: str | os.PathLike):
    """Open ``path`` for binary reading only if it is a regular file; raises ``OSError`` otherwise.

    The file is opened non-blocking and checked with ``fstat`` before any read, so a FIFO,
    a device or a socket (or a link to one) among a folder's images, in a manifest or on the
    command line fails at once instead of blocking the reader forever.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", os.fspath(path))
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def is_regular_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a regular file (following links), without opening it."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


_READ_MEMO: dict[tuple, Any] = {}
_READ_LOCK = threading.Lock()


def read_memoised(path: str | os.PathLike, read: Callable[[Path], Any]) -> Any:
    """``read(path)``, remembered per (path, size, modification time), so a shipped file is parsed
    once per process and again only when it changes; None when there is no such file."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    key = (os.fspath(path), st.st_size, st.st_mtime_ns, read)
    with _READ_LOCK:
        if key not in _READ_MEMO:
            _READ_MEMO[key] = read(Path(path))
        return _READ_MEMO[key]
