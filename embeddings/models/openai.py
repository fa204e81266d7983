"""OpenAI ``text-embedding-3-small`` / ``-large``: trimmed to 8,000 characters, cached, batched,
retried. Every vector is cached on disk (:class:`embeddings.text.cache.EmbeddingCache`), so no
text is paid for twice; the key never reaches a message, log line or file."""

from __future__ import annotations

import logging
import os
import random
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from .. import config
from ..core.deps import require
from ..errors import AuthenticationError, InvalidInputError, RemoteServiceError, UnknownModelError
from ..text.base import MAX_TEXT_CHARS, TextEmbedder, trim_text
from ..text.cache import EmbeddingCache

log = logging.getLogger(__name__)


PIP_OPENAI = "pip install openai==3.57.0"


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


# The most one request may take, connecting, waiting for the answer and retrying together: a
# server that accepts connections but never answers is given up on after this long, not after
# six full read timeouts (6.4 minutes). ``$EMBEDDINGS_OPENAI_TIMEOUT`` (seconds) changes it.
OPENAI_TOTAL_TIMEOUT_S = 60.0
TOTAL_TIMEOUT_ENV = "EMBEDDINGS_OPENAI_TIMEOUT"


def total_timeout_from_env() -> float:
    """``$EMBEDDINGS_OPENAI_TIMEOUT`` when it is a positive number of seconds, else 60."""
    try:
        value = float(os.environ.get(TOTAL_TIMEOUT_ENV, "") or OPENAI_TOTAL_TIMEOUT_S)
    except ValueError:
        return OPENAI_TOTAL_TIMEOUT_S
    return value if value > 0 else OPENAI_TOTAL_TIMEOUT_S


NO_KEY_MESSAGE = (
    "No OpenAI API key found. Set the OPENAI_API_KEY environment variable, or add "
    'OPENAI_API_KEY = "..." to .streamlit/secrets.toml, or use the offline "local" model.'
)


REJECTED_KEY_MESSAGE = (
    "OpenAI rejected the key (HTTP {status}). Check it: set OPENAI_API_KEY (or OPENAI_API_KEY in "
    ".streamlit/secrets.toml) to a valid key with access to embeddings, or use the local model."
)


# An upstream error body is never shown or logged: a server can echo the key in any spelling
# (upper-cased, base64, split), which no redaction catches. Messages name the HTTP status and,
# when it looks like one of OpenAI's codes, the error code.
_CODE_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,39}")


def _safe_code(code: str | None) -> str | None:
    return code if code and _CODE_PATTERN.fullmatch(code) else None


class OpenAIEmbedder(TextEmbedder):
    """OpenAI ``text-embedding-3-*``: trims, caches, batches and retries.

    Each input is cut to :data:`embeddings.text.MAX_TEXT_CHARS` characters (see
    :func:`embeddings.text.base.trimmed_indices`). Vectors already in the :class:`EmbeddingCache` are never
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
        total_timeout: float | None = None,
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
        self.total_timeout = total_timeout if total_timeout is not None else total_timeout_from_env()
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
                openai = require("openai", PIP_OPENAI, "the OpenAI models")
                kwargs: dict[str, Any] = {
                    "api_key": self._api_key,
                    "max_retries": 0,
                    "timeout": self._timeouts(openai, self.timeout),
                }
                if self._http_client is not None:
                    kwargs["http_client"] = self._http_client
                if self._base_url is not None:
                    kwargs["base_url"] = self._base_url
                self._client = openai.OpenAI(**kwargs)
            return self._client

    def _timeouts(self, openai: Any, limit: float) -> Any:
        """httpx timeouts for one attempt that has at most ``limit`` seconds left."""
        limit = max(0.05, min(self.timeout, limit))
        return openai.Timeout(limit, connect=min(limit, OPENAI_CONNECT_TIMEOUT_S))

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        """Exponential backoff with jitter: half the step fixed, half random; honours Retry-After."""
        step = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
        delay = step / 2 + self._rng.uniform(0, step / 2)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.backoff_max))
        return delay

    def _request(self, inputs: list[str]) -> np.ndarray:
        """One embeddings request with retries; returns an (n, dim) float32 array."""
        openai = require("openai", PIP_OPENAI, "the OpenAI models")
        client = self._get_client()
        failure = ""
        unreachable = 0  # attempts that could not connect at all
        deadline = time.monotonic() + self.total_timeout
        out_of_time = False
        for attempt in range(1, self.max_attempts + 1):
            self.requests += 1
            retry_after = None
            left = deadline - time.monotonic()
            try:
                response = client.embeddings.create(
                    model=self.model_name, input=inputs, timeout=self._timeouts(openai, left)
                )
                return self._parse(response, len(inputs))
            except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
                _log_status(exc)
                raise AuthenticationError(REJECTED_KEY_MESSAGE.format(status=exc.status_code)) from None
            except openai.BadRequestError as exc:
                _log_status(exc)
                raise InvalidInputError("OpenAI refused the input (HTTP 400). Try shorter texts.") from None
            except openai.RateLimitError as exc:
                _log_status(exc)
                if _error_code(exc) == "insufficient_quota":
                    raise RemoteServiceError(
                        "OpenAI says this key has run out of quota (HTTP 429 insufficient_quota); "
                        "check billing, or use the local model."
                    ) from None
                failure, retry_after = "rate-limited the request (HTTP 429)", _retry_after(exc)
            except openai.APIStatusError as exc:
                status = exc.status_code
                _log_status(exc)
                if not (status >= 500 or status in (408, 409)):
                    raise RemoteServiceError(
                        f"OpenAI returned HTTP {status}{_code_suffix(exc)}; its message is not shown "
                        "(it may repeat the key). Try again, or use the local model."
                    ) from None
                failure, retry_after = f"failed (HTTP {status})", _retry_after(exc)
            except openai.APITimeoutError as exc:
                if type(exc.__cause__).__name__ == "ConnectTimeout":
                    unreachable += 1
                    failure = "could not be reached (the connection timed out)"
                else:
                    failure = f"did not answer within {min(self.timeout, max(left, 0.0)):.3g} s"
            except openai.APIConnectionError:
                unreachable += 1
                failure = "could not be reached (connection error; is the network down?)"
            except (openai.OpenAIError, ValueError) as exc:
                raise RemoteServiceError(f"OpenAI sent an unusable response ({type(exc).__name__})") from None
            if attempt == self.max_attempts or unreachable >= self.max_connect_attempts:
                break
            delay = self._backoff(attempt, retry_after)
            if time.monotonic() + delay >= deadline:
                out_of_time = True
                break
            log.info("OpenAI %s; retry %d/%d in %.1f s", failure, attempt, self.max_attempts - 1, delay)
            self._sleep(delay)
        budget = f" ({self.total_timeout:g} s in all)" if out_of_time or deadline <= time.monotonic() else ""
        raise RemoteServiceError(
            f"OpenAI {failure}; gave up after {attempt} attempts{budget}. "
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


def _code_suffix(exc: Any) -> str:
    code = _safe_code(_error_code(exc))
    return f" ({code})" if code else ""


def _log_status(exc: Any) -> None:
    """Log an upstream error by its status and code only, never its body."""
    log.info("OpenAI answered HTTP %s%s", getattr(exc, "status_code", "?"), _code_suffix(exc))


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
