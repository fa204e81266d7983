"""The OpenAI embedder against a mocked HTTP transport: success, errors, retries, caching, trimming."""

from __future__ import annotations

import logging
import pickle
import traceback

import httpx2
import numpy as np
import pytest
from text_fixtures import TEST_KEY, FakeOpenAI, hash_vector

from embeddings import config
from embeddings.core.mathops import normalize
from embeddings.errors import AuthenticationError, InvalidInputError, RemoteServiceError
from embeddings.models import openai as tb
from embeddings.registry import get_text_embedder
from embeddings.text import base as textbase
from embeddings.text.base import MAX_TEXT_CHARS
from embeddings.text.cache import EmbeddingCache


@pytest.fixture
def cache_path(tmp_path):
    return tmp_path / "cache" / "embedding_cache.sqlite3"


@pytest.fixture
def sleeps():
    return []


@pytest.fixture
def make(cache_path, sleeps):
    """Build an embedder talking to a FakeOpenAI, caching under tmp_path, never really sleeping."""

    def build(fake: FakeOpenAI, model: str = "text-embedding-3-small", **kwargs):
        kwargs.setdefault("cache", EmbeddingCache(cache_path))
        kwargs.setdefault("max_attempts", 4)
        return tb.OpenAIEmbedder(
            model,
            api_key=TEST_KEY,
            http_client=fake.client(),
            base_url="http://openai.mock/v1",
            sleep=sleeps.append,
            **kwargs,
        )

    return build


def assert_no_key(exc: BaseException) -> None:
    text = "".join(traceback.format_exception(exc))
    assert TEST_KEY not in text and TEST_KEY not in repr(exc) and TEST_KEY not in str(exc)


def test_success_returns_unit_vectors_in_input_order(make):
    fake = FakeOpenAI()
    embedder = make(fake)
    texts = ["cat", "kitten", "car"]
    vectors = embedder.embed(texts)
    assert vectors.shape == (3, 1536) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    expected = normalize(np.stack([hash_vector(t, 1536) for t in texts]))
    np.testing.assert_allclose(vectors, expected, atol=1e-6)
    assert len(fake.requests) == 1
    assert fake.requests[0]["model"] == "text-embedding-3-small"
    assert fake.requests[0]["input"] == texts
    assert embedder._get_client().max_retries == 0


def test_large_model_dimension(make):
    embedder = make(FakeOpenAI(dim=3072), model="text-embedding-3-large")
    assert embedder.embed(["cat"]).shape == (1, 3072)
    assert embedder.model_id == "openai:text-embedding-3-large"


def test_cache_hit_skips_the_network_also_after_a_restart(make, cache_path):
    fake = FakeOpenAI()
    first = make(fake).embed(["cat", "dog"])
    assert fake.inputs == ["cat", "dog"]
    again = make(fake).embed(["dog", "cat"])
    assert len(fake.requests) == 1  # nothing new was sent
    np.testing.assert_array_equal(again, first[::-1])

    restarted = make(fake, cache=EmbeddingCache(cache_path))  # a fresh cache object on the same file
    mixed = restarted.embed(["cat", "bird", "dog"])
    assert fake.requests[-1]["input"] == ["bird"]
    assert restarted.cache_hits == 2 and restarted.fetched == 1
    np.testing.assert_array_equal(mixed[[0, 2]], first)


def test_duplicates_in_one_call_are_sent_once(make):
    fake = FakeOpenAI()
    vectors = make(fake).embed(["cat", "cat", "dog", "cat"])
    assert fake.inputs == ["cat", "dog"]
    np.testing.assert_array_equal(vectors[0], vectors[3])


@pytest.mark.parametrize("status", [401, 403])
def test_rejected_key_raises_authentication_error_without_the_key(make, status, cache_path):
    fake = FakeOpenAI(script=[status])
    embedder = make(fake)
    with pytest.raises(AuthenticationError) as info:
        embedder.embed(["cat"])
    message = str(info.value)
    assert "OpenAI rejected the key" in message and "OPENAI_API_KEY" in message and "local model" in message
    assert_no_key(info.value)
    assert len(fake.requests) == 1  # not retried
    assert EmbeddingCache(cache_path).count() == 0


def test_rate_limit_then_success_retries_with_backoff(make, sleeps):
    fake = FakeOpenAI(script=[429, 429])
    vectors = make(fake, backoff_base=1.0).embed(["cat"])
    assert vectors.shape == (1, 1536)
    assert len(fake.requests) == 3
    assert len(sleeps) == 2
    assert 0.5 <= sleeps[0] <= 1.0 and 1.0 <= sleeps[1] <= 2.0  # exponential, with jitter


def test_retry_after_header_is_honoured(make, sleeps):
    fake = FakeOpenAI(script=[429], headers={"retry-after": "7"})
    make(fake, backoff_max=30.0).embed(["cat"])
    assert sleeps == [7.0]


def test_server_errors_exhaust_retries(make, sleeps, cache_path):
    fake = FakeOpenAI(script=[500, 502, 503, 500, 500])
    with pytest.raises(RemoteServiceError) as info:
        make(fake, max_attempts=4).embed(["cat"])
    assert "gave up after 4 attempts" in str(info.value)
    assert len(fake.requests) == 4 and len(sleeps) == 3
    assert_no_key(info.value)
    assert EmbeddingCache(cache_path).count() == 0


def test_timeouts_and_connection_errors_are_retried(make, sleeps):
    fake = FakeOpenAI(script=[httpx2.ReadTimeout, httpx2.ConnectError])
    assert make(fake).embed(["cat"]).shape == (1, 1536)
    assert len(fake.requests) == 3 and len(sleeps) == 2


def test_connection_errors_exhaust_retries(make):
    fake = FakeOpenAI(script=[httpx2.ConnectError] * 3)
    with pytest.raises(RemoteServiceError, match="could not be reached"):
        make(fake, max_attempts=3).embed(["cat"])


def test_quota_exhaustion_is_not_retried(make, sleeps):
    fake = FakeOpenAI(script=[(429, "insufficient_quota")])
    with pytest.raises(RemoteServiceError, match="quota"):
        make(fake).embed(["cat"])
    assert len(fake.requests) == 1 and sleeps == []


def test_bad_request_is_an_input_error(make):
    fake = FakeOpenAI(script=[400])
    with pytest.raises(InvalidInputError) as info:
        make(fake).embed(["cat"])
    assert_no_key(info.value)
    assert "HTTP 400" in str(info.value) and "scripted" not in str(info.value)  # no upstream body


def test_missing_key_names_both_fixes(monkeypatch, tmp_path):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setattr(config, "SECRETS_FILE", tmp_path / "absent.toml")
    for build in (lambda: tb.OpenAIEmbedder(), lambda: get_text_embedder("openai:text-embedding-3-small")):
        with pytest.raises(AuthenticationError) as info:
            build()
        assert "OPENAI_API_KEY" in str(info.value) and "secrets.toml" in str(info.value)


def test_key_is_read_from_secrets_toml(monkeypatch, tmp_path):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(f'OPENAI_API_KEY = "{TEST_KEY}"\n')
    monkeypatch.setattr(config, "SECRETS_FILE", secrets)
    embedder = tb.OpenAIEmbedder(cache=EmbeddingCache(tmp_path / "c.sqlite3"))
    assert embedder._api_key == TEST_KEY


def test_long_inputs_are_trimmed_and_reported(make):
    fake = FakeOpenAI()
    embedder = make(fake)
    long_a = "a" * 5000 + " " + "b" * 5000
    long_b = long_a + " and more text that is cut off anyway"
    texts = ["short", long_a, long_b]
    assert textbase.trimmed_indices(texts) == [1, 2]
    assert textbase.trimmed_indices(["x" * MAX_TEXT_CHARS, "   "]) == []
    vectors = embedder.embed(texts)
    sent = fake.inputs
    assert [len(t) for t in sent] == [5, MAX_TEXT_CHARS]  # long_b trims to the same text as long_a
    np.testing.assert_array_equal(vectors[1], vectors[2])


def test_requests_are_batched_by_count_and_size(make):
    fake = FakeOpenAI(dim=1536)
    make(fake).embed([f"word{i}" for i in range(600)])
    assert [len(r["input"]) for r in fake.requests] == [512, 88]

    fake = FakeOpenAI(dim=1536)
    long_texts = [str(i) + "x" * (MAX_TEXT_CHARS - 3) for i in range(25)]
    make(fake).embed(long_texts)
    sizes = [sum(len(t) for t in r["input"]) for r in fake.requests]
    assert len(fake.requests) == 2 and max(sizes) <= tb.OPENAI_MAX_CHARS_PER_REQUEST


def test_only_complete_responses_are_cached(make, cache_path):
    fake = FakeOpenAI(script=["ok", 500, 500])
    embedder = make(fake, max_attempts=2)
    texts = [f"w{i}" for i in range(600)]  # two requests: the first succeeds, the second fails
    with pytest.raises(RemoteServiceError):
        embedder.embed(texts)
    assert EmbeddingCache(cache_path).count() == 512
    fake.script = []
    make(fake).embed(texts)
    assert fake.requests[-1]["input"] == texts[512:]


def test_malformed_response_is_not_cached(make, cache_path):
    fake = FakeOpenAI(dim=10)  # wrong dimension for the model
    with pytest.raises(RemoteServiceError, match="shape"):
        make(fake).embed(["cat"])
    assert EmbeddingCache(cache_path).count() == 0


def test_key_never_leaks(make, cache_path, caplog):
    caplog.set_level(logging.DEBUG)
    fake = FakeOpenAI(script=[429, 500])
    embedder = make(fake)
    embedder.embed(["cat", "dog"])
    assert TEST_KEY not in repr(embedder) and TEST_KEY not in str(embedder.__dict__.get("cache"))
    with pytest.raises(TypeError):
        pickle.dumps(embedder)
    assert TEST_KEY not in caplog.text
    for path in cache_path.parent.iterdir():
        assert TEST_KEY.encode() not in path.read_bytes()


def test_unreadable_cache_still_embeds(make, tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    fake = FakeOpenAI()
    embedder = make(fake, cache=EmbeddingCache(blocker / "cache.sqlite3"))  # cannot be created
    assert embedder.embed(["cat"]).shape == (1, 1536)
    assert len(fake.requests) == 1
