"""Exceptions raised by the embeddings package, and what an OS error means to a user.

Every error a user can cause or fix derives from :class:`EmbeddingsError`, so the app
and the CLI can show its message instead of a traceback. An ``OSError`` (full disk, no
permission) is explained by :func:`explain_os_error` in both front ends alike.
"""

import errno


class EmbeddingsError(Exception):
    """Base class for errors with a message meant for the user."""


class InvalidInputError(EmbeddingsError, ValueError):
    """The caller's input (words, ids, parameters, images) is unusable."""


class UnknownModelError(EmbeddingsError, KeyError):
    """A model id is not in the registry; the message lists the valid ids."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class MissingDependencyError(EmbeddingsError, ImportError):
    """An optional package is not installed; the message gives the pip command."""


class ModelUnavailableError(EmbeddingsError):
    """A model's weights cannot be had (offline, no cache, bad checksum)."""


class AuthenticationError(EmbeddingsError):
    """The OpenAI key is missing or was rejected."""


class RemoteServiceError(EmbeddingsError):
    """A remote embedding service failed after retries (rate limit, timeout, network)."""


class DatasetUnavailableError(EmbeddingsError):
    """An image collection cannot be found or downloaded."""


class IndexStateError(EmbeddingsError):
    """Base for on-disk index problems."""


class StaleIndexError(IndexStateError):
    """An index on disk was built for something other than what was asked."""


class CorruptIndexError(IndexStateError):
    """An index on disk is truncated, damaged or incomplete."""


class IndexNotBuiltError(IndexStateError):
    """No index exists on disk yet for this collection and model."""


class WorkCancelledError(EmbeddingsError):
    """Long work stopped because its ``should_stop`` callback said so (e.g. the browser tab is gone)."""


_OS_ERRORS = {
    errno.ENOSPC: ("the disk is full", "free some space on the data folder's disk"),
    errno.EACCES: (
        "a file or folder could not be read or written: permission denied",
        "make the data folder writable (and the images readable), or use another data folder",
    ),
    errno.EROFS: ("the data folder is on a read-only file system", "use a data folder on a writable disk"),
    errno.ENOTDIR: (
        "a path that should be a folder is a file",
        "point the data folder (--data-dir or $EMBEDDINGS_DATA_DIR) at a folder, or at a path that does not exist yet",
    ),
    errno.EEXIST: (
        "a file is in the way of a folder the data folder needs",
        "point the data folder (--data-dir or $EMBEDDINGS_DATA_DIR) at a folder, or at a path that does not exist yet",
    ),
}
_OS_ERRORS[errno.EPERM] = _OS_ERRORS[errno.EACCES]
if hasattr(errno, "EDQUOT"):  # not on every platform
    _OS_ERRORS[errno.EDQUOT] = ("the disk quota is used up", "free some space in the data folder")


def explain_os_error(exc: OSError) -> tuple[str, str]:
    """``(what happened, what to do)`` for an OS error, in words without paths or errno text (those
    belong in the log or a details expander): "the disk is full", "free some space ..."."""
    if exc.errno in _OS_ERRORS:
        return _OS_ERRORS[exc.errno]
    reason = (exc.strerror or "").lower() or "an unknown error"
    return f"a file could not be read or written ({reason})", "check the data folder's disk and permissions"
