"""The deep adaptation tier: fine-tune an image model's backbone on a labelled split.

``python -m embeddings finetune --data SOURCE --model ID`` trains the backbone of image model
``ID`` (plus a new linear classifier) on the train split's labels: SGD with Nesterov momentum
and a one-cycle learning rate (warm-up, then cosine annealing), label smoothing 0.1, CIFAR-style
augmentation (zero-pad by 1/8 of the side and random crop, horizontal flip) at the image's own
size, then a bilinear resize to ``--resolution`` pixels, channels-last tensors. bfloat16
autocast is on by default on GPUs only: on an AMX/AVX-512-BF16 CPU it measured 2-2.5x slower
than float32 for this network (``--bf16 on`` forces it).

A run lives in ``<data_dir>/finetune/<model>-ft-<fingerprint>/``; the fingerprint covers the
base model, the training collection and every training setting, so rerunning the same command
continues the same run. Checkpoints (``ckpt-<step>.safetensors``: weights and momentum buffers;
no pickle) are written atomically every ``checkpoint_every`` steps, when ``--max-minutes`` runs
out, and on Ctrl-C; ``state.json`` names the latest one and its sha256. Augmentation and batch
order are drawn from (seed, step), so a resumed run sees the same batches it would have seen.

When the schedule completes, the backbone is saved as ``weights.safetensors`` with
``model.json``, and the result is registered as image model ``<model>-ft-<fp8>`` (embedding at
the training resolution, classifier removed): the index, the CLI (``--model``, or
``eval-images --adapt finetune``) and the app use it like any other model.
"""

from __future__ import annotations

import json
import logging
import math
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .. import __version__
from ..config import data_dir as resolve_data_dir
from ..core.files import atomic_path, write_json_atomic
from ..core.fingerprint import as_json, fingerprint, sha256_file, slug
from ..core.torchutil import require_torch
from ..errors import InvalidInputError
from ..image.base import ImageEmbedder, Preprocess, bf16_supported
from .finetuned import trainable_backbone
from .saved import finetune_root

log = logging.getLogger(__name__)

FT_FORMAT = 1
LOAD_CHUNK = 2048


@dataclass(frozen=True)
class FinetuneConfig:
    """Every setting that changes the trained weights (all of them are in the run's fingerprint)."""

    resolution: int = 64
    epochs: int = 3
    batch_size: int = 64
    peak_lr: float = 0.05
    start_div: float = 25.0  # lr starts at peak / start_div
    final_div: float = 1000.0  # and anneals to peak / final_div
    warmup: float = 0.15  # share of the steps spent warming up
    momentum: float = 0.9
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    subset: int | None = None  # train on this many images (a fixed random subset)
    seed: int = 0
    bf16: bool | None = None  # None: on CUDA only (see resolved())

    def resolved(self) -> FinetuneConfig:
        """``bf16=None`` becomes: on for CUDA, off on CPUs. On this project's AMX/AVX-512-BF16 CPU,
        training EfficientNet-Lite0 at 64 px ran at 59-72 images/s under bfloat16 autocast against
        145-157 images/s in float32 (its depthwise convolutions have no fast bf16 backward path)."""
        values = asdict(self)
        if values["bf16"] is None:
            torch = require_torch()
            values["bf16"] = bool(torch.cuda.is_available() and bf16_supported())
        return FinetuneConfig(**values)


def one_cycle_lr(step: int, total: int, cfg: FinetuneConfig) -> float:
    """Learning rate at ``step``: cosine warm-up from peak/start_div, cosine anneal to peak/final_div."""
    warm = max(1, int(round(cfg.warmup * total)))
    lo, hi, end = cfg.peak_lr / cfg.start_div, cfg.peak_lr, cfg.peak_lr / cfg.final_div
    if step < warm:
        t = step / warm
        return lo + (hi - lo) * (1 - math.cos(math.pi * t)) / 2
    t = (step - warm) / max(1, total - warm)
    return end + (hi - end) * (1 + math.cos(math.pi * min(1.0, t))) / 2


def _base_identity(base: ImageEmbedder) -> dict:
    fp = as_json(base.fingerprint())
    fp.pop("precision", None)  # training runs in its own precision; embedding precision is chosen later
    return fp


def run_fingerprint(base: ImageEmbedder, collection, cfg: FinetuneConfig) -> str:
    desc = collection.describe()
    data = {k: desc[k] for k in ("name", "split", "count", "fingerprint")}
    return fingerprint(_base_identity(base), data, asdict(cfg), __version__, FT_FORMAT)


def run_dir(base_model_id: str, fp: str, data_dir=None) -> Path:
    return finetune_root(data_dir) / f"{slug(base_model_id)}-ft-{fp}"


def finetuned_model_id(base_model_id: str, fp: str) -> str:
    return f"{base_model_id}-ft-{fp[:8]}"


# ----------------------------------------------------------------------------- data


def load_training_images(collection, ids: np.ndarray, size: int, progress=None) -> np.ndarray:
    """uint8 (n, h, w, 3) images: at their own size when they all share one, else resized to ``size``."""
    from PIL import Image

    first = np.asarray(collection.get_images([int(ids[0])])[0])
    out = None
    for start in range(0, len(ids), LOAD_CHUNK):
        chunk = [np.asarray(img) for img in collection.get_images(ids[start : start + LOAD_CHUNK].tolist())]
        if out is None:
            same = all(a.shape == first.shape for a in chunk)
            shape = first.shape if same else (size, size, 3)
            out = np.empty((len(ids), *shape), dtype=np.uint8)
        for j, img in enumerate(chunk):
            if img.shape != out.shape[1:]:
                img = np.asarray(Image.fromarray(img).resize(out.shape[1:3][::-1], Image.BILINEAR))
            out[start + j] = img
        if progress:
            progress(min(start + LOAD_CHUNK, len(ids)), len(ids))
    return out


def augment(images: np.ndarray, rng: np.random.Generator, resolution: int, mean, std):
    """Pad-crop (zero pad 1/8 of the side) and horizontal flip, resize, normalise: float NCHW tensor."""
    torch = require_torch()
    import torch.nn.functional as F

    n, h, w, _ = images.shape
    pad = max(1, h // 8)
    padded = np.zeros((n, h + 2 * pad, w + 2 * pad, 3), dtype=np.uint8)
    padded[:, pad : pad + h, pad : pad + w] = images
    dy = rng.integers(0, 2 * pad + 1, size=n)
    dx = rng.integers(0, 2 * pad + 1, size=n)
    flip = rng.random(n) < 0.5
    out = np.empty_like(images)
    for i in range(n):
        crop = padded[i, dy[i] : dy[i] + h, dx[i] : dx[i] + w]
        out[i] = crop[:, ::-1] if flip[i] else crop
    return _to_input(out, resolution, mean, std, torch, F)


def _to_input(images: np.ndarray, resolution: int, mean, std, torch=None, F=None):
    torch = torch or require_torch()
    if F is None:
        import torch.nn.functional as F
    batch = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255.0)
    if batch.shape[-2:] != (resolution, resolution):
        batch = F.interpolate(
            batch, size=(resolution, resolution), mode="bilinear", align_corners=False, antialias=True
        )
    batch = (batch - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    return batch.contiguous(memory_format=torch.channels_last)


# ----------------------------------------------------------------------------- checkpoints


def _save_checkpoint(folder: Path, step: int, backbone, classifier, optimizer, state: dict) -> None:
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


def _read_state(folder: Path) -> dict | None:
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


def _load_checkpoint(folder: Path, state: dict, backbone, classifier, optimizer) -> None:
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


# ----------------------------------------------------------------------------- training


@dataclass
class FinetuneResult:
    model_id: str
    folder: Path
    done: bool
    step: int
    total_steps: int
    seconds_this_run: float
    seconds_total: float
    train_accuracy: float | None  # running accuracy over the last epoch's batches seen


def finetune(
    collection,
    base: ImageEmbedder,
    cfg: FinetuneConfig = FinetuneConfig(),
    data_dir=None,
    max_minutes: float | None = None,
    checkpoint_every: int = 200,
    progress: Callable[[int, int, dict], None] | None = None,
    say: Callable[[str], None] = log.info,
    max_steps: int | None = None,
) -> FinetuneResult:
    """Train (or continue training) the backbone of ``base`` on ``collection``'s labels.

    Stops when the schedule is complete, after ``max_minutes`` (checkpointed; call again to
    continue), or after ``max_steps`` steps of this call (tests). ``progress(step, total, info)``
    is called after every step with the loss, running accuracy and learning rate.
    """
    require_torch()
    if collection.labels is None:
        raise InvalidInputError("fine-tuning needs class labels; this collection has none")
    cfg = cfg.resolved()
    if cfg.resolution < 16 or cfg.epochs < 1 or cfg.batch_size < 2:
        raise InvalidInputError("need --resolution >= 16, --epochs >= 1 and a batch size >= 2")
    data_dir = resolve_data_dir(data_dir)
    fp = run_fingerprint(base, collection, cfg)
    folder = run_dir(base.model_id, fp, data_dir)
    model_id = finetuned_model_id(base.model_id, fp)
    folder.mkdir(parents=True, exist_ok=True)
    from filelock import FileLock, Timeout

    lock = FileLock(str(folder / "run.lock"))
    try:
        lock.acquire(timeout=1)
    except Timeout:
        raise InvalidInputError(f"another process is training {folder} right now") from None
    try:
        return _train_locked(
            collection,
            base,
            cfg,
            folder,
            fp,
            model_id,
            max_minutes,
            checkpoint_every,
            progress,
            say,
            max_steps,
        )
    finally:
        lock.release()


def _train_locked(
    collection, base, cfg, folder, fp, model_id, max_minutes, checkpoint_every, progress, say, max_steps
):
    torch = require_torch()
    started = time.perf_counter()
    if (folder / "model.json").is_file():
        info = json.loads((folder / "model.json").read_text(encoding="utf-8"))
        say(f"already trained: {model_id} ({folder})")
        return FinetuneResult(
            model_id,
            folder,
            True,
            info["steps"],
            info["steps"],
            0.0,
            info["train_seconds"],
            info.get("train_accuracy"),
        )
    n_all = len(collection)
    order = np.random.default_rng([cfg.seed, 7]).permutation(n_all)
    ids = np.sort(order[: cfg.subset]) if cfg.subset else np.arange(n_all)
    if cfg.subset and not cfg.batch_size <= cfg.subset <= n_all:
        raise InvalidInputError(f"--subset must be between {cfg.batch_size} and {n_all}")
    n = len(ids)
    labels = np.asarray(collection.labels, dtype=np.int64)[ids]
    steps_per_epoch = n // cfg.batch_size
    if steps_per_epoch < 1:
        raise InvalidInputError(f"{n} images is fewer than one batch of {cfg.batch_size}")
    total = steps_per_epoch * cfg.epochs
    say(f"loading {n} training images")
    images = load_training_images(collection, ids, cfg.resolution)
    mean, std = base.preprocess.mean, base.preprocess.std

    backbone = trainable_backbone(base)
    classifier = torch.nn.Linear(base.dim, len(collection.classes))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        torch.nn.init.normal_(classifier.weight, std=0.01)
        torch.nn.init.zeros_(classifier.bias)
    backbone.to(memory_format=torch.channels_last)
    decay, no_decay = [], []
    for module in (backbone, classifier):
        for p in module.parameters():
            (decay if p.ndim > 1 else no_decay).append(p)
    optimizer = torch.optim.SGD(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.peak_lr,
        momentum=cfg.momentum,
        nesterov=True,
    )
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    meta = {
        "format": FT_FORMAT,
        "fingerprint": fp,
        "base_model": base.model_id,
        "config": asdict(cfg),
        "total_steps": total,
        "train_count": n,
        "training_collection": {
            k: collection.describe()[k] for k in ("name", "source", "split", "count", "fingerprint")
        },
    }
    state = _read_state(folder)
    step, seconds_before = 0, 0.0
    if state is not None and state.get("fingerprint") == fp:
        _load_checkpoint(folder, state, backbone, classifier, optimizer)
        step, seconds_before = int(state["step"]), float(state.get("seconds", 0.0))
        say(f"resuming {folder.name} at step {step}/{total} ({seconds_before / 60:.1f} min trained so far)")
    else:
        say(f"starting {folder.name}: {total} steps ({cfg.epochs} epochs of {steps_per_epoch})")

    def checkpoint(at: int) -> None:
        _save_checkpoint(
            folder,
            at,
            backbone,
            classifier,
            optimizer,
            {**meta, "seconds": seconds_before + time.perf_counter() - started},
        )

    deadline = started + max_minutes * 60 if max_minutes else None
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=bool(cfg.bf16))
    backbone.train()
    classifier.train()
    correct = seen = 0
    loss_value = float("nan")
    steps_this_run = 0
    previous_sigterm = _install_sigterm()
    try:
        while step < total:
            epoch, i = divmod(step, steps_per_epoch)
            if i == 0:
                correct = seen = 0
            perm = np.random.default_rng([cfg.seed, epoch]).permutation(n)
            batch_ids = perm[i * cfg.batch_size : (i + 1) * cfg.batch_size]
            rng = np.random.default_rng([cfg.seed, epoch, i, 1])
            x = augment(images[batch_ids], rng, cfg.resolution, mean, std)
            y = torch.from_numpy(labels[batch_ids])
            lr = one_cycle_lr(step, total, cfg)
            for group in optimizer.param_groups:
                group["lr"] = lr
            torch.manual_seed(int(cfg.seed * 1_000_003 + step))  # dropout: reproducible on resume
            with autocast:
                logits = classifier(backbone(x))
                loss = loss_fn(logits.float(), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            steps_this_run += 1
            loss_value = float(loss.detach())
            correct += int((logits.detach().argmax(1) == y).sum())
            seen += len(y)
            if progress:
                progress(
                    step, total, {"loss": loss_value, "acc": correct / seen, "lr": lr, "epoch": epoch + 1}
                )
            if step < total and step % checkpoint_every == 0:
                checkpoint(step)
            if step < total and (
                (deadline and time.perf_counter() > deadline) or (max_steps and steps_this_run >= max_steps)
            ):
                checkpoint(step)
                elapsed = time.perf_counter() - started
                say(f"stopped at step {step}/{total} after {elapsed / 60:.1f} min; rerun to continue")
                return FinetuneResult(
                    model_id,
                    folder,
                    False,
                    step,
                    total,
                    elapsed,
                    seconds_before + elapsed,
                    correct / max(1, seen),
                )
    except KeyboardInterrupt:
        if steps_this_run:
            checkpoint(step)
            say(f"interrupted: checkpoint saved at step {step}/{total}; rerun to continue")
        raise
    finally:
        _restore_sigterm(previous_sigterm)
    elapsed = time.perf_counter() - started
    accuracy = correct / max(1, seen)
    _save_final(
        folder,
        backbone,
        base,
        cfg,
        {
            **meta,
            "steps": total,
            "train_seconds": round(seconds_before + elapsed, 1),
            "train_accuracy": round(accuracy, 4),
        },
    )
    for old in folder.glob("ckpt-*.safetensors"):
        old.unlink(missing_ok=True)
    (folder / "state.json").unlink(missing_ok=True)
    say(f"done: {model_id} after {(seconds_before + elapsed) / 60:.1f} min of training")
    return FinetuneResult(model_id, folder, True, total, total, elapsed, seconds_before + elapsed, accuracy)


def _install_sigterm():
    """Turn SIGTERM into KeyboardInterrupt (so a killed job checkpoints) when on the main thread."""
    try:
        return signal.signal(signal.SIGTERM, signal.default_int_handler)
    except ValueError:  # not the main thread
        return None


def _restore_sigterm(previous) -> None:
    if previous is not None:
        try:
            signal.signal(signal.SIGTERM, previous)
        except ValueError:  # pragma: no cover
            pass


def _save_final(folder: Path, backbone, base: ImageEmbedder, cfg: FinetuneConfig, meta: dict) -> None:
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous() for k, v in backbone.state_dict().items()}
    with atomic_path(folder / "weights.safetensors", suffix=".safetensors") as tmp:
        save_file(tensors, str(tmp))
    info = {
        **meta,
        "model_id": finetuned_model_id(base.model_id, meta["fingerprint"]),
        "dim": base.dim,
        "preprocess": Preprocess(
            cfg.resolution, cfg.resolution, base.preprocess.mean, base.preprocess.std
        ).describe(),
        "weights_sha256": sha256_file(folder / "weights.safetensors"),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "package_version": __version__,
    }
    write_json_atomic(folder / "model.json", info)


# ----------------------------------------------------------------------------- the fine-tuned model
