"""A fixed English vocabulary, its vectors per model (cached on disk), neighbours and analogies.

``embeddings/data/vocab_en.txt`` lists 20,000 common lowercase English words, most frequent
first (made by ``scripts/make_vocab.py`` from ``wordfreq``). Each model embeds it once; the
matrix is saved as ``<data_dir>/vocab/<model>-<key>.npy``, where the key covers the model's
fingerprint, the vocabulary file's sha256 and the package version, so a change to any of
them builds a new file. A file with the wrong shape, dtype or contents is rebuilt.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .. import __version__, config
from ..core.files import load_npy, save_npy_atomic
from ..core.fingerprint import fingerprint, sha256_file
from ..core.mathops import normalize, top_k
from ..errors import InvalidInputError
from .analogies import analogy_scores, check_method

if TYPE_CHECKING:
    from .base import TextEmbedder

log = logging.getLogger(__name__)

VOCAB_FILE = config.PACKAGE_DATA / "vocab_en.txt"
_MEMO: dict[tuple[str, int, int], np.ndarray] = {}
_MEMO_LOCK = threading.Lock()
_BUILD_LOCKS: dict[str, threading.Lock] = {}
_MEMO_SIZE = 3  # matrices kept in memory (an OpenAI-large one is 250 MB)

Neighbours = list[tuple[str, float]]


@functools.lru_cache(maxsize=4)
def _read_vocab(path: str) -> tuple[str, ...]:
    with open(path, encoding="utf-8") as fh:
        words = tuple(line.strip() for line in fh if line.strip())
    if not words:
        raise InvalidInputError(f"the vocabulary file {path} is empty")
    return words


def load_vocab(path: str | os.PathLike | None = None) -> list[str]:
    """The vocabulary words, most frequent first (``embeddings/data/vocab_en.txt`` by default)."""
    return list(_read_vocab(str(path or VOCAB_FILE)))


@functools.lru_cache(maxsize=4)
def vocab_sha(path: str) -> str:
    return sha256_file(path)


def vocab_cache_path(embedder: TextEmbedder, data_dir: str | os.PathLike | None = None) -> Path:
    """Where ``embedder``'s vocabulary matrix is kept: ``<data_dir>/vocab/<model>-<key>.npy``."""
    key = fingerprint(embedder.fingerprint(), vocab_sha(str(VOCAB_FILE)), __version__)
    model = re.sub(r"[^A-Za-z0-9_.-]+", "_", embedder.model_id) or "model"
    return config.data_dir(data_dir) / "vocab" / f"{model}-{key}.npy"


def _check(array: np.ndarray, shape: tuple[int, int]) -> str | None:
    """Why ``array`` is not a usable vocabulary matrix, or None when it is."""
    if array.dtype != np.float32:
        return f"dtype {array.dtype}, expected float32"
    if array.shape != shape:
        return f"shape {array.shape}, expected {shape}"
    if not np.all(np.isfinite(array)):
        return "non-finite values"
    norms = np.linalg.norm(array, axis=1)
    if not np.allclose(norms, 1.0, atol=1e-3):
        return "rows are not unit vectors"
    return None


def vocab_vectors(
    embedder: TextEmbedder,
    data_dir: str | os.PathLike | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """The (vocabulary size, dim) float32 unit vectors of :func:`load_vocab` under ``embedder``.

    Embedded once per model and stored atomically under ``<data_dir>/vocab/``; later calls
    (and later processes) load the file (``allow_pickle=False``). A missing, corrupt or
    mismatched file is rebuilt. ``progress(done, total)`` is called while embedding. The
    returned array is read-only and shared within the process.
    """
    path = vocab_cache_path(embedder, data_dir)
    with _MEMO_LOCK:
        lock = _BUILD_LOCKS.setdefault(str(path), threading.Lock())
    with lock:  # two sessions asking at once: one embeds, the other then loads
        return _vocab_vectors(embedder, path, progress)


def _vocab_vectors(
    embedder: TextEmbedder, path: Path, progress: Callable[[int, int], None] | None
) -> np.ndarray:
    words = load_vocab()
    shape = (len(words), embedder.dim)
    memo_key = None
    try:
        stat = path.stat()
        memo_key = (str(path), stat.st_size, stat.st_mtime_ns)
        with _MEMO_LOCK:
            if memo_key in _MEMO:
                return _MEMO[memo_key]
        array = load_npy(path)
        problem = _check(array, shape)
    except FileNotFoundError:
        problem = None
        array = None
    except (OSError, ValueError, EOFError) as exc:
        array, problem = None, f"unreadable ({exc})"
    if array is not None and problem is None:
        log.debug("loaded vocabulary vectors from %s", path)
    else:
        if problem:
            log.warning("rebuilding %s: %s", path.name, problem)
        array = np.ascontiguousarray(embedder.embed(words, progress=progress), dtype=np.float32)
        problem = _check(array, shape)
        if problem:
            raise RuntimeError(f"{embedder.model_id} produced unusable vocabulary vectors: {problem}")
        save_npy_atomic(path, array)
        stat = path.stat()
        memo_key = (str(path), stat.st_size, stat.st_mtime_ns)
    array.flags.writeable = False
    with _MEMO_LOCK:
        for key in [k for k in _MEMO if k[0] == str(path)]:
            del _MEMO[key]
        _MEMO[memo_key] = array
        while len(_MEMO) > _MEMO_SIZE:  # the oldest goes first
            del _MEMO[next(iter(_MEMO))]
    return array


def clear_memo() -> None:
    """Forget the vocabulary matrices kept in memory (files on disk stay)."""
    with _MEMO_LOCK:
        _MEMO.clear()


def nearest_words(
    query_vectors: np.ndarray,
    words: Sequence[str],
    vectors: np.ndarray,
    k: int = 10,
    exclude: Iterable[str] = (),
    exclude_per_query: Sequence[Iterable[str]] | None = None,
) -> list[Neighbours]:
    """The ``k`` vocabulary words closest (by cosine) to each query vector.

    ``query_vectors`` is one vector or an (n, dim) array; ``words``/``vectors`` are the
    vocabulary and its matrix. Words in ``exclude`` (and, per query, in
    ``exclude_per_query[i]``) are never returned; matching ignores case. Returns one list of
    ``(word, cosine)`` per query, best first.
    """
    queries = normalize(query_vectors)
    vectors = np.asarray(vectors)
    if vectors.ndim != 2 or len(vectors) != len(words):
        raise InvalidInputError(f"{len(words)} words but a vector matrix of shape {vectors.shape}")
    if queries.shape[1] != vectors.shape[1]:
        raise InvalidInputError(
            f"dimension mismatch: queries {queries.shape[1]} vs vocabulary {vectors.shape[1]}"
        )
    if exclude_per_query is not None and len(exclude_per_query) != len(queries):
        raise InvalidInputError(
            f"exclude_per_query has {len(exclude_per_query)} entries for {len(queries)} queries"
        )
    index = _index(words)
    common = _indices(index, exclude)
    scores = queries @ normalize(vectors).T if not _unit_rows(vectors) else queries @ vectors.T
    results = []
    for i, row in enumerate(scores):
        skip = common | (_indices(index, exclude_per_query[i]) if exclude_per_query is not None else set())
        ids, sims = top_k(np.clip(row, -1.0, 1.0), k, exclude=sorted(skip))
        results.append([(words[j], float(s)) for j, s in zip(ids, sims, strict=True)])
    return results


def analogy_words(
    a: str,
    b: str,
    c: str,
    embedder: TextEmbedder,
    k: int = 5,
    *,
    words: Sequence[str] | None = None,
    vectors: np.ndarray | None = None,
    data_dir: str | os.PathLike | None = None,
    progress: Callable[[int, int], None] | None = None,
    method: str = "3cosadd",
) -> Neighbours:
    """Answer ``a - b + c`` (king - man + woman) with the ``k`` best vocabulary words.

    ``method`` decides the order: ``3cosadd`` (closest to ``a - b + c``) or ``3cosmul`` (Levy and
    Goldberg's multiplicative score, :mod:`embeddings.text.analogies`); the scores returned are
    the answers' cosines to ``a - b + c`` either way. The inputs themselves are never answers. A word in the vocabulary (ignoring case) uses
    its vocabulary vector; any other word or phrase is embedded directly. ``words`` and
    ``vectors`` default to :func:`load_vocab` and :func:`vocab_vectors`. Raises
    :class:`InvalidInputError` unless there are three different, non-empty words.
    """
    terms = []
    for name, value in (("a", a), ("b", b), ("c", c)):
        if not isinstance(value, str) or not " ".join(value.split()):
            raise InvalidInputError(f"an analogy needs three words (a - b + c); {name} is empty")
        terms.append(" ".join(value.split()))
    if len({t.casefold() for t in terms}) < 3:
        raise InvalidInputError("an analogy needs three different words (a - b + c)")
    if words is None:
        words = load_vocab()
    if vectors is None:
        vectors = vocab_vectors(embedder, data_dir=data_dir, progress=progress)
    if len(words) != len(vectors):
        raise InvalidInputError(f"{len(words)} words but {len(vectors)} vectors")
    index = _index(words)
    rows = [index.get(t.casefold()) for t in terms]
    missing = [t for t, r in zip(terms, rows, strict=True) if r is None]
    embedded = dict(zip(missing, embedder.embed(missing), strict=True)) if missing else {}
    unit = normalize(
        np.stack([vectors[r] if r is not None else embedded[t] for t, r in zip(terms, rows, strict=True)])
    )
    target = normalize(unit[0] - unit[1] + unit[2])
    if check_method(method) == "3cosadd":
        return nearest_words(target, words, vectors, k, exclude=terms)[0]
    vocab_unit = np.asarray(vectors) if _unit_rows(np.asarray(vectors)) else normalize(vectors)
    scores = analogy_scores(vocab_unit, unit[0], unit[1], unit[2], method)
    ids, _ = top_k(scores, k, exclude=sorted(_indices(_index(words), terms)))
    cosines = np.clip(vocab_unit[ids] @ target[0], -1.0, 1.0)
    return [(words[j], float(c)) for j, c in zip(ids, cosines, strict=True)]


def similar_words(
    texts: Sequence[str],
    embedder: TextEmbedder,
    k: int = 10,
    *,
    data_dir: str | os.PathLike | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[Neighbours]:
    """The ``k`` vocabulary words nearest to each of ``texts`` (the text itself excluded)."""
    words = load_vocab()
    vectors = vocab_vectors(embedder, data_dir=data_dir, progress=progress)
    queries = embedder.embed(list(texts))
    return nearest_words(queries, words, vectors, k, exclude_per_query=[[t] for t in texts])


def _index(words: Sequence[str]) -> dict[str, int]:
    index: dict[str, int] = {}
    for i, word in enumerate(words):
        index.setdefault(word.casefold(), i)
    return index


def _indices(index: dict[str, int], items: Iterable[str]) -> set[int]:
    if isinstance(items, str):
        items = [items]
    return {index[w] for w in (" ".join(str(x).split()).casefold() for x in items) if w in index}


def _unit_rows(vectors: np.ndarray) -> bool:
    sample = vectors[: min(len(vectors), 256)]
    return bool(np.allclose(np.linalg.norm(sample, axis=1), 1.0, atol=1e-3))
