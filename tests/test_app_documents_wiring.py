"""The Semantic search page's link, downloads, neighbourhood-kept switch and k-NN, under AppTest
(the instant ``hashing`` model; the bundled index is shared with ``test_app_documents``)."""

import base64
import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest
from test_app_documents import CSV, ranked, text_of, upload
from text_fixtures import HashEmbedder

from tests.conftest import assert_clean, messages, shown_text, wait_for_jobs

APP = str(Path(__file__).resolve().parent.parent / "app.py")
TIMEOUT = 120
pytestmark = pytest.mark.app_env(shared_data="docs-app")


def open_link(**params) -> AppTest:
    """A new browser opening ``/documents?params`` (the map switched off: the bundled map takes a while)."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.session_state["docs_show_map"] = False
    at.query_params.update(params)
    at.switch_page("pages/documents.py").run()
    wait_for_jobs(at, TIMEOUT)
    assert not at.get("progress"), "the index build did not finish"
    return at


def map_traces(at: AppTest) -> dict:
    (chart,) = [c for c in at.get("plotly_chart") if c.key == "docs_map"]
    return {t["name"]: t for t in json.loads(chart.proto.spec)["data"]}


def values(v) -> list:
    """A plotly array as a list (numpy arrays travel as base64 typed arrays)."""
    if isinstance(v, dict) and "bdata" in v:
        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"])).tolist()
    return list(v)


def rows_of(data: bytes) -> list[dict]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8"))))


# ------------------------------------------------------------------------------ links


def test_a_docs_link_shows_the_same_query_k_tab_and_passages(app_env, add_model):
    add_model("fake-b", lambda: HashEmbedder(dim=8, tag="b"))
    link = {"query": "decompress gzip data", "k": "4", "show": "two-models-one-query", "second": "fake-b"}
    at = open_link(**link, chunk="500", overlap="100")
    assert_clean(at)
    assert not at.warning
    assert at.session_state["docs_query"] == "decompress gzip data" and at.session_state["docs_k"] == 4
    assert at.session_state["docs_tab"] == "Two models, one query"
    assert at.session_state["docs_chunk"] == 500 and at.session_state["docs_overlap"] == 100
    assert "split into passages of 500 characters overlapping by 100" in text_of(at)
    wait_for_jobs(at, TIMEOUT)  # the second model's index of the bundled documents
    assert "documents are in both top-4 lists (hashing and fake-b)" in text_of(at)
    assert len(ranked(at)) == 4 * 3
    params = {k: at.query_params[k] for k in link}
    assert params == link and at.query_params["text_model"] == "hashing"
    assert at.query_params["docs"] == "python-standard-library-docs-bundled"
    # afterwards the widgets own the state: the URL follows them
    at.text_input(key="docs_query").set_value("read a zip archive").run()
    at.number_input(key="docs_k").set_value(7).run()
    assert at.query_params["query"] == "read a zip archive" and at.query_params["k"] == "7"
    assert len(ranked(at)) == 7 * 3


@pytest.mark.parametrize(
    "params, expected",
    [
        ({"docs": "/etc"}, "document collection “/etc” is not available here"),
        ({"docs": "upload-a-file"}, "document collection “upload-a-file” is not available here"),
        ({"second": "gpt-9"}, "second model “gpt-9” is not available here"),
        ({"second": "hashing"}, "second model “hashing” is not available here"),  # the first model itself
        ({"k": "ten"}, "top k “ten” is not a whole number"),
        ({"k": "0"}, "top k 0 is out of range (1 to 50)"),
        ({"text_model": "gpt-9"}, "text model “gpt-9” is not available here"),
        ({"chunk": "333"}, "passage length “333” is not available here"),
        ({"show": "graphs"}, "tab “graphs” is not available here"),
    ],
)
def test_a_stale_docs_link_says_what_it_ignored_and_opens_with_defaults(app_env, params, expected):
    at = open_link(**params)
    assert_clean(at)
    assert expected in messages(at), messages(at)
    assert at.radio(key="docs_source").value == "Python standard library docs (bundled)"
    assert len(ranked(at)) == 10 and at.session_state["text_model"] == "hashing"
    assert "split into passages of 1,000 characters overlapping by 200" in text_of(at)
    at.button(key="links_dismiss_documents").click().run()
    assert not at.warning


def test_a_k_above_the_collection_is_ignored_and_an_upload_stays_out_of_the_link(app_env):
    at = open_link(k="50", query="brew tea")
    assert not at.warning and at.session_state["docs_k"] == 50  # 2,186 documents allow 50
    at = upload(at, "howto.csv", CSV)
    assert_clean(at)
    assert "docs" not in at.query_params and at.query_params["query"] == "brew tea"
    # a link of the upload opens the bundled collection: a six-document link's k=50 is checked there
    small = AppTest.from_file(APP, default_timeout=TIMEOUT)
    small.session_state["docs_source"] = "Upload a file"
    small.query_params.update({"k": "30"})
    small.switch_page("pages/documents.py").run()
    small.file_uploader(key="docs_file").set_value(("howto.csv", CSV, "text/csv")).run()
    wait_for_jobs(small, TIMEOUT)
    assert_clean(small)
    assert "top k 30 is more than this collection of 6 documents allows (at most 6)" in messages(small)
    assert len(ranked(small)) == 6


def test_a_query_too_long_for_a_link_is_left_out_with_a_caption(app_env):
    at = open_link(k="3")
    long_query = "how do I " + "read and decompress a gzip file " * 60  # 1,929 characters, ~2,300 encoded
    at.text_input(key="docs_query").set_value(long_query).run()
    assert_clean(at)
    assert any("Too long for a link: the query" in c.value for c in at.caption)
    assert "query" not in at.query_params and at.query_params["k"] == "3"


# ------------------------------------------------------------------------------ downloads


def test_the_results_download_holds_what_the_page_shows(app_env, downloads):
    at = open_link(query="decompress gzip data", k="5")
    name, data = downloads(at, "export_docs_results")
    assert name == "search-hashing-stdlib-docs.csv"
    rows = rows_of(data)
    lines = ranked(at)
    assert len(rows) == len(lines) == 5
    for row, line in zip(rows, lines, strict=True):
        assert row["query"] == "decompress gzip data"
        assert line == f"{row['rank']}. {row['title']} · {row['group']} · cosine {float(row['cosine']):.3f}"
        assert row["id"] and row["matching passage"]
    shown = [shown_text(c.value) for c in at.caption]
    for row in rows:  # the page shows each passage's first 400 characters; the file has all of it
        head = row["matching passage"][:400]
        assert any(head.replace("*", "") in s.replace("*", "").replace("\\", "") for s in shown), head[:60]


def test_the_map_download_and_the_neighbourhood_switch(app_env, downloads):
    at = upload(None, "howto.csv", CSV)
    at.text_input(key="docs_query").set_value("brew green tea").run()
    at.toggle(key="docs_show_map").set_value(True).run()
    wait_for_jobs(at, TIMEOUT)
    assert_clean(at)
    name, data = downloads(at, "export_docs_map")
    assert name == "map-tsne-hashing-upload-howto.csv"
    rows = rows_of(data)
    assert [r["title"] for r in rows] == ["Tea", "Coffee", "Juice", "Bikes", "Taps", "Shelves"]
    assert [r["group"] for r in rows] == ["drinks"] * 3 + ["repairs"] * 3
    traces = map_traces(at)
    assert set(traces) == {"drinks", "repairs", "top hits", "the query"}
    xy = {(t, round(x, 4), round(y, 4)) for tr in ("drinks", "repairs") for t, x, y in
          zip(traces[tr]["text"], values(traces[tr]["x"]), values(traces[tr]["y"]), strict=True)}  # fmt: skip
    assert xy == {(r["title"], round(float(r["x"]), 4), round(float(r["y"]), 4)) for r in rows}
    # the switch: one trace coloured by each document's share kept; hits and star stay
    at.toggle(key="docs_map_trust").set_value(True).run()
    wait_for_jobs(at, TIMEOUT)
    assert_clean(at)
    traces = map_traces(at)
    assert set(traces) == {"share kept", "top hits", "the query"}
    shares = values(traces["share kept"]["marker"]["color"])
    kept = [c[1] for c in traces["share kept"]["customdata"]]
    k = at.number_input(key="docs_map_trust_k").value
    assert len(shares) == 6 and [round(s, 6) for s in shares] == [round(c / k, 6) for c in kept]
    assert any("Trustworthiness" in m.label for m in at.metric)
    at.toggle(key="docs_map_trust").set_value(False).run()
    assert set(map_traces(at)) == {"drinks", "repairs", "top hits", "the query"}


# ------------------------------------------------------------------------------ k-NN


def test_the_query_gets_a_knn_vote_without_a_verdict(app_env):
    at = upload(None, "howto.csv", CSV)
    at.text_input(key="docs_query").set_value("mend a bicycle tyre and a dripping tap").run()
    at.number_input(key="docs_k").set_value(3).run()
    assert_clean(at)
    (line,) = [shown_text(m.value) for m in at.markdown if "k-NN prediction" in str(m.value)]
    assert "k=3" in line and "plain vote **repairs**" in line and "✓" not in line and "✗" not in line
    assert any(c.key == "docs_vote_chart" for c in at.get("plotly_chart"))


def test_an_unlabelled_upload_says_knn_has_nothing_to_predict(app_env):
    at = upload(
        None, "notes.txt", b"Tea with milk.\n\nA bicycle with a flat tyre.\n\nA dripping tap.", "text/plain"
    )
    at.text_input(key="docs_query").set_value("tea").run()
    assert_clean(at)
    assert any("no labels, so there is nothing for k-NN to predict" in c.value for c in at.caption)
    at.session_state["docs_tab"] = "k-NN classification"
    at.run()
    assert "no labels, so there is nothing for k-NN to predict" in messages(at)


def test_the_knn_tab_shows_the_curve_and_the_per_class_table(app_env):
    at = upload(None, "howto.csv", CSV)
    assert not any(c.key == "docs_knn_curve" for c in at.get("plotly_chart"))  # not computed until asked
    at.session_state["docs_tab"] = "k-NN classification"
    at.run()
    wait_for_jobs(at, TIMEOUT)
    assert_clean(at)
    assert any(c.key == "docs_knn_curve" for c in at.get("plotly_chart"))
    text = text_of(at)
    assert "Each of the 6 items is classified by a vote of its nearest neighbours" in text
    assert "nearest class centroid" in text
    (table,) = [d for d in at.dataframe if "class" in d.value.columns]
    assert list(table.value["class"]) == ["drinks", "repairs"] and list(table.value["items"]) == [3, 3]
    assert at.query_params["show"] == "k-nn-classification"
