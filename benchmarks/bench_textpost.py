"""Word similarity before/after vocabulary-mean centring and removing top principal directions.

Usage (from the repository root, with the word-similarity files in ../shared):

    python benchmarks/bench_textpost.py [--wordsim ../shared/eval/wordsim]

Prints Spearman's rho on WS-353 (all, sim, rel) and SimLex-999 for:

* ``local-raw`` as it is, the default ``local``, and ``local-raw`` post-processed as a whole (centred, then the top D principal
  directions of its 20,000-word vocabulary removed, D = 0, 1, 2, 3, 5, 10);
* ``local-raw`` rebuilt from post-processed halves: MiniLM and/or WordLlama each centred (and D
  directions removed) before the halves are normalised and concatenated.

Same scoring as ``python -m embeddings eval-words`` (cosine vs human score, all pairs).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from embeddings.core.mathops import normalize
from embeddings.models.local import PostProcessedTextEmbedder, vocabulary_statistics
from embeddings.registry import get_text_embedder
from embeddings.text.wordeval import evaluate_words, load_pairs

SETS = ["EN-WS-353-ALL", "EN-WS-353-SIM", "EN-WS-353-REL", "EN-SIMLEX-999"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wordsim", default="../shared/eval/wordsim")
    args = parser.parse_args()
    pairs = {s: load_pairs(Path(args.wordsim) / f"{s}.txt") for s in SETS}
    print("variant: " + " ".join(SETS))

    def show(name, embedder):
        row = [evaluate_words(pairs[s], embedder).spearman for s in SETS]
        print(f"{name}: " + " ".join(f"{v:.4f}" for v in row), flush=True)

    show("local-raw", get_text_embedder("local-raw"))
    show("local (default: MiniLM half centred)", get_text_embedder("local"))
    for d in (0, 1, 2, 3, 5, 10):
        show(
            f"local-raw, whole vector centred, D={d}",
            PostProcessedTextEmbedder(get_text_embedder("local-raw"), d),
        )

    words = sorted({w for s in SETS for a, b, _ in pairs[s] for w in (a, b)})
    row = {w: i for i, w in enumerate(words)}
    parts = {p: get_text_embedder(p) for p in ("minilm", "wordllama")}
    raw = {p: e.embed(words) for p, e in parts.items()}

    def half(part: str, d: int | None) -> np.ndarray:
        v = raw[part]
        if d is None:
            return v
        mean, components = vocabulary_statistics(parts[part], d)
        v = v - mean
        return normalize(v - (v @ components.T) @ components if len(components) else v)

    from scipy.stats import spearmanr

    for dm in (None, 0, 1, 2, 3, 5):
        for dw in (None, 0, 1, 2, 3, 5):
            vectors = normalize(np.hstack([normalize(half("minilm", dm)), normalize(half("wordllama", dw))]))
            scores = []
            for s in SETS:
                a = vectors[[row[p[0]] for p in pairs[s]]]
                b = vectors[[row[p[1]] for p in pairs[s]]]
                scores.append(spearmanr((a * b).sum(axis=1), [p[2] for p in pairs[s]]).statistic)
            name = (
                f"halves: minilm D={'raw' if dm is None else dm}, wordllama D={'raw' if dw is None else dw}"
            )
            print(f"{name}: " + " ".join(f"{v:.4f}" for v in scores), flush=True)


if __name__ == "__main__":
    main()
