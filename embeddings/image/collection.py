"""The image collection: uint8 RGB images by integer id, optional labels, and a fingerprint.

Every source (:mod:`.sample`, :mod:`.cifar`, :mod:`.folders`) returns an
:class:`ImageCollection`; a big folder returns a :class:`LazyFolderCollection` that decodes
on demand with a small cache.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from ..errors import InvalidInputError
from .io import DECODE_SHORT_SIDE, load_image_file

log = logging.getLogger(__name__)

SOURCES = ("sample", "cifar10")  # named sources; anything else is a folder path


LAZY_CACHE_BYTES = 128 * 2**20


class ImageCollection:
    """A fixed, ordered set of RGB images with optional class labels.

    Attributes: ``name`` ("sample", "cifar10" or the folder's name), ``source`` (as given to
    :func:`open_collection`), ``split`` ("train"/"test", or "all" for a folder without splits),
    ``classes`` ([] when unlabelled), ``labels`` (int64 indices into ``classes``, or None),
    ``names`` (a short name per image, e.g. ``"cat/0042.jpg"``), ``skipped`` (files that
    could not be read and were left out) and ``warnings`` (messages about them).
    """

    def __init__(
        self,
        name: str,
        source: str,
        split: str,
        images: np.ndarray | list[np.ndarray] | None,
        fingerprint: str,
        classes: Sequence[str] | None = None,
        labels: np.ndarray | None = None,
        names: Sequence[str] | None = None,
        skipped: int = 0,
        warnings: Sequence[str] = (),
    ):
        self.name = name
        self.source = source
        self.split = split
        self._images = images
        self._fingerprint = fingerprint
        self.classes: list[str] = list(classes or [])
        self.labels: np.ndarray | None = None if labels is None else np.asarray(labels, dtype=np.int64)
        self.names: list[str] = (
            list(names) if names is not None else [f"{split}/{i:05d}" for i in range(len(self))]
        )
        self.skipped = int(skipped)
        self.warnings: list[str] = list(warnings)
        if self.labels is not None:
            if len(self.labels) != len(self):
                raise ValueError(f"{len(self.labels)} labels for {len(self)} images")
            if len(self.labels) and (self.labels.min() < 0 or self.labels.max() >= len(self.classes)):
                raise ValueError("labels must index into classes")

    def __len__(self) -> int:
        return len(self._images)

    def __repr__(self) -> str:
        return f"ImageCollection(name={self.name!r}, split={self.split!r}, count={len(self)})"

    @property
    def labelled(self) -> bool:
        return self.labels is not None

    def _check_ids(self, ids) -> np.ndarray:
        arr = np.asarray(ids)
        if arr.ndim == 0:
            arr = arr[None]
        if arr.size == 0:
            return np.zeros(0, dtype=np.int64)
        if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
            raise InvalidInputError(f"image ids must be integers, got {arr.dtype}")
        arr = arr.astype(np.int64).ravel()
        bad = arr[(arr < 0) | (arr >= len(self))]
        if bad.size:
            raise InvalidInputError(
                f"image id {int(bad[0])} is out of range: {self.name} ({self.split}) has {len(self)} images, "
                f"ids 0..{len(self) - 1}"
            )
        return arr

    def _fetch(self, ids: np.ndarray) -> np.ndarray | list[np.ndarray]:
        if isinstance(self._images, np.ndarray):
            return self._images[ids]
        return [self._images[i] for i in ids]

    def get_images(self, ids) -> np.ndarray | list[np.ndarray]:
        """Return the images with these ids, in order: uint8 H x W x 3 RGB.

        In-memory collections of equal-size images give one N x H x W x 3 array; others a list.
        Ids out of range raise :class:`InvalidInputError`.
        """
        return self._fetch(self._check_ids(ids))

    def get_image(self, i: int) -> np.ndarray:
        """Return image ``i`` (uint8 H x W x 3 RGB)."""
        if isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer)):
            raise InvalidInputError(f"an image id must be an integer, got {i!r}")
        return np.asarray(self._fetch(self._check_ids([i]))[0])

    def label_name(self, i: int) -> str | None:
        """Class name of image ``i``, or None when unlabelled."""
        if self.labels is None:
            return None
        return self.classes[int(self.labels[int(self._check_ids([i])[0])])]

    def image_nbytes(self, i: int) -> int:
        """Bytes image ``i`` takes decoded (what :func:`embeddings.index.store.embed_collection`
        budgets its chunks by)."""
        if isinstance(self._images, np.ndarray):
            return int(self._images[0].nbytes) if len(self._images) else 0
        return int(np.asarray(self._images[int(i)]).nbytes)

    def fingerprint(self) -> str:
        """A short hash that changes whenever the collection's contents change."""
        return self._fingerprint

    def describe(self) -> dict:
        """JSON-serialisable summary (stored in index manifests)."""
        return {
            "name": self.name,
            "source": self.source,
            "split": self.split,
            "count": len(self),
            "classes": list(self.classes),
            "fingerprint": self.fingerprint(),
        }


class LazyFolderCollection(ImageCollection):
    """A folder collection too big to hold in memory: images are decoded on demand.

    Decoded images stay in a small LRU cache (``LAZY_CACHE_BYTES``). A file that fails to
    decode later than its header check (truncated data) gives a grey placeholder of its size,
    is listed in ``failed_ids`` and logged.
    """

    def __init__(self, paths: list[str], sizes: list[tuple[int, int]], max_pixels: int | None, **kwargs):
        self._paths = paths
        self._sizes = sizes
        self._max_pixels = max_pixels
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cache_bytes = 0
        self._lock = threading.Lock()
        self.failed_ids: set[int] = set()
        super().__init__(images=None, **kwargs)

    def __len__(self) -> int:
        return len(self._paths)

    def _load_one(self, i: int) -> np.ndarray:
        with self._lock:
            if i in self._cache:
                self._cache.move_to_end(i)
                return self._cache[i]
        try:
            img = load_image_file(self._paths[i], max_pixels=self._max_pixels, short_side=DECODE_SHORT_SIDE)
        except InvalidInputError as exc:
            width, height = self._sizes[i]
            log.warning("image %d (%s) could not be decoded: %s", i, self.names[i], exc)
            self.failed_ids.add(i)
            img = np.full((height, width, 3), 128, dtype=np.uint8)
        with self._lock:
            if img.nbytes <= LAZY_CACHE_BYTES:
                self._cache[i] = img
                self._cache_bytes += img.nbytes
                while self._cache_bytes > LAZY_CACHE_BYTES:
                    _, old = self._cache.popitem(last=False)
                    self._cache_bytes -= old.nbytes
        return img

    def _fetch(self, ids: np.ndarray) -> list[np.ndarray]:
        return [self._load_one(int(i)) for i in ids]

    def image_nbytes(self, i: int) -> int:
        """Bytes image ``i`` takes once decoded (from its header; large images are reduced on decode)."""
        width, height = self._sizes[int(i)]
        return width * height * 3
