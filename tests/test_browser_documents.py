"""End to end in chromium: the Semantic search page. Type a query and see ranked documents with
scores; upload a CSV and search it. The server runs the instant ``hashing`` text model (the page
and its widgets are what is tested, not a model's quality)."""

import re
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.browser_support import (
    assert_no_exception,
    goto_page,
    screenshot,
    streamlit_server,
    wait_for_app,
)

pytestmark = pytest.mark.browser

TIMEOUT_MS = 300_000  # the bundled index (2,186 documents) is built on first use, on busy cores
CSV = (
    "title,text,label\n"
    "Tea,How to brew green tea with water below boiling,drinks\n"
    "Coffee,Grinding coffee beans for an espresso shot,drinks\n"
    "Bikes,Fixing a flat bicycle tyre with a patch,repairs\n"
    "Taps,Replacing the washer of a dripping tap,repairs\n"
)
HIT = re.compile(r"^(\d+)\. (.+?) · cosine (-?[0-9.]+)$")


@pytest.fixture(scope="module")
def docs_url():
    data_dir = Path(tempfile.mkdtemp(prefix="ee-browser-docs-"))
    try:
        with streamlit_server(data_dir, "hashing") as url:
            yield url
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def hits(page) -> list[tuple[int, str, float]]:
    found = []
    for text in page.locator("[data-testid='stMarkdownContainer']").all_inner_texts():
        match = HIT.match(text.strip())
        if match:
            found.append((int(match.group(1)), match.group(2), float(match.group(3))))
    return found


def search(page, query: str) -> None:
    box = page.get_by_label("Query")
    box.fill(query)
    box.press("Enter")
    wait_for_app(page, expect_rerun=True)


def test_type_a_query_and_see_ranked_documents(docs_url, page):
    page.set_default_timeout(TIMEOUT_MS)
    goto_page(page, docs_url, "documents")
    page.get_by_label("Query").wait_for(state="visible", timeout=TIMEOUT_MS)
    wait_for_app(page)
    search(page, "decompress gzip data")
    assert_no_exception(page)
    found = hits(page)
    assert [rank for rank, _, _ in found] == list(range(1, 11))
    scores = [score for _, _, score in found]
    assert scores == sorted(scores, reverse=True) and all(0 < s <= 1 for s in scores)
    assert "compression, archives and hashing" in found[0][1]
    screenshot(page, "documents_results")
    search(page, "   ")
    assert page.get_by_text("empty or only spaces").first.is_visible()
    assert not hits(page)


@pytest.mark.ci_after  # 15 s
def test_upload_a_csv_and_search_it(docs_url, page, tmp_path):
    page.set_default_timeout(TIMEOUT_MS)
    goto_page(page, docs_url, "documents")
    page.get_by_text("Upload a file").first.wait_for(state="visible")
    wait_for_app(page)
    page.get_by_text("Upload a file").first.click()
    wait_for_app(page, expect_rerun=True)
    path = tmp_path / "howto.csv"
    path.write_text(CSV)
    page.locator("[data-testid='stFileUploaderDropzoneInput']").set_input_files(str(path))
    page.get_by_text("4 documents in 2 groups").first.wait_for(state="visible")
    page.get_by_label("Query").wait_for(state="visible")
    wait_for_app(page)
    search(page, "Fixing a flat bicycle tyre with a patch")
    assert_no_exception(page)
    found = hits(page)
    assert len(found) == 4 and found[0][1] == "Bikes · repairs" and found[0][2] == pytest.approx(1.0)
    screenshot(page, "documents_upload")
