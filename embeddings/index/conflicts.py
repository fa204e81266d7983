"""Where labels and the model disagree: label conflicts and near-duplicate pairs of an index.

* **Label conflicts**: items whose ``k`` nearest neighbours mostly carry another label (likely
  label errors, or genuinely ambiguous items). An item's *share* is the fraction of its ``k``
  neighbours (itself excluded) whose label differs from its own; ties are broken by the
  similarity-weighted share (cosines as weights), then by id. The majority other label is the
  most frequent label among the disagreeing neighbours.
* **Near-duplicate pairs**: pairs of items with cosine at least a threshold, within one index
  (each pair once, ``i < j``) or across two (every item of the query index against the other,
  e.g. CIFAR-10 test images that also appear in train). Candidates come from a top-``k`` FAISS
  search in batches (never an n x m matrix), kept down to a floor cosine, so any threshold at or
  above the floor is a filter, not a new search.

Both work on anything with the index interface of :class:`embeddings.index.store.ImageIndex`
(``embeddings``, ``labels``, ``classes``, ``neighbours``, ``search``, ``path``), are computed once
and saved beside the index (``.npz``, no pickle), keyed by the embeddings' sha256 (and the labels'
and the partner index's, where they decide the result) and the parameters, written atomically.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.files import atomic_path
from ..core.fingerprint import fingerprint
from ..errors import InvalidInputError

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
VERSION = 2
DEFAULT_K = 10
DEFAULT_MIN_SHARE = 0.5
# Measured on CIFAR-10 test vs train with efficientnet_lite0 (README "Measured quality"): every
# inspected pair at or above 0.90 was the same photo; below it look-alikes mix in.
DEFAULT_THRESHOLD = 0.90
DUPLICATE_FLOOR = 0.80  # candidates kept down to this cosine: the lowest threshold offered
DUPLICATE_CANDIDATES = 10  # at most this many partners per item are looked at
BATCH = 1024


# ---------------------------------------------------------------------------- shared helpers


def _labels_of(index, what: str) -> np.ndarray:
    if index.labels is None or not index.classes:
        raise InvalidInputError(f"{what} needs class labels; this collection has none")
    return np.asarray(index.labels, dtype=np.int64)


def _embeddings_sha(index) -> str:
    sha = getattr(index, "embeddings_sha256", None)
    if sha:
        return str(sha)
    return hashlib.sha256(np.ascontiguousarray(index.embeddings).tobytes()).hexdigest()


def _labels_sha(index) -> str:
    labels = np.ascontiguousarray(_labels_of(index, "finding label conflicts"))
    return hashlib.sha256(labels.tobytes() + "\x1f".join(index.classes).encode("utf-8")).hexdigest()


def _save(path: Path | None, **arrays) -> None:
    if path is None:
        return
    with atomic_path(path, suffix=".npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)


def _load(path: Path | None, names: tuple[str, ...]) -> dict | None:
    """The arrays saved at ``path``, or None when there is none or it is unreadable."""
    if path is None or not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in names}
    except (OSError, ValueError, KeyError) as exc:
        log.warning("ignoring an unreadable saved result %s: %s", path, exc)
        return None


def _folder(index) -> Path | None:
    path = getattr(index, "path", None)
    return Path(path) if path is not None else None


def _per_class(labels: np.ndarray, classes: list[str]) -> dict[str, int]:
    counts = np.bincount(labels, minlength=len(classes)) if len(labels) else np.zeros(len(classes), int)
    return {name: int(counts[c]) for c, name in enumerate(classes)}


# ---------------------------------------------------------------------------- label conflicts


@dataclass
class NeighbourDisagreement:
    """For every item of an index: how many of its ``k`` neighbours carry another label."""

    k: int
    classes: list[str]
    labels: np.ndarray  # (n,) each item's label
    share: np.ndarray  # (n,) share of the k neighbours with another label
    weighted: np.ndarray  # (n,) the same, each neighbour weighted by its cosine
    majority: np.ndarray  # (n,) the most frequent other label among them (-1: none)
    majority_share: np.ndarray  # (n,) share of the k neighbours carrying that label
    other_cosine: np.ndarray  # (n,) mean cosine of the neighbours with another label (0: none)
    seconds: float = 0.0  # how long computing it took (0 when loaded from disk)

    def conflicts(self, min_share: float = DEFAULT_MIN_SHARE) -> LabelConflicts:
        """The items whose share is at least ``min_share``, ranked (:class:`LabelConflicts`)."""
        if not 0.0 < float(min_share) <= 1.0:
            raise InvalidInputError(f"min share must be in (0, 1], got {min_share!r}")
        # a share is a multiple of 1/k: compare with a tolerance so 0.5 means 5 of 10
        ids = np.flatnonzero(self.share >= float(min_share) - 1e-9)
        # strongest first: share, then weighted share; then (often among all-disagreeing items) how many
        # neighbours agree on one other label, how close they are, and the id
        keys = (
            ids,
            -self.other_cosine[ids],
            -self.majority_share[ids],
            -self.weighted[ids],
            -self.share[ids],
        )
        order = np.lexsort(keys)
        return LabelConflicts(self, float(min_share), ids[order])


@dataclass
class LabelConflicts:
    """The ranked label conflicts of an index: strongest disagreement first."""

    scores: NeighbourDisagreement
    min_share: float
    ids: np.ndarray  # ranked item ids

    def __len__(self) -> int:
        return int(len(self.ids))

    @property
    def per_class(self) -> dict[str, int]:
        """How many conflicts each class (the item's own label) has."""
        return _per_class(self.scores.labels[self.ids], self.scores.classes)

    def rows(self, top: int | None = None) -> list[dict]:
        """One dict per conflict (id, label, majority other label, share, weighted, majority share)."""
        s, names = self.scores, self.scores.classes
        out = []
        for i in self.ids[:top] if top is not None else self.ids:
            i = int(i)
            out.append(
                {
                    "id": i,
                    "label": names[s.labels[i]],
                    "neighbours_say": names[s.majority[i]] if s.majority[i] >= 0 else "",
                    "share": float(s.share[i]),
                    "weighted": float(s.weighted[i]),
                    "majority_share": float(s.majority_share[i]),
                }
            )
        return out

    def lines(self, top: int = 20) -> list[str]:
        """The ranked list (share of other-label neighbours, weighted by cosine, share agreeing on the
        majority other label), the per-class counts, and last ``label_conflicts=<int> items=<int> k=<int>``."""
        k = self.scores.k
        out = [
            f"{'rank':>4}  {'id':>6}  {'label':<12} {'neighbours say':<14} {'share':>5}  {'weighted':>8}  agree"
        ]
        for rank, row in enumerate(self.rows(top), start=1):
            out.append(
                f"{rank:>4}  {row['id']:>6}  {row['label']:<12} {row['neighbours_say']:<14} "
                f"{row['share']:5.2f}  {row['weighted']:8.3f}  {row['majority_share']:5.2f}"
            )
        out.append(f"per class (items whose {k} neighbours are at least {self.min_share:.0%} another label):")
        out += [f"{name:>12s}  {count}" for name, count in self.per_class.items()]
        out.append(f"label_conflicts={len(self)} items={len(self.scores.labels)} k={k}")
        return out


def conflicts_key(index, k: int) -> str:
    """The fingerprint of ``index``'s label conflicts for ``k``: its embeddings, labels, k, version."""
    return fingerprint(_embeddings_sha(index), _labels_sha(index), k, "conflicts", VERSION)


def _conflicts_path(index, k: int) -> Path | None:
    folder = _folder(index)
    return None if folder is None else folder / f"conflicts-k{k}-{conflicts_key(index, k)}.npz"


CONFLICT_ARRAYS = ("share", "weighted", "majority", "majority_share", "other_cosine")


def saved_disagreement(index, k: int = DEFAULT_K) -> NeighbourDisagreement | None:
    """The neighbour disagreement saved beside ``index`` for ``k``, or None when there is none."""
    labels = _labels_of(index, "finding label conflicts")
    _check_k(index, k)
    found = _load(_conflicts_path(index, k), CONFLICT_ARRAYS)
    if found is None or any(found[name].shape != labels.shape for name in CONFLICT_ARRAYS):
        return None
    return NeighbourDisagreement(k, list(index.classes), labels, **found)


def _check_k(index, k) -> int:
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise InvalidInputError(f"k must be a positive integer, got {k!r}")
    if k > index.count - 1:
        raise InvalidInputError(f"k={k} needs more than the {index.count} items of this collection")
    return int(k)


def disagreement_from_neighbours(
    labels: np.ndarray, found: np.ndarray, scores: np.ndarray, n_classes: int
) -> dict[str, np.ndarray]:
    """The arrays of :class:`NeighbourDisagreement` (share, weighted share, majority other label, its
    share, mean cosine of the other-label neighbours) for neighbour ids ``found`` (n, k) with cosines
    ``scores`` (n, k) of items labelled ``labels`` (pure numpy)."""
    labels = np.asarray(labels, dtype=np.int64)
    found = np.asarray(found, dtype=np.int64)
    n, k = found.shape
    theirs = labels[found]
    other = theirs != labels[:, None]
    share = other.mean(axis=1)
    weights = np.clip(np.asarray(scores, dtype=np.float64), 0.0, None)
    total = weights.sum(axis=1)
    weighted = np.divide((weights * other).sum(axis=1), total, out=share.copy(), where=total > 0)
    counts = np.zeros((n, n_classes), dtype=np.int64)
    rows = np.repeat(np.arange(n), k)
    np.add.at(counts, (rows[other.ravel()], theirs.ravel()[other.ravel()]), 1)
    majority = np.where(counts.max(axis=1) > 0, counts.argmax(axis=1), -1)  # ties: the lower label
    majority_share = counts.max(axis=1) / k
    n_other = other.sum(axis=1)
    summed = (np.asarray(scores, dtype=np.float64) * other).sum(axis=1)
    other_cosine = np.divide(summed, n_other, out=np.zeros(n), where=n_other > 0)
    return {
        "share": share,
        "weighted": weighted,
        "majority": majority,
        "majority_share": majority_share,
        "other_cosine": other_cosine,
    }


def label_disagreement(index, k: int = DEFAULT_K, progress: Progress | None = None) -> NeighbourDisagreement:
    """Every item's neighbour disagreement for ``k`` (default 10): loaded from beside the index,
    or computed (exact neighbours in batches, ``progress(done, total)``) and saved there."""
    found = saved_disagreement(index, k)
    if found is not None:
        return found
    labels = _labels_of(index, "finding label conflicts")
    started = time.perf_counter()
    n = index.count
    ids = np.empty((n, k), dtype=np.int64)
    scores = np.empty((n, k), dtype=np.float32)
    for start in range(0, n, BATCH):
        batch = np.arange(start, min(n, start + BATCH))
        ids[batch], scores[batch] = index.neighbours(batch, k)
        if progress:
            progress(int(batch[-1]) + 1, n)
    arrays = disagreement_from_neighbours(labels, ids, scores, len(index.classes))
    _save(_conflicts_path(index, k), **arrays)
    seconds = time.perf_counter() - started
    log.info("label conflicts of %d items (k=%d) in %.1fs", n, k, seconds)
    return NeighbourDisagreement(k, list(index.classes), labels, seconds=seconds, **arrays)


def find_label_conflicts(
    index, k: int = DEFAULT_K, min_share: float = DEFAULT_MIN_SHARE, progress: Progress | None = None
) -> LabelConflicts:
    """The items of ``index`` whose ``k`` nearest neighbours are at least ``min_share`` another label,
    ranked by that share, then the similarity-weighted share (computed once, saved beside the index)."""
    return label_disagreement(index, k, progress).conflicts(min_share)


# ---------------------------------------------------------------------------- near-duplicates


@dataclass
class DuplicateCandidates:
    """Every pair of an index (or of two) with cosine at least ``floor`` among each item's
    ``per_item`` nearest partners, most similar first; :meth:`at` filters them to a threshold."""

    floor: float
    per_item: int
    first: np.ndarray  # ids in the query index
    second: np.ndarray  # ids in the other index (the same one within a split)
    cosine: np.ndarray
    cross: bool
    last: np.ndarray  # (n,) each query item's per_item-th partner's cosine (at a threshold: more may exist)
    seconds: float = 0.0

    def at(self, threshold: float) -> DuplicatePairs:
        """The pairs with cosine at least ``threshold`` (which must be at or above the floor)."""
        threshold = float(threshold)
        if not self.floor - 1e-9 <= threshold <= 1.0:
            raise InvalidInputError(
                f"the threshold must be between {self.floor:.2f} and 1, got {threshold!r} "
                f"(pairs were searched down to cosine {self.floor:.2f})"
            )
        keep = self.cosine >= threshold
        return DuplicatePairs(self, threshold, self.first[keep], self.second[keep], self.cosine[keep])


@dataclass
class DuplicatePairs:
    """Near-duplicate pairs at one threshold, most similar first."""

    candidates: DuplicateCandidates
    threshold: float
    first: np.ndarray
    second: np.ndarray
    cosine: np.ndarray

    def __len__(self) -> int:
        return int(len(self.first))

    @property
    def cross(self) -> bool:
        return self.candidates.cross

    @property
    def capped(self) -> int:
        """Query items whose every looked-at partner passed the threshold (more may exist)."""
        return int((self.candidates.last >= self.threshold).sum())

    def items(self) -> np.ndarray:
        """The query index's items in at least one pair (within a split: either side of a pair)."""
        if self.cross:
            return np.unique(self.first)
        return np.unique(np.concatenate([self.first, self.second]))

    def per_class(self, labels, classes: list[str]) -> dict[str, int]:
        """How many of :meth:`items` each class has (``labels`` of the query index)."""
        return _per_class(np.asarray(labels, dtype=np.int64)[self.items()], classes)

    def mixed(self, labels, other_labels=None) -> int:
        """Pairs whose two items carry different labels (a duplicate labelled twice differently)."""
        other_labels = labels if other_labels is None else other_labels
        return int((np.asarray(labels)[self.first] != np.asarray(other_labels)[self.second]).sum())

    def lines(
        self,
        labels=None,
        other_labels=None,
        classes: list[str] | None = None,
        top: int = 20,
        names=("a", "b"),
    ) -> list[str]:
        """The pairs (most similar first), per-class counts of the items in a pair, and last
        ``duplicates=<int> items=<int> threshold=<float>``."""

        def name(lab, i: int) -> str:
            return classes[int(lab[i])] if lab is not None and classes else "-"

        other_labels = labels if other_labels is None else other_labels
        out = [f"{'rank':>4}  {names[0] + ' id':>7}  {names[1] + ' id':>7}  {'cosine':>6}  labels"]
        for rank, (a, b, c) in enumerate(
            zip(self.first[:top], self.second[:top], self.cosine[:top], strict=True), start=1
        ):
            out.append(
                f"{rank:>4}  {int(a):>7}  {int(b):>7}  {c:6.3f}  {name(labels, a)} / {name(other_labels, b)}"
            )
        items = self.items()
        if labels is not None and classes:
            which = (
                f"{names[0]} items with a near-duplicate in {names[1]}" if self.cross else "items in a pair"
            )
            out.append(f"per class ({which}):")
            out += [f"{cls:>12s}  {count}" for cls, count in self.per_class(labels, classes).items()]
            out.append(f"pairs whose two labels differ: {self.mixed(labels, other_labels)}")
        if self.capped:
            out.append(
                f"note: {self.capped} items have {self.candidates.per_item} or more partners at this "
                "threshold; only their closest are listed"
            )
        out.append(f"duplicates={len(self)} items={len(items)} threshold={self.threshold:.3f}")
        return out


def duplicates_key(
    index, other=None, floor: float = DUPLICATE_FLOOR, per_item: int = DUPLICATE_CANDIDATES
) -> str:
    """The fingerprint of the near-duplicate candidates of ``index`` (against ``other``, or within it)."""
    partner = "" if other is None else _embeddings_sha(other)
    return fingerprint(_embeddings_sha(index), partner, float(floor), int(per_item), "duplicates", VERSION)


def _duplicates_path(index, other, floor: float, per_item: int) -> Path | None:
    folder = _folder(index)
    if folder is None:
        return None
    scope = "cross" if other is not None else "within"
    return folder / f"duplicates-{scope}-{duplicates_key(index, other, floor, per_item)}.npz"


DUPLICATE_ARRAYS = ("first", "second", "cosine", "last")


def _check_duplicate_args(index, other, floor: float, per_item: int) -> tuple[float, int]:
    if not 0.0 < float(floor) <= 1.0:
        raise InvalidInputError(f"the floor cosine must be in (0, 1], got {floor!r}")
    if not isinstance(per_item, (int, np.integer)) or isinstance(per_item, bool) or per_item < 1:
        raise InvalidInputError(f"partners per item must be a positive integer, got {per_item!r}")
    if other is not None and other.dim != index.dim:
        raise InvalidInputError(f"the two indexes differ in dimension ({index.dim} vs {other.dim})")
    available = other.count if other is not None else index.count - 1
    if available < 1:
        raise InvalidInputError("near-duplicates need at least two items")
    return float(floor), int(min(per_item, available))


def saved_duplicates(
    index, other=None, floor: float = DUPLICATE_FLOOR, per_item: int = DUPLICATE_CANDIDATES
) -> DuplicateCandidates | None:
    """The candidates saved beside ``index`` (against ``other``, or within it), or None."""
    floor, per_item = _check_duplicate_args(index, other, floor, per_item)
    found = _load(_duplicates_path(index, other, floor, per_item), DUPLICATE_ARRAYS)
    if found is None:
        return None
    if found["last"].shape != (index.count,):
        return None
    return DuplicateCandidates(floor, per_item, cross=other is not None, **found)


def duplicate_candidates(
    index,
    other=None,
    floor: float = DUPLICATE_FLOOR,
    per_item: int = DUPLICATE_CANDIDATES,
    progress: Progress | None = None,
) -> DuplicateCandidates:
    """Pairs with cosine at least ``floor``: within ``index`` (each pair once), or each item of
    ``index`` against ``other``. Loaded from beside ``index``, or computed with a top-``per_item``
    FAISS search in batches (``progress(done, total)``) and saved there."""
    found = saved_duplicates(index, other, floor, per_item)
    if found is not None:
        return found
    floor, per_item = _check_duplicate_args(index, other, floor, per_item)
    started = time.perf_counter()
    n = index.count
    firsts, seconds, cosines = [], [], []
    last = np.empty(n, dtype=np.float32)
    for start in range(0, n, BATCH):
        batch = np.arange(start, min(n, start + BATCH))
        if other is None:
            ids, scores = index.neighbours(batch, per_item)
        else:
            ids, scores = other.search(index.embeddings[batch], per_item)
        last[batch] = scores[:, -1]
        keep = scores >= floor
        rows = np.broadcast_to(batch[:, None], ids.shape)
        firsts.append(rows[keep])
        seconds.append(ids[keep])
        cosines.append(scores[keep])
        if progress:
            progress(int(batch[-1]) + 1, n)
    first = np.concatenate(firsts).astype(np.int64) if firsts else np.zeros(0, np.int64)
    second = np.concatenate(seconds).astype(np.int64) if seconds else np.zeros(0, np.int64)
    cosine = np.concatenate(cosines).astype(np.float32) if cosines else np.zeros(0, np.float32)
    if other is None:  # i's partner j and j's partner i are one pair: keep it once, as (min, max)
        first, second = np.minimum(first, second), np.maximum(first, second)
        pairs, where = np.unique(np.stack([first, second], axis=1), axis=0, return_index=True)
        first, second, cosine = pairs[:, 0], pairs[:, 1], cosine[where]
    order = np.lexsort((second, first, -cosine))
    first, second, cosine = first[order], second[order], cosine[order]
    _save(
        _duplicates_path(index, other, floor, per_item),
        first=first,
        second=second,
        cosine=cosine,
        last=last,
    )
    took = time.perf_counter() - started
    log.info("near-duplicate candidates of %d items (%s) in %.1fs", n, "cross" if other else "within", took)
    return DuplicateCandidates(floor, per_item, first, second, cosine, other is not None, last, took)


def find_duplicates(
    index, other=None, threshold: float = DEFAULT_THRESHOLD, progress: Progress | None = None
) -> DuplicatePairs:
    """Near-duplicate pairs with cosine at least ``threshold`` within ``index`` or against ``other``."""
    floor = min(DUPLICATE_FLOOR, float(threshold)) if 0.0 < float(threshold) <= 1.0 else DUPLICATE_FLOOR
    return duplicate_candidates(index, other, floor, DUPLICATE_CANDIDATES, progress).at(threshold)
