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
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .. import __version__
from ..config import data_dir as resolve_data_dir
from ..core.fingerprint import as_json, fingerprint, slug
from ..core.torchutil import require_torch
from ..errors import InvalidInputError
from ..image.base import ImageEmbedder, Preprocess, bf16_supported
from .checkpoints import clear_checkpoints, load_checkpoint, read_state, save_checkpoint, save_final
from .finetuned import trainable_backbone
from .saved import finetune_root
from .trainingdata import TrainingSet, load_training_images

log = logging.getLogger(__name__)

FT_FORMAT = 1


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
    started = time.perf_counter()
    if (folder / "model.json").is_file():
        return _already_trained(folder, model_id, say)
    run = _start_run(collection, base, cfg, folder, fp, model_id, started, say)
    deadline = started + max_minutes * 60 if max_minutes else None
    run.backbone.train()
    run.classifier.train()
    total = run.data.total
    with _sigterm_interrupts():
        try:
            while run.step < total:
                run.train_step(progress)
                if run.step < total and run.step % checkpoint_every == 0:
                    run.checkpoint()
                if run.step < total and (
                    (deadline and time.perf_counter() > deadline)
                    or (max_steps and run.steps_this_run >= max_steps)
                ):
                    return _stop(run, say)
        except KeyboardInterrupt:
            if run.steps_this_run:
                run.checkpoint()
                say(f"interrupted: checkpoint saved at step {run.step}/{total}; rerun to continue")
            raise
    return _finish(run, base, say)


def _already_trained(folder: Path, model_id: str, say) -> FinetuneResult:
    info = json.loads((folder / "model.json").read_text(encoding="utf-8"))
    say(f"already trained: {model_id} ({folder})")
    steps, seconds = info["steps"], info["train_seconds"]
    return FinetuneResult(model_id, folder, True, steps, steps, 0.0, seconds, info.get("train_accuracy"))


def _training_set(collection, base: ImageEmbedder, cfg: FinetuneConfig, say) -> TrainingSet:
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
    say(f"loading {n} training images")
    images = load_training_images(collection, ids, cfg.resolution)
    mean, std = base.preprocess.mean, base.preprocess.std
    return TrainingSet(images, labels, cfg.seed, cfg.batch_size, cfg.epochs, cfg.resolution, mean, std)


def _model_and_optimizer(base: ImageEmbedder, n_classes: int, cfg: FinetuneConfig):
    """The trainable backbone, a new linear classifier (seeded) and SGD over both (no decay on biases)."""
    torch = require_torch()
    backbone = trainable_backbone(base)
    classifier = torch.nn.Linear(base.dim, n_classes)
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
    return backbone, classifier, optimizer


@dataclass
class _Run:
    """One call's training: the model and optimiser, the step reached, the running accuracy, the clock."""

    cfg: FinetuneConfig
    folder: Path
    model_id: str
    meta: dict
    data: TrainingSet
    backbone: object
    classifier: object
    optimizer: object
    loss_fn: object
    autocast: object
    started: float
    step: int = 0
    seconds_before: float = 0.0
    steps_this_run: int = 0
    correct: int = 0
    seen: int = 0

    def accuracy(self) -> float:
        return self.correct / max(1, self.seen)

    def checkpoint(self) -> None:
        """Save a checkpoint at the current step, with the training time so far."""
        seconds = self.seconds_before + time.perf_counter() - self.started
        save_checkpoint(
            self.folder,
            self.step,
            self.backbone,
            self.classifier,
            self.optimizer,
            {**self.meta, "seconds": seconds},
        )

    def train_step(self, progress) -> None:
        """One optimiser step on the next batch; reports loss, running accuracy and lr to ``progress``."""
        torch = require_torch()
        cfg, total = self.cfg, self.data.total
        epoch, i = divmod(self.step, self.data.steps_per_epoch)
        if i == 0:
            self.correct = self.seen = 0
        x, y = self.data.batch(epoch, i)
        lr = one_cycle_lr(self.step, total, cfg)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        torch.manual_seed(int(cfg.seed * 1_000_003 + self.step))  # dropout: reproducible on resume
        with self.autocast:
            logits = self.classifier(self.backbone(x))
            loss = self.loss_fn(logits.float(), y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.step += 1
        self.steps_this_run += 1
        loss_value = float(loss.detach())
        self.correct += int((logits.detach().argmax(1) == y).sum())
        self.seen += len(y)
        if progress:
            info = {"loss": loss_value, "acc": self.correct / self.seen, "lr": lr, "epoch": epoch + 1}
            progress(self.step, total, info)


def _start_run(collection, base, cfg, folder, fp, model_id, started, say) -> _Run:
    """Load the data, build the model and optimiser, and resume from the latest checkpoint if any."""
    torch = require_torch()
    data = _training_set(collection, base, cfg, say)
    backbone, classifier, optimizer = _model_and_optimizer(base, len(collection.classes), cfg)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    meta = {
        "format": FT_FORMAT,
        "fingerprint": fp,
        "base_model": base.model_id,
        "config": asdict(cfg),
        "total_steps": data.total,
        "train_count": len(data.labels),
        "training_collection": {
            k: collection.describe()[k] for k in ("name", "source", "split", "count", "fingerprint")
        },
    }
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=bool(cfg.bf16))
    run = _Run(cfg, folder, model_id, meta, data, backbone, classifier, optimizer, loss_fn, autocast, started)
    state = read_state(folder)
    if state is not None and state.get("fingerprint") == fp:
        load_checkpoint(folder, state, backbone, classifier, optimizer)
        run.step, run.seconds_before = int(state["step"]), float(state.get("seconds", 0.0))
        say(
            f"resuming {folder.name} at step {run.step}/{data.total} "
            f"({run.seconds_before / 60:.1f} min trained so far)"
        )
    else:
        say(f"starting {folder.name}: {data.total} steps ({cfg.epochs} epochs of {data.steps_per_epoch})")
    return run


def _stop(run: _Run, say) -> FinetuneResult:
    """Checkpoint and return early (out of time, or out of ``max_steps``)."""
    run.checkpoint()
    elapsed = time.perf_counter() - run.started
    say(f"stopped at step {run.step}/{run.data.total} after {elapsed / 60:.1f} min; rerun to continue")
    return FinetuneResult(
        run.model_id,
        run.folder,
        False,
        run.step,
        run.data.total,
        elapsed,
        run.seconds_before + elapsed,
        run.accuracy(),
    )


def _finish(run: _Run, base: ImageEmbedder, say) -> FinetuneResult:
    """Save the finished backbone and ``model.json``, drop the checkpoints and report."""
    elapsed = time.perf_counter() - run.started
    accuracy = run.accuracy()
    cfg, total = run.cfg, run.data.total
    info = {
        **run.meta,
        "steps": total,
        "train_seconds": round(run.seconds_before + elapsed, 1),
        "train_accuracy": round(accuracy, 4),
        "model_id": finetuned_model_id(base.model_id, run.meta["fingerprint"]),
        "dim": base.dim,
        "preprocess": Preprocess(
            cfg.resolution, cfg.resolution, base.preprocess.mean, base.preprocess.std
        ).describe(),
    }
    save_final(run.folder, run.backbone, info)
    clear_checkpoints(run.folder)
    say(f"done: {run.model_id} after {(run.seconds_before + elapsed) / 60:.1f} min of training")
    return FinetuneResult(
        run.model_id, run.folder, True, total, total, elapsed, run.seconds_before + elapsed, accuracy
    )


@contextmanager
def _sigterm_interrupts():
    """Turn SIGTERM into KeyboardInterrupt (so a killed job checkpoints) when on the main thread."""
    try:
        previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    except ValueError:  # not the main thread
        previous = None
    try:
        yield
    finally:
        if previous is not None:
            try:
                signal.signal(signal.SIGTERM, previous)
            except ValueError:  # pragma: no cover
                pass
