"""Past one machine, measured: the local vs the Ray engine on the same images, and IVF-PQ vs flat at 60,000 vectors.

1. Engines: ``--images`` CIFAR-10 images (a fixed random subset of the test split, copied into a
   folder collection so every Ray worker opens the same files) are embedded with the default image
   model by the local engine and by ``--engine ray`` (a local cluster of ``--workers`` actors), each
   into its own fresh data folder. Prints images/s of each (the Ray figure with and without the
   cluster's start-up) and the lowest per-image cosine between the two builds' vectors.
2. IVF-PQ: the 60,000 vectors of the full built CIFAR-10 index (train + test ``embeddings.npy``,
   under ``--index-dir``, default the data folder's ``indexes/``; made by ``build-index --data
   /work/shared/datasets/cifar10`` for both splits) in one file; an
   IVF-PQ index of the default spec for that size is trained and written beside it. Prints bytes on
   disk of flat vs IVF-PQ, resident memory of a process that loads each and runs 200 queries
   (anonymous = what must fit in RAM; file-backed = page cache, evictable), recall@10 against the
   flat index on 1,000 stored vectors as queries, and p50 single-query latency of flat, IVF-PQ alone
   and IVF-PQ + exact re-ranking.

    python benchmarks/bench_scale.py --data /work/shared/datasets/cifar10 [--images 2000] [--index-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LATENCY_QUERIES = 200


def subset_folder(data: Path, n: int, out: Path) -> Path:
    """Copy a fixed random ``n`` of the test split's images (class folders kept) into ``out``."""
    files = sorted((data / "test").glob("*/*.jpg"))
    pick = sorted(np.random.default_rng(0).choice(len(files), size=n, replace=False))
    for i in pick:
        target = out / files[i].parent.name / files[i].name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(files[i], target)
    return out


def bench_engines(data: Path, n: int, workers: int) -> None:
    try:
        import ray  # noqa: F401
    except ImportError:
        print("engines: skipped, Ray is not installed (pip install -r requirements-ray.txt)")
        return
    from embeddings.distributed.ray_engine import build_with_ray, ray_cluster
    from embeddings.image.base import default_precision
    from embeddings.image.collections import open_collection
    from embeddings.index.store import build_index
    from embeddings.registry import get_image_embedder, resolve_image_model

    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        tmp = Path(tmp)
        folder = subset_folder(data, n, tmp / "images")
        collection = open_collection(str(folder))
        model_id, _ = resolve_image_model(data_dir=tmp / "local")
        results = {}
        for engine in ("local", "ray"):
            data_dir = tmp / engine
            embedder = get_image_embedder(model_id, data_dir).set_precision(default_precision())
            started = time.perf_counter()
            if engine == "local":
                index = build_index(collection, embedder, data_dir)
                results[engine] = (index.embeddings.copy(), time.perf_counter() - started, None)
            else:
                with ray_cluster(workers=workers):
                    up = time.perf_counter() - started
                    index, _ = build_with_ray(collection, embedder, data_dir, workers=workers, shard_size=256)
                results[engine] = (index.embeddings.copy(), time.perf_counter() - started, up)
        print(
            f"engines: {n} CIFAR-10 test images, model {model_id} ({embedder.precision}), {workers} Ray workers"
        )
        local_v, local_s, _ = results["local"]
        ray_v, ray_s, up = results["ray"]
        print(f"  local engine: {n / local_s:.1f} images/s ({local_s:.1f} s)")
        print(
            f"  ray engine:   {n / ray_s:.1f} images/s ({ray_s:.1f} s, of which {up:.1f} s starting the cluster; "
            f"{n / (ray_s - up):.1f} images/s without it)"
        )
        cos = np.sum(local_v * ray_v, axis=1)
        print(
            f"  ratio ray/local images/s: {local_s / ray_s:.2f}; lowest per-image cosine ray vs local: {cos.min():.6f}"
        )


def _child(mode: str, folder: str, nprobe: int, rerank: int) -> None:
    """In a fresh process: load one index, run LATENCY_QUERIES single queries, print latencies and memory."""
    import faiss

    from embeddings.index.ivfpq import RerankedIVFPQ, open_ivfpq

    def rss() -> dict:
        fields = {}
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(("RssAnon", "RssFile")):
                name, value = line.split(":")
                fields[name] = int(value.split()[0]) * 1024
        return fields

    folder = Path(folder)
    before = rss()
    queries = np.load(folder / "queries.npy")
    if mode == "flat":
        engine = faiss.read_index(str(folder / "index-flat.faiss"))
    else:
        vectors = np.load(folder / "embeddings.npy", mmap_mode="r")
        engine = RerankedIVFPQ(open_ivfpq(folder / "index-ivfpq.faiss"), vectors, nprobe, rerank)
        if mode == "ivfpq":
            engine = engine.ivf
            engine.nprobe = nprobe
    times = []
    for q in queries[:LATENCY_QUERIES]:
        t = time.perf_counter()
        engine.search(q[None], 10)
        times.append(time.perf_counter() - t)
    after = rss()
    print(
        json.dumps(
            {
                "p50_ms": statistics.median(times) * 1000,
                "anon": after["RssAnon"] - before["RssAnon"],
                "file": after["RssFile"] - before["RssFile"],
            }
        )
    )


def bench_ivfpq(index_dir: Path, nprobe: int, rerank: int) -> None:
    import faiss

    from embeddings.core.mathops import normalize  # noqa: F401  (the package imports as the app does)
    from embeddings.index.approximate import recall_at_k
    from embeddings.index.ivfpq import RerankedIVFPQ, default_spec, open_ivfpq, train_ivfpq

    parts = [
        np.load(p, mmap_mode="r")
        for p in sorted(index_dir.glob("cifar10-*-efficientnet_lite0-*/embeddings.npy"))
    ]
    if sum(len(p) for p in parts) != 60_000:
        raise SystemExit(f"expected the train and test indexes (60,000 vectors) under {index_dir}")
    with tempfile.TemporaryDirectory(prefix="bench-ivfpq-") as tmp:
        tmp = Path(tmp)
        vectors = np.concatenate(parts).astype(np.float32)
        np.save(tmp / "embeddings.npy", vectors)
        n, dim = vectors.shape
        flat = faiss.IndexFlatIP(dim)
        flat.add(vectors)
        faiss.write_index(flat, str(tmp / "index-flat.faiss"))
        spec = default_spec(n, dim)
        started = time.perf_counter()
        ivf, size = train_ivfpq(vectors, spec)
        trained = time.perf_counter() - started
        faiss.write_index(ivf, str(tmp / "index-ivfpq.faiss"))
        ids = np.sort(np.random.default_rng(0).choice(n, size=1000, replace=False))
        queries = vectors[ids]
        np.save(tmp / "queries.npy", queries)
        _, truth = flat.search(queries, 10)
        mapped = np.load(tmp / "embeddings.npy", mmap_mode="r")
        searcher = RerankedIVFPQ(open_ivfpq(tmp / "index-ivfpq.faiss"), mapped, nprobe, rerank)
        ivf_only = searcher.ivf
        ivf_only.nprobe = nprobe
        recall_ivf = recall_at_k(ivf_only.search(queries, 10)[1], truth)
        recall_rr = recall_at_k(searcher.search(queries, 10)[1], truth)
        sweep = []
        for probe in (16, 32, 64, 128):
            for depth in (256, 512):
                trial = RerankedIVFPQ(ivf_only, mapped, probe, depth)
                found = trial.search(queries, 10)[1]
                times = []
                for q in queries[:LATENCY_QUERIES]:
                    t = time.perf_counter()
                    trial.search(q[None], 10)
                    times.append(time.perf_counter() - t)
                sweep.append((probe, depth, recall_at_k(found, truth), statistics.median(times) * 1000))
        del flat, vectors, searcher, ivf_only, ivf, trial
        runs = {}
        for mode in ("flat", "ivfpq", "ivfpq+rerank"):
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    mode,
                    str(tmp),
                    "--nprobe",
                    str(nprobe),
                    "--rerank",
                    str(rerank),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            runs[mode] = json.loads(out.stdout.strip().splitlines()[-1])
        mb = 2**20
        flat_bytes = (tmp / "index-flat.faiss").stat().st_size
        ivf_bytes = (tmp / "index-ivfpq.faiss").stat().st_size
        vec_bytes = (tmp / "embeddings.npy").stat().st_size
        print(
            f"IVF-PQ: {n:,} vectors of {dim} dims, spec {spec} (nlist = 4 sqrt(n)), trained on {size:,} in {trained:.0f} s"
        )
        print(
            f"  on disk: flat {flat_bytes / mb:.1f} MB; IVF-PQ {ivf_bytes / mb:.1f} MB "
            f"(+ embeddings.npy {vec_bytes / mb:.1f} MB read only for re-ranking)"
        )
        for mode, run in runs.items():
            print(
                f"  {mode:13s} p50 {run['p50_ms']:.2f} ms/query; resident after {LATENCY_QUERIES} queries: "
                f"{run['anon'] / mb:.1f} MB anonymous + {run['file'] / mb:.1f} MB file-backed"
            )
        print(
            f"  recall@10 against flat (1,000 stored vectors as queries, nprobe={nprobe}): IVF-PQ {recall_ivf:.4f}, "
            f"IVF-PQ + re-ranking {rerank} {recall_rr:.4f}"
        )
        print("  sweep (same process, warm page cache): nprobe rerank recall@10 p50")
        for probe, depth, recall, p50 in sweep:
            print(f"    {probe:4d} {depth:4d} {recall:.4f} {p50:.2f} ms")
        print(
            f"  ratio p50 flat / (IVF-PQ + re-rank): {runs['flat']['p50_ms'] / runs['ivfpq+rerank']['p50_ms']:.2f}; "
            f"ratio anonymous memory flat / IVF-PQ+re-rank: {runs['flat']['anon'] / max(1, runs['ivfpq+rerank']['anon']):.1f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", default="/work/shared/datasets/cifar10", help="the CIFAR-10 folder (train/, test/)"
    )
    parser.add_argument(
        "--images", type=int, default=2000, help="images for the engine comparison (default 2000)"
    )
    parser.add_argument("--workers", type=int, default=2, help="Ray workers (default 2)")
    parser.add_argument(
        "--index-dir",
        default=None,
        help="the indexes folder of the full CIFAR-10 build (default: the data folder's)",
    )
    parser.add_argument("--nprobe", type=int, default=128)
    parser.add_argument("--rerank", type=int, default=256)
    parser.add_argument("--skip-engines", action="store_true", help="only the IVF-PQ part")
    parser.add_argument("--skip-ivfpq", action="store_true", help="only the engine part")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "FOLDER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return _child(args.child[0], args.child[1], args.nprobe, args.rerank)
    if not args.skip_engines:
        bench_engines(Path(args.data), args.images, args.workers)
    if not args.skip_ivfpq:
        from embeddings.config import data_dir

        bench_ivfpq(
            Path(args.index_dir) if args.index_dir else data_dir() / "indexes", args.nprobe, args.rerank
        )


if __name__ == "__main__":
    main()
