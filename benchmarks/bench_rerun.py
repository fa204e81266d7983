"""Server-side cost of a gallery click: one Streamlit rerun of the Image search page with a new query.

Usage (from the repository root; uses the default data folder and builds the sample index if needed):

    python benchmarks/bench_rerun.py [--queries 12] [--collection FOLDER --split train --image-model ID]

Runs ``app.py`` under ``streamlit.testing.v1.AppTest`` (no browser), opens Image search on the
bundled sample with the default image model, then sets a new query id (what a click stores) and
times each rerun. Compare with ``tests/test_browser_images.py::test_click_latency`` (click to grid
drawn in chromium): the difference is the browser's share.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=12)
    parser.add_argument("--collection", default=None, help="sample (default) or a folder path")
    parser.add_argument("--split", default=None, help="split to open (default: the sidebar's default)")
    parser.add_argument("--image-model", default=None, help="image model id (default: the app's default)")
    args = parser.parse_args()
    import os

    from streamlit.testing.v1 import AppTest

    if args.collection:
        os.environ["EMBEDDINGS_COLLECTION"] = args.collection
    if args.image_model:
        os.environ["EMBEDDINGS_IMAGE_MODEL"] = args.image_model
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=600).run()
    at.switch_page("pages/images.py").run()
    if args.split:
        at.selectbox(key="split").set_value(args.split).run()
    while at.get("progress"):
        time.sleep(0.5)
        at.run()
    times = []
    for n in range(args.queries):
        at.session_state["image_query"] = ("id", 10 + n)
        start = time.perf_counter()
        at.run()
        times.append(time.perf_counter() - start)
        if at.exception:
            raise SystemExit(f"the page raised: {at.exception}")
    print(
        f"rerun with a new query over {args.queries} queries: median {statistics.median(times) * 1000:.0f} ms, "
        f"min {min(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
