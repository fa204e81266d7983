"""The fast adaptation tier: a linear projection head on frozen image embeddings.

ImageNet features put CIFAR-10's cats and dogs, cars and trucks close together. A head fitted
on one labelled index (the *training index*, e.g. CIFAR-10's train split) maps those frozen
vectors into a space where classes separate, in seconds on a CPU and without re-embedding a
single image:

* ``lda``: linear discriminant analysis (within-class covariance shrunk towards a scaled
  identity), the ``n_classes - 1`` discriminant directions, whitened by the within-class
  covariance; cosine in that space.
* ``logreg``: a multinomial logistic-regression probe (L2-regularised, L-BFGS on standardised
  features); its class probabilities are the embedding (``output="softmax"``; the centred
  logits, ``output="logits"``, scored lower).

A head is saved in ``<data_dir>/heads/<base model>-<method>-<fingerprint>/`` as ``head.npz``
(arrays only) and ``head.json`` (what it was fitted on and the npz's sha256), both written
atomically; the fingerprint covers the base model's fingerprint, the sha256 of the training
index's ``embeddings.npy``, the method, its parameters and the package version. Test labels
are never used: only the training index's labels are.

:class:`AdaptedImageEmbedder` wraps the base embedder and the head (its fingerprint includes
the head's), so an adapted model indexes, searches and evaluates like any other; saved heads
are registered as image model ids ``<base>-<method>-<fp8>``. :func:`adapt_index` derives the
adapted index of any existing base index by applying the head to its stored vectors.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import __version__
from ..config import data_dir as resolve_data_dir
from ..core.files import atomic_path, write_json_atomic
from ..core.fingerprint import as_json, fingerprint, sha256_file, slug
from ..core.mathops import normalize
from ..errors import (
    InvalidInputError,
    ModelUnavailableError,
)
from ..image.base import ImageEmbedder
from .fitting import LDA_SHRINKAGE, LOGREG_L2, LOGREG_MAX_ITER, fit_lda, fit_logreg

log = logging.getLogger(__name__)

HEAD_METHODS = ("lda", "logreg")
# CIFAR-10 test queries against the train index, Lite0, precision@10: logreg 0.7815, lda 0.7430,
# no head 0.6701
DEFAULT_METHOD = "logreg"
HEADS_DIR = "heads"
HEAD_FORMAT = 1
LOGREG_OUTPUTS = ("softmax", "logits")
LOGREG_OUTPUT = "softmax"


# ----------------------------------------------------------------------------- the head


@dataclass
class ProjectionHead:
    """``z = (x - mean) @ weight + bias``, then per ``output``: ``linear`` (LDA) keeps z, ``logits``
    centres it over the classes, ``softmax`` turns it into class probabilities; then normalised."""

    method: str
    mean: np.ndarray  # (d_in,)
    weight: np.ndarray  # (d_in, d_out)
    bias: np.ndarray  # (d_out,)
    classes: list[str]
    fingerprint: str = ""
    meta: dict = field(default_factory=dict)
    output: str = "linear"

    @property
    def dim(self) -> int:
        return int(self.weight.shape[1])

    @property
    def input_dim(self) -> int:
        return int(self.weight.shape[0])

    def apply(self, vectors: np.ndarray, batch: int = 8192) -> np.ndarray:
        """Project (n, d_in) vectors into (n, d_out) float32 unit vectors."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.input_dim:
            raise InvalidInputError(
                f"the {self.method} head takes {self.input_dim}-d vectors, got shape {vectors.shape}"
            )
        out = np.empty((len(vectors), self.dim), dtype=np.float32)
        w, b, m = (a.astype(np.float32) for a in (self.weight, self.bias, self.mean))
        for start in range(0, len(vectors), batch):
            z = (vectors[start : start + batch] - m) @ w + b
            if self.output == "logits":  # softmax ignores a shift of all logits: drop it
                z -= z.mean(axis=1, keepdims=True)
            elif self.output == "softmax":
                z = np.exp(z - z.max(axis=1, keepdims=True))
                z /= z.sum(axis=1, keepdims=True)
            out[start : start + batch] = z
        return normalize(out)


def fit_head(
    vectors: np.ndarray, labels: np.ndarray, classes: list[str], method: str = DEFAULT_METHOD, **params
) -> ProjectionHead:
    """Fit a projection head on (n, d) vectors and their integer labels (no saving)."""
    if method not in HEAD_METHODS:
        raise InvalidInputError(f"unknown head method {method!r}; choose one of {', '.join(HEAD_METHODS)}")
    if labels is None:
        raise InvalidInputError("a projection head needs class labels; this index has none")
    vectors = np.asarray(vectors, dtype=np.float32)
    labels = np.asarray(labels, dtype=np.int64)
    n_classes = len(classes)
    if n_classes < 2:
        raise InvalidInputError("a projection head needs at least 2 classes")
    if len(vectors) != len(labels) or len(vectors) < n_classes:
        raise InvalidInputError(f"{len(vectors)} vectors and {len(labels)} labels: too few or mismatched")
    started = time.perf_counter()
    output = "linear"
    if method == "logreg":
        output = params.pop("output", LOGREG_OUTPUT)
        if output not in LOGREG_OUTPUTS:
            raise InvalidInputError(
                f"logreg output must be one of {', '.join(LOGREG_OUTPUTS)}, got {output!r}"
            )
    fit = fit_lda if method == "lda" else fit_logreg
    mean, weight, bias = fit(vectors, labels, n_classes, **params)
    if method == "logreg":
        params["output"] = output
    head = ProjectionHead(
        method,
        mean.astype(np.float32),
        weight.astype(np.float32),
        bias.astype(np.float32),
        list(classes),
        output=output,
    )
    head.meta = {
        "fit_seconds": round(time.perf_counter() - started, 2),
        "train_count": len(vectors),
        "params": _params(method, params),
    }
    if method == "logreg":
        logits = (vectors - head.mean) @ head.weight + head.bias
        head.meta["train_accuracy"] = round(float((logits.argmax(axis=1) == labels).mean()), 4)
    return head


def _params(method: str, overrides: dict) -> dict:
    defaults = (
        {"shrinkage": LDA_SHRINKAGE}
        if method == "lda"
        else {
            "l2": LOGREG_L2,
            "max_iter": LOGREG_MAX_ITER,
            "output": LOGREG_OUTPUT,
        }
    )
    return {**defaults, **overrides}


# ----------------------------------------------------------------------------- on disk


def heads_root(data_dir=None) -> Path:
    return resolve_data_dir(data_dir) / HEADS_DIR


def head_fingerprint(base_fingerprint: dict, embeddings_sha256: str, method: str, params: dict) -> str:
    """The head's identity: base model fingerprint + training embeddings' sha256 + method + version."""
    return fingerprint(as_json(base_fingerprint), embeddings_sha256, method, params, __version__, HEAD_FORMAT)


def head_dir(base_model_id: str, method: str, fp: str, data_dir=None) -> Path:
    return heads_root(data_dir) / f"{slug(base_model_id)}-{method}-{fp}"


def save_head(head: ProjectionHead, folder: Path) -> None:
    """Write ``head.npz`` then ``head.json`` (which names the npz's sha256), each atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / "head.npz", suffix=".npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, mean=head.mean, weight=head.weight, bias=head.bias)
    info = {
        "format": HEAD_FORMAT,
        "method": head.method,
        "output": head.output,
        "fingerprint": head.fingerprint,
        "classes": head.classes,
        "dim": head.dim,
        "input_dim": head.input_dim,
        "npz_sha256": sha256_file(folder / "head.npz"),
        **head.meta,
    }
    write_json_atomic(folder / "head.json", info)


def load_head(folder: str | os.PathLike) -> ProjectionHead:
    """Load a saved head, checking the npz against the sha256 in ``head.json`` (never unpickles)."""
    folder = Path(folder)
    try:
        info = json.loads((folder / "head.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelUnavailableError(f"no projection head at {folder}") from None
    except (OSError, ValueError) as exc:
        raise ModelUnavailableError(f"projection head {folder} is unreadable ({exc})") from exc
    npz = folder / "head.npz"
    if not npz.is_file() or sha256_file(npz) != info.get("npz_sha256"):
        raise ModelUnavailableError(f"projection head {folder} is damaged (head.npz missing or changed)")
    with np.load(npz, allow_pickle=False) as arrays:
        mean, weight, bias = (np.asarray(arrays[k], dtype=np.float32) for k in ("mean", "weight", "bias"))
    meta = {k: v for k, v in info.items() if k not in ("method", "fingerprint", "classes", "output")}
    return ProjectionHead(
        info["method"], mean, weight, bias, list(info["classes"]), info["fingerprint"], meta, info["output"]
    )


def get_or_fit_head(
    index, base: ImageEmbedder, method: str = DEFAULT_METHOD, data_dir=None, **params
) -> tuple[ProjectionHead, str]:
    """The head for (base model, training ``index``, method): loaded if saved, else fitted and saved.

    Returns (head, "loaded" or "fitted"). Only ``index``'s own labels are used.
    """
    if method not in HEAD_METHODS:
        raise InvalidInputError(f"unknown head method {method!r}; choose one of {', '.join(HEAD_METHODS)}")
    if index.labels is None:
        raise InvalidInputError("a projection head needs a labelled training index; this one has none")
    if index.manifest.get("key", {}).get("model") not in (None, as_json(base.fingerprint())):
        raise InvalidInputError(f"the training index at {index.path} was not built with {base.model_id}")
    data_dir = resolve_data_dir(data_dir)
    all_params = _params(method, params)
    fp = head_fingerprint(base.fingerprint(), index.embeddings_sha256, method, all_params)
    folder = head_dir(base.model_id, method, fp, data_dir)
    try:
        return load_head(folder), "loaded"
    except ModelUnavailableError:
        pass
    from filelock import FileLock

    folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder.parent / f"{folder.name}.lock")):
        try:
            return load_head(folder), "loaded"
        except ModelUnavailableError:
            pass
        head = fit_head(index.embeddings, index.labels, index.classes, method, **params)
        head.fingerprint = fp
        collection = index.manifest.get("key", {}).get("collection", {})
        head.meta.update(
            {
                "base_model": base.model_id,
                "base_fingerprint": as_json(base.fingerprint()),
                "training_index": str(index.path),
                "training_collection": collection,
                "training_embeddings_sha256": index.embeddings_sha256,
                "package_version": __version__,
                "fitted_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            }
        )
        save_head(head, folder)
    log.info("fitted %s head %s in %.1fs", method, fp, head.meta["fit_seconds"])
    return head, "fitted"


# ----------------------------------------------------------------------------- the adapted model


class AdaptedImageEmbedder(ImageEmbedder):
    """A base image embedder followed by a projection head: ``head.apply(base.embed(images))``."""

    def __init__(self, base: ImageEmbedder, head: ProjectionHead):
        if head.input_dim != base.dim:
            raise InvalidInputError(
                f"the head takes {head.input_dim}-d vectors; {base.model_id} gives {base.dim}"
            )
        self.base = base
        self.head = head
        self.model_id = adapted_model_id(base.model_id, head.method, head.fingerprint)
        self.dim = head.dim
        self.batch_size = base.batch_size
        self.preprocess = base.preprocess
        self.weights_id = base.weights_id
        self.precision = base.precision
        self.device = base.device
        trained_on = head.meta.get("training_collection", {})
        where = f" fitted on {trained_on.get('name')} {trained_on.get('split')}" if trained_on else ""
        self.description = f"{base.model_id} + {head.method} projection head{where} ({head.dim}-d)"

    def fingerprint(self) -> dict:
        return {
            **self.base.fingerprint(),
            "model_id": self.model_id,
            "head": {"method": self.head.method, "fingerprint": self.head.fingerprint, "dim": self.dim},
        }

    def set_precision(self, precision: str, lazy: bool = False) -> AdaptedImageEmbedder:
        self.base.set_precision(precision, lazy=lazy)
        self.precision = self.base.precision
        return self

    @property
    def runtime_fallback(self) -> str:
        """Why the base runs ``fast`` although ``onnx`` was asked for ("" otherwise)."""
        return self.base.runtime_fallback

    def embed_batch(self, batch):  # pragma: no cover - embed() is overridden
        raise NotImplementedError

    def embed(self, images, progress=None) -> np.ndarray:
        return self.head.apply(self.base.embed(images, progress=progress))

    def prepare_batch(self, images):
        return self.base.prepare_batch(images)

    def embed_prepared(self, batch) -> np.ndarray:
        return self.head.apply(self.base.embed_prepared(batch))


def adapted_model_id(base_model_id: str, method: str, fingerprint: str) -> str:
    """The image model id of a head: ``<base>-<method>-<first 8 characters of its fingerprint>``."""
    return f"{base_model_id}-{method}-{fingerprint[:8]}"


# ----------------------------------------------------------------------------- the registry


def load_adapted_embedder(base: ImageEmbedder, folder: str | os.PathLike) -> AdaptedImageEmbedder:
    """Rebuild the adapted model saved in a head folder on ``base`` (set to the head's precision)."""
    head = load_head(folder)
    base_fp = head.meta.get("base_fingerprint", {})
    if base_fp.get("precision"):
        base.set_precision(base_fp["precision"])
    return AdaptedImageEmbedder(base, head)
