"""Opening a document collection by name: ``docs`` (bundled), a text folder, or a file.

The page offers the bundled collection, the folders of ``$EMBEDDINGS_TEXT_FOLDERS`` and uploads;
the command line may also name any folder or a ``.txt``/``.md``/``.csv``/``.jsonl`` file.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import InvalidInputError
from .collection import DocumentCollection
from .corpus import BUNDLED, bundled_collection
from .folders import open_text_folder
from .parsing import MAX_UPLOAD_BYTES, parse_documents


def open_documents(
    source: str, text_column: str | None = None, label_column: str | None = None
) -> DocumentCollection:
    """The collection named by ``source`` (see the module docstring)."""
    if source == BUNDLED:
        return bundled_collection()
    path = Path(source).expanduser()
    if path.is_dir():
        return open_text_folder(path)
    if not path.is_file():
        raise InvalidInputError(
            f"{source!r} is neither {BUNDLED!r} (the bundled documents), a folder nor a file"
        )
    if path.stat().st_size > MAX_UPLOAD_BYTES:
        raise InvalidInputError(
            f"{path.name} is over {MAX_UPLOAD_BYTES // 2**20} MB: split it into smaller files"
        )
    return parse_documents(path.read_bytes(), path.name, text_column, label_column)
