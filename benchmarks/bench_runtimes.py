"""ONNX Runtime against OpenVINO (and the torch modes) on the same preprocessed images.

    python benchmarks/bench_runtimes.py --data ../shared/datasets/cifar10 --n 512

Every engine runs the same ONNX export (``embeddings.image.runtime``) or torch module on the
same float batches (batch 64, the machine's cores), measured in one run; agreement@10 is
against fp32 eager. OpenVINO is optional (``pip install openvino==2026.4.1``): it was measured
once to choose the kept runtime and is not a dependency.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _time(fn, batches) -> tuple[float, np.ndarray]:
    from embeddings.core.mathops import normalize

    fn(batches[0])  # warm-up
    start = time.perf_counter()
    out = [np.asarray(fn(b), dtype=np.float32).reshape(len(b), -1) for b in batches]
    seconds = time.perf_counter() - start
    return sum(len(b) for b in batches) / seconds, normalize(np.concatenate(out))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/datasets/cifar10")
    parser.add_argument("--split", default="test")
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--n", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()

    import torch

    from embeddings.bench import neighbour_agreement
    from embeddings.image.collections import open_collection
    from embeddings.image.runtime import cpu_threads, load_session
    from embeddings.registry import get_image_embedder

    collection = open_collection(args.data, args.split)
    ids = sorted(np.random.default_rng(0).choice(len(collection), size=args.n, replace=False).tolist())
    images = [np.asarray(img) for img in collection.get_images(ids)]
    data_dir = Path(tempfile.mkdtemp(prefix="bench-runtimes-"))
    embedder = get_image_embedder(args.model, data_dir)
    batches = [
        embedder.prepare_batch(images[s : s + args.batch_size]) for s in range(0, args.n, args.batch_size)
    ]
    threads = cpu_threads()
    print(f"{args.model}: {args.n} images, batch {args.batch_size}, {threads} threads")

    rows = []
    with torch.inference_mode():
        embedder.set_precision("fp32")
        base_ips, exact = _time(lambda b: embedder._run(b), batches)
        rows.append(("fp32 eager", base_ips, 1.0))
        embedder.set_precision("fast")
        ips, vec = _time(lambda b: embedder._run(b), batches)
        rows.append(("fast (TorchScript)", ips, neighbour_agreement(exact, vec)))
    session = load_session(embedder, data_dir)
    ips, vec = _time(session, batches)
    rows.append(("ONNX Runtime fp32", ips, neighbour_agreement(exact, vec)))
    try:
        import openvino as ov
    except ImportError:
        print("openvino not installed: pip install openvino==2026.4.1 to compare")
    else:
        core = ov.Core()
        compiled = core.compile_model(
            core.read_model(str(session.path)),
            "CPU",
            {
                "INFERENCE_NUM_THREADS": threads,
                "PERFORMANCE_HINT": "LATENCY",
                "INFERENCE_PRECISION_HINT": "f32",
            },
        )
        request = compiled.create_infer_request()

        def run_ov(batch):
            return request.infer({0: batch.numpy()})[compiled.output(0)]

        ips, vec = _time(run_ov, batches)
        version = ov.__version__.split("-")[0]
        rows.append((f"OpenVINO {version} fp32", ips, neighbour_agreement(exact, vec)))

        # The throughput mode: one stream per core, batches split across them.
        tput = core.compile_model(
            core.read_model(str(session.path)),
            "CPU",
            {"PERFORMANCE_HINT": "THROUGHPUT", "INFERENCE_PRECISION_HINT": "f32"},
        )
        streams = int(tput.get_property("NUM_STREAMS"))
        queue = ov.AsyncInferQueue(tput, streams)

        def run_ov_streams(batch):
            parts = np.array_split(batch.numpy(), streams)
            results = [None] * len(parts)

            def done(request, i):
                results[i] = request.get_output_tensor(0).data.copy()

            queue.set_callback(done)
            for i, part in enumerate(parts):
                queue.start_async({0: part}, i)
            queue.wait_all()
            return np.concatenate(results)

        ips, vec = _time(run_ov_streams, batches)
        rows.append((f"OpenVINO {version} fp32 x{streams} streams", ips, neighbour_agreement(exact, vec)))
    for name, ips, agreement in rows:
        print(f"{name:>34s}: {ips:7.1f} images/s  {ips / base_ips:5.2f}x  agreement@10 {agreement:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
