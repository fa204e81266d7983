"""A fine-tuning run's files: resumable checkpoints and the finished backbone.

A checkpoint (``ckpt-<step>.safetensors``) holds the backbone's and classifier's weights and the
optimiser's momentum buffers (no pickle); ``state.json`` names the latest one and its sha256. The
finished run is ``weights.safetensors`` (the backbone only) with ``model.json``.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from .. import __version__
from ..core.files import atomic_path, write_json_atomic
from ..core.fingerprint import sha256_file

log = logging.getLogger(__name__)


def save_checkpoint(folder: Path, step: int, backbone, classifier, optimizer, state: dict) -> None:
    """Write ``ckpt-<step>.safetensors`` and ``state.json`` atomically; keep only the latest checkpoint."""
    from safetensors.torch import save_file

    tensors = {f"backbone.{k}": v.detach().cpu().contiguous() for k, v in backbone.state_dict().items()}
    tensors.update(
        {f"classifier.{k}": v.detach().cpu().contiguous() for k, v in classifier.state_dict().items()}
    )
    names = _param_names(backbone, classifier)
    for group in optimizer.param_groups:
        for p in group["params"]:
            buf = optimizer.state.get(p, {}).get("momentum_buffer")
            if buf is not None:
                tensors[f"momentum.{names[id(p)]}"] = buf.detach().cpu().contiguous()
    name = f"ckpt-{step:08d}.safetensors"
    with atomic_path(folder / name, suffix=".safetensors") as tmp:
        save_file(tensors, str(tmp))
    state = {**state, "step": step, "checkpoint": name, "checkpoint_sha256": sha256_file(folder / name)}
    write_json_atomic(folder / "state.json", state)
    for old in folder.glob("ckpt-*.safetensors"):  # only the latest is kept
        if old.name != name:
            old.unlink(missing_ok=True)


def _param_names(backbone, classifier) -> dict[int, str]:
    names = {id(p): f"backbone.{n}" for n, p in backbone.named_parameters()}
    names.update({id(p): f"classifier.{n}" for n, p in classifier.named_parameters()})
    return names


def read_state(folder: Path) -> dict | None:
    """The run's ``state.json``, or None when there is none or its checkpoint is missing or damaged."""
    try:
        state = json.loads((folder / "state.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable %s: %s", folder / "state.json", exc)
        return None
    path = folder / state.get("checkpoint", "")
    if not path.is_file() or sha256_file(path) != state.get("checkpoint_sha256"):
        log.warning("checkpoint in %s is missing or damaged; starting again", folder)
        return None
    return state


def load_checkpoint(folder: Path, state: dict, backbone, classifier, optimizer) -> None:
    """Load the checkpoint ``state`` names into the backbone, the classifier and the optimiser."""
    from safetensors.torch import load_file

    tensors = load_file(str(folder / state["checkpoint"]))
    backbone.load_state_dict({k[9:]: v for k, v in tensors.items() if k.startswith("backbone.")})
    classifier.load_state_dict({k[11:]: v for k, v in tensors.items() if k.startswith("classifier.")})
    names = _param_names(backbone, classifier)
    for group in optimizer.param_groups:
        for p in group["params"]:
            key = f"momentum.{names[id(p)]}"
            if key in tensors:
                optimizer.state[p]["momentum_buffer"] = tensors[key].to(p.device)


def clear_checkpoints(folder: Path) -> None:
    """Remove the checkpoints and ``state.json`` (once the finished model is saved)."""
    for old in folder.glob("ckpt-*.safetensors"):
        old.unlink(missing_ok=True)
    (folder / "state.json").unlink(missing_ok=True)


def save_final(folder: Path, backbone, info: dict) -> None:
    """Write ``weights.safetensors`` (the backbone) and ``model.json``: ``info`` plus the weights'
    sha256, the time and the package version."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous() for k, v in backbone.state_dict().items()}
    with atomic_path(folder / "weights.safetensors", suffix=".safetensors") as tmp:
        save_file(tensors, str(tmp))
    info = {
        **info,
        "weights_sha256": sha256_file(folder / "weights.safetensors"),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "package_version": __version__,
    }
    write_json_atomic(folder / "model.json", info)
