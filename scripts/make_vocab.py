"""Generate ``embeddings/data/vocab_en.txt``: common English words in frequency order.

The list comes from the ``wordfreq`` package, which is needed only to run this script
(``pip install wordfreq==3.1.1``); it is not a runtime dependency of the app.

    python scripts/make_vocab.py            # writes 20,000 words
    python scripts/make_vocab.py --size 30000 --output /tmp/vocab.txt

Kept: lowercase ASCII words. Dropped: anything with digits, apostrophes, hyphens or
non-ASCII letters; single letters other than "a" and "i"; two-letter tokens that are
not English words ("ll", "ve", "bj", ...); vowel-less tokens ("www", "pwn");
letters repeated three times in a row ("zzz"); roman numerals ("xiv"); a short list
of slurs and explicit terms, so the app does not offer them as neighbours.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

DEFAULT_OUTPUT = Path(__file__).resolve().parent.parent / "embeddings" / "data" / "vocab_en.txt"
DEFAULT_SIZE = 20_000

TWO_LETTER_WORDS = set(
    "ad ah am an as at aw ax be by do eh ex go ha he hi hm ho id if in is it la lo ma me "
    "mr ms my no of oh ok on or ow ox oy pa pi so to tv uh um up us we ya ye yo".split()
)
VOWELLESS_WORDS = {"hmm", "shh", "nth", "tsk", "brr", "psst", "pfft", "hymn", "rhythm", "rhythms", "lynch"}
REAL_WORDS_THAT_LOOK_ROMAN = {"mix", "mid", "dim", "lid", "mild", "civil", "vivid", "livid", "ill"}
# Not exhaustive: enough that the vocabulary's nearest neighbours are presentable in a demo.
BLOCKED = set(
    """
    fuck fucked fucker fuckers fucking fucks motherfucker motherfuckers shit shits shitty bullshit
    cunt cunts twat twats cock cocks dick dicks dickhead pussy pussies whore whores slut sluts
    bitch bitches bastard bastards asshole assholes wank wanker wankers blowjob blowjobs cum cumshot
    porn porno pornhub xxx nigger niggers nigga niggas faggot faggots fag fags retard retards retarded
    kike kikes spic spics chink chinks tranny trannies dyke dykes paki pakis gook gooks coon coons
    """.split()
)
ROMAN = re.compile(r"^m{0,4}(cm|cd|d?c{0,3})(xc|xl|l?x{0,3})(ix|iv|v?i{0,3})$")
ASCII_WORD = re.compile(r"^[a-z]+$")


def keep(word: str) -> bool:
    """True for a plain lowercase English-looking word."""
    if not ASCII_WORD.match(word) or word in BLOCKED:
        return False
    if len(word) == 1:
        return word in ("a", "i")
    if len(word) == 2:
        return word in TWO_LETTER_WORDS
    if not re.search(r"[aeiouy]", word) and word not in VOWELLESS_WORDS:
        return False
    if re.search(r"(.)\1\1", word):
        return False
    if ROMAN.match(word) and word not in REAL_WORDS_THAT_LOOK_ROMAN:
        return False
    return True


def build(size: int) -> list[str]:
    """Return ``size`` kept words from wordfreq's English list, most frequent first."""
    try:
        from wordfreq import top_n_list
    except ImportError:
        sys.exit("this script needs wordfreq: pip install wordfreq==3.1.1")
    words: list[str] = []
    seen: set[str] = set()
    for word in top_n_list("en", size * 3, wordlist="best"):
        word = word.strip().lower()
        if word not in seen and keep(word):
            seen.add(word)
            words.append(word)
            if len(words) == size:
                return words
    sys.exit(f"wordfreq gave only {len(words)} usable words; asked for {size}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=DEFAULT_SIZE, help="number of words (default 20000)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    words = build(args.size)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.output.with_suffix(".tmp")
    tmp.write_text("\n".join(words) + "\n", encoding="utf-8")
    tmp.replace(args.output)
    print(f"wrote {len(words)} words to {args.output}")


if __name__ == "__main__":
    main()
