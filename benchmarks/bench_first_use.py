"""The first ten minutes: each first use of the embedded default, timed in headless chromium.

Three times: a fresh, empty data folder, ``make run``'s server started from scratch (text model
``local``, the bundled sample, ``efficientnet_lite0`` at the default precision), then each view
opened once, in this order, timed from opening it until its content is on screen:

1. Home (rendered, the app idle);
2. the first heatmap (Word similarity, its similarity matrix drawn);
3. the first analogy (the Analogy tab's result);
4. the image gallery (Image search; the index is written on first use), then a click on an
   image until its neighbours are shown;
5. the image map (t-SNE map, Images tab);
6. the class view (Image search, "How well are classes separated?");
7. Semantic search (the bundled documents, the default query: until its first result is shown;
   the document index is written on first use), then its Map tab until the map is drawn.

    python benchmarks/bench_first_use.py [--runs 3] [--only docs]

``--only docs`` times Home and the two Semantic search steps only.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.browser_support import (  # noqa: E402
    CHROMIUM,
    CHROMIUM_ARGS,
    click_tile,
    gallery_ids,
    plotly_charts,
    streamlit_server,
    wait_for_app,
)

TIMEOUT_MS = 300_000
STEPS = ["server healthy", "Home", "first heatmap", "first analogy", "gallery", "click -> neighbours",
         "image map", "class view", "semantic search", "document map"]  # fmt: skip
DOCS_STEPS = ["server healthy", "Home", "semantic search", "document map"]
FIRST_HIT = re.compile(r"^1\. .* · cosine -?[0-9.]+$")


def visible(locator) -> None:
    locator.first.wait_for(state="visible", timeout=TIMEOUT_MS)


def one_run(browser, only_docs: bool = False) -> dict[str, float]:
    times: dict[str, float] = {}
    data = Path(tempfile.mkdtemp(prefix="ee-first-use-"))  # fresh and empty: no index, map or export
    start = time.perf_counter()
    with streamlit_server(data, "local") as url:
        times["server healthy"] = time.perf_counter() - start
        page = browser.new_page(viewport={"width": 1400, "height": 900})

        def timed(name, action) -> None:
            t0 = time.perf_counter()
            action()
            times[name] = time.perf_counter() - t0

        def home():
            page.goto(url, wait_until="domcontentloaded")
            wait_for_app(page, TIMEOUT_MS, settle_ms=100)

        def heatmap():
            page.goto(f"{url}/words", wait_until="domcontentloaded")
            visible(plotly_charts(page))

        def analogy():
            page.get_by_role("tab", name="Analogy").click()
            wait_for_app(page, TIMEOUT_MS, expect_rerun=True, settle_ms=100)
            visible(page.locator("[data-testid='stMetric']:visible"))  # a - b + c = the answer

        def gallery():
            page.goto(f"{url}/images", wait_until="domcontentloaded")
            visible(plotly_charts(page))

        def neighbours():
            chart = plotly_charts(page).first
            ids = gallery_ids(chart)
            click_tile(chart, 0)
            visible(page.get_by_text(f"Query #{ids[0]}"))

        def image_map():
            page.goto(f"{url}/tsne", wait_until="domcontentloaded")
            page.get_by_role("tab", name="Images").click()
            visible(page.get_by_text("Click any point on the map"))

        def class_view():
            page.goto(f"{url}/images", wait_until="domcontentloaded")
            page.get_by_text("How well are classes separated?").first.click()
            visible(page.get_by_text("Mean precision@10"))

        def semantic_search():
            page.goto(f"{url}/documents", wait_until="domcontentloaded")
            visible(page.get_by_text(FIRST_HIT))

        def document_map():
            page.get_by_role("tab", name="Map").click()
            visible(page.locator("[data-testid='stTabs'] .js-plotly-plot:visible"))

        timed("Home", home)
        if not only_docs:
            timed("first heatmap", heatmap)
            timed("first analogy", analogy)
            timed("gallery", gallery)
            wait_for_app(page, TIMEOUT_MS, settle_ms=200)
            timed("click -> neighbours", neighbours)
            timed("image map", image_map)
            timed("class view", class_view)
        timed("semantic search", semantic_search)
        timed("document map", document_map)
        page.close()
    return times


def main() -> None:
    from playwright.sync_api import sync_playwright

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", choices=["docs"], help="time Home and Semantic search only")
    args = parser.parse_args()
    runs, only_docs = args.runs, args.only == "docs"
    results = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for n in range(runs):
            results.append(one_run(browser, only_docs))
            print(f"run {n + 1}: " + ", ".join(f"{k} {v:.1f} s" for k, v in results[-1].items()), flush=True)
        browser.close()
    head = "| first use | " + " | ".join(f"run {n + 1}" for n in range(runs)) + " | median |"
    print(head)
    print("|" + "---|" * (runs + 2))
    for step in DOCS_STEPS if only_docs else STEPS:
        values = [r[step] for r in results]
        cells = " | ".join(f"{v:.1f} s" for v in values)
        print(f"| {step} | {cells} | {statistics.median(values):.1f} s |")


if __name__ == "__main__":
    main()
