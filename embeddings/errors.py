"""Exceptions raised by the embeddings package.

Every error a user can cause or fix derives from :class:`EmbeddingsError`, so the app
and the CLI can show its message instead of a traceback.
"""


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
