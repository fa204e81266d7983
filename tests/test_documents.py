"""Documents: parsing uploads (each format, every limit), passages, the bundled corpus, text folders,
and the document index (build, load, stale, corrupt, the embedding cache), with fake embedders."""

from __future__ import annotations

import gzip
import json
import re
import shutil
import time

import numpy as np
import pytest
from openai_server import MockOpenAIServer
from text_fixtures import HashEmbedder

from embeddings.documents.collection import MAX_DOCUMENTS, DocumentCollection
from embeddings.documents.corpus import CORPUS_FILE, bundled_collection
from embeddings.documents.folders import TEXT_FOLDERS_ENV, configured_text_folders, open_text_folder
from embeddings.documents.parsing import MAX_UPLOAD_BYTES, parse_documents, table_columns
from embeddings.documents.passages import MAX_PASSAGES, PassageSettings, split_passages
from embeddings.errors import CorruptIndexError, IndexNotBuiltError, InvalidInputError, StaleIndexError
from embeddings.index.documents import (
    DocumentIndex,
    build_document_index,
    document_index_dir,
    get_or_build_document_index,
    load_document_index,
    place_query,
)
from embeddings.index.evaluation import evaluate_retrieval
from embeddings.index.maps import index_map
from embeddings.index.store import ImageIndex
from embeddings.index.textquality import passage_quality

CHUNK = PassageSettings("chunk", 200, 40)
TRIM = PassageSettings("trim", trim_chars=300)


def small_collection(n_per_group: int = 6, long: bool = False) -> DocumentCollection:
    texts, groups = [], []
    for g, topic in enumerate(["cats purr and sleep", "ships sail the sea", "stars shine at night"]):
        for i in range(n_per_group):
            filler = " ".join(f"lorem{j} ipsum{j * 7 % 13}" for j in range(120 if long and i == 0 else 3))
            body = f"{topic} {i} {filler}"
            texts.append(body.strip())
            groups.append(f"group{g}")
    ids = [str(i) for i in range(len(texts))]
    return DocumentCollection("tiny-docs", "memory", ids, [f"doc {i}" for i in ids], texts, groups)


# ------------------------------------------------------------------------------ parsing


def test_txt_is_one_document_per_paragraph():
    data = b"First para line one\nline two\n\n  \nSecond para\r\n\r\nThird"
    c = parse_documents(data, "notes.txt")
    assert c.texts == ["First para line one\nline two", "Second para", "Third"]
    assert c.titles[0] == "First para line one" and c.labels is None


def test_markdown_splits_at_headings_but_not_inside_code():
    data = b"intro text\n# One\nbody one\n```\n# not a heading\n```\n## Two ##\nbody two\n"
    c = parse_documents(data, "doc.md")
    assert c.titles == ["intro text", "One", "Two"]
    assert "# not a heading" in c.texts[1] and c.texts[2] == "body two"


def test_csv_finds_text_label_and_title_columns():
    data = b"Title,Body,Category\nA,alpha text,x\nB,beta text,y\nC,,x\n"
    c = parse_documents(data, "t.csv")
    assert c.texts == ["alpha text", "beta text"]  # the empty row is left out
    assert c.titles == ["A", "B"] and c.classes == ["x", "y"] and list(c.labels) == [0, 1]


def test_csv_without_a_text_column_names_the_columns_found():
    data = b"name,score\nA,1\n"
    with pytest.raises(InvalidInputError, match=r"no text column.*'name', 'score'"):
        parse_documents(data, "t.csv")
    assert table_columns(data, "t.csv") == ["name", "score"]
    assert parse_documents(data, "t.csv", text_column="name").texts == ["A"]
    with pytest.raises(InvalidInputError, match="no text column 'nope'"):
        parse_documents(data, "t.csv", text_column="nope")


def test_jsonl_rows_and_bad_lines():
    data = b'{"text": "one", "label": "a"}\n\n{"text": "two", "label": "b"}\n'
    c = parse_documents(data, "d.jsonl")
    assert c.texts == ["one", "two"] and c.classes == ["a", "b"]
    with pytest.raises(InvalidInputError, match="line 2 is not JSON"):
        parse_documents(b'{"text": "one"}\n{oops\n', "d.jsonl")
    with pytest.raises(InvalidInputError, match="not a JSON object"):
        parse_documents(b'["text"]\n', "d.jsonl")
    with pytest.raises(InvalidInputError, match=r"columns found are 'body2'"):
        parse_documents(b'{"body2": "x"}\n', "d.jsonl")


@pytest.mark.parametrize(
    ("data", "name", "message"),
    [
        (b"", "e.txt", "is empty"),
        (b"  \n\n ", "e.csv", "is empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "pic.txt", "binary bytes"),
        (b"caf\xe9 au lait", "latin1.txt", "not UTF-8"),
        (b"text\n\n", "x.pdf", "upload .txt, .md, .csv or .jsonl"),
        (b"\n\x01\x02\n\n\x7f\n", "x.md", "no document with text"),
    ],
)
def test_bad_uploads_are_refused_with_a_reason(data, name, message):
    with pytest.raises(InvalidInputError, match=message):
        parse_documents(data, name)


def test_an_upload_over_10_mb_is_refused_before_parsing():
    with pytest.raises(InvalidInputError, match="at most 10 MB"):
        parse_documents(b"a" * (MAX_UPLOAD_BYTES + 1), "big.txt")


@pytest.mark.parametrize("name", ["many.csv", "many.txt", "many.jsonl"])
def test_100000_one_word_documents_are_refused_quickly(name):
    if name.endswith(".csv"):
        data = b"text\n" + b"word\n" * 100_000
    elif name.endswith(".txt"):
        data = b"word\n\n" * 100_000
    else:
        data = b'{"text": "word"}\n' * 100_000
    with pytest.raises(InvalidInputError, match=f"more than {MAX_DOCUMENTS:,} documents"):
        parse_documents(data, name)


def test_a_1_mb_document_is_chunked_up_to_the_passage_limit_and_reported_cut():
    c = parse_documents(("lorem ipsum " * 90_000).encode(), "one.txt")
    assert len(c) == 1 and len(c.texts[0]) > 1_000_000
    chunked = split_passages(c.texts, PassageSettings())
    assert len(chunked) == MAX_PASSAGES and chunked.cut == [0]
    trimmed = split_passages(c.texts, PassageSettings("trim"))
    assert len(trimmed) == 1 and trimmed.end[0] == 8000 and trimmed.cut == [0]


def test_same_upload_same_fingerprint_changed_byte_another():
    a = parse_documents(b"one\n\ntwo", "a.txt")
    assert a.fingerprint() == parse_documents(b"one\n\ntwo", "a.txt").fingerprint()
    assert a.fingerprint() != parse_documents(b"one\n\ntwO", "a.txt").fingerprint()


# ------------------------------------------------------------------------------ passages


def test_chunks_cover_the_text_with_overlap_and_bounded_length():
    text = " ".join(f"word{i}" for i in range(400))
    p = split_passages([text, "short"], CHUNK)
    spans = [(s, e) for d, s, e in p.spans() if d == 0]
    assert spans[0][0] == 0 and spans[-1][1] == len(text)
    assert all(e - s <= CHUNK.chunk_chars for s, e in spans)
    assert all(b[0] < a[1] for a, b in zip(spans, spans[1:], strict=False))  # consecutive passages overlap
    assert all(text[s - 1] == " " for s, _ in spans[1:])  # each starts at a word
    assert list(p.doc).count(1) == 1 and p.cut == []


@pytest.mark.parametrize(
    "kwargs", [{"mode": "split"}, {"chunk_chars": 10}, {"overlap": 600}, {"trim_chars": 5}]
)
def test_bad_passage_settings_are_refused(kwargs):
    with pytest.raises(InvalidInputError):
        PassageSettings(**kwargs)


# ------------------------------------------------------------------------------ bundled corpus and folders


def test_bundled_corpus_is_real_grouped_text_and_small():
    c = bundled_collection()
    assert len(c) >= 2000 and 10 <= len(c.classes) <= 20
    assert CORPUS_FILE.stat().st_size < 3 * 2**20
    assert (CORPUS_FILE.parent / "stdlib_docs.LICENSE").read_text().count("Python Software Foundation")
    counts = np.bincount(c.labels)
    assert counts.min() >= 50  # every group has enough documents to score
    title = c.titles.index("gzip.decompress")
    assert c.groups[title] == "compression, archives and hashing" and "decompress" in c.texts[title].lower()
    with gzip.open(CORPUS_FILE, "rt") as fh:
        assert set(json.loads(fh.readline())) == {"id", "title", "text", "group"}


def test_text_folders_come_from_the_environment_only(tmp_path, monkeypatch):
    (tmp_path / "news" / "sport").mkdir(parents=True)
    (tmp_path / "news" / "weather").mkdir()
    (tmp_path / "news" / "sport" / "a.txt").write_text("goal scored late")
    (tmp_path / "news" / "weather" / "b.md").write_text("# Rain\nrain tomorrow")
    (tmp_path / "news" / "weather" / "c.bin").write_bytes(b"\x00\x01")
    (tmp_path / "news" / "weather" / "d.txt").write_bytes(b"\x00binary")
    assert configured_text_folders() == []
    monkeypatch.setenv(TEXT_FOLDERS_ENV, f"{tmp_path / 'news'}:{tmp_path / 'missing'}")
    assert configured_text_folders() == [tmp_path / "news"]
    c = open_text_folder(tmp_path / "news")
    assert c.ids == ["sport/a.txt", "weather/b.md"] and c.classes == ["sport", "weather"]


# ------------------------------------------------------------------------------ the index


def test_document_index_builds_once_and_is_an_image_index(tmp_path):
    c, e = small_collection(long=True), HashEmbedder(dim=16)
    index, status = get_or_build_document_index(c, CHUNK, e, tmp_path)
    assert status.action == "built" and isinstance(index, ImageIndex) and isinstance(index, DocumentIndex)
    assert index.embeddings.shape == (len(c), 16) and index.embeddings.dtype == np.float32
    assert np.allclose(np.linalg.norm(index.embeddings, axis=1), 1, atol=1e-5)
    assert index.labels.tolist() == c.labels.tolist() and index.classes == c.classes
    assert len(index.spans) > len(c)  # the long document has several passages
    assert set(index.manifest["files"]) >= {
        "passages.npy",
        "passage_spans.npy",
        "labels.npy",
        "embeddings.npy",
    }
    assert index.manifest["key"]["collection"]["split"] == "chunk200-40"
    calls = e.embedded
    again, status = get_or_build_document_index(c, CHUNK, e, tmp_path)
    assert status.action == "loaded" and e.embedded == calls
    # what maps, retrieval scores and k-NN use works unchanged
    ids, scores = again.neighbours([0], 3)
    assert ids.shape == (1, 3) and 0 not in ids[0]
    assert 0.0 <= evaluate_retrieval(again, k=3).precision <= 1.0
    assert index_map(again, "pca").shape == (len(c), 2)
    quality = passage_quality(again, "fake-hash", k=3, texts=c.texts, long_chars=300)
    assert quality.passages == len(index.spans) and 0 <= quality.best_passage <= 1
    assert quality.long_documents == 3 and 0 <= quality.long_best_passage <= 1


def test_search_scores_a_document_as_its_best_passage(tmp_path):
    c, e = small_collection(long=True), HashEmbedder(dim=32)
    index = build_document_index(c, CHUNK, e, tmp_path)
    row = int(np.flatnonzero(index.spans[:, 0] == 0)[2])  # the long document's third passage
    query = e.embed([index.passage_text(c, row)])[0]
    hits = index.search_documents(query, 3)
    assert hits.ids[0] == 0 and hits.passages[0] == row and hits.scores[0] == pytest.approx(1.0, abs=1e-5)
    assert np.all(np.diff(hits.scores) <= 0) and len(set(hits.ids.tolist())) == 3
    with pytest.raises(InvalidInputError):
        index.search_documents(query, len(c) + 1)


def test_trim_cuts_long_documents_and_says_which(tmp_path):
    c = small_collection(long=True)
    index = build_document_index(c, TRIM, HashEmbedder(dim=8), tmp_path)
    assert len(index.spans) == len(c) and index.cut() == [0, 6, 12]  # the first of each group is long


def test_settings_and_contents_key_the_index(tmp_path):
    c, e = small_collection(), HashEmbedder(dim=8)
    build_document_index(c, CHUNK, e, tmp_path)
    assert document_index_dir(c, CHUNK, e, tmp_path) != document_index_dir(c, TRIM, e, tmp_path)
    with pytest.raises(IndexNotBuiltError):
        load_document_index(c, TRIM, e, tmp_path)
    changed = DocumentCollection(c.name, c.source, c.ids, c.titles, [*c.texts[:-1], "changed"], c.groups)
    with pytest.raises(StaleIndexError, match="fingerprint"):
        load_document_index(changed, CHUNK, e, tmp_path)
    _, status = get_or_build_document_index(changed, CHUNK, e, tmp_path)
    assert status.action == "rebuilt"
    with pytest.raises(StaleIndexError, match="model"):
        load_document_index(changed, CHUNK, HashEmbedder(dim=8, tag="v2"), tmp_path)


def test_a_damaged_passage_file_is_caught_and_rebuilt(tmp_path):
    c, e = small_collection(long=True), HashEmbedder(dim=8)
    index = build_document_index(c, CHUNK, e, tmp_path)
    path = index.path / "passages.npy"
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptIndexError, match="passages.npy"):
        load_document_index(c, CHUNK, e, tmp_path)
    rebuilt, status = get_or_build_document_index(c, CHUNK, e, tmp_path)
    assert status.action == "rebuilt" and np.array_equal(rebuilt.passage_vectors, index.passage_vectors)
    assert not [p for p in index.path.parent.iterdir() if p.name.startswith((".tmp", ".old"))]


def test_a_build_that_fails_leaves_nothing(tmp_path):
    c = small_collection()

    class Failing(HashEmbedder):
        def embed_batch(self, texts):
            raise RuntimeError("model crashed")

    with pytest.raises(RuntimeError):
        build_document_index(c, CHUNK, Failing(dim=8), tmp_path)
    with pytest.raises(IndexNotBuiltError):
        load_document_index(c, CHUNK, Failing(dim=8), tmp_path)


def test_second_openai_build_costs_nothing(tmp_path):
    from embeddings.models.openai import OpenAIEmbedder
    from embeddings.text.cache import EmbeddingCache

    c = small_collection(long=True)
    with MockOpenAIServer() as server:

        def embedder():
            cache = EmbeddingCache(tmp_path / "cache.sqlite3")
            return OpenAIEmbedder(api_key="sk-test-docs", base_url=server.base_url, cache=cache)

        first = build_document_index(c, CHUNK, embedder(), tmp_path)
        sent = len(server.requests)
        assert sent >= 1
        shutil.rmtree(first.path)  # the index is gone; its vectors are still in the cache
        second, status = get_or_build_document_index(c, CHUNK, embedder(), tmp_path)
        assert status.action == "built" and len(server.requests) == sent  # no request at all
        assert np.array_equal(first.passage_vectors, second.passage_vectors)


def test_query_sits_at_its_hits_weighted_mean():
    layout = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    assert place_query(layout, [0, 1], [0.75, 0.25]).tolist() == [2.5, 0.0]
    assert place_query(layout, [1, 2], [-0.5, 0.0]).tolist() == [5.0, 5.0]  # no positive score: plain mean


def test_many_documents_embed_in_bounded_calls(tmp_path):
    texts = [f"note {i} " + "x" * 50 for i in range(3000)]
    c = DocumentCollection("many", "memory", [str(i) for i in range(3000)], [""] * 3000, texts)
    e = HashEmbedder(dim=4)
    started = time.perf_counter()
    index = build_document_index(c, TRIM, e, tmp_path)
    assert index.count == 3000 and index.labels is None and max(len(b) for b in e.calls) <= e.batch_size
    assert time.perf_counter() - started < 60  # a generous bound, not a speed claim


# ------------------------------------------------------------------------------ command line


def test_cli_builds_searches_and_scores_a_csv(tmp_path, capsys):
    from embeddings.cli import main

    path = tmp_path / "howto.csv"
    rows = [
        f"{topic} tip {i}: {topic} words number {i} " + "filler " * i
        for topic in ("tea", "bike")
        for i in range(8)
    ]
    path.write_text("text,label\n" + "\n".join(f"{r},{r.split()[0]}" for r in rows) + "\n")
    data = ["--data-dir", str(tmp_path / "data")]
    assert main([*data, "build-text-index", "--data", str(path), "--model", "hashing"]) == 0
    out = capsys.readouterr()
    assert "16 documents, 16 passages of 512 dims" in out.out and "index built" in out.err
    assert (
        main(
            [
                *data,
                "search-text",
                "--data",
                str(path),
                "--model",
                "hashing",
                "--query",
                "tea words",
                "-k",
                "3",
            ]
        )
        == 0
    )
    out = capsys.readouterr()
    lines = [line for line in out.out.splitlines() if line.strip()[:1].isdigit()]
    assert [line.split()[0] for line in lines] == ["1", "2", "3"] and "index loaded" in out.err
    assert all(" tea " in f" {line} " for line in lines)
    assert main([*data, "search-text", "--data", str(path), "--model", "hashing", "--query", "  "]) == 2
    assert "the query is empty" in capsys.readouterr().err
    args = [
        "eval-passages",
        "--data",
        str(path),
        "--models",
        "hashing",
        "--settings",
        "trim8000,chunk100-20",
        "--k",
        "3",
    ]
    assert main([*data, *args]) == 0
    out = capsys.readouterr().out.splitlines()
    assert sum(line.startswith("hashing ") for line in out) == 2
    assert re.fullmatch(r"best_setting\[hashing\]=(trim8000|chunk100-20) precision@3=[01]\.\d{4}", out[-1])
    assert main([*data, "eval-knn", "--data", str(path), "--model", "hashing", "--k-max", "5"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "leave-one-out, 16 queries, 2 classes" in out[0]
    assert re.fullmatch(r"knn_accuracy@[1-5]=[01]\.\d{4}", out[-1])
    assert (
        main([*data, "build-text-index", "--data", str(tmp_path / "missing.csv"), "--model", "hashing"]) == 2
    )


def test_progress_is_reported_per_batch_and_a_cancel_stops_the_build(tmp_path):
    from embeddings.errors import WorkCancelledError

    texts = [f"note number {i}" for i in range(100)]
    c = DocumentCollection("many", "memory", [str(i) for i in range(100)], [""] * 100, texts)
    e = HashEmbedder(dim=4)
    e.batch_size = 10
    reports = []
    build_document_index(c, TRIM, e, tmp_path, progress=lambda done, total: reports.append((done, total)))
    assert reports[0] == (10, 100) and reports[-1] == (100, 100) and len(reports) >= 10

    def cancel(done, total):
        if done >= 30:
            raise WorkCancelledError("cancelled")

    other = DocumentCollection("many2", "memory", c.ids, c.titles, [t + "!" for t in texts])
    with pytest.raises(WorkCancelledError):
        build_document_index(other, TRIM, e, tmp_path, progress=cancel)
    with pytest.raises(IndexNotBuiltError):
        load_document_index(other, TRIM, e, tmp_path)
