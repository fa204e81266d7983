"""Reading files safely: only regular files are opened."""

from __future__ import annotations

import os

import pytest

from embeddings.core.files import is_regular_file, open_regular_file


def test_only_regular_files_are_opened(tmp_path):
    """A FIFO (which would block a plain open forever) is refused at once; a file opens."""
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match="not a regular file"):
        open_regular_file(fifo)
    assert not is_regular_file(fifo) and not is_regular_file(tmp_path)
    plain = tmp_path / "a.bin"
    plain.write_bytes(b"abc")
    with open_regular_file(plain) as fh:
        assert fh.read() == b"abc"
    assert is_regular_file(plain)
