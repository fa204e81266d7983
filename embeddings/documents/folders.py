"""Text folders the app may offer, listed in ``$EMBEDDINGS_TEXT_FOLDERS`` (as image folders are in
``$EMBEDDINGS_FOLDERS``): never a path typed in the page.

A folder's documents are its ``.txt`` and ``.md`` files (recursively, in name order, hidden ones
left out), one document per file, titled by the file's path inside the folder; the group of a
file is the first subfolder it sits in (files at the top level: no group; the collection is
labelled only when every file has one).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import InvalidInputError
from .collection import MAX_DOCUMENTS, DocumentCollection
from .parsing import MAX_UPLOAD_BYTES, decode_upload

TEXT_FOLDERS_ENV = "EMBEDDINGS_TEXT_FOLDERS"
SUFFIXES = (".txt", ".md", ".markdown")


def configured_text_folders() -> list[Path]:
    """Folders from ``$EMBEDDINGS_TEXT_FOLDERS`` (``os.pathsep``-separated); missing ones are left out."""
    raw = os.environ.get(TEXT_FOLDERS_ENV, "")
    folders = [Path(p).expanduser() for p in raw.split(os.pathsep) if p.strip()]
    return [p for p in folders if p.is_dir()]


def text_files(folder: Path) -> list[Path]:
    """The folder's text files in name order (hidden files and folders left out)."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [
            Path(root) / f for f in sorted(files) if f.lower().endswith(SUFFIXES) and not f.startswith(".")
        ]
        if len(found) > MAX_DOCUMENTS:
            break
    return found


def open_text_folder(folder: str | os.PathLike) -> DocumentCollection:
    """The documents of ``folder`` (see the module docstring); files that are empty, too big
    or not UTF-8 are left out. Raises :class:`InvalidInputError` when none is left."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InvalidInputError(f"{folder} is not a folder")
    ids, texts, groups = [], [], []
    for path in text_files(folder):
        try:
            if path.stat().st_size > MAX_UPLOAD_BYTES:
                continue
            text = decode_upload(path.read_bytes(), path.name)
        except (OSError, InvalidInputError):
            continue
        if not text.strip():
            continue
        rel = path.relative_to(folder)
        ids.append(rel.as_posix())
        texts.append(text.strip())
        groups.append(rel.parts[0] if len(rel.parts) > 1 else None)
    if not texts:
        raise InvalidInputError(f"{folder} holds no .txt or .md file with text in it")
    return DocumentCollection(f"folder-{folder.name}", str(folder), ids, ids, texts, groups)
