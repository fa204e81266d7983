"""A fine-tuned backbone as an image model: the base model's architecture with the weights a
:func:`embeddings.adapt.finetune.finetune` run saved (``weights.safetensors``, sha256-checked),
embedding at the training resolution."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

from ..core.fingerprint import sha256_file
from ..core.torchutil import device, require_torch
from ..errors import InvalidInputError, ModelUnavailableError
from ..image.base import ImageEmbedder, Preprocess


def trainable_backbone(base: ImageEmbedder):
    model = getattr(base, "model", None)
    torch = require_torch()
    if not isinstance(model, torch.nn.Module):
        raise InvalidInputError(f"{base.model_id} has no trainable network to fine-tune")
    backbone = copy.deepcopy(model).cpu().float()
    for attr in ("_frozen",):
        backbone.__dict__.pop(attr, None)
    backbone.requires_grad_(True)
    return backbone


class FinetunedImageEmbedder(ImageEmbedder):
    """The base model's architecture with fine-tuned backbone weights, embedding at the training resolution."""

    def __init__(self, base: ImageEmbedder, folder: str | os.PathLike):
        torch = require_torch()
        from safetensors.torch import load_file

        folder = Path(folder)
        try:
            info = json.loads((folder / "model.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ModelUnavailableError(f"no finished fine-tuned model at {folder} ({exc})") from exc
        weights = folder / "weights.safetensors"
        if not weights.is_file() or sha256_file(weights) != info.get("weights_sha256"):
            raise ModelUnavailableError(f"fine-tuned weights in {folder} are missing or damaged")
        if base.model_id != info.get("base_model"):
            raise ModelUnavailableError(
                f"{folder} was fine-tuned from {info.get('base_model')}, not {base.model_id}"
            )
        model = trainable_backbone(base)
        model.load_state_dict(load_file(str(weights)))
        model.eval()
        model.requires_grad_(False)
        self.device = device()
        self.model = model.to(self.device)
        self.model_id = info["model_id"]
        self.dim = int(info["dim"])
        self.batch_size = 256
        pre = info["preprocess"]
        self.preprocess = Preprocess(
            int(pre["resize"]),
            int(pre["crop"]),
            tuple(pre["mean"]),
            tuple(pre["std"]),
            pre["interpolation"],
            pre["antialias"],
        )
        self.weights_id = f"fine-tuned {info['fingerprint']} sha256:{info['weights_sha256']}"
        self.base_model_id = info["base_model"]
        self.info = info
        cfg = info["config"]
        self.description = (
            f"{info['base_model']} fine-tuned on {info['train_count']} labelled images "
            f"({cfg['epochs']} epochs at {cfg['resolution']} px)"
        )
        self._torch = torch

    def embed_batch(self, batch):
        return self.model(batch.to(self.device))
