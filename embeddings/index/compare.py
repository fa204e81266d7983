"""Before/after comparisons for the image page: neighbours and per-class precision per variant.

A *variant* is a way of finding neighbours in one collection split: the base model's index,
an adapted model's index derived from it (:mod:`embeddings.adapt`; same item ids, since it is
the same images in the same order) and an optional label-free re-ranking
(:mod:`embeddings.rerank`). Everything here is pure: indexes and arrays in, plain data out,
so the app can cache it and lay it out side by side.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.fingerprint import as_json
from ..errors import InvalidInputError


@dataclass
class Variant:
    """One column of the comparison: ``index`` searched, then re-ranked with ``rerank``."""

    name: str
    index: object
    rerank: str = "none"
    note: str = ""  # e.g. "head fitted on these labels: precision is optimistic"


@dataclass
class Neighbours:
    ids: np.ndarray  # (k,)
    scores: np.ndarray  # (k,) cosine in the variant's space
    labels: np.ndarray | None  # (k,) class ids, when the index has labels
    same_class: np.ndarray | None  # (k,) bool, when the query has a label


def base_variants(base_index, base_embedder, data_dir=None, rerank_methods=("none",)) -> list[Variant]:
    """The base index plus every saved projection head for ``base_embedder`` (adapted indexes are
    derived from the base index's vectors, never re-embedded), each with ``rerank_methods``.

    A head fitted on this very index is kept but flagged in ``note`` (its leave-one-out precision
    would be scored on its own training labels).
    """
    from ..adapt.heads import AdaptedImageEmbedder, load_head
    from ..adapt.saved import saved_heads
    from ..image.base import same_math_fingerprint
    from .service import adapt_index

    want = same_math_fingerprint(as_json(base_embedder.fingerprint()))
    found = [(base_embedder.model_id, base_index, "")]
    for _model_id, folder, info in saved_heads(data_dir):
        if same_math_fingerprint(info.get("base_fingerprint") or {}) != want:
            continue
        head = load_head(folder)
        adapted = AdaptedImageEmbedder(base_embedder, head)
        note = ""
        own_sha = base_index.manifest.get("files", {}).get("embeddings.npy", {}).get("sha256")
        if info.get("training_embeddings_sha256") == own_sha:
            note = "head fitted on these labels: its precision here is optimistic"
        trained = info.get("training_collection", {})
        name = f"{head.method} head ({trained.get('name', '?')} {trained.get('split', '?')})"
        found.append((name, adapt_index(base_index, adapted, data_dir), note))
    variants = []
    for name, index, note in found:
        for method in rerank_methods:
            label = name if method == "none" else f"{name} + {method}"
            variants.append(Variant(label, index, method, note))
    return variants


def neighbours_side_by_side(variants: list[Variant], query_id: int, k: int = 10) -> dict[str, Neighbours]:
    """Top-``k`` neighbours of stored item ``query_id`` (itself excluded) under every variant."""
    from .rerank import rerank_neighbours

    if not variants:
        raise InvalidInputError("no variants to compare")
    counts = {v.index.count for v in variants}
    if len(counts) != 1:
        raise InvalidInputError("the variants index different collections")
    out = {}
    for v in variants:
        ids, scores = rerank_neighbours(v.index, [query_id], k, v.rerank)
        labels = None if v.index.labels is None else v.index.labels[ids[0]]
        same = None if labels is None else labels == v.index.labels[query_id]
        out[v.name] = Neighbours(ids[0], scores[0], labels, same)
    return out


def precision_by_variant(variants: list[Variant], k: int = 10, queries: dict | None = None) -> dict:
    """``{variant name: RetrievalResult}``: leave-one-out precision@k on each variant's index, or,
    with ``queries`` ({variant name: query index}), those queries against it."""
    from .rerank import evaluate_reranked

    return {
        v.name: evaluate_reranked(v.index, k, v.rerank, queries=(queries or {}).get(v.name)) for v in variants
    }


def per_class_table(results: dict) -> dict[str, list]:
    """Columns for a table: ``class``, then one precision column per variant, then an ``all`` row."""
    names = list(results)
    if not names:
        return {"class": []}
    classes = list(next(iter(results.values())).per_class)
    table: dict[str, list] = {"class": [*classes, "all"]}
    for name in names:
        r = results[name]
        table[name] = [r.per_class.get(c, float("nan")) for c in classes] + [r.precision]
    return table


def pair_cosines(index, query_id: int, ids) -> np.ndarray:
    """Cosine, in ``index``'s space, between stored item ``query_id`` and each of ``ids``.

    An adapted index has the same item ids as its base index, so this gives the base model's
    score for the neighbours an adapted model found (a softmax head's own cosines are all near 1).
    """
    vectors = np.asarray(index.embeddings)
    return vectors[np.asarray(ids, dtype=np.int64)] @ vectors[int(query_id)]
