"""Retrieval quality of an image index: precision@k per class and a class confusion matrix."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InvalidInputError

QUERY_BATCH = 2048


@dataclass
class RetrievalResult:
    """Precision@k of label-matched neighbours, overall and per query class."""

    k: int
    precision: float
    queries: int
    classes: list[str]
    per_class: dict[str, float]
    confusion: np.ndarray  # [query class, neighbour class] -> share of neighbours

    def lines(self) -> list[str]:
        """Human-readable report; the last line is ``precision@K=<float> queries=<int>``."""
        out = [f"{name:>12s}  precision@{self.k}={value:.4f}" for name, value in self.per_class.items()]
        out.append(f"precision@{self.k}={self.precision:.4f} queries={self.queries}")
        return out


def evaluate_retrieval(index, k: int = 10, queries=None, approximate: bool = False) -> RetrievalResult:
    """Score retrieval on a labelled index.

    Without ``queries`` it is leave-one-out: every item queries all the others (itself
    excluded). With ``queries`` (another labelled index over the same classes, e.g. the
    test split) every query item searches ``index`` (e.g. the train split).
    """
    return evaluate_with(
        index,
        k,
        queries,
        neighbours=lambda ids: index.neighbours(ids, k, approximate=approximate),
        search=lambda vectors: index.search(vectors, k, approximate=approximate),
    )


def evaluate_with(index, k: int, queries, neighbours, search, batch: int = QUERY_BATCH) -> RetrievalResult:
    """The scoring loop of :func:`evaluate_retrieval` with pluggable search: ``neighbours(ids)``
    (stored items, themselves excluded) and ``search(vectors)`` each return (ids, scores) of
    ``k`` neighbours; used by the re-rankers too."""
    if index.labels is None:
        raise InvalidInputError("precision@k needs class labels; this collection has none")
    source = index if queries is None else queries
    if source.labels is None:
        raise InvalidInputError("the query collection has no class labels")
    if list(source.classes) != list(index.classes):
        raise InvalidInputError(f"class names differ: {source.classes} vs {index.classes}")
    found = np.empty((source.count, k), dtype=np.int64)
    for start in range(0, source.count, batch):
        ids = np.arange(start, min(source.count, start + batch))
        if queries is None:
            found[ids], _ = neighbours(ids)
        else:
            found[ids], _ = search(source.embeddings[ids])
    return score_neighbours(found, source.labels, index.labels, index.classes)


def score_neighbours(found: np.ndarray, query_labels, index_labels, classes) -> RetrievalResult:
    """Precision@k, per class and confusion for neighbour ids ``found`` (n_queries, k) into the
    index, however they were found (plain search, re-ranking ...)."""
    found = np.asarray(found, dtype=np.int64)
    query_labels = np.asarray(query_labels)
    index_labels = np.asarray(index_labels)
    k = found.shape[1]
    n_classes = len(classes)
    neighbour_labels = index_labels[found]
    hits = (neighbour_labels == query_labels[:, None]).mean(axis=1)
    confusion = np.zeros((n_classes, n_classes), dtype=np.float64)
    np.add.at(confusion, (np.repeat(query_labels, k), neighbour_labels.ravel()), 1.0)
    row_sums = confusion.sum(axis=1, keepdims=True)
    confusion = np.divide(confusion, row_sums, out=np.zeros_like(confusion), where=row_sums > 0)
    per_class = {
        name: float(hits[query_labels == c].mean())
        for c, name in enumerate(classes)
        if (query_labels == c).any()
    }
    return RetrievalResult(k, float(hits.mean()), int(len(found)), list(classes), per_class, confusion)
