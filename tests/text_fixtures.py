"""Deterministic fake text embedders and a mock OpenAI transport, shared by the text tests.

Import with ``from text_fixtures import ...`` (pytest puts ``tests/`` on ``sys.path``).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json

import numpy as np

from embeddings.text.base import TextEmbedder

TEST_KEY = "sk-test-DO-NOT-LEAK-0123456789abcdef"


def hash_vector(text: str, dim: int) -> np.ndarray:
    """A fixed pseudo-random float32 vector for ``text`` (same text, same vector)."""
    return _hash_vector(text, dim).copy()


@functools.lru_cache(maxsize=100_000)
def _hash_vector(text: str, dim: int) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")
    return np.random.default_rng(seed).standard_normal(dim).astype(np.float32)


class HashEmbedder(TextEmbedder):
    """Pseudo-random but deterministic vectors; records every batch it is asked to embed."""

    model_id = "fake-hash"
    description = "test embedder"

    def __init__(self, dim: int = 8, tag: str = "v1"):
        self.dim = dim
        self.tag = tag
        self.calls: list[list[str]] = []

    def fingerprint(self) -> str:
        return f"{self.model_id}:{self.dim}:{self.tag}"

    @property
    def embedded(self) -> int:
        return sum(len(c) for c in self.calls)

    def embed_batch(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        return np.stack([hash_vector(t, self.dim) for t in texts])


class TableEmbedder(TextEmbedder):
    """Vectors looked up in a fixed table (so test answers can be worked out by hand)."""

    model_id = "fake-table"
    description = "test embedder"

    def __init__(self, table: dict[str, list[float]]):
        self.table = {k: np.asarray(v, dtype=np.float32) for k, v in table.items()}
        self.dim = len(next(iter(self.table.values())))
        self.calls: list[list[str]] = []

    def embed_batch(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        return np.stack([self.table[t] for t in texts])


class FakeOpenAI:
    """An ``httpx2`` handler imitating POST /v1/embeddings; scripted failures come first.

    ``script`` is a list of actions consumed one per request: an int is an HTTP status to
    answer with, an exception class is raised, ``"ok"`` answers normally. When the script is
    used up every request succeeds. ``requests`` records the JSON body of every request.
    """

    def __init__(self, dim: int = 1536, script: list | None = None, headers: dict | None = None):
        self.dim = dim
        self.script = list(script or [])
        self.headers = headers or {}
        self.requests: list[dict] = []

    @property
    def inputs(self) -> list[str]:
        return [t for body in self.requests for t in body["input"]]

    def __call__(self, request):
        import httpx2

        body = json.loads(request.content)
        self.requests.append(body)
        action = self.script.pop(0) if self.script else "ok"
        if isinstance(action, type) and issubclass(action, Exception):
            raise action("scripted failure", request=request)
        if isinstance(action, tuple):  # (status, error code)
            status, code = action
            return httpx2.Response(status, json={"error": {"message": "scripted", "code": code}})
        if isinstance(action, int):
            message = f"scripted {action}; Incorrect API key provided: {TEST_KEY}"
            return httpx2.Response(
                action,
                json={"error": {"message": message, "type": "error", "code": None}},
                headers=self.headers,
            )
        data = []
        for i, text in enumerate(body["input"]):
            vector = hash_vector(text, self.dim)
            if body.get("encoding_format") == "base64":
                encoded = base64.b64encode(vector.astype(np.float32).tobytes()).decode()
            else:
                encoded = vector.tolist()
            data.append({"object": "embedding", "index": i, "embedding": encoded})
        return httpx2.Response(
            200,
            json={
                "object": "list",
                "data": data[::-1],  # out of order on purpose: the client must sort by index
                "model": body["model"],
                "usage": {"prompt_tokens": 1, "total_tokens": 1},
            },
        )

    def client(self):
        import httpx2

        return httpx2.Client(transport=httpx2.MockTransport(self))
