"""Trim or chunk? Leave-one-out precision@k of a labelled document collection's groups, per setting.

Two scores per index: **document vectors** (each document's one vector: its trimmed text's, or the
mean of its passages'; what maps and k-NN use) and **best passage** (two documents are as close
as their closest pair of passages; what the search page's ranking uses for a query). With one
passage per document (trim) the two are the same.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InvalidInputError
from .evaluation import evaluate_retrieval, score_neighbours

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


def passage_quality(index, model_id: str, k: int = 10) -> PassageQuality:
    """Both scores of a labelled :class:`~embeddings.index.documents.DocumentIndex`."""
    if index.labels is None:
        raise InvalidInputError("trim-vs-chunk scores need groups; this collection has none")
    plain = evaluate_retrieval(index, k).precision
    if len(index.spans) == index.count:
        best = plain
    else:
        best = score_neighbours(
            best_passage_neighbours(index, k), index.labels, index.labels, index.classes
        ).precision
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
    )
