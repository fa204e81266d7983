"""MiniLM (all-MiniLM-L6-v2) on sentence-transformers/torch against the same network exported to
ONNX and run on ONNX Runtime: texts/s and cosine to the torch vectors, in the same run.

Two workloads: words from the 20,000-word vocabulary (what the vocabulary, word lists and
analogies embed) and passages (the Python standard library's docstrings, cut to 256 word
pieces as MiniLM does: what documents embed). The engines take turns batch by batch, so load
from other work hits both alike.

    python benchmarks/bench_text_runtime.py [--words 4000] [--passages 400]
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import pkgutil
import sys
import sysconfig
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def stdlib_passages(n: int) -> list[str]:
    """Up to ``n`` docstrings (at least 200 characters) of standard-library modules and their members."""
    out = []
    skip = {"antigravity", "this", "idlelib", "turtledemo"}
    for info in sorted(pkgutil.iter_modules([sysconfig.get_paths()["stdlib"]]), key=lambda m: m.name):
        if len(out) >= n or info.name.startswith("_") or info.name in skip:
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                module = importlib.import_module(info.name)
        except Exception:  # noqa: BLE001 - some modules do not import here (tkinter, ...)
            continue
        for _, member in [(info.name, module), *inspect.getmembers(module)]:
            doc = inspect.getdoc(member) if callable(member) or inspect.ismodule(member) else None
            if doc and len(doc) >= 200 and doc not in out:
                out.append(doc)
            if len(out) >= n:
                break
    return out[:n]


def main() -> None:
    from embeddings.config import PACKAGE_DATA
    from embeddings.image.runtime import _onnxruntime, cpu_threads
    from embeddings.models.minilm import load_minilm

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--words", type=int, default=4000)
    parser.add_argument("--passages", type=int, default=400)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()

    import torch

    model = load_minilm()

    class Tokens(torch.nn.Module):
        """The transformer's last hidden state, called by keyword (its positional order changes)."""

        def __init__(self, bert):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask, token_type_ids):
            out = self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
            return out.last_hidden_state

    transformer = Tokens(model[0].auto_model).eval()
    tokenizer = model.tokenizer
    max_len = model.max_seq_length
    path = Path(tempfile.mkdtemp(prefix="bench-text-runtime-")) / "minilm.onnx"
    example = tokenizer(["a b", "c"], padding=True, return_tensors="pt")
    names = ["input_ids", "attention_mask", "token_type_ids"]
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            transformer,
            tuple(example[k] for k in names),
            str(path),
            dynamo=False,
            opset_version=17,
            input_names=names,
            output_names=["tokens"],
            dynamic_axes={**{k: {0: "batch", 1: "seq"} for k in names}, "tokens": {0: "batch", 1: "seq"}},
        )
    ort = _onnxruntime()
    options = ort.SessionOptions()
    options.intra_op_num_threads = cpu_threads()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def torch_batch(texts):
        return model.encode(texts, batch_size=len(texts), normalize_embeddings=True, convert_to_numpy=True)

    def onnx_batch(texts):
        enc = tokenizer(texts, padding=True, truncation=True, max_length=max_len, return_tensors="np")
        feeds = {k: enc[k].astype(np.int64) for k in names}
        tokens = session.run(None, feeds)[0]
        mask = feeds["attention_mask"][..., None].astype(np.float32)
        pooled = (tokens * mask).sum(1) / np.maximum(mask.sum(1), 1e-9)
        return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)

    words = (PACKAGE_DATA / "vocab_en.txt").read_text().split()[: args.words]
    passages = stdlib_passages(args.passages)
    print(
        f"{len(words)} words, {len(passages)} passages (mean {np.mean([len(p) for p in passages]):.0f} chars), "
        f"batch {args.batch}, {cpu_threads()} threads"
    )
    for name, texts in (("words", words), ("passages", passages)):
        batches = [texts[i : i + args.batch] for i in range(0, len(texts), args.batch)]
        for engine in (torch_batch, onnx_batch):  # warm-up
            engine(batches[0])
        seconds = {"torch": 0.0, "onnx": 0.0}
        vectors = {"torch": [], "onnx": []}
        for batch in batches:
            for key, engine in (("torch", torch_batch), ("onnx", onnx_batch)):
                t0 = time.perf_counter()
                vectors[key].append(engine(batch))
                seconds[key] += time.perf_counter() - t0
        a, b = (np.concatenate(vectors[k]) for k in ("torch", "onnx"))
        cos = (a * b).sum(1)
        rates = {k: len(texts) / s for k, s in seconds.items()}
        print(
            f"{name}: torch {rates['torch']:.0f} texts/s, onnx {rates['onnx']:.0f} texts/s, "
            f"onnx/torch {rates['onnx'] / rates['torch']:.2f}x; cosine to torch min {cos.min():.6f} mean {cos.mean():.6f}"
        )


if __name__ == "__main__":
    main()
