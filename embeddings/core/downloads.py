"""Downloads, in one place: atomic, checksum-checked, fast-failing, and never retried in a loop.

Every file the package fetches (ResNet18 and CLIP weights, the CIFAR-10 archive) goes through
:func:`download_file`. :func:`download_once` adds a memo of failures, so an offline machine
pays the few seconds of a failed attempt once per :data:`RETRY_DOWNLOAD_AFTER_S`, not on
every call.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import socket
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

DOWNLOAD_TIMEOUT_S = 5.0  # per connect/read: a dead network fails in seconds, a slow one still works


RETRY_DOWNLOAD_AFTER_S = 300.0  # a failed download is not retried within this time (same process)


_download_failures: dict[tuple[str, str], tuple[float, str]] = {}


def download_file(
    url: str,
    dest: str | os.PathLike,
    expected: tuple[str, str] | None = None,
    timeout: float = DOWNLOAD_TIMEOUT_S,
) -> Path:
    """Download ``url`` to ``dest`` atomically and return ``dest``.

    The bytes go to a temp file in ``dest``'s folder; when ``expected`` = (hash algorithm,
    hex digest or digest prefix) is given the hash is checked, then the file is moved into
    place with ``os.replace``. ``timeout`` applies to connecting and to each read, so an
    offline machine fails within seconds. Raises ``OSError`` for network and disk problems
    and ``ValueError`` for a checksum mismatch; ``dest`` is never left half-written.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.new(expected[0]) if expected else None
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "embedding-explorer"})
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(request, timeout=timeout) as response:
            while chunk := response.read(1 << 20):
                out.write(chunk)
                if digest is not None:
                    digest.update(chunk)
        if expected is not None:
            got, want = digest.hexdigest(), expected[1].lower()
            if not got.startswith(want):
                raise ValueError(
                    f"checksum mismatch for {url}: expected {expected[0]} {want}, got {got[: len(want)]}"
                )
        os.replace(tmp, dest)
    except http.client.HTTPException as exc:  # IncompleteRead and friends are not OSErrors
        tmp.unlink(missing_ok=True)
        raise OSError(f"download interrupted: {exc!r}") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dest


def describe_download_error(exc: BaseException) -> str:
    """A short human reason for a failed download ("offline: ...", "timed out", ...)."""
    reason = getattr(exc, "reason", None)
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(reason, socket.gaierror) or isinstance(exc, socket.gaierror):
        return f"offline: the host name could not be resolved ({reason or exc})"
    if isinstance(reason, TimeoutError) or isinstance(exc, TimeoutError):
        return "offline or unreachable: the connection timed out"
    if isinstance(reason, ConnectionError) or isinstance(exc, ConnectionError):
        return f"offline or unreachable: {reason or exc}"
    return str(reason or exc)


class DownloadError(OSError):
    """A download failed now or recently; ``str(exc)`` is the short human reason."""


def recent_failure(url: str, dest: str | os.PathLike) -> str | None:
    """The reason ``url`` -> ``dest`` failed within :data:`RETRY_DOWNLOAD_AFTER_S`, else None."""
    failure = _download_failures.get((url, str(dest)))
    if failure and time.monotonic() - failure[0] < RETRY_DOWNLOAD_AFTER_S:
        return failure[1]
    return None


def download_once(url: str, dest: str | os.PathLike, expected: tuple[str, str] | None = None) -> Path:
    """:func:`download_file`, unless the same download failed recently: then, or when it fails
    now, raise :class:`DownloadError` with the reason (remembered for the next caller)."""
    failure = recent_failure(url, dest)
    if failure is None:
        try:
            return download_file(url, dest, expected=expected)
        except (OSError, ValueError) as exc:
            failure = describe_download_error(exc)
            _download_failures[(url, str(dest))] = (time.monotonic(), failure)
    raise DownloadError(failure)


def clear_download_failures() -> None:
    """Forget failed downloads so the next call tries the network again."""
    _download_failures.clear()


def hf_cache_dirs() -> list[Path]:
    """Every folder the Hugging Face hub may use as its cache (``HF_HUB_CACHE``,
    ``HUGGINGFACE_HUB_CACHE``, ``HF_HOME/hub``, ``XDG_CACHE_HOME`` or ``~/.cache``): a superset."""
    env = os.environ
    homes = [env.get("HF_HOME"), Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "huggingface"]
    found = [env.get("HF_HUB_CACHE"), env.get("HUGGINGFACE_HUB_CACHE")] + [
        Path(h) / "hub" for h in homes if h
    ]
    return [Path(p) for p in found if p]


def hf_cache_may_hold(repo_id: str) -> bool:
    """False when no Hugging Face cache folder has ``repo_id`` at all: then asking
    ``huggingface_hub`` (about 0.3 s to import) cannot find it either. True means "look"."""
    folder = "models--" + repo_id.replace("/", "--")
    return any((cache / folder).is_dir() for cache in hf_cache_dirs())
