"""Documents from uploaded bytes: TXT, Markdown, CSV and JSONL.

* **TXT**: one document per paragraph (paragraphs are separated by a blank line); its title is its
  first line. A file with no blank line is one document.
* **Markdown** (``.md``): one document per section, split at headings (``#`` .. ``######``); the
  heading is the title. Text before the first heading is a section of its own.
* **CSV** and **JSONL**: one document per row. The text column is ``text``, ``body`` or
  ``content`` (the first found, any case), or the one named; otherwise an error names the columns
  found. An optional ``title`` column gives titles, and ``label``, ``group``, ``category`` or
  ``class`` gives the groups (a map colours by them; k-NN predicts them).

Limits (:class:`~embeddings.errors.InvalidInputError`, with what to do): an empty upload, one over
:data:`MAX_UPLOAD_BYTES`, bytes that are not UTF-8 text (binary files), no document with text, and
more than :data:`~embeddings.documents.collection.MAX_DOCUMENTS` documents (refused after a count,
before anything is embedded). A very long document is kept whole; its passages
(:mod:`embeddings.documents.passages`) decide how much of it a model reads.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from pathlib import PurePath

from ..errors import InvalidInputError
from ..text.base import normalize_text
from .collection import MAX_DOCUMENTS, DocumentCollection

MAX_UPLOAD_BYTES = 10 * 2**20
FORMATS = ("txt", "md", "csv", "jsonl")
TEXT_COLUMNS = ("text", "body", "content")
LABEL_COLUMNS = ("label", "group", "category", "class")
TITLE_COLUMNS = ("title", "name", "id")
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")


def upload_format(filename: str) -> str:
    """``txt``, ``md``, ``csv`` or ``jsonl`` from a file name's ending (``.markdown``, ``.ndjson``, ``.text``)."""
    ext = PurePath(filename).suffix.lower().lstrip(".")
    ext = {"markdown": "md", "ndjson": "jsonl", "text": "txt", "tsv": "csv"}.get(ext, ext)
    if ext not in FORMATS:
        raise InvalidInputError(
            f"{filename!r} is not a text file this page reads: upload .txt, .md, .csv or .jsonl"
        )
    return ext


def decode_upload(data: bytes, filename: str = "upload") -> str:
    """The text of an upload: refused when empty, over 10 MB, or not UTF-8 text."""
    if not isinstance(data, (bytes, bytearray)):
        raise InvalidInputError("an upload must be bytes")
    if not data.strip():
        raise InvalidInputError(f"{filename!r} is empty: upload a file with some text in it")
    if len(data) > MAX_UPLOAD_BYTES:
        raise InvalidInputError(
            f"{filename!r} is {len(data) / 2**20:.1f} MB; uploads may be at most "
            f"{MAX_UPLOAD_BYTES // 2**20} MB. Split it, or keep the documents you want to search"
        )
    if b"\x00" in data[:65536]:
        raise InvalidInputError(f"{filename!r} is not text (it holds binary bytes): upload a UTF-8 text file")
    try:
        return bytes(data).decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(
            f"{filename!r} is not UTF-8 text (byte {exc.start:,} is not valid): save it as UTF-8 and upload it again"
        ) from None


def _txt(text: str) -> list[tuple[str, str, str | None]]:
    docs = []
    for para in _PARAGRAPH_BREAK.split(text.replace("\r\n", "\n").replace("\r", "\n")):
        if para.strip():
            first = next(line.strip() for line in para.splitlines() if line.strip())
            docs.append((first, para.strip(), None))
    return docs


def _markdown(text: str) -> list[tuple[str, str, str | None]]:
    docs, title, lines, in_code = [], "", [], False

    def flush():
        body = "\n".join(lines).strip()
        if body or title:
            first = next((line.strip() for line in body.splitlines() if line.strip()), "")
            docs.append((title or first, body or title, None))

    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if line.lstrip().startswith(("```", "~~~")):
            in_code = not in_code
        match = None if in_code else _HEADING.match(line)
        if match:
            flush()
            title, lines = match.group(2), []
        else:
            lines.append(line)
    flush()
    return docs


def _pick(columns: list[str], wanted: tuple[str, ...], chosen: str | None, what: str, required: bool):
    by_lower = {c.strip().lower(): c for c in columns if isinstance(c, str)}
    if chosen:
        if chosen in columns:
            return chosen
        if chosen.strip().lower() in by_lower:
            return by_lower[chosen.strip().lower()]
        raise InvalidInputError(
            f"there is no {what} column {chosen!r}; the columns are: {', '.join(map(str, columns))}"
        )
    for name in wanted:
        if name in by_lower:
            return by_lower[name]
    if required:
        found = ", ".join(repr(c) for c in columns) or "none"
        raise InvalidInputError(
            f"no text column found: name it {' or '.join(repr(w) for w in wanted)} "
            f"(the columns found are {found}), or choose the text column"
        )
    return None


def _rows(
    rows: list[dict], columns: list[str], text_column, label_column
) -> list[tuple[str, str, str | None]]:
    text_col = _pick(columns, TEXT_COLUMNS, text_column, "text", required=True)
    label_col = _pick(columns, LABEL_COLUMNS, label_column, "label", required=False)
    title_col = _pick(
        [c for c in columns if c not in (text_col, label_col)], TITLE_COLUMNS, None, "title", False
    )
    docs = []
    for row in rows:
        value = row.get(text_col)
        if value is None:
            continue
        label = row.get(label_col) if label_col else None
        title = row.get(title_col) if title_col else None
        docs.append(
            (
                "" if title is None else str(title),
                str(value),
                None if label in (None, "") else str(label),
            )
        )
    return docs


def _csv(text: str, text_column, label_column):
    sample = text[:65536]
    try:
        dialect = csv.Sniffer().sniff(sample, delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    csv.field_size_limit(MAX_UPLOAD_BYTES)
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""), dialect=dialect)
        columns = [c for c in (reader.fieldnames or []) if c is not None]
        rows = []
        for row in reader:
            rows.append(row)
            if len(rows) > MAX_DOCUMENTS:
                _too_many()
    except csv.Error as exc:
        raise InvalidInputError(f"the CSV could not be read: {exc}") from None
    if not columns:
        raise InvalidInputError(
            "the CSV has no header row: its first line should name the columns (e.g. text,label)"
        )
    return _rows(rows, columns, text_column, label_column)


def _jsonl(text: str, text_column, label_column):
    rows, columns = [], []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise InvalidInputError(
                f"line {number:,} is not JSON ({exc.msg}): each line must be one JSON object"
            ) from None
        if not isinstance(row, dict):
            raise InvalidInputError(
                f'line {number:,} is not a JSON object: each line must be like {{"text": "..."}}'
            )
        for key in row:
            if key not in columns:
                columns.append(key)
        rows.append(row)
        if len(rows) > MAX_DOCUMENTS:
            _too_many()
    if not rows:
        raise InvalidInputError("the JSONL file has no JSON objects")
    return _rows(rows, columns, text_column, label_column)


def _too_many():
    raise InvalidInputError(
        f"more than {MAX_DOCUMENTS:,} documents: one collection may hold at most {MAX_DOCUMENTS:,}. "
        "Keep the ones you want to search, or join short ones into longer documents"
    )


def parse_documents(
    data: bytes, filename: str, text_column: str | None = None, label_column: str | None = None
) -> DocumentCollection:
    """A :class:`DocumentCollection` from an uploaded file's bytes (see the module docstring).

    Documents empty after cleaning are left out; the collection is named after the file and
    fingerprinted by its contents, so the same upload finds the same index."""
    fmt = upload_format(filename)
    text = decode_upload(data, filename)
    if fmt == "txt":
        docs = _txt(text)
    elif fmt == "md":
        docs = _markdown(text)
    elif fmt == "csv":
        docs = _csv(text, text_column, label_column)
    else:
        docs = _jsonl(text, text_column, label_column)
    if len(docs) > MAX_DOCUMENTS:
        _too_many()
    kept = [(title, body, label) for title, body, label in docs if normalize_text(body)]
    if not kept:
        raise InvalidInputError(f"{filename!r} holds no document with text in it")
    stem = PurePath(filename).stem or "upload"
    return DocumentCollection(
        f"upload-{stem}",
        f"upload:{hashlib.sha256(bytes(data)).hexdigest()[:12]}",
        [str(i) for i in range(len(kept))],
        [normalize_text(t)[:200] for t, _, _ in kept],
        [b for _, b, _ in kept],
        [lab for _, _, lab in kept] if any(lab for _, _, lab in kept) else None,
    )


def table_columns(data: bytes, filename: str) -> list[str]:
    """The column names of a CSV's header or a JSONL file's objects ([] when unreadable), so the
    page can offer them when no text column was found."""
    try:
        text = decode_upload(data, filename)
        fmt = upload_format(filename)
    except InvalidInputError:
        return []
    if fmt == "csv":
        first = text[:65536].splitlines()[:1]
        try:
            dialect = csv.Sniffer().sniff(text[:65536], delimiters=",;\t|")
        except csv.Error:
            dialect = csv.excel
        return [c for c in next(csv.reader(first, dialect), []) if c]
    if fmt == "jsonl":
        columns: list[str] = []
        for line in text.splitlines()[:1000]:
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict):
                columns += [k for k in row if k not in columns]
        return columns
    return []
