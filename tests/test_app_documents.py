"""The Semantic search page under AppTest, with the instant ``hashing`` model (and a fake second model)."""

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from text_fixtures import HashEmbedder

from tests.conftest import assert_clean, messages, shown_text, wait_for_jobs

APP = str(Path(__file__).resolve().parent.parent / "app.py")
TIMEOUT = 120
pytestmark = pytest.mark.app_env(shared_data="docs-app")  # the bundled index is built once

CSV = (
    b"title,text,label\n"
    b"Tea,How to brew green tea with water below boiling,drinks\n"
    b"Coffee,Grinding coffee beans for an espresso shot,drinks\n"
    b"Juice,Pressing oranges into fresh juice,drinks\n"
    b"Bikes,Fixing a flat bicycle tyre with a patch,repairs\n"
    b"Taps,Replacing the washer of a dripping tap,repairs\n"
    b"Shelves,Hanging a shelf on a plaster wall,repairs\n"
)


def text_of(at: AppTest) -> str:
    kinds = ("markdown", "caption", "info", "warning", "error", "title", "subheader")
    return "\n".join(shown_text(el.value).replace("**", "") for kind in kinds for el in at.get(kind))


def open_page(source: str | None = None) -> AppTest:
    """The page with the map switched off (the bundled map takes a while); ``source``: the collection chosen."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.session_state["docs_show_map"] = False
    if source:
        at.session_state["docs_source"] = source
    at.run()
    at.switch_page("pages/documents.py").run()
    wait_for_jobs(at, TIMEOUT)
    assert not at.get("progress"), "the index build did not finish"
    return at


def ranked(at: AppTest) -> list[str]:
    """The hit lines ("1. title · group · cosine 0.536") in order."""
    lines = (shown_text(m.value).replace("**", "") for m in at.markdown)
    return [line for line in lines if "· cosine" in line]


def upload(at: AppTest | None, name: str, data: bytes, mime: str = "text/csv") -> AppTest:
    """Upload ``name`` (``at`` None: on a page opened on the upload, so the bundled index is not needed)."""
    if at is None:
        at = open_page("Upload a file")
        assert "Upload a file to search it" in messages(at)
    else:
        at.radio(key="docs_source").set_value("Upload a file").run()
    at.file_uploader(key="docs_file").set_value((name, data, mime)).run()
    return wait_for_jobs(at, TIMEOUT)


def test_a_query_ranks_the_bundled_documents_with_scores(app_env):
    at = open_page()
    assert_clean(at)
    assert "2,186 documents in 17 groups" in text_of(at) and "hashing" in text_of(at)
    at.text_input(key="docs_query").set_value("decompress gzip data").run()
    assert_clean(at)
    lines = ranked(at)
    assert len(lines) == 10 and lines[0].startswith("1. ")
    scores = [float(line.rsplit("cosine ", 1)[1].strip("*")) for line in lines]
    assert scores == sorted(scores, reverse=True) and 0 < scores[-1] <= scores[0] <= 1
    assert "compression, archives and hashing" in lines[0]
    at.number_input(key="docs_k").set_value(3).run()
    assert len(ranked(at)) == 3


def test_a_whitespace_query_gets_a_message(app_env):
    at = open_page()
    at.text_input(key="docs_query").set_value("   \t  ").run()
    assert_clean(at)
    assert "empty or only spaces" in messages(at) and not ranked(at)


def test_trim_says_which_documents_were_cut(app_env):
    long_row = b"Essay," + b"many words " * 900 + b",essays\n"  # 9,900 characters
    at = upload(None, "long.csv", CSV + long_row)
    at.segmented_control(key="docs_mode").set_value("trim").run()
    wait_for_jobs(at, TIMEOUT)
    assert_clean(at)
    assert "trimmed to the first 8,000 characters" in text_of(at)
    assert [e.label for e in at.expander if "cut:" in e.label] == [
        "1 document was cut: trimmed to 8,000 characters"
    ]
    at.segmented_control(key="docs_mode").set_value("chunk").run()
    wait_for_jobs(at, TIMEOUT)
    assert "split into passages of 1,000 characters overlapping by 200" in text_of(at)
    assert not [e for e in at.expander if "cut:" in e.label]


def test_upload_a_csv_and_search_it_with_the_map(app_env):
    at = upload(None, "howto.csv", CSV)
    assert_clean(at)
    assert "6 documents in 2 groups" in text_of(at)
    at.text_input(key="docs_query").set_value("Fixing a flat bicycle tyre with a patch").run()
    at.toggle(key="docs_show_map").set_value(True).run()  # the map of 6 documents, not the bundled 2,186
    wait_for_jobs(at, TIMEOUT)
    assert_clean(at)
    lines = ranked(at)
    assert lines[0].startswith("1. Bikes · repairs · cosine 1.000")
    assert at.get("plotly_chart"), "the map of the upload is drawn"
    assert "weighted by their cosine scores" in text_of(at)


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("empty.txt", b"", "is empty"),
        ("photo.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", "binary bytes"),
        ("many.csv", b"text\n" + b"word\n" * 100_000, "more than 20,000 documents"),
        ("big.txt", b"lorem ipsum " * 900_000, "uploads may be at most 10 MB"),
        ("scores.jsonl", b'{"text": "fine"}\n{not json\n', "line 2 is not JSON"),
    ],
)
def test_bad_uploads_get_messages(app_env, name, data, message):
    at = upload(None, name, data, "text/plain")
    assert not at.exception
    assert message in messages(at) and not ranked(at)


def test_a_csv_without_a_text_column_offers_its_columns(app_env):
    at = upload(None, "scores.csv", b"name,notes\nA,first note\nB,second note\n")
    assert "no text column found" in messages(at) and "'name', 'notes'" in messages(at)
    at.selectbox(key="docs_text_column").set_value("notes").run()
    wait_for_jobs(at, TIMEOUT)
    assert_clean(at)
    assert "2 documents (no groups)" in text_of(at)
    assert ranked(at)[0].startswith("1. ")


def test_two_models_one_query_shows_both_lists_and_their_overlap(app_env, add_model):
    add_model("fake-b", lambda: HashEmbedder(dim=8, tag="b"))
    at = upload(None, "howto.csv", CSV)
    at.text_input(key="docs_query").set_value("brew tea").run()
    at.selectbox(key="docs_model_b").set_value("fake-b").run()
    wait_for_jobs(at, TIMEOUT)
    assert_clean(at)
    assert "documents are in both top-6 lists (hashing and fake-b)" in text_of(at)
    assert [s.value for s in at.subheader] == ["hashing", "fake-b"]
    assert len(ranked(at)) == 6 * 3  # the results tab, and each side of the comparison


def test_an_uploads_text_is_never_written_to_disk(app_env):
    from embeddings.index.documents import upload_data_dir

    marker = "UPLOADMARKER7f3a9c"
    at = upload(None, "secret.csv", f"text\n{marker} first\n{marker} second\n".encode())
    assert_clean(at)
    assert "2 documents (no groups)" in text_of(at)
    written = [p for folder in (app_env, upload_data_dir()) for p in folder.rglob("*") if p.is_file()]
    assert any(
        p.name == "passages.npy" for p in written
    )  # its index (vectors only) is in the temporary folder
    assert not [p for p in written if marker.encode() in p.read_bytes()]


def test_a_text_folder_listed_in_the_environment_is_offered_and_searched(app_env, monkeypatch, tmp_path):
    folder = tmp_path / "notes"
    for group, name, text in [
        ("kitchen", "tea.txt", "brewing green tea"),
        ("garage", "bike.md", "# Bikes\nfixing a flat tyre"),
    ]:
        (folder / group).mkdir(parents=True, exist_ok=True)
        (folder / group / name).write_text(text)
    monkeypatch.setenv("EMBEDDINGS_TEXT_FOLDERS", str(folder))
    at = open_page(str(folder))
    assert str(folder) in at.radio(key="docs_source").options
    at.text_input(key="docs_query").set_value("fixing a flat tyre").run()
    wait_for_jobs(at, TIMEOUT)
    assert_clean(at)
    assert "2 documents in 2 groups" in text_of(at)
    assert ranked(at)[0].startswith("1. garage/bike.md · garage · cosine")


def test_a_1_mb_document_is_chunked_and_listed_as_cut(app_env):
    words = " ".join(f"word{i % 5000}" for i in range(120_000))  # about 1 MB, one paragraph
    at = upload(None, "one.txt", words.encode(), "text/plain")
    at.text_input(key="docs_query").set_value("word42").run()
    assert_clean(at)
    assert "1 documents" not in text_of(at) and "1 document" in text_of(at)
    assert [e.label for e in at.expander if "cut:" in e.label] == [
        "1 document was cut: longer than 100 passages (the rest is not read)"
    ]
    assert len(ranked(at)) == 1
