"""App cold start and click latency with a built index, in headless chromium.

Builds the sample index for the default image model first (if needed), then, three times:
starts ``streamlit run app.py`` from scratch and times (1) until the server answers its
health check, (2) until the Home page has rendered, (3) until the Image search gallery is on
screen. Then times 20 clicks from a gallery image to its neighbour grid.

    python benchmarks/bench_app.py
"""

from __future__ import annotations

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
    plotly_charts,
    streamlit_server,
    wait_for_app,
    wait_for_run_end,
)


def main() -> None:
    from playwright.sync_api import sync_playwright

    from embeddings.config import data_dir
    from embeddings.image.base import default_precision
    from embeddings.image.collections import open_collection
    from embeddings.index.service import get_or_build_index
    from embeddings.registry import get_image_embedder, resolve_image_model

    model_id, _ = resolve_image_model()
    index, status = get_or_build_index(
        open_collection("sample"), get_image_embedder(model_id).set_precision(default_precision())
    )
    print(f"index: {index.count} images, {model_id}, {status.action}; data dir {data_dir()}")
    rows = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for _ in range(3):
            log_dir = Path(tempfile.mkdtemp(prefix="ee-bench-"))
            start = time.perf_counter()
            with streamlit_server(log_dir, "local", {"EMBEDDINGS_DATA_DIR": str(data_dir())}) as url:
                healthy = time.perf_counter() - start
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                page.goto(url, wait_until="domcontentloaded")
                wait_for_app(page, settle_ms=200)
                home = time.perf_counter() - start
                page.goto(f"{url}/images", wait_until="domcontentloaded")
                plotly_charts(page).first.wait_for(state="visible", timeout=300_000)
                gallery = time.perf_counter() - start
                rows.append((healthy, home, gallery))
                print(
                    f"server healthy {healthy:.1f} s, Home rendered {home:.1f} s, gallery on screen {gallery:.1f} s"
                )
                wait_for_app(page)
                clicks = []
                gallery = plotly_charts(page).first
                for n in range(20):
                    t0 = time.perf_counter()
                    click_tile(gallery, n)
                    page.wait_for_timeout(50)
                    wait_for_run_end(page)
                    clicks.append(time.perf_counter() - t0)
                print(
                    f"click -> neighbours: p50 {statistics.median(clicks) * 1000:.0f} ms, "
                    f"max {max(clicks) * 1000:.0f} ms over {len(clicks)} clicks"
                )
                page.close()
        browser.close()
    med = [statistics.median(col) for col in zip(*rows, strict=True)]
    print(f"median of 3 cold starts: healthy {med[0]:.1f} s, Home {med[1]:.1f} s, gallery {med[2]:.1f} s")


if __name__ == "__main__":
    main()
