"""The ``onnx`` precision: an image model exported once to ONNX and run on ONNX Runtime.

The torch module of an embedder (``embedder.model``, which must be what ``embed_batch`` runs) is
exported with the TorchScript-based ``torch.onnx.export`` (it works offline; the dynamo exporter
needs onnxscript) with a dynamic batch axis, into
``<data_dir>/runtime/<model_id>-<fingerprint>.onnx``, written atomically. The fingerprint covers
everything that changes the exported graph or how it runs: the model's id, weights id, a digest
of its parameters, preprocessing (input size), opset, exporter, and the torch and onnxruntime
versions; a second embedder of the same model loads the file instead of exporting again.

A model that cannot be exported (no ``model`` attribute, ``traceable = False``, not on the CPU,
onnxruntime or onnx missing, or the export raises) raises :class:`RuntimeUnavailable` with the
reason, and :class:`embeddings.image.base.ImageEmbedder` falls back to ``fast``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import warnings
from pathlib import Path

import numpy as np

from ..config import data_dir as resolve_data_dir
from ..core.files import atomic_path
from ..core.fingerprint import fingerprint, slug
from ..core.torchutil import require_torch

log = logging.getLogger(__name__)

RUNTIME_FOLDER = "runtime"
OPSET = 17
EXPORTER = "torchscript"
FORMAT_VERSION = 1
INPUT_NAME = "images"
OUTPUT_NAME = "features"


class RuntimeUnavailable(Exception):
    """This embedder cannot run on ONNX Runtime; the message says why."""


THREADS_ENV = "EMBEDDINGS_THREADS"  # a cap on inference threads (an engine worker given one CPU sets 1)


def cpu_threads() -> int:
    """The cores this process may run on (``sched_getaffinity``, else ``os.cpu_count``), at most
    ``$EMBEDDINGS_THREADS`` when that is set."""
    try:
        cores = max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        cores = max(1, os.cpu_count() or 1)
    cap = os.environ.get(THREADS_ENV, "")
    return min(cores, int(cap)) if cap.isdigit() and int(cap) > 0 else cores


def _onnxruntime():
    try:
        import onnxruntime
    except ImportError as exc:
        raise RuntimeUnavailable("onnxruntime is not installed (pip install onnxruntime==1.32.0)") from exc
    return onnxruntime


def exportable_reason(embedder) -> str:
    """Why ``embedder`` cannot be exported without trying ("" when it may be)."""
    model = getattr(embedder, "model", None)
    if model is None:
        return f"{embedder.model_id} has no torch module to export"
    if not getattr(embedder, "traceable", True):
        return f"{embedder.model_id} is not traceable (embed_batch is more than model(batch))"
    if str(getattr(embedder, "device", "cpu")) != "cpu":
        return f"{embedder.model_id} runs on {embedder.device}; ONNX Runtime here runs on the CPU"
    return ""


def weights_digest(model) -> str:
    """sha256 over the module's parameters and buffers (names, shapes, dtypes, bytes)."""
    torch = require_torch()
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        t = tensor.detach().cpu().contiguous().view(-1)
        digest.update(f"{name}:{tuple(tensor.shape)}:{t.dtype};".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def runtime_key(embedder) -> dict:
    """Everything that decides the exported file (its fingerprint is in the file name)."""
    torch = require_torch()
    ort = _onnxruntime()
    return {
        "format": FORMAT_VERSION,
        "model_id": embedder.model_id,
        "weights": embedder.weights_id,
        "weights_sha256": weights_digest(embedder.model),
        "module": type(embedder.model).__qualname__,
        "preprocess": embedder.preprocess.describe(),
        "opset": OPSET,
        "exporter": EXPORTER,
        "torch": torch.__version__,
        "onnxruntime": ort.__version__,
    }


def export_path(embedder, data_dir=None, key: dict | None = None) -> Path:
    """``<data_dir>/runtime/<model_id>-<fingerprint>.onnx`` for this embedder."""
    key = key if key is not None else runtime_key(embedder)
    name = f"{slug(embedder.model_id)}-{fingerprint(key)}.onnx"
    return resolve_data_dir(data_dir) / RUNTIME_FOLDER / name


def export_onnx(model, crop: int, path: Path) -> None:
    """Export ``model`` (NCHW float input of ``crop`` x ``crop``, dynamic batch) to ``path`` atomically."""
    torch = require_torch()
    example = torch.zeros(2, 3, crop, crop)
    with atomic_path(path) as tmp, torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
        torch.onnx.export(
            model,
            (example,),
            str(tmp),
            dynamo=False,
            opset_version=OPSET,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            do_constant_folding=True,
        )


class OnnxSession:
    """An ONNX Runtime session on the exported file; call it on an NCHW float32 batch."""

    def __init__(self, path: Path, threads: int | None = None):
        ort = _onnxruntime()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or cpu_threads()
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.path = Path(path)
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, batch) -> np.ndarray:
        array = batch.detach().cpu().numpy() if hasattr(batch, "detach") else batch
        array = np.ascontiguousarray(array, dtype=np.float32)
        return self.session.run(None, {self.input_name: array})[0]


def load_session(embedder, data_dir=None) -> OnnxSession:
    """The ONNX Runtime session for ``embedder``: the exported file if present, else export it first.

    Raises :class:`RuntimeUnavailable` (with the reason) when the model cannot be exported or run.
    """
    reason = exportable_reason(embedder)
    if reason:
        raise RuntimeUnavailable(reason)
    key = runtime_key(embedder)
    path = export_path(embedder, data_dir, key)
    if path.exists():
        try:
            return OnnxSession(path)
        except Exception as exc:  # a damaged file: export it again
            log.warning("re-exporting %s: ONNX Runtime could not load it (%s)", path.name, exc)
    try:
        export_onnx(embedder.model, int(embedder.preprocess.crop), path)
    except ImportError as exc:
        raise RuntimeUnavailable(f"exporting to ONNX needs the onnx package ({exc})") from exc
    except Exception as exc:
        raise RuntimeUnavailable(f"{embedder.model_id} could not be exported to ONNX: {exc}") from exc
    log.info("exported %s to %s", embedder.model_id, path)
    try:
        return OnnxSession(path)
    except Exception as exc:
        raise RuntimeUnavailable(
            f"ONNX Runtime could not load the export of {embedder.model_id}: {exc}"
        ) from exc
