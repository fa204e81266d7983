"""Word-similarity benchmark of the text models, printed as a markdown table.

    python scripts/eval_wordsim.py                       # wordllama, minilm, local
    python scripts/eval_wordsim.py --models hashing local --no-timing
    python scripts/eval_wordsim.py --dir /path/to/wordsim --files EN-SIMLEX-999.txt

For each model: Spearman's rho between cosine similarity and human scores on each file,
then (unless --no-timing) the time to load the model in a fresh Python process (imports
included, model files already on disk) and the median time to embed 1,000 vocabulary words.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

DEFAULT_DIR = Path("/work/shared/eval/wordsim")
DEFAULT_FILES = ["EN-WS-353-ALL.txt", "EN-WS-353-SIM.txt", "EN-WS-353-REL.txt", "EN-SIMLEX-999.txt"]
DEFAULT_MODELS = ["wordllama", "minilm", "local"]

TIMING = """
import json, statistics, sys, time
t0 = time.perf_counter()
from embeddings.registry import get_text_embedder
from embeddings.text.vocab import load_vocab
embedder = get_text_embedder(sys.argv[1])
embedder.embed(["warm up"])
load = time.perf_counter() - t0
words = load_vocab()[:1000]
runs = []
for _ in range(3):
    t = time.perf_counter()
    embedder.embed(words)
    runs.append(time.perf_counter() - t)
print(json.dumps({"load": load, "embed_1000": statistics.median(runs)}))
"""


def time_model(model_id: str) -> dict:
    """Load and embedding times of ``model_id``, measured in a fresh interpreter."""
    done = subprocess.run(
        [sys.executable, "-c", TIMING, model_id],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"},
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"timing {model_id} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=DEFAULT_MODELS)
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="folder of word-pair files")
    parser.add_argument("--files", nargs="+", default=DEFAULT_FILES)
    parser.add_argument("--no-timing", action="store_true", help="skip the load/embed timings")
    args = parser.parse_args(argv)

    from embeddings.registry import get_text_embedder
    from embeddings.text.wordeval import evaluate_words, load_pairs

    datasets = {name: load_pairs(args.dir / name) for name in args.files}
    header = ["model", *(f"{Path(n).stem} ({len(p)})" for n, p in datasets.items())]
    if not args.no_timing:
        header += ["load (s)", "embed 1,000 words (s)"]
    rows = []
    for model_id in args.models:
        embedder = get_text_embedder(model_id)
        row = [f"`{model_id}` ({embedder.dim}-d)"]
        row += [f"{evaluate_words(pairs, embedder).spearman:.3f}" for pairs in datasets.values()]
        if not args.no_timing:
            timing = time_model(model_id)
            row += [f"{timing['load']:.2f}", f"{timing['embed_1000']:.3f}"]
        rows.append(row)
        print(f"done: {model_id}", file=sys.stderr)

    print(
        f"Spearman's rho, cosine vs human score (pairs in brackets); {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs\n"
    )
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
