"""The argument parser of ``python -m embeddings``: global options, then one sub-command per
``cmd_*`` function, grouped as index, evaluation, fine-tuning and benchmark commands."""

from __future__ import annotations

import argparse

from .. import __version__
from ..adapt.heads import DEFAULT_METHOD, HEAD_METHODS
from ..image.base import PRECISIONS
from ..index.rerank import KEPT_METHODS
from .commands import (
    cmd_bench_images,
    cmd_bench_search,
    cmd_build_index,
    cmd_eval_analogies,
    cmd_eval_images,
    cmd_eval_knn,
    cmd_eval_words,
    cmd_find_duplicates,
    cmd_find_label_conflicts,
    cmd_finetune,
    cmd_fit_head,
    cmd_models,
    cmd_search,
)
from .textcommands import add_text_commands

DESCRIPTION = "Command line: build and query indexes, evaluate text and image models."


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command; each sets ``func`` to the ``cmd_*`` that runs it."""
    parser = argparse.ArgumentParser(prog="python -m embeddings", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"embedding-explorer {__version__}")
    parser.add_argument(
        "--data-dir",
        default=None,
        help="data folder (default: $EMBEDDINGS_DATA_DIR or ~/.cache/embedding-explorer)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log details to stderr")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_index_commands(sub)
    _add_eval_commands(sub)
    _add_finetune_command(sub)
    _add_conflict_commands(sub)
    _add_bench_commands(sub)
    add_text_commands(sub)  # build-text-index, search-text, eval-passages
    p = sub.add_parser("models", help="list model ids")
    p.set_defaults(func=cmd_models)
    return parser


def _image_args(p, k: bool = False) -> None:
    """The options every image command takes: data, split, model, approximate, precision (and --k)."""
    p.add_argument("--data", default=None, help="cifar10, sample, or a folder path (default: best present)")
    p.add_argument("--split", default=None, help="train or test (default: test, or the only split)")
    p.add_argument(
        "--model", default=None, help="image model id (default: resnet18, else the offline fallback)"
    )
    p.add_argument("--approximate", action="store_true", help="use/build the approximate HNSW index")
    p.add_argument(
        "--precision",
        choices=list(PRECISIONS),
        default=None,
        help="image model inference: fp32 (plain eager), fast (same math, frozen TorchScript graph), "
        "onnx (default: same math on ONNX Runtime, exported once into the data folder; models that "
        "cannot be exported run fast), or bf16 (AMX CPUs, moves some neighbours)",
    )
    if k:
        p.add_argument("--k", type=int, default=10, help="neighbours per query (default 10)")


def _add_index_commands(sub) -> None:
    """build-index and search."""
    p = sub.add_parser("build-index", help="embed a collection once and write its index")
    _image_args(p)
    _scale_args(p)
    p.set_defaults(func=cmd_build_index)

    p = sub.add_parser("search", help="print the nearest neighbours of one image")
    _image_args(p, k=True)
    p.add_argument("--id", type=int, required=True, help="id of the query image in the split")
    p.set_defaults(func=cmd_search)


def _scale_args(p) -> None:
    """build-index's engine (local, or Ray Data on a cluster) and on-disk index (IVF-PQ) options."""
    p.add_argument(
        "--engine",
        choices=["local", "ray"],
        default="local",
        help="local (default: this process) or ray (Ray Data actors; resumable shards; needs "
        "pip install -r requirements-ray.txt)",
    )
    p.add_argument(
        "--address",
        default=None,
        help="with --engine ray: join this cluster (auto, HOST:PORT or ray://HOST:10001; default: start a local one)",
    )
    p.add_argument(
        "--workers", type=int, default=2, help="with --engine ray: actors, one model each (default 2)"
    )
    p.add_argument(
        "--gpus-per-worker", type=float, default=0, help="with --engine ray: GPUs per actor (default 0: CPU)"
    )
    p.add_argument(
        "--shard-size", type=int, default=1024, help="with --engine ray: images per shard (default 1024)"
    )
    p.add_argument(
        "--index",
        choices=["flat", "ivfpq"],
        default=None,
        help="what search uses: flat (exact, vectors in memory) or ivfpq (memory-mapped IVF-PQ with exact "
        "re-ranking); default: what the index on disk names (flat for a new one)",
    )
    p.add_argument(
        "--ivfpq-spec",
        default=None,
        help="FAISS IVF-PQ spec, e.g. IVF1024,PQ64 (default: nlist = 4 sqrt(n), PQ64 or the largest divisor of the dims)",
    )
    p.add_argument(
        "--nprobe", type=int, default=128, help="with --index ivfpq: lists scanned per query (default 128)"
    )
    p.add_argument(
        "--rerank",
        type=int,
        default=256,
        help="with --index ivfpq: candidates re-scored exactly (default 256)",
    )


def _add_eval_commands(sub) -> None:
    """eval-words, eval-images and fit-head."""
    p = sub.add_parser("eval-words", help="Spearman correlation with human word-similarity scores")
    p.add_argument("file", help="file of 'word1 word2 score' lines")
    p.add_argument("--model", default="local", help="text model id (default: local)")
    p.set_defaults(func=cmd_eval_words)

    p = sub.add_parser("eval-analogies", help="accuracy on the Google analogy test set over the vocabulary")
    p.add_argument(
        "file", nargs="?", default=None, help="a questions-words.txt file (default: the bundled copy)"
    )
    p.add_argument("--model", default="local", help="text model id (default: local)")
    p.add_argument(
        "--method", choices=["3cosadd", "3cosmul"], default="3cosadd", help="how answers are scored"
    )
    p.set_defaults(func=cmd_eval_analogies)

    p = sub.add_parser("eval-images", help="leave-one-out precision@k per class")
    _image_args(p, k=True)
    p.add_argument("--index-split", default=None, help="search this split's index with queries from --split")
    p.add_argument(
        "--adapt",
        choices=["head", "finetune"],
        default=None,
        help="head: fit a projection head on the index split's labels (seconds); finetune: use the latest "
        "weights `finetune` saved for --model. Both need --index-split",
    )
    p.add_argument(
        "--head-method",
        choices=list(HEAD_METHODS),
        default=DEFAULT_METHOD,
        help=f"with --adapt head (default {DEFAULT_METHOD})",
    )
    p.add_argument(
        "--rerank",
        choices=list(KEPT_METHODS),
        default="none",
        help="re-rank neighbours without labels (default none)",
    )
    p.set_defaults(func=cmd_eval_images)

    p = sub.add_parser(
        "eval-knn",
        help="k-NN classification accuracy for k = 1..k-max (plain and weighted), centroid baseline",
    )
    p.add_argument("--data", default=None, help="cifar10, sample, or a folder path (default: best present)")
    p.add_argument("--split", default=None, help="the index's split (default: test, or the only split)")
    p.add_argument(
        "--model", default=None, help="image model id (default: resnet18, else the offline fallback)"
    )
    p.add_argument("--precision", choices=list(PRECISIONS), default=None, help="as for build-index")
    p.add_argument(
        "--query-split",
        default=None,
        help="classify this split's items by their neighbours in --split's index (default: leave-one-out on --split)",
    )
    p.add_argument("--k-max", type=int, default=50, help="largest k (default 50)")
    p.set_defaults(func=cmd_eval_knn)

    p = sub.add_parser("fit-head", help="fit a projection head on a labelled split; prints the new model id")
    _image_args(p)
    p.add_argument(
        "--method", choices=list(HEAD_METHODS), default=DEFAULT_METHOD, help=f"default {DEFAULT_METHOD}"
    )
    p.set_defaults(func=cmd_fit_head, split="train")


def _add_finetune_command(sub) -> None:
    """finetune: every training setting, the time limit and the checkpoint interval."""
    p = sub.add_parser("finetune", help="fine-tune an image model's backbone on the train split (resumable)")
    p.add_argument("--data", default=None, help="cifar10, sample, or a folder path with labels")
    p.add_argument("--split", default="train", help="labelled split to train on (default train)")
    p.add_argument(
        "--model", default=None, help="image model id to fine-tune (default: as for the other commands)"
    )
    p.add_argument(
        "--resolution", type=int, default=64, help="training and embedding resolution in px (default 64)"
    )
    p.add_argument("--epochs", type=int, default=3, help="epochs (default 3)")
    p.add_argument("--batch-size", type=int, default=64, help="batch size (default 64)")
    p.add_argument(
        "--lr", type=float, default=0.05, help="peak learning rate of the one-cycle schedule (default 0.05)"
    )
    p.add_argument(
        "--subset", type=int, default=None, help="train on this many images (a fixed random subset)"
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument(
        "--bf16", choices=["auto", "on", "off"], default="auto", help="bfloat16 autocast (default auto)"
    )
    p.add_argument(
        "--max-minutes",
        type=float,
        default=None,
        help="stop (checkpointed) after this long; rerun to continue",
    )
    p.add_argument(
        "--checkpoint-every", type=int, default=200, help="steps between checkpoints (default 200)"
    )
    p.set_defaults(func=cmd_finetune)


def _add_bench_commands(sub) -> None:
    """bench-images and bench-search."""
    p = sub.add_parser(
        "bench-images",
        help="images/s of fp32 eager vs fast, onnx (default) and bf16, and neighbour agreement",
    )
    _image_args(p)
    p.add_argument("--n", type=int, default=1000, help="number of images (default 1000)")
    p.add_argument("--batch-size", type=int, default=64, help="batch size (default 64)")
    p.set_defaults(func=cmd_bench_images)

    p = sub.add_parser("bench-search", help="p50/p99 latency of single queries, exact vs approximate")
    _image_args(p, k=True)
    p.add_argument("--queries", type=int, default=1000, help="number of queries (default 1000)")
    p.set_defaults(func=cmd_bench_search)


def _add_conflict_commands(sub) -> None:
    """find-duplicates and find-label-conflicts."""
    from ..index.conflicts import DEFAULT_K, DEFAULT_MIN_SHARE, DEFAULT_THRESHOLD

    p = sub.add_parser(
        "find-duplicates", help="near-duplicate pairs within a split, or against another split"
    )
    _image_args(p)
    p.add_argument(
        "--against", default=None, help="look for each item's near-duplicates in this split instead"
    )
    p.add_argument(
        "--threshold",
        type=float,
        default=DEFAULT_THRESHOLD,
        help=f"cosine at least this (default {DEFAULT_THRESHOLD}, measured on CIFAR-10)",
    )
    p.add_argument("--top", type=int, default=20, help="pairs to print (default 20)")
    p.set_defaults(func=cmd_find_duplicates)

    p = sub.add_parser(
        "find-label-conflicts", help="items whose nearest neighbours mostly carry another label"
    )
    _image_args(p)
    p.add_argument("--k", type=int, default=DEFAULT_K, help=f"neighbours per item (default {DEFAULT_K})")
    p.add_argument(
        "--min-share",
        type=float,
        default=DEFAULT_MIN_SHARE,
        help=f"share of neighbours with another label, at least (default {DEFAULT_MIN_SHARE})",
    )
    p.add_argument("--top", type=int, default=20, help="conflicts to print (default 20)")
    p.set_defaults(func=cmd_find_label_conflicts)
