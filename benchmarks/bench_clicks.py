"""Click latency in a real browser: this tree against a baseline commit, in the same run.

Usage (from the repository root; needs chromium and playwright; builds the sample index for
the default image model first if the data folder lacks it):

    python benchmarks/bench_clicks.py [--clicks 40] [--baseline REV]
    python benchmarks/bench_clicks.py --collection ../shared/datasets/cifar10 --image-model pixels \
        --baseline-data-dir /tmp/baseline-data   # a 10,000-image folder, each side with its own index

Starts ``streamlit run app.py`` twice on the same data folder: once from this working tree and
once from ``REV`` (default ``HEAD``, checked out into a temporary git worktree). One headless
chromium tab per server opens Image search; the clicks then alternate between the two tabs
(same gallery tiles, same order), so a change in the machine's load hits both alike. Each click
is timed from the mouse click to the neighbour grid drawn (the run that draws it has ended),
as in ``tests/test_browser_images.py::test_click_latency``. Prints p50/p90 per side, the
websocket bytes per click, each server's resident memory before and after the clicks, and
as its last line ``ratio_p50=<baseline p50 / this p50>``.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.browser_support import (  # noqa: E402
    CHROMIUM,
    CHROMIUM_ARGS,
    VIEWPORT,
    browser_text_model,
    click_tile,
    gallery_ids,
    goto_page,
    plotly_charts,
    streamlit_server,
    wait_for_app,
    wait_for_run_end,
)


@contextlib.contextmanager
def worktree(rev: str):
    """A temporary checkout of ``rev`` (removed afterwards)."""
    path = Path(tempfile.mkdtemp(prefix="ee-baseline-"))
    subprocess.run(
        ["git", "worktree", "add", "--detach", str(path), rev], cwd=REPO, check=True, capture_output=True
    )
    try:
        yield path
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=REPO, check=False)


def resident_mb(url: str) -> int:
    """Resident memory of the ``streamlit run`` process serving ``url`` (found by its port), in MB."""
    port = url.rsplit(":", 1)[1]
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"streamlit" in b" ".join(cmdline) and port.encode() in cmdline:
            status = (proc / "status").read_text()
            return int(status.split("VmRSS:")[1].split()[0]) // 1024
    return -1


class Side:
    """One server and the tab that clicks in it."""

    def __init__(self, name: str, browser, url: str):
        self.name, self.url = name, url
        self.context = browser.new_context(viewport=VIEWPORT)
        self.page = self.context.new_page()
        self.page.set_default_timeout(600_000)
        self.bytes_in = 0
        self.page.on("websocket", self._watch)
        goto_page(self.page, url, "images")
        self.gallery = plotly_charts(self.page).first
        self.gallery.wait_for(state="visible")
        wait_for_app(self.page)
        self.ids = gallery_ids(self.gallery)
        self.latencies: list[float] = []
        self.bytes: list[int] = []
        self.memory = [resident_mb(url)]

    def _watch(self, ws) -> None:
        ws.on("framereceived", lambda payload: self._count(payload))

    def _count(self, payload) -> None:
        self.bytes_in += len(payload)

    def click(self, tile: int) -> None:
        wait_for_app(self.page, settle_ms=300)
        before = self.bytes_in
        start = time.perf_counter()
        click_tile(self.gallery, tile)
        self.page.get_by_text(f"Query #{self.ids[tile]}").first.wait_for(state="visible")
        wait_for_run_end(self.page)
        self.latencies.append(time.perf_counter() - start)
        self.bytes.append(self.bytes_in - before)

    def summary(self) -> str:
        ms = sorted(x * 1000 for x in self.latencies)
        p90 = ms[min(len(ms) - 1, int(0.9 * len(ms)))]
        return (
            f"{self.name:>9}: p50 {statistics.median(ms):.0f} ms, p90 {p90:.0f} ms, max {ms[-1]:.0f} ms "
            f"over {len(ms)} clicks; websocket {statistics.median(self.bytes) / 1024:.0f} KB per click; "
            f"server memory {self.memory[0]:,} -> {resident_mb(self.url):,} MB resident"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clicks", type=int, default=40, help="clicks per side")
    parser.add_argument("--baseline", default="HEAD", help="git revision to compare with (default HEAD)")
    parser.add_argument("--data-dir", default=None, help="data folder (default: the usual one)")
    parser.add_argument(
        "--baseline-data-dir",
        default=None,
        help="a separate data folder for the baseline, when its index format differs (default: the same)",
    )
    parser.add_argument("--collection", default="sample", help="collection to open: sample or a folder path")
    parser.add_argument("--image-model", default=None, help="image model id (default: the app's default)")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    from embeddings.config import data_dir
    from embeddings.image.base import default_precision
    from embeddings.image.collections import open_collection
    from embeddings.index.service import get_or_build_index
    from embeddings.registry import get_image_embedder, resolve_image_model

    folder = Path(args.data_dir) if args.data_dir else data_dir()
    model_id = args.image_model or resolve_image_model()[0]
    embedder = get_image_embedder(model_id).set_precision(default_precision())
    index, status = get_or_build_index(open_collection(args.collection), embedder, folder)
    print(f"index: {index.count} images of {args.collection}, {model_id}, {status.action}; data dir {folder}")
    model = browser_text_model()
    # the servers' logs go to temporary folders; the baseline builds its index on first use if needed
    env = {"EMBEDDINGS_DATA_DIR": str(folder), "EMBEDDINGS_COLLECTION": args.collection}
    env["EMBEDDINGS_IMAGE_MODEL"] = model_id
    base_env = {**env, "EMBEDDINGS_DATA_DIR": args.baseline_data_dir or str(folder)}
    with (
        worktree(args.baseline) as base_repo,
        streamlit_server(
            Path(tempfile.mkdtemp(prefix="ee-clicks-")), model, base_env, cwd=base_repo
        ) as base_url,
        streamlit_server(Path(tempfile.mkdtemp(prefix="ee-clicks-")), model, env) as this_url,
        sync_playwright() as pw,
    ):
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        sides = [Side(f"baseline ({args.baseline})", browser, base_url), Side("this tree", browser, this_url)]
        for side in sides:
            side.click(len(side.ids) - 1)  # warm-up click (first thumbnails, lazy chart code), not counted
            side.latencies.clear()
            side.bytes.clear()
            side.memory = [resident_mb(side.url)]
        for n in range(args.clicks):
            for side in sides if n % 2 == 0 else sides[::-1]:
                side.click(n % len(side.ids))
        for side in sides:
            print(side.summary())
        base, this = (statistics.median(s.latencies) for s in sides)
        browser.close()
    print(f"ratio_p50={base / this:.2f}")


if __name__ == "__main__":
    main()
