"""The one index service: get or build the index of any image model, for the CLI and the app alike.

A plain model's index is embedded from the collection (:mod:`embeddings.index.store`). An
adapted model's index (a projection head on a base model) is derived from the base index's
stored vectors, building the base index first if needed, so no image is embedded again.
:func:`open_index` adds the lookups both front ends share: the collection by source and split,
the embedder by model id and precision.
"""

from __future__ import annotations

import logging

from ..adapt.heads import AdaptedImageEmbedder
from ..config import data_dir as resolve_data_dir
from ..core.fingerprint import as_json
from ..errors import CorruptIndexError, IndexNotBuiltError, InvalidInputError, StaleIndexError
from .shipped import SHIPPED_REASON, install_shipped_index
from .store import ImageIndex, IndexStatus, Progress, load_index, load_or_build, write_index

log = logging.getLogger(__name__)


class _IndexCollection:
    """What :mod:`embeddings.index` needs of a collection, read back from a base index's manifest."""

    def __init__(self, index):
        self._desc = dict(index.manifest["key"]["collection"])
        self.labels = index.labels
        self.classes = list(index.classes)
        self._count = index.count

    def __len__(self) -> int:
        return self._count

    def describe(self) -> dict:
        return {**self._desc, "classes": self.classes}


def adapt_index(base_index, adapted: AdaptedImageEmbedder, data_dir=None):
    """The index of ``adapted`` over the same images as ``base_index``, from its stored vectors.

    Loaded when already on disk; otherwise the head is applied to the base vectors and the result
    is written as an ordinary index (its manifest names the base index it came from). No image is
    decoded or embedded.
    """
    base_key = base_index.manifest.get("key", {})
    if base_key.get("model") != as_json(adapted.base.fingerprint()):
        raise InvalidInputError(f"index {base_index.path} was not built with {adapted.base.model_id}")
    collection = _IndexCollection(base_index)
    try:
        return load_index(collection, adapted, data_dir)
    except (IndexNotBuiltError, StaleIndexError, CorruptIndexError):
        pass
    vectors = adapted.head.apply(base_index.embeddings)
    derived = {"path": str(base_index.path), "embeddings_sha256": base_index.embeddings_sha256}
    return write_index(collection, adapted, vectors, data_dir, extra={"derived_from": derived})


def _plain_index(collection, embedder, data_dir, progress) -> tuple[ImageIndex, IndexStatus]:
    """A plain model's index: loaded, else written from shipped vectors made for exactly its key
    (:mod:`embeddings.index.shipped`), else embedded and built."""
    try:
        return load_index(collection, embedder, data_dir), IndexStatus("loaded")
    except IndexNotBuiltError:
        action = "built"
    except (StaleIndexError, CorruptIndexError) as exc:
        action = "rebuilt"
        log.warning("replacing index: %s", exc)
    index = install_shipped_index(collection, embedder, data_dir)
    if index is not None:
        return index, IndexStatus(action, SHIPPED_REASON)
    return load_or_build(collection, embedder, data_dir, progress)


def get_or_build_index(
    collection, embedder, data_dir=None, progress: Progress | None = None
) -> tuple[ImageIndex, IndexStatus]:
    """Load ``embedder``'s index of ``collection``, or build it when missing, stale or corrupt.

    For an adapted model the index is derived from the base model's index (built if needed)
    instead of re-embedding the images; a plain model's missing index is written from the vectors
    shipped with the package when they were made for exactly its key; the status says which
    happened and why.
    """
    data_dir = resolve_data_dir(data_dir)  # fixed once: the environment may change during a long build
    if not isinstance(embedder, AdaptedImageEmbedder):
        return _plain_index(collection, embedder, data_dir, progress)
    try:
        return load_index(collection, embedder, data_dir), IndexStatus("loaded")
    except (IndexNotBuiltError, StaleIndexError, CorruptIndexError):
        pass
    base_index, _ = _plain_index(collection, embedder.base, data_dir, progress)
    return adapt_index(base_index, embedder, data_dir), IndexStatus("built", "head applied to the base index")
