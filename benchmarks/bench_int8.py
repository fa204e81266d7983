"""Does static int8 (ONNX Runtime, QDQ, per-channel weights) keep the neighbours?

    python benchmarks/bench_int8.py --data ../shared/datasets/cifar10 --calibration 256

For each variant (which nodes stay float, which calibration method) it quantises the model's
ONNX export (``embeddings.image.runtime``) with ``onnxruntime.quantization.quantize_static`` on
``--calibration`` images drawn at random from the *train* split, then reports, in one run:

* images/s and agreement@10 against fp32 eager PyTorch on the same ``--n`` test images
  (as ``bench-images``);
* leave-one-out precision@10 over the whole test split (10,000 images) against the float32
  ONNX Runtime model (``onnx``, whose top-10 neighbours agree 1.000 with fp32 eager).

The shipping rule: agreement@10 >= 0.95 and precision@10 within 0.01 of float32.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_input_size import loo_precision  # noqa: E402


def _embed(session, embedder, collection, ids, batch_size=64) -> tuple[np.ndarray, float]:
    from embeddings.core.mathops import normalize

    out, seconds = [], 0.0
    for s in range(0, len(ids), batch_size):
        batch = embedder.prepare_batch(collection.get_images(ids[s : s + batch_size]))
        start = time.perf_counter()
        out.append(np.asarray(session(batch), dtype=np.float32).reshape(len(batch), -1))
        seconds += time.perf_counter() - start
    return normalize(np.concatenate(out)), len(ids) / seconds


def sensitive_nodes(model_path: Path, which: str) -> list[str]:
    """Node names kept in float: ``first`` conv, ``depthwise`` convs, ``last`` layers (head conv onward)."""
    import onnx

    graph = onnx.load(str(model_path)).graph
    convs = [n for n in graph.node if n.op_type == "Conv"]
    keep: list[str] = []
    if "first" in which:
        keep.append(convs[0].name)
    if "depthwise" in which:
        for n in convs:
            group = next((a.i for a in n.attribute if a.name == "group"), 1)
            if group > 1:
                keep.append(n.name)
    if "last" in which:
        last = [i for i, n in enumerate(graph.node) if n.name == convs[-1].name][0]
        keep.extend(n.name for n in graph.node[last:])
    return sorted(set(keep))


def quantise(
    fp32_path: Path, out: Path, embedder, calibration_images, exclude: list[str], method: str
) -> None:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter(
                [
                    {"images": embedder.prepare_batch(calibration_images[s : s + 32]).numpy()}
                    for s in range(0, len(calibration_images), 32)
                ]
            )

        def get_next(self):
            return next(self.batches, None)

    pre = out.with_suffix(".pre.onnx")
    quant_pre_process(str(fp32_path), str(pre))
    quantize_static(
        str(pre),
        str(out),
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        nodes_to_exclude=exclude,
        calibrate_method={"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile}[
            method
        ],
        extra_options={"CalibMovingAverage": True} if method == "minmax" else {},
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/datasets/cifar10")
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--n", type=int, default=512, help="test images for speed and agreement@10")
    parser.add_argument("--calibration", type=int, default=256, help="train images to calibrate on")
    parser.add_argument(
        "--variants",
        default="none:minmax,first+depthwise+last:minmax,first+depthwise+last:percentile",
        help="comma-separated <excluded nodes>:<calibration> pairs",
    )
    parser.add_argument(
        "--limit", type=int, default=None, help="score only the first N test images (a dry run)"
    )
    args = parser.parse_args()

    import torch

    from embeddings.bench import neighbour_agreement
    from embeddings.image.collections import open_collection
    from embeddings.image.runtime import OnnxSession, load_session
    from embeddings.registry import get_image_embedder

    test = open_collection(args.data, "test")
    train = open_collection(args.data, "train")
    rng = np.random.default_rng(0)
    sample = sorted(rng.choice(len(test), size=args.n, replace=False).tolist())
    calib_ids = sorted(rng.choice(len(train), size=args.calibration, replace=False).tolist())
    calibration = train.get_images(calib_ids)
    work = Path(tempfile.mkdtemp(prefix="bench-int8-"))
    embedder = get_image_embedder(args.model, work)
    session = load_session(embedder, work)
    all_ids = list(range(args.limit or len(test)))
    labels = np.asarray(test.labels)[: len(all_ids)]

    with torch.inference_mode():
        exact = np.concatenate(
            [
                embedder.set_precision("fp32").embed_prepared(
                    embedder.prepare_batch(test.get_images(sample[s : s + 64]))
                )
                for s in range(0, args.n, 64)
            ]
        )
    fp32_vec, fp32_ips = _embed(session, embedder, test, sample)
    full, _ = _embed(session, embedder, test, all_ids)
    base_p = loo_precision(full, labels, test.classes)
    print(
        f"onnx float32: {fp32_ips:.1f} images/s, agreement@10 {neighbour_agreement(exact, fp32_vec):.4f}, "
        f"precision@10 {base_p:.4f}"
    )
    for variant in args.variants.split(","):
        which, method = variant.split(":")
        exclude = sensitive_nodes(session.path, which) if which != "none" else []
        out = work / f"int8-{which}-{method}.onnx"
        start = time.perf_counter()
        quantise(session.path, out, embedder, calibration, exclude, method)
        took = time.perf_counter() - start
        q = OnnxSession(out)
        vec, ips = _embed(q, embedder, test, sample)
        agreement = neighbour_agreement(exact, vec)
        full_q, _ = _embed(q, embedder, test, all_ids)
        p = loo_precision(full_q, labels, test.classes)
        ok = agreement >= 0.95 and abs(p - base_p) <= 0.01
        print(
            f"int8 [{which} float, {method}, {len(exclude)} nodes excluded, quantised in {took:.0f}s]: "
            f"{ips:.1f} images/s ({ips / fp32_ips:.2f}x onnx float32), agreement@10 {agreement:.4f}, "
            f"precision@10 {p:.4f} ({p - base_p:+.4f}) -> {'ships' if ok else 'fails the rule'}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
