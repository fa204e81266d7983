"""The bundled documents' index, shipped: installed when the key and the split match exactly, a
normal build otherwise; the real shipped file is for today's default key and split, installs
without loading a model, and matches a fresh computation (a random subset; all of it: slow)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_documents import CHUNK, small_collection
from text_fixtures import HashEmbedder

from embeddings.documents.passages import PassageSettings, split_passages
from embeddings.index import shipped
from embeddings.index.documents import (
    PassageView,
    TextModelKey,
    build_document_index,
    get_or_build_document_index,
    load_document_index,
)
from embeddings.index.maps import saved_index_map
from embeddings.index.shipped import SHIPPED_REASON, save_shipped_documents, shipped_document_path
from embeddings.index.store import index_key

MAP = ("tsne", 5.0, 0)


@pytest.fixture
def shipped_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(shipped, "SHIPPED_DIR", tmp_path / "shipped")
    return tmp_path / "shipped"


class RefusingEmbedder(HashEmbedder):
    """The same fingerprint as ``HashEmbedder``; embedding anything fails the test."""

    def embed_batch(self, texts):
        raise AssertionError("a passage was embedded")


def ship(tmp_path, collection, embedder, settings=CHUNK):
    index = build_document_index(collection, settings, embedder, tmp_path / "maker")
    key = index_key(PassageView(collection, settings), TextModelKey(embedder))
    path = shipped_document_path(collection.describe()["name"], settings.label, embedder.model_id)
    save_shipped_documents(path, index, key, MAP)
    return path, index


def rewrite(path, **changes):
    with np.load(path, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    arrays.update(changes)
    path.unlink()
    np.savez(path, **arrays)


def test_a_matching_shipped_document_index_installs_without_embedding(tmp_path, shipped_dir):
    collection = small_collection(long=True)
    _, made = ship(tmp_path, collection, HashEmbedder(dim=16))
    data = tmp_path / "fresh"
    index, status = get_or_build_document_index(collection, CHUNK, RefusingEmbedder(dim=16), data)
    assert (status.action, status.reason) == ("built", SHIPPED_REASON)
    np.testing.assert_array_equal(index.passage_vectors, made.passage_vectors)
    np.testing.assert_array_equal(index.spans, made.spans)
    assert index.embeddings_sha256 == made.embeddings_sha256  # the same document vectors
    assert index.manifest["shipped_from"]["embeddings_sha256"] == index.embeddings_sha256
    assert index.cut() == made.cut() and index.settings == made.settings
    np.testing.assert_array_equal(saved_index_map(index, *MAP), saved_index_map(made, *MAP))  # map too
    load_document_index(collection, CHUNK, RefusingEmbedder(dim=16), data)  # manifest and sha256s verify
    _, again = get_or_build_document_index(collection, CHUNK, RefusingEmbedder(dim=16), data)
    assert again.action == "loaded"


@pytest.mark.parametrize(
    "change",
    ["package_version", "model", "settings", "spans", "damaged", "short", "float16"],
)
def test_a_shipped_document_index_that_does_not_match_exactly_is_a_normal_build(
    tmp_path, shipped_dir, change
):
    collection, settings = small_collection(long=True), CHUNK
    path, made = ship(tmp_path, collection, HashEmbedder(dim=16))
    embedder = HashEmbedder(dim=16)
    if change == "package_version":
        key = {**json.loads(str(np.load(path)["key"])), "package_version": "0.0.0-other"}
        rewrite(path, key=np.array(json.dumps(key)))
    elif change == "model":
        embedder = HashEmbedder(dim=16, tag="v2")
    elif change == "settings":  # the same file name cannot hold another split: keyed by its label
        settings = PassageSettings("chunk", 200, 20)
        path.rename(shipped_document_path(collection.describe()["name"], settings.label, embedder.model_id))
    elif change == "spans":  # the splitter changed without a key change: today's spans differ
        spans = made.spans.copy()
        spans[0, 2] -= 1
        rewrite(path, spans=spans)
    elif change == "damaged":
        path.write_bytes(path.read_bytes()[:200])
    elif change == "short":
        rewrite(path, vectors=made.passage_vectors[:-1])
    elif change == "float16":
        rewrite(path, vectors=made.passage_vectors.astype(np.float16))
    index, status = get_or_build_document_index(collection, settings, embedder, tmp_path / "fresh")
    assert embedder.embedded == len(index.spans) > 0  # every passage embedded
    assert status.reason != SHIPPED_REASON and "shipped_from" not in index.manifest
    assert saved_index_map(index, *MAP) is None


def test_no_shipped_file_is_a_normal_build(tmp_path, shipped_dir):
    embedder = HashEmbedder(dim=8)
    index, status = get_or_build_document_index(small_collection(), CHUNK, embedder, tmp_path / "fresh")
    assert status.action == "built" and status.reason != SHIPPED_REASON and embedder.embedded


# The real shipped file: the bundled documents, default passages, the default offline text model.


def bundled_and_default():
    from embeddings.documents.sources import open_documents
    from embeddings.registry import OFFLINE_TEXT_MODEL, get_text_embedder

    return open_documents("docs"), PassageSettings(), get_text_embedder(OFFLINE_TEXT_MODEL)


def the_shipped_file():
    collection, settings, embedder = bundled_and_default()
    path = shipped_document_path(collection.describe()["name"], settings.label, embedder.model_id)
    assert path.is_file(), f"{path} is missing: run scripts/make_docs_index.py"
    return path


@pytest.fixture
def fresh_install(monkeypatch):
    """As on a fresh install: MiniLM from the packaged copy (no Hugging Face cache)."""
    from embeddings.models import minilm

    monkeypatch.setattr(minilm, "minilm_hf_cache_dir", lambda: None)
    minilm._minilm_source.cache_clear()
    yield
    minilm._minilm_source.cache_clear()


@pytest.fixture
def no_model(monkeypatch):
    """Loading MiniLM or WordLlama fails the test."""
    from embeddings.models import minilm, wordllama

    def refuse(*args, **kwargs):
        raise AssertionError("a text model was loaded")

    monkeypatch.setattr(minilm, "load_minilm", refuse)
    monkeypatch.setattr(wordllama, "load_wordllama", refuse)


def test_the_shipped_document_index_is_for_todays_default_key_and_split(data_dir, fresh_install):
    collection, settings, embedder = bundled_and_default()
    with np.load(the_shipped_file(), allow_pickle=False) as data:
        key, spans = json.loads(str(data["key"])), data["spans"]
        params = json.loads(str(data["map_params"]))
    today = index_key(PassageView(collection, settings), TextModelKey(embedder))
    assert key == today, "the shipped document index was made for another key: run scripts/make_docs_index.py"
    assert np.array_equal(spans, split_passages(collection.texts, settings).spans()), (
        "the bundled documents are split differently today: run scripts/make_docs_index.py"
    )
    assert params == ["tsne", 30.0, 0] and key["collection"]["count"] == 2186


def test_the_shipped_document_index_installs_without_loading_a_model(data_dir, fresh_install, no_model):
    from ui.documents import doc_map_or_job

    collection, settings, embedder = bundled_and_default()
    index, status = get_or_build_document_index(collection, settings, embedder, data_dir)
    assert status.reason == SHIPPED_REASON and index.embeddings.shape == (2186, embedder.dim)
    layout = doc_map_or_job(index)  # the page's own map settings find the shipped map: no job
    assert isinstance(layout, np.ndarray) and layout.shape == (2186, 2)
    assert load_document_index(collection, settings, embedder, data_dir).count == 2186


def fresh_cosines(rows) -> np.ndarray:
    collection, settings, embedder = bundled_and_default()
    with np.load(the_shipped_file(), allow_pickle=False) as data:
        vectors = data["vectors"]
    texts = split_passages(collection.texts, settings).texts(collection)
    fresh = embedder.embed([texts[r] for r in rows])
    return np.sum(fresh * vectors[rows], axis=1)


def test_shipped_passage_vectors_match_a_fresh_computation_on_a_random_subset(data_dir):
    rows = np.random.default_rng(0).choice(2443, 24, replace=False)
    cosines = fresh_cosines(rows)
    assert cosines.min() >= 0.99999, dict(zip(rows.tolist(), cosines.tolist(), strict=True))


@pytest.mark.slow
def test_all_shipped_passage_vectors_match_a_fresh_computation(data_dir):
    cosines = fresh_cosines(np.arange(2443))
    assert cosines.min() >= 0.99999, int(np.argmin(cosines))


def test_the_page_opens_on_the_shipped_index_with_its_map_and_embeds_only_the_query(app_env, monkeypatch):
    """Semantic search with the default ``local`` model and an empty data folder: results and the
    map come from the shipped file; no passage is embedded and no t-SNE is run."""
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    from embeddings.index import documents, maps
    from tests.conftest import assert_clean, wait_for_jobs

    def refuse(*args, **kwargs):
        raise AssertionError("the shipped index was not used")

    monkeypatch.setattr(documents, "embed_passages", refuse)
    monkeypatch.setattr(maps, "fast_tsne", refuse)
    monkeypatch.setenv("EMBEDDINGS_TEXT_MODEL", "local")
    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "app.py"), default_timeout=120)
    at.run()
    at.switch_page("pages/documents.py").run()
    wait_for_jobs(at, 120)
    assert_clean(at)
    hits = [m.value for m in at.markdown if "· cosine" in m.value]
    assert len(hits) == 10 and "gzip" in hits[0], hits[:2]
    assert [c.key for c in at.get("plotly_chart") if c.key == "docs_map"] == [
        "docs_map"
    ]  # the shipped map, at once
    assert any("index built" in c.value for c in at.caption)
