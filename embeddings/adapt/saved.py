"""Saved adapted models, found on disk: projection heads (``<data_dir>/heads/*/head.json``, plus
the heads bundled in ``embeddings/data/heads/``) and finished fine-tuning runs
(``<data_dir>/finetune/*/model.json``).

:func:`discover` lists them as :class:`SavedModel` records; :mod:`embeddings.registry` turns
those into model ids once per data folder (and again only when told, or when
:func:`listing_stamp` changes), so looking a model up never reads the disk.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..config import PACKAGE_DATA
from ..config import data_dir as resolve_data_dir
from ..errors import ModelUnavailableError
from .heads import HEADS_DIR, adapted_model_id, heads_root

FT_DIR = "finetune"
# Heads shipped with the package, so the offline default can show an honest before/after: the
# logistic-regression head of EfficientNet-Lite0 ("fast"), fitted on CIFAR-10's 50,000 train images
# only (the bundled sample is 2,000 *test* images). Reproduce it with
# `python -m embeddings fit-head --data ../shared/datasets/cifar10 --model efficientnet_lite0`.
BUNDLED_HEADS = PACKAGE_DATA / "heads"


@dataclass(frozen=True)
class SavedModel:
    """One saved adapted model: its id, kind (``"head"`` or ``"finetuned"``), base model, folder
    and the JSON it was saved with."""

    model_id: str
    kind: str
    base_model: str
    folder: Path
    info: dict = field(compare=False, hash=False)


def finetune_root(data_dir=None) -> Path:
    """``<data_dir>/finetune``: where fine-tuning runs live."""
    return resolve_data_dir(data_dir) / FT_DIR


def _heads_in(root: Path) -> list[tuple[str, Path, dict]]:
    found = []
    for info_path in root.glob("*/head.json"):
        try:
            info = json.loads(info_path.read_text(encoding="utf-8"))
            model_id = adapted_model_id(info["base_model"], info["method"], info["fingerprint"])
            mtime = info_path.stat().st_mtime
        except (OSError, ValueError, KeyError):
            continue
        found.append((mtime, model_id, info_path.parent, info))
    found.sort(key=lambda item: item[0], reverse=True)
    return [item[1:] for item in found]


def saved_heads(data_dir=None, bundled: bool = True) -> list[tuple[str, Path, dict]]:
    """(model id, folder, head.json) of every saved head: the data dir's, newest first, then the
    bundled ones (:data:`BUNDLED_HEADS`) not also saved there."""
    found = _heads_in(heads_root(data_dir))
    if bundled:
        seen = {model_id for model_id, _, _ in found}
        found += [item for item in _heads_in(BUNDLED_HEADS) if item[0] not in seen]
    return found


def saved_runs(data_dir=None, base_model_id: str | None = None) -> list[tuple[str, Path, dict]]:
    """(model id, folder, model.json) of every finished fine-tuning run, newest first."""
    found = []
    for info_path in finetune_root(data_dir).glob("*/model.json"):
        try:
            info = json.loads(info_path.read_text(encoding="utf-8"))
            model_id = info["model_id"]
        except (OSError, ValueError, KeyError):
            continue
        if base_model_id is None or info.get("base_model") == base_model_id:
            found.append((model_id, info_path.parent, info))
    found.sort(key=lambda item: (item[2].get("finished_at", ""), item[1].stat().st_mtime), reverse=True)
    return found


def latest_finetuned(base_model_id: str, data_dir=None) -> str:
    """The newest finished fine-tuned model id for ``base_model_id``, or a clear error."""
    runs = saved_runs(data_dir, base_model_id)
    if not runs:
        raise ModelUnavailableError(
            f"no fine-tuned weights for {base_model_id} in {finetune_root(data_dir)}: run "
            f"`python -m embeddings finetune --data SOURCE --model {base_model_id}` first "
            "(an unfinished run continues when rerun)"
        )
    return runs[0][0]


def discover(data_dir=None) -> list[SavedModel]:
    """Every saved head (the data dir's and the bundled ones) and finished fine-tuning run."""
    found = [
        SavedModel(model_id, "head", info["base_model"], Path(folder), info)
        for model_id, folder, info in saved_heads(data_dir)
    ]
    found += [
        SavedModel(model_id, "finetuned", info.get("base_model", ""), Path(folder), info)
        for model_id, folder, info in saved_runs(data_dir)
    ]
    return found


def listing_stamp(data_dir=None) -> tuple:
    """A cheap token that changes when a head or fine-tuned run is added to or removed from the
    data folder (the modification times of ``heads/`` and ``finetune/``; two ``stat`` calls)."""
    root = resolve_data_dir(data_dir)
    stamp = []
    for name in (HEADS_DIR, FT_DIR):
        try:
            stamp.append(os.stat(root / name).st_mtime_ns)
        except OSError:
            stamp.append(None)
    return tuple(stamp)
