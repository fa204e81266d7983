"""The commands behind ``python -m embeddings``: one ``cmd_*(args) -> exit code`` each, and the
helpers they share (opening the collection, the model and the index, progress bars on stderr)."""

from __future__ import annotations

import argparse
import sys
from contextlib import contextmanager

import numpy as np

from ..core.fingerprint import as_json
from ..errors import InvalidInputError


@contextmanager
def progress_bar(desc: str, unit: str = "img"):
    """Yield a ``progress(done, total)`` callback drawing a tqdm bar on stderr."""
    from tqdm import tqdm

    bar = None

    def update(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True)
        bar.update(done - bar.n)

    try:
        yield update
    finally:
        if bar is not None:
            bar.close()


@contextmanager
def finetune_progress_bar():
    """Yield a ``progress(step, total, info)`` callback drawing a tqdm bar of training steps on stderr
    (starting at the step a resumed run had reached), with epoch, loss, accuracy and lr every 10 steps."""
    from tqdm import tqdm

    bar = None

    def progress(step: int, total: int, info: dict) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(
                total=total,
                initial=step - 1,
                desc="fine-tuning",
                unit="step",
                file=sys.stderr,
                dynamic_ncols=True,
            )
        bar.update(step - bar.n)
        if step % 10 == 0 or step == total:
            bar.set_postfix(
                epoch=info["epoch"],
                loss=f"{info['loss']:.3f}",
                acc=f"{info['acc']:.3f}",
                lr=f"{info['lr']:.4f}",
            )

    try:
        yield progress
    finally:
        if bar is not None:
            bar.close()


def _say(message: str) -> None:
    print(message, file=sys.stderr)


def _open_collection(args):
    from ..image.collections import default_source, open_collection

    source = args.data or default_source(args.data_dir)
    collection = open_collection(source, args.split, data_dir=args.data_dir)
    desc = collection.describe()
    _say(f"collection: {desc['name']} ({desc['split']} split, {desc['count']} images) from {desc['source']}")
    return collection


def _image_model_id(model_id: str | None, data_dir) -> str:
    from ..registry import resolve_image_model

    if model_id is None:
        model_id, reason = resolve_image_model(data_dir=data_dir)
        _say(f"image model: {model_id} ({reason})")
    return model_id


def _image_embedder(model_id: str | None, data_dir, precision: str | None = None):
    from ..image.base import default_precision
    from ..registry import get_image_embedder

    model_id = _image_model_id(model_id, data_dir)
    precision = precision or default_precision()
    embedder = get_image_embedder(model_id, data_dir).set_precision(precision)
    fallback = getattr(embedder, "runtime_fallback", "")
    note = f" (asked for {precision}: {fallback})" if fallback else ""
    _say(f"image model: {model_id}, {embedder.precision} inference{note}")
    if getattr(embedder, "precision_note", ""):
        _say(f"warning: {embedder.precision_note}")
    return embedder


def _index(args, split=None, model=None):
    from ..index.service import get_or_build_index

    if split is not None:
        args = argparse.Namespace(**{**vars(args), "split": split})
    collection = _open_collection(args)
    embedder = _image_embedder(model or args.model, args.data_dir, args.precision)
    with progress_bar(f"embedding {collection.describe()['split']}") as progress:
        index, status = get_or_build_index(collection, embedder, args.data_dir, progress=progress)
    note = f": {status.reason}" if status.reason else ""
    _say(f"index {status.action}{note} -> {index.path}")
    return collection, index


def _ray_index(args):
    """build-index --engine ray: the index built (or resumed) on Ray, or loaded when already current."""
    from ..distributed.ray_engine import build_with_ray
    from ..errors import CorruptIndexError, IndexNotBuiltError, StaleIndexError
    from ..index.store import load_index

    collection = _open_collection(args)
    embedder = _image_embedder(args.model, args.data_dir, args.precision)
    try:
        index = load_index(collection, embedder, args.data_dir)
        _say(f"index loaded (already built) -> {index.path}")
        return index
    except (IndexNotBuiltError, StaleIndexError, CorruptIndexError) as exc:
        _say(f"building on Ray ({args.address or 'a local cluster'}, {args.workers} workers): {exc}")
    with progress_bar(f"embedding {collection.describe()['split']} on Ray") as progress:
        index, report = build_with_ray(
            collection,
            embedder,
            args.data_dir,
            address=args.address,
            workers=args.workers,
            shard_size=args.shard_size,
            gpus_per_worker=args.gpus_per_worker,
            progress=progress,
            verbose=args.verbose,
        )
    _say(
        f"index built on Ray: {len(report.embedded)} of {report.shards} shards embedded, "
        f"{len(report.reused)} kept from an earlier run -> {index.path}"
    )
    return index


def _search_kind(args, index):
    """Apply ``--index``: train/attach IVF-PQ (reporting its recall@10), or go back to flat."""
    from ..index.ondisk import ensure_ivfpq, use_flat

    if args.index == "flat":
        return use_flat(index)
    if args.index != "ivfpq":
        return index
    index = ensure_ivfpq(index, args.ivfpq_spec, nprobe=args.nprobe, rerank=args.rerank)
    p = index.manifest["ivfpq"]
    print(
        f"IVF-PQ {p['spec']} (trained on {p['train_size']} vectors), nprobe={p['nprobe']} rerank={p['rerank']}: "
        f"recall@10 against exact search {p['recall_at_10']:.4f} "
        f"({p['recall_at_10_without_rerank']:.4f} without re-ranking, {p['queries']} queries)"
    )
    return index


def cmd_build_index(args) -> int:
    if args.engine != "ray" and (
        args.address or args.workers != 2 or args.gpus_per_worker or args.shard_size != 1024
    ):
        raise InvalidInputError("--address, --workers, --gpus-per-worker and --shard-size need --engine ray")
    index = _ray_index(args) if args.engine == "ray" else _index(args)[1]
    index = _search_kind(args, index)
    if args.approximate:
        from ..index.approximate import approximate_recall

        recall = approximate_recall(index, k=10)
        print(f"approximate (HNSW) recall@10 against exact search: {recall:.4f}")
    kind = index.manifest.get("index_kind", "flat")
    engine = index.manifest.get("engine", {}).get("name", "local")
    print(
        f"{index.count} vectors of {index.dim} dims, built {index.manifest['built_at']} by the {engine} engine, "
        f"searched {kind} at {index.path}"
    )
    return 0


def cmd_search(args) -> int:
    collection, index = _index(args)
    ids, scores = index.neighbours([args.id], args.k, approximate=args.approximate)
    classes = index.classes

    def label(i: int) -> str:
        return classes[index.labels[i]] if index.labels is not None and classes else "-"

    print(f"query id={args.id} label={label(args.id)}")
    print(f"{'rank':>4}  {'id':>6}  {'cosine':>7}  label")
    for rank, (i, s) in enumerate(zip(ids[0], scores[0], strict=True), start=1):
        print(f"{rank:>4}  {int(i):>6}  {s:7.4f}  {label(int(i))}")
    return 0


def cmd_eval_words(args) -> int:
    from ..registry import get_text_embedder
    from ..text.wordeval import evaluate_words, load_pairs

    pairs = load_pairs(args.file)
    embedder = get_text_embedder(args.model)
    result = evaluate_words(pairs, embedder)
    print(f"spearman={result.spearman:.4f} pairs={result.pairs}")
    return 0


def cmd_eval_analogies(args) -> int:
    from ..registry import get_text_embedder
    from ..text.analogies import evaluate_analogies, load_questions
    from ..text.vocab import load_vocab, vocab_vectors

    questions = load_questions(args.file)
    embedder = get_text_embedder(args.model)
    with progress_bar("embedding the vocabulary", unit="word") as progress:
        vectors = vocab_vectors(embedder, data_dir=args.data_dir, progress=progress)
    for line in evaluate_analogies(questions, load_vocab(), vectors, args.method).lines():
        print(line)
    return 0


def _fit_head(args, train_index, method: str):
    from ..adapt.heads import AdaptedImageEmbedder, get_or_fit_head
    from ..registry import refresh_saved_models

    base = _image_embedder(train_index.manifest["key"]["model"]["model_id"], args.data_dir, args.precision)
    head, how = get_or_fit_head(train_index, base, method, args.data_dir)
    refresh_saved_models(args.data_dir)  # the new head is a model id from now on
    extra = f", train accuracy {head.meta['train_accuracy']:.3f}" if "train_accuracy" in head.meta else ""
    took = f" in {head.meta['fit_seconds']:.1f}s" if how == "fitted" else ""
    _say(f"{method} head {how}{took} ({head.dim}-d{extra}) -> {head.fingerprint}")
    return AdaptedImageEmbedder(base, head)


def _finetuned_model(args) -> tuple[str, dict]:
    from ..adapt.saved import latest_finetuned, saved_runs

    base = _image_model_id(args.model, args.data_dir)
    model_id = latest_finetuned(base, args.data_dir)
    info = next(i for m, _, i in saved_runs(args.data_dir, base) if m == model_id)
    trained = info.get("training_collection", {})
    _say(
        f"fine-tuned model: {model_id} (trained on {trained.get('name')} {trained.get('split')}, {info['train_count']} images)"
    )
    return model_id, as_json(trained)


def cmd_eval_images(args) -> int:
    from ..index.evaluation import evaluate_retrieval

    different_splits = bool(args.index_split and args.index_split != (args.split or "test"))
    if args.adapt and not different_splits:
        raise InvalidInputError(
            "--adapt needs --index-split naming another split than --split (e.g. --split test --index-split "
            "train): the adaptation learns from the index split's labels, so the queries must come from elsewhere"
        )
    model = None
    if args.adapt == "finetune":
        model, trained = _finetuned_model(args)
    collection, index = _index(args, split=args.index_split or args.split, model=model)
    queries = None
    if different_splits:
        query_collection, queries = _index(args, split=args.split, model=model)
        if (
            args.adapt == "finetune"
            and trained.get("fingerprint") == query_collection.describe()["fingerprint"]
        ):
            raise InvalidInputError(
                f"{model} was trained on the query split itself; evaluate on another split"
            )
    if args.adapt == "head":
        from ..index.service import adapt_index

        adapted = _fit_head(args, index, args.head_method)
        index = adapt_index(index, adapted, args.data_dir)
        queries = adapt_index(queries, adapted, args.data_dir)
        _say(f"adapted model: {adapted.model_id} -> {index.path}")
    if args.rerank and args.rerank != "none":
        from ..index.rerank import evaluate_reranked

        _say(f"re-ranking: {args.rerank}")
        result = evaluate_reranked(index, k=args.k, method=args.rerank, queries=queries)
    else:
        result = evaluate_retrieval(index, k=args.k, queries=queries, approximate=args.approximate)
    for line in result.lines():
        print(line)
    return 0


def cmd_fit_head(args) -> int:
    _, index = _index(args)
    adapted = _fit_head(args, index, args.method)
    print(f"model id: {adapted.model_id}")
    print(f"{adapted.description}")
    return 0


def cmd_finetune(args) -> int:
    from ..adapt.finetune import FinetuneConfig, finetune
    from ..registry import get_image_embedder, refresh_saved_models

    collection = _open_collection(args)
    model_id = _image_model_id(args.model, args.data_dir)
    base = get_image_embedder(model_id, args.data_dir)
    cfg = FinetuneConfig(
        resolution=args.resolution,
        epochs=args.epochs,
        batch_size=args.batch_size,
        peak_lr=args.lr,
        subset=args.subset,
        seed=args.seed,
        bf16=None if args.bf16 == "auto" else args.bf16 == "on",
    )
    with finetune_progress_bar() as progress:
        result = finetune(
            collection,
            base,
            cfg,
            args.data_dir,
            max_minutes=args.max_minutes,
            checkpoint_every=args.checkpoint_every,
            progress=progress,
            say=_say,
        )
    refresh_saved_models(args.data_dir)  # a finished run is a model id from now on
    acc = "-" if result.train_accuracy is None else f"{result.train_accuracy:.4f}"
    status = "done" if result.done else "stopped (rerun the same command to continue)"
    print(
        f"finetune {status}: model={result.model_id} step={result.step}/{result.total_steps} "
        f"minutes={result.seconds_total / 60:.1f} train_accuracy={acc}"
    )
    return 0


def cmd_bench_images(args) -> int:
    from ..bench import bench_images

    collection = _open_collection(args)
    if args.n < 20 or args.n > len(collection):
        raise InvalidInputError(f"--n must be between 20 and {len(collection)} for this collection")
    ids = np.random.default_rng(0).choice(len(collection), size=args.n, replace=False)
    images = [np.asarray(img) for img in collection.get_images(sorted(ids.tolist()))]
    model_id = _image_model_id(args.model, args.data_dir)
    _say(
        f"embedding the same {args.n} images with {model_id}: fp32 eager, then fast (frozen graph), "
        "onnx (ONNX Runtime, the default) and bf16 (where this CPU has native bfloat16)"
    )
    report = bench_images(model_id, images, batch_size=args.batch_size, data_dir=args.data_dir)
    for line in report.lines():
        print(line)
    return 0


def cmd_bench_search(args) -> int:
    from ..bench import bench_search

    _, index = _index(args)
    reports, recall = bench_search(index, n_queries=args.queries, k=args.k)
    print(f"index: {index.count:,} vectors of {index.dim} dims")
    for report in reports:
        print(report.line())
    print(
        f"ratio p50 exact/approximate={reports[0].p50_ms / reports[1].p50_ms:.2f} recall@{args.k}={recall:.4f}"
    )
    return 0


def cmd_models(args) -> int:
    from ..registry import image_model_ids, text_model_ids

    print("text models: " + ", ".join(text_model_ids()))
    print("image models: " + ", ".join(image_model_ids()))
    return 0


# ---------------------------------------------------------------------------- eval-knn


def _image_knn_index(args, split: str | None):
    """An image source's index for ``split`` (built if needed): the default resolver of eval-knn."""
    return _index(args, split=split)[1]


# Resolvers of eval-knn's SOURCE to a labelled index, tried in order: each takes (args, split) and
# returns an index (the interface of embeddings.index.store.ImageIndex), or None when SOURCE is not
# its kind. Image sources (sample, cifar10, a folder) come last; document sources go before them.
KNN_SOURCES: list = [_image_knn_index]


def knn_index(args, split: str | None):
    """The labelled index of ``--data`` SOURCE and ``split`` for eval-knn, from the first resolver
    in :data:`KNN_SOURCES` that knows the source."""
    for resolve in KNN_SOURCES:
        index = resolve(args, split)
        if index is not None:
            return index
    raise InvalidInputError(f"no index can be made for --data {args.data!r}")


def cmd_eval_knn(args) -> int:
    from ..index.knn import knn_curve

    split = args.split
    queries = None
    if args.query_split and args.query_split != split:
        if split is None:
            raise InvalidInputError("--query-split needs --split naming the index split (e.g. --split train)")
        queries = knn_index(args, args.query_split)
    index = knn_index(args, split)
    what = "leave-one-out" if queries is None else f"{args.query_split} queries against the {split} index"
    with progress_bar(f"k-NN, k=1..{args.k_max} ({what})", unit="query") as progress:
        curve = knn_curve(index, args.k_max, queries=queries, progress=progress)
    for line in curve.lines():
        print(line)
    return 0


def cmd_find_label_conflicts(args) -> int:
    from ..index.conflicts import find_label_conflicts

    _, index = _index(args)
    if args.top < 0:
        raise InvalidInputError(f"--top must be 0 or more, got {args.top}")
    with progress_bar(f"neighbours of {index.count:,} items") as progress:
        result = find_label_conflicts(index, k=args.k, min_share=args.min_share, progress=progress)
    if result.scores.seconds:
        _say(f"computed in {result.scores.seconds:.1f}s, saved beside the index")
    for line in result.lines(top=args.top):
        print(line)
    return 0


def cmd_find_duplicates(args) -> int:
    from ..index.conflicts import find_duplicates

    if args.top < 0:
        raise InvalidInputError(f"--top must be 0 or more, got {args.top}")
    _, index = _index(args)
    split = index.manifest["key"]["collection"]["split"]
    other, names = None, (split, split)
    if args.against and args.against != split:
        _, other = _index(args, split=args.against)
        names = (split, args.against)
    with progress_bar(f"near-duplicates of {index.count:,} items", unit="item") as progress:
        pairs = find_duplicates(index, other, threshold=args.threshold, progress=progress)
    if pairs.candidates.seconds:
        _say(f"computed in {pairs.candidates.seconds:.1f}s, saved beside the index")
    other_labels = None if other is None else other.labels
    for line in pairs.lines(index.labels, other_labels, index.classes, top=args.top, names=names):
        print(line)
    return 0
