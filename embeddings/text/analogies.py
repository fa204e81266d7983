"""Word analogies (king - man + woman = ?): two ways to score an answer, and their evaluation.

* **3CosAdd** (Mikolov et al. 2013): the word closest to ``a - b + c``, i.e. the best
  ``cos(x, a) - cos(x, b) + cos(x, c)``.
* **3CosMul** (Levy and Goldberg 2014): the best ``cos'(x, a) * cos'(x, c) / (cos'(x, b) + eps)``
  with cosines shifted to [0, 1]; one large similarity can no longer outvote the other two.

:func:`evaluate_analogies` scores a model on the Google analogy test set (``questions-words.txt``
of the word2vec distribution, 19,544 questions in 14 sections; a copy ships in
``embeddings/data/``) over a fixed vocabulary: a question counts when all four words are in it,
and the three question words are never answers. All vectors are unit rows.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..config import PACKAGE_DATA
from ..core.files import open_regular_file
from ..errors import InvalidInputError

METHODS = ("3cosadd", "3cosmul")
MUL_EPSILON = 1e-3  # Levy and Goldberg's epsilon, against division by zero
QUESTIONS_FILE = PACKAGE_DATA / "questions-words.txt"
# What the analogy tab uses: the best measured offline combination, minilm + 3CosMul at 0.664 of the
# 11,347 covered questions (README "Measured quality":
# `python -m embeddings eval-analogies --model ID --method M` for every offline text model).
BEST_MODEL = "minilm"
BEST_METHOD = "3cosmul"
QUERY_BATCH = 512


def check_method(method: str) -> str:
    """``method`` if it is one of :data:`METHODS`, else :class:`InvalidInputError`."""
    if method not in METHODS:
        raise InvalidInputError(f"unknown analogy method {method!r}; choose one of {', '.join(METHODS)}")
    return method


def analogy_scores(vocab: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray, method: str) -> np.ndarray:
    """Scores of every vocabulary row as the answer to ``a - b + c`` (higher is better).

    ``vocab`` is (n, d) unit rows; ``a``, ``b``, ``c`` are (d,) unit vectors or (q, d) batches,
    giving (n,) or (q, n) scores. Exclusion of the question words is the caller's.
    """
    check_method(method)
    cos_a, cos_b, cos_c = (np.clip(np.atleast_2d(v) @ vocab.T, -1.0, 1.0) for v in (a, b, c))
    if method == "3cosadd":
        scores = cos_a - cos_b + cos_c
    else:
        scores = ((cos_a + 1) / 2) * ((cos_c + 1) / 2) / ((cos_b + 1) / 2 + MUL_EPSILON)
    return scores[0] if np.ndim(a) == 1 else scores


@dataclass(frozen=True)
class Question:
    """``a - b + c = answer`` (``man king woman queen`` in the file is king - man + woman = queen)."""

    section: str
    a: str
    b: str
    c: str
    answer: str


def load_questions(path: str | os.PathLike | None = None) -> list[Question]:
    """Read a ``questions-words.txt`` file (``: section`` lines, then ``b a c answer`` lines)."""
    path = QUESTIONS_FILE if path is None else path
    try:
        with open_regular_file(path) as fh:
            text = fh.read().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"cannot read the analogy file {os.fspath(path)!r}: {exc}") from exc
    questions, section = [], ""
    for number, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if parts[0] == ":":
            section = " ".join(parts[1:])
            continue
        if len(parts) != 4:
            raise InvalidInputError(f"line {number} of the analogy file has {len(parts)} words, expected 4")
        b, a, c, answer = (p.lower() for p in parts)
        questions.append(Question(section, a, b, c, answer))
    if not questions:
        raise InvalidInputError("the analogy file has no questions")
    return questions


def is_semantic(section: str) -> bool:
    """The file's five semantic sections; the nine ``gram*`` ones are syntactic."""
    return not section.startswith("gram")


@dataclass
class AnalogyResult:
    """Accuracy of one model and method: overall, semantic/syntactic and per section."""

    method: str
    total: int  # questions in the file
    asked: int  # questions whose four words are all in the vocabulary
    correct: int
    by_section: dict[str, tuple[int, int]] = field(default_factory=dict)  # section -> (correct, asked)

    @property
    def accuracy(self) -> float:
        return self.correct / self.asked if self.asked else 0.0

    def share(self, semantic: bool) -> float:
        """Accuracy over the semantic (or syntactic) sections."""
        pairs = [v for s, v in self.by_section.items() if is_semantic(s) == semantic]
        asked = sum(n for _, n in pairs)
        return sum(c for c, _ in pairs) / asked if asked else 0.0

    def lines(self) -> list[str]:
        """Per-section lines, then semantic/syntactic, then ``analogy_accuracy=... questions=...``."""
        out = [f"{s:32s} {c / n:.4f}  ({c}/{n})" for s, (c, n) in self.by_section.items()]
        out.append(f"semantic {self.share(True):.4f}  syntactic {self.share(False):.4f}")
        out.append(f"coverage {self.asked}/{self.total} questions (all four words in the vocabulary)")
        out.append(f"analogy_accuracy={self.accuracy:.4f} questions={self.asked} method={self.method}")
        return out


def evaluate_analogies(
    questions: Sequence[Question], words: Sequence[str], vectors: np.ndarray, method: str = "3cosadd"
) -> AnalogyResult:
    """Answer every covered question over the vocabulary ``words``/``vectors`` (unit rows)."""
    check_method(method)
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or len(vectors) != len(words):
        raise InvalidInputError(f"{len(words)} words but a vector matrix of shape {vectors.shape}")
    index = {w.casefold(): i for i, w in reversed(list(enumerate(words)))}
    rows, sections = [], []
    for q in questions:
        ids = [index.get(w) for w in (q.a, q.b, q.c, q.answer)]
        if None not in ids:
            rows.append(ids)
            sections.append(q.section)
    result = AnalogyResult(method, len(questions), len(rows), 0)
    for section in dict.fromkeys(q.section for q in questions):
        result.by_section[section] = (0, 0)
    ids = np.asarray(rows, dtype=np.int64).reshape(-1, 4)
    for start in range(0, len(ids), QUERY_BATCH):
        batch = ids[start : start + QUERY_BATCH]
        scores = analogy_scores(
            vectors, vectors[batch[:, 0]], vectors[batch[:, 1]], vectors[batch[:, 2]], method
        )
        scores[np.arange(len(batch))[:, None], batch[:, :3]] = -np.inf  # the question words are no answers
        hits = scores.argmax(axis=1) == batch[:, 3]
        for section, hit in zip(sections[start : start + len(batch)], hits, strict=True):
            correct, asked = result.by_section[section]
            result.by_section[section] = (correct + int(hit), asked + 1)
        result.correct += int(hits.sum())
    result.by_section = {s: v for s, v in result.by_section.items() if v[1]}
    return result
