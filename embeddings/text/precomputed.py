"""Vectors shipped with the package for known texts, so a first use needs no model.

``embeddings/data/precomputed/<model id>.npz`` holds ``texts`` (a unicode array), ``vectors``
(float32 unit rows, one per text) and ``fingerprint`` (the model's fingerprint when they were
made, by ``scripts/make_precomputed.py``). :meth:`embeddings.text.base.TextEmbedder.embed`
takes the rows of the texts it knows and embeds only the rest. A table whose fingerprint is not
the model's current one is ignored: a miss beats a wrong hit.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np

from ..config import PACKAGE_DATA
from ..core.files import read_memoised
from ..core.fingerprint import slug

log = logging.getLogger(__name__)

PRECOMPUTED_DIR = PACKAGE_DATA / "precomputed"


@dataclass(frozen=True)
class PrecomputedVectors:
    """A model's vectors for a fixed list of texts."""

    fingerprint: str
    rows: dict[str, int]
    vectors: np.ndarray  # (n, dim) float32, read-only

    def lookup(self, texts: list[str]) -> list[int | None]:
        """The row of each text, or None for texts the table does not have."""
        return [self.rows.get(t) for t in texts]


def table_path(model_id: str) -> os.PathLike:
    """Where ``model_id``'s shipped table is (whether or not it exists)."""
    return PRECOMPUTED_DIR / f"{slug(model_id)}.npz"


def _read(path) -> PrecomputedVectors | None:
    try:
        with np.load(path, allow_pickle=False) as data:
            texts, vectors, fp = list(data["texts"]), data["vectors"], str(data["fingerprint"])
    except (OSError, ValueError, KeyError) as exc:
        log.warning("ignoring the precomputed vectors %s: %s", path, exc)
        return None
    if vectors.ndim != 2 or len(vectors) != len(texts) or vectors.dtype != np.float32:
        log.warning("ignoring the precomputed vectors %s: %s for %d texts", path, vectors.shape, len(texts))
        return None
    if not np.isfinite(vectors).all():
        log.warning("ignoring the precomputed vectors %s: not finite", path)
        return None
    vectors.flags.writeable = False
    return PrecomputedVectors(fp, {t: i for i, t in reversed(list(enumerate(texts)))}, vectors)


def precomputed_for(embedder) -> PrecomputedVectors | None:
    """The shipped table of ``embedder`` if there is one made with its current fingerprint."""
    table = read_memoised(table_path(embedder.model_id), _read)
    if table is None or table.vectors.shape[1] != embedder.dim:
        return None
    if table.fingerprint != embedder.fingerprint():
        log.info("precomputed vectors for %s were made by another version of it; not used", embedder.model_id)
        return None
    return table
