"""Where one cold start's time goes: a timeline of the browser's view of ``/images``.

    python benchmarks/cold_start_timeline.py [--checkout DIR] [--runs N]

Starts ``streamlit run serve.py`` from scratch on the default data folder (run
``bench_app.py`` once first: it builds the sample index there), opens ``/images`` directly in headless chromium and prints, in
seconds after the server process started: the health check answered, the page's HTML parsed,
the websocket opened, the first message received, the request for Streamlit's plotly chunk,
the largest message (the gallery figure) received, and the gallery on screen.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.browser_support import CHROMIUM, CHROMIUM_ARGS, REPO, plotly_charts, streamlit_server  # noqa: E402


def timeline(browser, cwd: Path) -> dict[str, float]:
    """The moments of one cold start, in seconds after the server process started."""
    marks: dict[str, float] = {}
    largest = [0]
    start = time.perf_counter()

    def mark(name: str) -> None:
        marks.setdefault(name, time.perf_counter() - start)

    def on_frame(payload) -> None:
        mark("first message")
        if len(payload) > largest[0]:
            largest[0] = len(payload)
            marks["largest message (the gallery)"] = time.perf_counter() - start

    def on_websocket(ws) -> None:
        mark("websocket open")
        ws.on("framereceived", on_frame)

    from embeddings.config import data_dir

    env = {"EMBEDDINGS_DATA_DIR": str(data_dir())}  # the data folder bench_app.py built the index in
    with streamlit_server(Path(tempfile.mkdtemp(prefix="ee-timeline-")), "local", env, cwd=cwd) as url:
        mark("server healthy")
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.on("websocket", on_websocket)
        page.on("request", lambda r: mark("plotly chunk requested") if "/PlotlyChart." in r.url else None)
        page.goto(f"{url}/images", wait_until="domcontentloaded")
        mark("HTML parsed")
        plotly_charts(page).first.wait_for(state="visible", timeout=300_000)
        mark("gallery on screen")
        page.close()
    return dict(sorted(marks.items(), key=lambda item: item[1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--checkout", type=Path, default=REPO, help="the checkout to start (default this one)"
    )
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for run in range(1, args.runs + 1):
            marks = timeline(browser, args.checkout)
            print(f"run {run}: " + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in marks.items()))
        browser.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
