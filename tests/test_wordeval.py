"""Word-pair files and the Spearman evaluation, with answers worked out by hand."""

from __future__ import annotations

import math
import os

import pytest
from text_fixtures import TableEmbedder

from embeddings import cli
from embeddings.errors import InvalidInputError
from embeddings.text.wordeval import WordEvalResult, evaluate_words, load_pairs

# four words on the unit circle at 0, 30, 60 and 90 degrees
C30, S30 = math.cos(math.radians(30)), math.sin(math.radians(30))
ANGLES = TableEmbedder({"a": [1, 0], "b": [C30, S30], "c": [S30, C30], "d": [0, 1]})


def write(tmp_path, text: str, name: str = "pairs.txt"):
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return path


def test_load_pairs_skips_blank_and_comment_lines(tmp_path):
    path = write(tmp_path, "\ufeff# word1 word2 score\n\na\tb 9\r\n  c   d\t1.5  \n# end\n")
    assert load_pairs(path) == [("a", "b", 9.0), ("c", "d", 1.5)]


@pytest.mark.parametrize(
    "line, problem",
    [
        ("a b", "expected 'word1 word2 score'"),
        ("a b c d", "4 fields"),
        ("a b high", "not a number"),
        ("a b nan", "finite"),
    ],
)
def test_malformed_lines_name_their_line_number(tmp_path, line, problem):
    path = write(tmp_path, f"a b 1\n\n{line}\n")
    with pytest.raises(InvalidInputError) as info:
        load_pairs(path)
    assert "line 3" in str(info.value) and problem in str(info.value)


def test_missing_or_empty_file(tmp_path):
    with pytest.raises(InvalidInputError, match="not found"):
        load_pairs(tmp_path / "absent.txt")
    with pytest.raises(InvalidInputError, match="no word pairs"):
        load_pairs(write(tmp_path, "# only a comment\n"))


def test_spearman_matches_the_hand_computed_value():
    # cosines: a-b 0.866, a-c 0.5, a-d 0.0, b-c 0.866  -> ranks 3.5, 2, 1, 3.5
    # human:   9,         5,      1,      2           -> ranks 4,   3, 1, 2
    # Pearson of the ranks: 3 / sqrt(4.5 * 5) = sqrt(0.4)
    pairs = [("a", "b", 9.0), ("a", "c", 5.0), ("a", "d", 1.0), ("b", "c", 2.0)]
    result = evaluate_words(pairs, ANGLES)
    assert isinstance(result, WordEvalResult)
    assert result.pairs == 4
    assert result.spearman == pytest.approx(math.sqrt(0.4), abs=1e-9)


def test_perfect_and_reversed_order():
    pairs = [("a", "b", 3.0), ("a", "c", 2.0), ("a", "d", 1.0)]
    assert evaluate_words(pairs, ANGLES).spearman == pytest.approx(1.0)
    reversed_pairs = [(x, y, -s) for x, y, s in pairs]
    assert evaluate_words(reversed_pairs, ANGLES).spearman == pytest.approx(-1.0)


def test_each_word_is_embedded_once(tmp_path):
    embedder = TableEmbedder(ANGLES.table)
    pairs = load_pairs(write(tmp_path, "a b 9\na c 5\nb c 2\nc a 4\n"))
    evaluate_words(pairs, embedder)
    sent = [w for call in embedder.calls for w in call]
    assert sorted(sent) == ["a", "b", "c"]


def test_too_few_pairs_or_constant_scores():
    with pytest.raises(InvalidInputError):
        evaluate_words([("a", "b", 1.0)], ANGLES)
    with pytest.raises(InvalidInputError, match="equal"):
        evaluate_words([("a", "b", 1.0), ("a", "c", 1.0)], ANGLES)


def _not_a_file(tmp_path, kind: str) -> str:
    if kind == "fifo":
        path = tmp_path / "pairs.fifo"
        os.mkfifo(path)
        return str(path)
    return {"device": os.devnull, "folder": str(tmp_path)}[kind]


@pytest.mark.parametrize("kind", ["fifo", "device", "folder"])
def test_load_pairs_opens_only_regular_files(tmp_path, kind):
    """A FIFO would block the reader forever and a device would be read as it streams; both are refused."""
    with pytest.raises(InvalidInputError, match="is not a regular file|is a folder"):
        load_pairs(_not_a_file(tmp_path, kind))


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_cli_eval_words_on_a_fifo_or_device_is_an_error(tmp_path, capsys, kind):
    assert cli.main(["eval-words", _not_a_file(tmp_path, kind), "--model", "hashing"]) == 2
    err = capsys.readouterr().err
    assert "error: " in err and "is not a regular file" in err and "Traceback" not in err
