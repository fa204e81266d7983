"""The document commands of ``python -m embeddings``: build-text-index, search-text, eval-passages.

``--data`` is ``docs`` (the bundled standard-library docstrings), a folder of ``.txt``/``.md``
files, or a ``.txt``/``.md``/``.csv``/``.jsonl`` file (see :mod:`embeddings.documents.sources`).
"""

from __future__ import annotations

import argparse
import sys

from ..errors import InvalidInputError
from .commands import progress_bar


def _say(message: str) -> None:
    print(message, file=sys.stderr)


DOCUMENT_SUFFIXES = (".txt", ".md", ".markdown", ".csv", ".jsonl", ".ndjson")


def document_knn_index(args, split):
    """eval-knn's resolver for document sources (``docs``, a .txt/.md/.csv/.jsonl file, a folder in
    ``$EMBEDDINGS_TEXT_FOLDERS``): their index with ``--model`` (a text model, default ``local``) and
    the default passages; None for any other source (an image one)."""
    from pathlib import Path

    from ..documents.folders import configured_text_folders
    from ..documents.passages import PassageSettings

    data = args.data
    if data is None:
        return None
    path = Path(data).expanduser()
    text_folder = path.is_dir() and path.resolve() in {p.resolve() for p in configured_text_folders()}
    if (
        data != "docs"
        and not (path.is_file() and path.suffix.lower() in DOCUMENT_SUFFIXES)
        and not text_folder
    ):
        return None
    if split is not None or getattr(args, "query_split", None):
        raise InvalidInputError(
            "documents have no splits: drop --split and --query-split (k-NN is leave-one-out)"
        )
    doc_args = argparse.Namespace(data=data, data_dir=args.data_dir, text_column=None, label_column=None)
    collection = _collection(doc_args)
    if collection.labels is None:
        raise InvalidInputError(f"{data} has no groups: k-NN needs a label for every document")
    _, index = _index(doc_args, collection, args.model or "local", PassageSettings())
    return index


def add_text_commands(sub) -> None:
    """Register the document commands on the sub-command parser ``sub`` (and eval-knn's document
    sources: :func:`document_knn_index`, tried before the image sources)."""
    from ..documents.passages import DEFAULT_CHUNK_CHARS, DEFAULT_MODE, DEFAULT_OVERLAP, MODES
    from .commands import KNN_SOURCES

    if document_knn_index not in KNN_SOURCES:
        KNN_SOURCES.insert(0, document_knn_index)

    def common(p, model: bool = True) -> None:
        p.add_argument(
            "--data", default="docs", help="docs (bundled, default), a folder, or a .txt/.md/.csv/.jsonl file"
        )
        if model:
            p.add_argument("--model", default="local", help="text model id (default: local)")
        p.add_argument(
            "--mode",
            choices=MODES,
            default=DEFAULT_MODE,
            help=f"long documents: chunk into passages or trim (default {DEFAULT_MODE})",
        )
        p.add_argument(
            "--chunk-chars",
            type=int,
            default=DEFAULT_CHUNK_CHARS,
            help=f"passage length in characters (default {DEFAULT_CHUNK_CHARS})",
        )
        p.add_argument(
            "--overlap",
            type=int,
            default=DEFAULT_OVERLAP,
            help=f"characters shared by consecutive passages (default {DEFAULT_OVERLAP})",
        )
        p.add_argument(
            "--text-column", default=None, help="CSV/JSONL: the text column (default: text, body or content)"
        )
        p.add_argument(
            "--label-column",
            default=None,
            help="CSV/JSONL: the group column (default: label, group, category or class)",
        )

    p = sub.add_parser("build-text-index", help="embed a document collection once and write its index")
    common(p)
    p.set_defaults(func=cmd_build_text_index)

    p = sub.add_parser("search-text", help="print the documents nearest a query")
    common(p)
    p.add_argument("--query", required=True, help="what to search for")
    p.add_argument("-k", "--k", type=int, default=10, help="documents to return (default 10)")
    p.set_defaults(func=cmd_search_text)

    p = sub.add_parser(
        "eval-passages", help="trim vs chunk: leave-one-out precision@k of the groups, per model"
    )
    common(p, model=False)
    p.add_argument(
        "--models", default="minilm,wordllama,local,hashing", help="comma-separated text model ids"
    )
    p.add_argument(
        "--settings",
        default="trim8000,chunk1000-200,chunk500-100",
        help="comma-separated settings: trimN or chunkN-OVERLAP",
    )
    p.add_argument("--k", type=int, default=10, help="neighbours per document (default 10)")
    p.set_defaults(func=cmd_eval_passages)


def _settings(args):
    from ..documents.passages import PassageSettings

    return PassageSettings(args.mode, args.chunk_chars, args.overlap)


def _collection(args):
    from ..documents.sources import open_documents

    collection = open_documents(args.data, args.text_column, args.label_column)
    groups = f", {len(collection.classes)} groups" if collection.classes else ""
    _say(f"documents: {collection.name} ({len(collection):,} documents{groups}) from {collection.source}")
    return collection


def _index(args, collection, model_id: str, settings):
    from ..index.documents import get_or_build_document_index
    from ..registry import get_text_embedder

    embedder = get_text_embedder(model_id)
    with progress_bar(f"embedding passages ({model_id})", unit="passage") as progress:
        index, status = get_or_build_document_index(collection, settings, embedder, args.data_dir, progress)
    note = f": {status.reason}" if status.reason else ""
    _say(f"index {status.action}{note} -> {index.path}")
    return embedder, index


def cmd_build_text_index(args) -> int:
    collection = _collection(args)
    settings = _settings(args)
    _, index = _index(args, collection, args.model, settings)
    cut = index.cut()
    print(
        f"{index.count} documents, {len(index.spans)} passages of {index.dim} dims ({settings.describe()}; "
        f"{len(cut)} documents cut), built {index.manifest['built_at']} in {index.manifest['build_seconds']} s at {index.path}"
    )
    return 0


def cmd_search_text(args) -> int:
    from ..text.base import clean_text

    try:
        query = clean_text(args.query)
    except InvalidInputError:
        raise InvalidInputError("the query is empty: give some words to search for") from None
    collection = _collection(args)
    embedder, index = _index(args, collection, args.model, _settings(args))
    hits = index.search_documents(embedder.embed([query])[0], args.k)
    print(f"query: {query}")
    print(f"{'rank':>4}  {'cosine':>7}  {'group':<24}  title / passage")
    for rank, (doc, score, row) in enumerate(zip(hits.ids, hits.scores, hits.passages, strict=True), start=1):
        passage = " ".join(index.passage_text(collection, int(row)).split())
        group = collection.groups[int(doc)] or "-"
        print(f"{rank:>4}  {score:7.4f}  {group[:24]:<24}  {collection.first_line(int(doc))}")
        print(f"{'':>4}  {'':>7}  {'':<24}  {passage[:150]}{'…' if len(passage) > 150 else ''}")
    return 0


def _parse_setting(text: str):
    import re

    from ..documents.passages import PassageSettings

    trim = re.fullmatch(r"trim(\d+)", text.strip())
    chunk = re.fullmatch(r"chunk(\d+)-(\d+)", text.strip())
    if trim:
        return PassageSettings("trim", trim_chars=int(trim.group(1)))
    if chunk:
        return PassageSettings("chunk", int(chunk.group(1)), int(chunk.group(2)))
    raise InvalidInputError(f"setting {text!r} is not trimN or chunkN-OVERLAP (e.g. trim8000, chunk1000-200)")


def cmd_eval_passages(args) -> int:
    from ..index.textquality import passage_quality

    collection = _collection(args)
    settings = [_parse_setting(s) for s in args.settings.split(",") if s.strip()]
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    long_chars = 1000
    n_long = sum(len(t) > long_chars for t in collection.texts)
    print(
        f"leave-one-out precision@{args.k} of the {len(collection.classes)} groups, {len(collection):,} "
        f"documents ({n_long:,} longer than {long_chars:,} characters: the 'long' columns)"
    )
    print(
        f"{'model':<10} {'setting':<15} {'passages':>8} {'cut':>5} {'doc vectors':>11} {'best passage':>12} "
        f"{'long: doc vec':>13} {'long: best':>10}"
    )
    best: dict[str, tuple[float, str]] = {}
    for model_id in models:
        for s in settings:
            _, index = _index(args, collection, model_id, s)
            q = passage_quality(index, model_id, args.k, collection.texts, long_chars)
            print(
                f"{model_id:<10} {q.setting:<15} {q.passages:>8} {q.cut:>5} {q.document_vectors:>11.4f} "
                f"{q.best_passage:>12.4f} {q.long_document_vectors:>13.4f} {q.long_best_passage:>10.4f}",
                flush=True,
            )
            score = max(q.document_vectors, q.best_passage)
            if model_id not in best or score > best[model_id][0]:
                best[model_id] = (score, q.setting)
    for model_id, (score, setting) in best.items():
        print(f"best_setting[{model_id}]={setting} precision@{args.k}={score:.4f}")
    return 0
