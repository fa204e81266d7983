"""Trim or chunk? Leave-one-out precision@k of a labelled document collection's groups, per setting.

Two scores per index: **document vectors** (each document's one vector: its trimmed text's, or the
mean of its passages'; what maps and k-NN use) and **best passage** (two documents are as close
as their closest pair of passages; what the search page's ranking uses for a query). With one
passage per document (trim) the two are the same. Each is also given over the documents longer
than a passage (1,000 characters by default): the only ones trimming and chunking treat differently.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InvalidInputError
from .evaluation import score_neighbours

ROW_BLOCK = 1024  # query passages scored at once in the best-passage score


@dataclass
class PassageQuality:
    """One (model, passage setting)'s scores."""

    model_id: str
    setting: str
    k: int
    documents: int
    passages: int
    cut: int
    document_vectors: float
    best_passage: float
    long_documents: int  # documents longer than ``long_chars``: the ones trim and chunk treat differently
    long_document_vectors: float
    long_best_passage: float


def best_passage_neighbours(index, k: int) -> np.ndarray:
    """(n, k) document ids nearest each document (itself excluded) by their best pair of passages."""
    vectors, docs = index.passage_vectors, index.spans[:, 0]
    n = index.count
    if k >= n:
        raise InvalidInputError(f"k={k} is more than the {n - 1} other documents")
    starts = np.flatnonzero(np.r_[True, docs[1:] != docs[:-1]])
    found = np.empty((n, k), dtype=np.int64)
    for first in range(0, n, ROW_BLOCK):
        last = min(n, first + ROW_BLOCK)
        rows = slice(starts[first], starts[last] if last < n else len(docs))
        sims = vectors[rows] @ vectors.T  # (block passages, all passages)
        per_doc = np.maximum.reduceat(sims, starts, axis=1)  # best passage of each document
        local = starts[first:last] - starts[first]
        per_query = np.maximum.reduceat(per_doc, local, axis=0)  # best over the query's passages
        per_query[np.arange(last - first), np.arange(first, last)] = -np.inf  # not itself
        top = np.argpartition(-per_query, k, axis=1)[:, :k]
        order = np.take_along_axis(per_query, top, axis=1).argsort(axis=1)[:, ::-1]
        found[first:last] = np.take_along_axis(top, order, axis=1)
    return found


def _precision(found: np.ndarray, labels: np.ndarray, rows: np.ndarray) -> float:
    """Mean share of same-group neighbours over the query rows ``rows`` (nan when there are none)."""
    if not rows.size:
        return float("nan")
    return float((labels[found[rows]] == labels[rows, None]).mean())


def passage_quality(index, model_id: str, k: int = 10, texts=None, long_chars: int = 1000) -> PassageQuality:
    """Both scores of a labelled :class:`~embeddings.index.documents.DocumentIndex`, over every
    document and over those longer than ``long_chars`` characters (``texts``: the collection's)."""
    if index.labels is None:
        raise InvalidInputError("trim-vs-chunk scores need groups; this collection has none")
    plain_found = np.concatenate(
        [
            index.neighbours(np.arange(s, min(index.count, s + 2048)), k)[0]
            for s in range(0, index.count, 2048)
        ]
    )
    if len(index.spans) == index.count:
        best_found = plain_found
    else:
        best_found = best_passage_neighbours(index, k)
    labels = index.labels
    every = np.arange(index.count)
    long_rows = (
        np.array([i for i, t in enumerate(texts) if len(t) > long_chars], dtype=np.int64)
        if texts is not None
        else every[:0]
    )
    plain = score_neighbours(plain_found, labels, labels, index.classes).precision
    best = score_neighbours(best_found, labels, labels, index.classes).precision
    settings = index.manifest.get("passages", {})
    label = index.manifest["key"]["collection"]["split"]
    return PassageQuality(
        model_id,
        label,
        k,
        index.count,
        int(settings.get("count", len(index.spans))),
        len(index.cut()),
        plain,
        best,
        int(long_rows.size),
        _precision(plain_found, labels, long_rows),
        _precision(best_found, labels, long_rows),
    )
