"""App cold start and click latency with a built index, in headless chromium.

Builds the sample index for the default image model first (if needed), then, three rounds, each
starting ``streamlit run serve.py`` from scratch: (a) Home first, timing until the server answers
its health check, until Home has rendered, and until the Image search gallery is on screen
after it; (b) a browser opening ``/images`` directly, timing until the gallery is on screen (the
issue's "gallery within 5 s of streamlit run"). Then 20 clicks from a gallery image to its
neighbour grid.

``--baseline DIR`` (another checkout, e.g. ``git worktree add /tmp/base <commit>``) measures that
checkout too, alternating with this one round by round against the same data folder, and prints
the ratio of their medians: the figure to trust when other work shares the cores.

    python benchmarks/bench_app.py [--baseline /tmp/base]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.browser_support import (  # noqa: E402
    CHROMIUM,
    CHROMIUM_ARGS,
    REPO,
    click_tile,
    plotly_charts,
    streamlit_server,
    wait_for_app,
    wait_for_run_end,
)


def home_then_gallery(browser, cwd: Path, env: dict) -> tuple[float, float, float]:
    """(healthy, Home rendered, gallery on screen) seconds after the server process started."""
    start = time.perf_counter()
    with streamlit_server(Path(tempfile.mkdtemp(prefix="ee-bench-")), "local", env, cwd=cwd) as url:
        healthy = time.perf_counter() - start
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(url, wait_until="domcontentloaded")
        wait_for_app(page, settle_ms=200)
        home = time.perf_counter() - start
        page.goto(f"{url}/images", wait_until="domcontentloaded")
        plotly_charts(page).first.wait_for(state="visible", timeout=300_000)
        gallery = time.perf_counter() - start
        page.close()
    return healthy, home, gallery


def gallery_directly(browser, cwd: Path, env: dict) -> float:
    """Seconds from starting the server to the gallery on screen, the browser opening /images."""
    start = time.perf_counter()
    with streamlit_server(Path(tempfile.mkdtemp(prefix="ee-bench-")), "local", env, cwd=cwd) as url:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(f"{url}/images", wait_until="domcontentloaded")
        plotly_charts(page).first.wait_for(state="visible", timeout=300_000)
        seconds = time.perf_counter() - start
        page.close()
    return seconds


def clicks(browser, env: dict, n: int = 20) -> list[float]:
    """Seconds from a click on a gallery tile until the script run it caused has ended."""
    with streamlit_server(Path(tempfile.mkdtemp(prefix="ee-bench-")), "local", env) as url:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(f"{url}/images", wait_until="domcontentloaded")
        plotly_charts(page).first.wait_for(state="visible", timeout=300_000)
        wait_for_app(page)
        times = []
        for i in range(n):
            wait_for_run_end(page)
            plotly_charts(page).first.wait_for(state="visible")
            t0 = time.perf_counter()
            click_tile(plotly_charts(page).first, i % 12)
            page.wait_for_timeout(50)
            wait_for_run_end(page)
            times.append(time.perf_counter() - t0)
        page.close()
    return times


def main() -> None:
    from playwright.sync_api import sync_playwright

    from embeddings.config import data_dir
    from embeddings.image.base import default_precision
    from embeddings.image.collections import open_collection
    from embeddings.index.service import get_or_build_index
    from embeddings.registry import get_image_embedder, resolve_image_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, help="another checkout to measure in the same run")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    model_id, _ = resolve_image_model()
    index, status = get_or_build_index(
        open_collection("sample"), get_image_embedder(model_id).set_precision(default_precision())
    )
    print(f"index: {index.count} images, {model_id}, {status.action}; data dir {data_dir()}")
    env = {"EMBEDDINGS_DATA_DIR": str(data_dir())}
    checkouts = {"this": REPO} | ({"baseline": args.baseline.resolve()} if args.baseline else {})
    results: dict[str, dict[str, list[float]]] = {name: {} for name in checkouts}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for _ in range(args.rounds):
            for name, cwd in checkouts.items():
                healthy, home, gallery = home_then_gallery(browser, cwd, env)
                direct = gallery_directly(browser, cwd, env)
                row = {
                    "healthy": healthy,
                    "home": home,
                    "gallery after home": gallery,
                    "gallery directly": direct,
                }
                for key, value in row.items():
                    results[name].setdefault(key, []).append(value)
                print(f"{name}: " + ", ".join(f"{key} {value:.1f} s" for key, value in row.items()))
        times = clicks(browser, env)
        browser.close()
    print(
        f"click -> neighbours: p50 {statistics.median(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms"
    )
    medians = {name: {key: statistics.median(v) for key, v in rows.items()} for name, rows in results.items()}
    for name, row in medians.items():
        print(
            f"median of {args.rounds} cold starts ({name}): "
            + ", ".join(f"{k} {v:.1f} s" for k, v in row.items())
        )
    if args.baseline:
        ratios = {key: medians["baseline"][key] / medians["this"][key] for key in medians["this"]}
        print(
            "baseline / this (higher = this is faster): "
            + ", ".join(f"{k} {v:.2f}x" for k, v in ratios.items())
        )


if __name__ == "__main__":
    main()
