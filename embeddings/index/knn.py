"""k-nearest-neighbour classification on any labelled index (images or documents).

An index here is anything with unit float32 ``embeddings`` (n, d), integer ``labels`` (or None),
``classes``, ``search(vectors, k)``, ``neighbours(ids, k)`` (each item itself excluded) and a
``path`` folder; :class:`~embeddings.index.store.ImageIndex` is one.

* **The vote.** A query's k nearest neighbours vote for their classes: *plain*, one vote each;
  *weighted*, each votes with its cosine similarity (a negative cosine counts 0). The class
  with the most votes (the largest summed weight) wins. **Ties** go to the tied class whose
  best-ranked neighbour is nearest the query (so k = 1 and a tie at k = 2 both follow the
  nearest neighbour); with no positive weight at all, the weighted vote is the plain one.
* **Leave-one-out accuracy for every k** in 1..``k_max`` costs one neighbour search with
  ``k_max`` (each item itself excluded): the votes are added up one rank at a time, so the
  prediction at k comes from the counts at k - 1 plus one neighbour (:func:`vote_curve`).
  With ``queries`` (another labelled index over the same classes, e.g. the test split) every
  query searches the index instead (e.g. the train split).
* **The nearest-class-centroid baseline**: each class is the mean of its unit vectors, and an
  item is given the class whose mean has the highest cosine with it. Leave-one-out, an item is
  taken out of its own class's mean first (``(sum - x) / (n - 1)``); an item alone in its class
  cannot be given that class. Ties go to the lower class number.
* The result is computed once per (index, queries, ``k_max``): saved as JSON beside the index,
  keyed by the embeddings' sha256, the labels, the classes and the parameters, written
  atomically; :func:`saved_knn_curve` reads it back, :func:`knn_curve` computes it when missing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.files import write_json_atomic
from ..core.fingerprint import fingerprint
from ..errors import InvalidInputError

DEFAULT_K_MAX = 50
QUERY_BATCH = 1024
FORMAT = "knn-1"
_ABSENT = np.iinfo(np.int64).max  # the first rank of a class with no neighbour yet

Progress = Callable[[int, int], None]


# ---------------------------------------------------------------------------- the vote


def vote_weights(scores: np.ndarray) -> np.ndarray:
    """The weighted vote of neighbours with cosine ``scores``: the cosine, negative ones counting 0."""
    return np.clip(np.asarray(scores, dtype=np.float64), 0.0, None)


def vote_curve(
    neighbour_labels: np.ndarray, scores: np.ndarray, n_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Plain and weighted predictions for every k: two (n, K) int arrays, column ``k - 1`` the vote
    of each row's first k neighbours (``neighbour_labels``/``scores``: (n, K), best first).

    One pass over the ranks: the counts and summed weights at k are those at k - 1 plus one
    neighbour. Ties go to the tied class whose best-ranked neighbour comes first.
    """
    labels = np.asarray(neighbour_labels, dtype=np.int64)
    if labels.ndim != 2:
        raise InvalidInputError("neighbour labels must be an (n, k) array")
    n, k_max = labels.shape
    weights = vote_weights(scores)
    if weights.shape != labels.shape:
        raise InvalidInputError("neighbour labels and scores must have the same shape")
    if n and (labels.min() < 0 or labels.max() >= n_classes):
        raise InvalidInputError(f"neighbour labels fall outside the {n_classes} classes")
    rows = np.arange(n)
    counts = np.zeros((n, n_classes), dtype=np.int64)
    sums = np.zeros((n, n_classes), dtype=np.float64)
    first = np.full((n, n_classes), _ABSENT, dtype=np.int64)
    plain = np.empty((n, k_max), dtype=np.int64)
    weighted = np.empty((n, k_max), dtype=np.int64)
    for rank in range(k_max):
        col = labels[:, rank]
        counts[rows, col] += 1
        sums[rows, col] += weights[:, rank]
        first[rows, col] = np.minimum(first[rows, col], rank)
        plain[:, rank] = _winner(counts, first)
        weighted[:, rank] = _winner(sums, first)
    return plain, weighted


def _winner(totals: np.ndarray, first: np.ndarray) -> np.ndarray:
    """Per row, the class with the largest total; among equal totals the one whose first
    neighbour ranks best (classes with no neighbour never win: their total is 0 and a class
    with a neighbour has total >= 0 and a better first rank)."""
    best = totals.max(axis=1, keepdims=True)
    rank = np.where(totals == best, first, _ABSENT)
    return rank.argmin(axis=1)


@dataclass
class KnnVote:
    """The k-NN vote of one query: per-class votes and summed weights, and both winners."""

    k: int
    classes: list[str]
    counts: np.ndarray  # (n_classes,) int: plain votes
    weights: np.ndarray  # (n_classes,) float: summed cosine weights
    plain: int  # winning class number
    weighted: int
    neighbour_ids: np.ndarray
    neighbour_scores: np.ndarray

    @property
    def plain_label(self) -> str:
        return self.classes[self.plain]

    @property
    def weighted_label(self) -> str:
        return self.classes[self.weighted]

    def table(self) -> dict[str, list]:
        """Classes that got a vote, most votes first: ``{"class", "votes", "weight"}`` columns."""
        order = [c for c in np.lexsort((-self.weights, -self.counts)) if self.counts[c] > 0]
        return {
            "class": [self.classes[c] for c in order],
            "votes": [int(self.counts[c]) for c in order],
            "weight": [round(float(self.weights[c]), 4) for c in order],
        }


def _require_labels(index, what: str = "k-NN classification") -> None:
    if getattr(index, "labels", None) is None:
        raise InvalidInputError(f"{what} needs class labels; this collection has none")
    classes = list(index.classes)
    if len(classes) < 2 or len(np.unique(index.labels)) < 2:
        raise InvalidInputError(f"{what} needs at least two classes; this collection has only one")


def vote(index, neighbour_ids, scores, k: int | None = None) -> KnnVote:
    """The vote of neighbours ``neighbour_ids`` (best first, cosine ``scores``) of one query, using
    the first ``k`` (default all of them)."""
    _require_labels(index)
    ids = np.asarray(neighbour_ids, dtype=np.int64).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if ids.shape != scores.shape or ids.size == 0:
        raise InvalidInputError("a vote needs at least one neighbour, with one score each")
    k = ids.size if k is None else _check_k(k, ids.size, "neighbours given")
    ids, scores = ids[:k], scores[:k]
    n_classes = len(index.classes)
    labels = np.asarray(index.labels)[ids]
    plain, weighted = vote_curve(labels[None, :], scores[None, :], n_classes)
    counts = np.bincount(labels, minlength=n_classes)
    weights = np.zeros(n_classes)
    for label, w in zip(labels, vote_weights(scores), strict=True):  # in rank order, as vote_curve adds
        weights[label] += w
    return KnnVote(
        k, list(index.classes), counts, weights, int(plain[0, -1]), int(weighted[0, -1]), ids, scores
    )


def predict(index, k: int, item: int | None = None, vector: np.ndarray | None = None) -> KnnVote:
    """The k-NN vote for stored item ``item`` (itself excluded) or for a query ``vector``."""
    _require_labels(index)
    if (item is None) == (vector is None):
        raise InvalidInputError("give either a stored item or a query vector")
    if item is not None:
        ids, scores = index.neighbours([item], _check_k(k, _count(index) - 1, "other items in the index"))
    else:
        ids, scores = index.search(np.atleast_2d(vector), _check_k(k, _count(index), "items in the index"))
    return vote(index, ids[0], scores[0])


def _count(index) -> int:
    return int(np.asarray(index.embeddings).shape[0])


def _check_k(k, limit: int, what: str) -> int:
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise InvalidInputError(f"k must be a positive integer, got {k!r}")
    if k > limit:
        raise InvalidInputError(f"k={k} is more than the {limit} {what}")
    return int(k)


# ---------------------------------------------------------------------------- the centroid baseline


def centroid_predictions(index, queries=None) -> np.ndarray:
    """Nearest-class-centroid predictions: leave-one-out over ``index`` (each item out of its own
    class's mean), or for every item of ``queries`` against ``index``'s class means."""
    _require_labels(index)
    vectors = np.asarray(index.embeddings)
    labels = np.asarray(index.labels, dtype=np.int64)
    n_classes = len(index.classes)
    sums = np.zeros((n_classes, vectors.shape[1]))
    for c in range(n_classes):
        sums[c] = vectors[labels == c].sum(axis=0, dtype=np.float64)
    sizes = np.bincount(labels, minlength=n_classes)
    norms = np.linalg.norm(sums, axis=1)  # cos(x, mean_c) = x . sum_c / |sum_c|
    source = vectors if queries is None else np.asarray(queries.embeddings)
    out = np.empty(len(source), dtype=np.int64)
    for start in range(0, len(source), QUERY_BATCH):
        x = source[start : start + QUERY_BATCH].astype(np.float64)
        dots = x @ sums.T
        cos = dots / np.maximum(norms, 1e-12)
        cos[:, sizes == 0] = -np.inf
        if queries is None:  # leave-one-out: x leaves its own class's sum
            rows = np.arange(len(x))
            own = labels[start : start + QUERY_BATCH]
            rest_norm = np.linalg.norm(sums[own] - x, axis=1)
            own_cos = (dots[rows, own] - (x * x).sum(axis=1)) / np.maximum(rest_norm, 1e-12)
            cos[rows, own] = np.where(sizes[own] <= 1, -np.inf, own_cos)
        out[start : start + len(x)] = cos.argmax(axis=1)
    return out


# ---------------------------------------------------------------------------- accuracy for every k


@dataclass
class KnnCurve:
    """k-NN accuracy for k = 1..k_max (plain and weighted), per class, and the centroid baseline."""

    k_max: int
    classes: list[str]
    queries: int
    leave_one_out: bool
    class_counts: list[int]  # queries per class
    plain_correct: np.ndarray  # (k_max, n_classes) correct predictions at k (row k - 1)
    weighted_correct: np.ndarray
    centroid_correct: np.ndarray  # (n_classes,)

    @property
    def ks(self) -> np.ndarray:
        return np.arange(1, self.k_max + 1)

    @property
    def plain(self) -> np.ndarray:
        """Accuracy at each k (plain vote), index k - 1."""
        return self.plain_correct.sum(axis=1) / self.queries

    @property
    def weighted(self) -> np.ndarray:
        return self.weighted_correct.sum(axis=1) / self.queries

    @property
    def centroid(self) -> float:
        return float(self.centroid_correct.sum() / self.queries)

    def best(self) -> tuple[int, float, str]:
        """(k, accuracy, "plain" or "weighted") of the best point on either curve; ties go to the
        smaller k, then to the plain vote."""
        candidates = [(-float(a), k, 0, "plain") for k, a in zip(self.ks, self.plain, strict=True)]
        candidates += [(-float(a), k, 1, "weighted") for k, a in zip(self.ks, self.weighted, strict=True)]
        acc, k, _, how = min(candidates)
        return int(k), -acc, how

    def per_class(self, k: int) -> dict[str, list]:
        """Accuracy per class at ``k`` (plain, weighted) and of the centroid baseline, with each class's
        number of queries: ``{"class", "queries", "plain", "weighted", "centroid"}`` columns."""
        k = _check_k(k, self.k_max, "computed (k_max)")
        sizes = np.asarray(self.class_counts, dtype=np.float64)
        keep = sizes > 0

        def share(correct):
            return [round(float(v), 4) for v in (np.asarray(correct)[keep] / sizes[keep])]

        return {
            "class": [c for c, kept in zip(self.classes, keep, strict=True) if kept],
            "queries": [int(s) for s in sizes[keep]],
            "plain": share(self.plain_correct[k - 1]),
            "weighted": share(self.weighted_correct[k - 1]),
            "centroid": share(self.centroid_correct),
        }

    def lines(self) -> list[str]:
        """The CLI's report; the last line is ``knn_accuracy@<best k>=<float>``."""
        how = "leave-one-out" if self.leave_one_out else "queries from another split"
        out = [f"k-NN accuracy ({how}, {self.queries:,} queries, {len(self.classes)} classes)"]
        out.append(f"{'k':>3}  {'plain':>7}  {'weighted':>8}")
        out += [
            f"{k:>3}  {p:7.4f}  {w:8.4f}" for k, p, w in zip(self.ks, self.plain, self.weighted, strict=True)
        ]
        out.append(f"nearest class centroid: {self.centroid:.4f}")
        k, acc, how = self.best()
        out.append(f"best: k={k} ({how} vote) accuracy {acc:.4f}; per class at k={k}:")
        table = self.per_class(k)
        out.append(f"{'class':>14}  {'queries':>7}  {'plain':>7}  {'weighted':>8}  {'centroid':>8}")
        for row in zip(*table.values(), strict=True):
            name, n, p, w, c = row
            out.append(f"{name:>14}  {n:>7}  {p:7.4f}  {w:8.4f}  {c:8.4f}")
        out.append(f"knn_accuracy@{k}={acc:.4f}")
        return out

    def to_json(self) -> dict:
        return {
            "k_max": self.k_max,
            "classes": self.classes,
            "queries": self.queries,
            "leave_one_out": self.leave_one_out,
            "class_counts": self.class_counts,
            "plain_correct": self.plain_correct.tolist(),
            "weighted_correct": self.weighted_correct.tolist(),
            "centroid_correct": self.centroid_correct.tolist(),
        }

    @classmethod
    def from_json(cls, data: dict) -> KnnCurve:
        """Read back :meth:`to_json`; raises ``ValueError``/``KeyError``/``TypeError`` on a bad shape."""
        k_max, classes = int(data["k_max"]), [str(c) for c in data["classes"]]
        shape = (k_max, len(classes))
        arrays = [np.asarray(data[name], dtype=np.int64) for name in ("plain_correct", "weighted_correct")]
        centroid = np.asarray(data["centroid_correct"], dtype=np.int64)
        counts = [int(c) for c in data["class_counts"]]
        if (
            any(a.shape != shape for a in arrays)
            or centroid.shape != (len(classes),)
            or len(counts) != len(classes)
        ):
            raise ValueError("k-NN result has the wrong shape")
        return cls(
            k_max, classes, int(data["queries"]), bool(data["leave_one_out"]), counts, *arrays, centroid
        )


def score_votes(
    plain, weighted, centroid, true_labels, n_classes: int, classes, leave_one_out: bool
) -> KnnCurve:
    """Count correct predictions per k and class: ``plain``/``weighted`` (n, K), ``centroid`` (n,)."""
    truth = np.asarray(true_labels, dtype=np.int64)
    k_max = plain.shape[1]

    def per_class(hits: np.ndarray) -> np.ndarray:  # hits (n, K) bool -> (K, C)
        out = np.zeros((hits.shape[1], n_classes), dtype=np.int64)
        for c in range(n_classes):
            out[:, c] = hits[truth == c].sum(axis=0)
        return out

    return KnnCurve(
        k_max,
        list(classes),
        int(len(truth)),
        leave_one_out,
        np.bincount(truth, minlength=n_classes).tolist(),
        per_class(plain == truth[:, None]),
        per_class(weighted == truth[:, None]),
        per_class((np.asarray(centroid) == truth)[:, None])[0],
    )


def compute_knn_curve(
    index, k_max: int = DEFAULT_K_MAX, queries=None, progress: Progress | None = None
) -> KnnCurve:
    """k-NN accuracy for every k in 1..``k_max`` from one neighbour search (no disk cache): leave-one-out
    over ``index``, or ``queries`` (a labelled index over the same classes) searching ``index``."""
    _check_curve_args(index, k_max, queries)
    source = index if queries is None else queries
    n = _count(source)
    n_classes = len(index.classes)
    index_labels = np.asarray(index.labels, dtype=np.int64)
    plain = np.empty((n, k_max), dtype=np.int64)
    weighted = np.empty((n, k_max), dtype=np.int64)
    if progress:
        progress(0, n)
    for start in range(0, n, QUERY_BATCH):
        ids = np.arange(start, min(n, start + QUERY_BATCH))
        if queries is None:
            found, scores = index.neighbours(ids, k_max)
        else:
            found, scores = index.search(np.asarray(queries.embeddings)[ids], k_max)
        plain[ids], weighted[ids] = vote_curve(index_labels[found], scores, n_classes)
        if progress:
            progress(int(ids[-1]) + 1, n)
    centroid = centroid_predictions(index, queries)
    return score_votes(plain, weighted, centroid, source.labels, n_classes, index.classes, queries is None)


def _check_curve_args(index, k_max, queries) -> None:
    _require_labels(index)
    if queries is None:
        _check_k(k_max, _count(index) - 1, "other items in the index (leave-one-out)")
        return
    if getattr(queries, "labels", None) is None:
        raise InvalidInputError("the query collection has no class labels")
    if list(queries.classes) != list(index.classes):
        raise InvalidInputError(f"class names differ: {list(queries.classes)} vs {list(index.classes)}")
    if np.asarray(queries.embeddings).shape[1] != np.asarray(index.embeddings).shape[1]:
        raise InvalidInputError("the query and index vectors have different dimensions (another model?)")
    _check_k(k_max, _count(index), "items in the index")


# ---------------------------------------------------------------------------- saved beside the index


def _content_sha256(index) -> str:
    """The embeddings' sha256: the index's own (from its manifest) when it has one, else hashed."""
    known = getattr(index, "embeddings_sha256", None)
    if isinstance(known, str) and known:
        return known
    return hashlib.sha256(np.ascontiguousarray(index.embeddings).tobytes()).hexdigest()


def _identity(index) -> list:
    labels = np.ascontiguousarray(np.asarray(index.labels, dtype=np.int64))
    return [_content_sha256(index), hashlib.sha256(labels.tobytes()).hexdigest(), list(index.classes)]


def knn_key(index, k_max: int, queries=None) -> str:
    """The fingerprint of a k-NN result: both indexes' embeddings, labels and classes, and ``k_max``."""
    return fingerprint(FORMAT, _identity(index), None if queries is None else _identity(queries), int(k_max))


def knn_path(index, k_max: int = DEFAULT_K_MAX, queries=None) -> Path:
    """Where the k-NN result for these settings is saved: beside ``index``."""
    return Path(index.path) / f"knn-{knn_key(index, k_max, queries)}.json"


def saved_knn_curve(index, k_max: int = DEFAULT_K_MAX, queries=None) -> KnnCurve | None:
    """The result saved for these settings, or None when there is none (or it is unreadable or was
    made for other contents: the key inside the file is checked too)."""
    _check_curve_args(index, k_max, queries)
    path = knn_path(index, k_max, queries)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("key") != knn_key(index, k_max, queries):
            return None
        curve = KnnCurve.from_json(data["result"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return curve if curve.k_max == k_max and curve.classes == list(index.classes) else None


def knn_curve(index, k_max: int = DEFAULT_K_MAX, queries=None, progress: Progress | None = None) -> KnnCurve:
    """:func:`compute_knn_curve`, computed once and saved beside the index (atomic JSON); later calls
    read it back. A folder that cannot be written raises the ``OSError`` (nothing half-written is left)."""
    found = saved_knn_curve(index, k_max, queries)
    if found is not None:
        return found
    curve = compute_knn_curve(index, k_max, queries, progress)
    write_json_atomic(
        knn_path(index, k_max, queries), {"key": knn_key(index, k_max, queries), "result": curve.to_json()}
    )
    return curve
