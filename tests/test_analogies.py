"""Analogies: 3CosAdd and 3CosMul scores, the Google test set, the evaluation and its CLI line."""

from __future__ import annotations

import numpy as np
import pytest
from text_fixtures import HashEmbedder

from embeddings.cli import main
from embeddings.core.fingerprint import sha256_file
from embeddings.core.mathops import normalize
from embeddings.errors import InvalidInputError
from embeddings.text import analogies
from embeddings.text.analogies import Question, analogy_scores, evaluate_analogies, load_questions
from embeddings.text.vocab import analogy_words

WORDS = ["king", "man", "woman", "queen", "prince", "apple"]


def toy_vectors() -> np.ndarray:
    """royalty, maleness and fruit axes: king - man + woman lands exactly on queen."""
    rows = {
        "king": [1, 1, 0],
        "man": [0, 1, 0],
        "woman": [0, -1, 0],
        "queen": [1, -1, 0],
        "prince": [1, 0.9, 0.2],
        "apple": [0, 0, 1],
    }
    return normalize(np.array([rows[w] for w in WORDS], dtype=np.float32))


def test_3cosmul_is_levy_and_goldberg_formula_and_3cosadd_the_sum_of_cosines():
    v = toy_vectors()
    a, b, c = v[0], v[1], v[2]
    mul = analogy_scores(v, a, b, c, "3cosmul")
    add = analogy_scores(v, a, b, c, "3cosadd")
    for i, x in enumerate(v):
        ca, cb, cc = (float(np.clip(x @ y, -1, 1)) for y in (a, b, c))
        assert mul[i] == pytest.approx(((ca + 1) / 2) * ((cc + 1) / 2) / ((cb + 1) / 2 + 1e-3), rel=1e-5)
        assert add[i] == pytest.approx(ca - cb + cc, abs=1e-6)
    batch = analogy_scores(v, v[[0, 0]], v[[1, 1]], v[[2, 2]], "3cosmul")
    np.testing.assert_allclose(batch, [mul, mul], rtol=1e-6)
    with pytest.raises(InvalidInputError, match="3cosadd, 3cosmul"):
        analogy_scores(v, a, b, c, "vector-offset")


def test_analogy_words_answers_queen_by_both_methods_and_never_an_input():
    v = toy_vectors()
    for method in ("3cosadd", "3cosmul"):
        answers = analogy_words(
            "king", "man", "woman", HashEmbedder(dim=3), k=3, words=WORDS, vectors=v, method=method
        )
        assert answers[0][0] == "queen"
        assert not {"king", "man", "woman"} & {w for w, _ in answers}


def test_questions_file_order_is_b_a_c_answer(tmp_path):
    path = tmp_path / "q.txt"
    path.write_text(": family\nman king woman queen\n: gram8-plural\nCat Cats Dog Dogs\n\n", encoding="utf-8")
    questions = load_questions(path)
    assert questions == [
        Question("family", "king", "man", "woman", "queen"),
        Question("gram8-plural", "cats", "cat", "dog", "dogs"),
    ]
    path.write_text(": family\nman king woman\n", encoding="utf-8")
    with pytest.raises(InvalidInputError, match="line 2 .* 3 words"):
        load_questions(path)


def test_the_bundled_test_set_is_the_google_one():
    assert (
        sha256_file(analogies.QUESTIONS_FILE)
        == "8c29b3332afc46f3fb8be04cb5297bf96f39aa7131272dff57869b4485b22a36"
    )
    questions = load_questions()
    assert len(questions) == 19544
    assert sum(analogies.is_semantic(q.section) for q in questions) == 8869  # the paper's split


def test_evaluation_counts_coverage_sections_and_excludes_the_question_words():
    v = toy_vectors()
    questions = [
        Question("family", "king", "man", "woman", "queen"),  # right
        Question("family", "queen", "woman", "man", "king"),  # right
        Question("gram8-plural", "king", "man", "woman", "prince"),  # wrong: queen wins
        Question("gram8-plural", "king", "man", "woman", "throne"),  # not in the vocabulary
    ]
    result = evaluate_analogies(questions, WORDS, v, "3cosadd")
    assert (result.total, result.asked, result.correct) == (4, 3, 2)
    assert result.by_section == {"family": (2, 2), "gram8-plural": (0, 1)}
    assert result.share(True) == 1.0 and result.share(False) == 0.0
    assert result.lines()[-1] == "analogy_accuracy=0.6667 questions=3 method=3cosadd"
    # an answer equal to a question word can never be found: it is excluded, not returned
    selfish = [Question("family", "king", "apple", "apple", "king")]
    assert evaluate_analogies(selfish, WORDS, v, "3cosmul").correct == 0


def test_cli_eval_analogies_ends_with_the_accuracy_line(tmp_path, capsys):
    path = tmp_path / "q.txt"
    path.write_text(": family\nman king woman queen\nboy girl brother sister\n", encoding="utf-8")
    code = main(["--data-dir", str(tmp_path / "data"), "eval-analogies", str(path), "--model", "hashing"])
    out = capsys.readouterr().out.strip().splitlines()
    assert code == 0
    assert out[-1].startswith("analogy_accuracy=") and out[-1].endswith("questions=2 method=3cosadd")
    assert main(["--data-dir", str(tmp_path / "data"), "eval-analogies", str(tmp_path / "none.txt")]) == 2
