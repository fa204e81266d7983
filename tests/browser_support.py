"""Helpers and fixtures for browser tests: a live ``streamlit run app.py`` and a chromium page.

Import the fixtures into a test module (``from browser_support import app_url, page``);
``app_url`` starts one server per module, ``page`` opens a fresh chromium tab per test.
Helpers: :func:`goto_page`, :func:`wait_for_app`, :func:`wait_for_run_end`,
:func:`assert_no_exception`, :func:`screenshot`, :func:`plotly_charts`, :func:`gallery_ids`,
:func:`click_tile`.

Environment:

* ``CHROMIUM_PATH``: the browser binary (default ``/usr/bin/chromium``); tests are skipped
  with a reason when it is missing.
* ``BROWSER_TEXT_MODEL``: the text model the server uses (default: ``local`` when its
  offline files are installed, else ``hashing``).
* ``SCREENSHOT_DIR``: where :func:`screenshot` writes (default ``<repo>/screenshots``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
SERVER_START_TIMEOUT_S = 90
APP_TIMEOUT_MS = 120_000  # a cold model load (torch + MiniLM) on two cores takes a while
VIEWPORT = {"width": 1400, "height": 900}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def browser_text_model() -> str:
    """``$BROWSER_TEXT_MODEL``, else ``local`` when its offline pieces are installed, else ``hashing``."""
    chosen = os.environ.get("BROWSER_TEXT_MODEL", "").strip()
    if chosen:
        return chosen
    needed = ("embeddings.models.minilm", "wordllama", "sentence_transformers", "all_minilm_l6_v2")
    try:
        if all(importlib.util.find_spec(name) is not None for name in needed):
            return "local"
    except (ImportError, ValueError):
        pass
    return "hashing"


def screenshot_dir() -> Path:
    path = Path(os.environ.get("SCREENSHOT_DIR") or REPO / "screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def streamlit_server(
    data_dir: Path,
    text_model: str,
    extra_env: dict[str, str] | None = None,
    cwd: Path = REPO,
) -> Iterator[str]:
    """Run the app as ``make run`` does, in ``cwd`` on a free port; yields its URL and always stops it.

    That is ``streamlit run serve.py`` (``app.py`` behind the Host check), or ``app.py`` in an
    older checkout without ``serve.py``. The address comes from ``.streamlit/config.toml``
    (127.0.0.1), as for ``make run``.
    """
    port = free_port()
    env = {
        **os.environ,
        "EMBEDDINGS_DATA_DIR": str(data_dir),
        "EMBEDDINGS_TEXT_MODEL": text_model,
        "PYTHONUNBUFFERED": "1",
        **(extra_env or {}),
    }
    if "OPENAI_API_KEY" not in (extra_env or {}):
        env.pop("OPENAI_API_KEY", None)  # tests never call the paid API
    for name in ("EMBEDDINGS_IMAGE_MODEL", "EMBEDDINGS_COLLECTION", "EMBEDDINGS_FOLDERS"):
        if name not in (extra_env or {}):
            env.pop(name, None)  # the app picks its embedded default: the bundled sample, offline models
    log_path = data_dir / "streamlit.log"
    script = "serve.py" if (cwd / "serve.py").exists() else "app.py"
    cmd = [
        sys.executable, "-m", "streamlit", "run", script,
        "--server.port", str(port),
        "--server.headless", "true",
        "--browser.gatherUsageStats", "false",
        "--server.fileWatcherType", "none",
    ]  # fmt: skip
    if script == "app.py":
        cmd += ["--server.address", "127.0.0.1"]  # an older checkout's config may not say so
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"streamlit exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}"
                )
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"streamlit did not become healthy in {SERVER_START_TIMEOUT_S} s")
            time.sleep(0.3)
        yield url
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


# ------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def app_url() -> Iterator[str]:
    """URL of a live app (one server per test module) with a temporary data folder."""
    data_dir = Path(tempfile.mkdtemp(prefix="ee-browser-"))
    try:
        with streamlit_server(data_dir, browser_text_model()) as url:
            yield url
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def browser():
    """A headless chromium (skipped when it or playwright is missing)."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"chromium not found at {CHROMIUM} (apt-get install -y chromium, or set CHROMIUM_PATH)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield instance
        finally:
            instance.close()


@pytest.fixture
def page(browser):
    """A fresh browser tab with a desktop-sized viewport; closed after the test."""
    context = browser.new_context(viewport=VIEWPORT)
    tab = context.new_page()
    tab.set_default_timeout(APP_TIMEOUT_MS)
    try:
        yield tab
    finally:
        context.close()


# ------------------------------------------------------------------------------ helpers


_IDLE_JS = """() => {
    const app = document.querySelector("[data-testid='stApp']");
    return !!app && app.getAttribute("data-test-script-state") === "notRunning"
        && !document.querySelector(
            "[data-testid='stSpinner'], [data-testid='stAppSkeleton'], "
            + "[data-testid='stSkeleton'], [data-testid='stSkeletonElement']");
}"""


def wait_for_app(
    page, timeout_ms: int = APP_TIMEOUT_MS, expect_rerun: bool = False, settle_ms: int = 600
) -> None:
    """Wait until the app is idle: script not running, no spinner or loading skeleton, for ``settle_ms``.

    The idle state must hold for ``settle_ms`` because a page can rerun itself right away, and
    charts load their code lazily after the run ends (they show a skeleton meanwhile). With
    ``expect_rerun`` (after a click or typing) it first gives the rerun up to two seconds to
    start, so it does not return on the idle state from before the rerun.
    """
    app = "[data-testid='stApp']"
    page.wait_for_selector(app, timeout=timeout_ms)
    if expect_rerun:
        with contextlib.suppress(Exception):
            page.wait_for_selector(f"{app}[data-test-script-state='running']", timeout=2000)
    deadline = time.monotonic() + timeout_ms / 1000
    while True:
        remaining = max(1, int((deadline - time.monotonic()) * 1000))
        page.wait_for_function(_IDLE_JS, timeout=remaining)
        page.wait_for_timeout(settle_ms)
        if page.evaluate(_IDLE_JS):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"the app did not settle within {timeout_ms} ms")


def goto_page(page, base_url: str, url_path: str = "") -> None:
    """Open ``base_url/url_path`` and wait for the app to finish running."""
    page.goto(f"{base_url}/{url_path}".rstrip("/") or base_url, wait_until="domcontentloaded")
    wait_for_app(page)


def click_nav(page, title: str) -> None:
    """Click a page in the sidebar navigation and wait for it to run."""
    page.locator("[data-testid='stSidebarNav'] a", has_text=title).first.click()
    wait_for_app(page, expect_rerun=True)


def assert_no_exception(page) -> None:
    """Fail when Streamlit shows an exception box (uncaught error in a page)."""
    boxes = page.locator("[data-testid='stException']")
    if boxes.count():
        raise AssertionError(f"Streamlit exception on {page.url}:\n{boxes.first.inner_text()[:2000]}")


def plotly_charts(page):
    """Locator of the rendered plotly charts on the page."""
    return page.locator("[data-testid='stPlotlyChart']")


def gallery_ids(gallery) -> list[int]:
    """Image ids of the image page's clickable gallery tiles, in tile order (read from the figure)."""
    return gallery.locator(".js-plotly-plot").evaluate(
        "el => Array.from(el.data[1].text, t => parseInt(t.slice(1)))"
    )


def click_tile(gallery, n: int) -> None:
    """Click the ``n``-th gallery tile (its invisible plotly marker)."""
    gallery.locator(".scatterlayer .trace .points path").nth(n).click(force=True)


def wait_for_run_end(page) -> None:
    """Wait until the script run in progress has ended (no settling, unlike :func:`wait_for_app`)."""
    page.wait_for_function(
        "() => document.querySelector(\"[data-testid='stApp']\")"
        ".getAttribute('data-test-script-state') === 'notRunning'"
    )


def screenshot(page, name: str) -> Path:
    """Save a full-page screenshot as ``<screenshot dir>/<name>.png`` and return the path."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
    path = screenshot_dir() / f"{safe}.png"
    # The app scrolls inside its own container, so grow the viewport to the content first.
    height = page.evaluate(
        """() => Math.max(...[...document.querySelectorAll(
            "[data-testid='stMain'], [data-testid='stAppViewContainer'], [data-testid='stMainBlockContainer']"
        )].map(el => el.scrollHeight), document.body.scrollHeight)"""
    )
    size = page.viewport_size or VIEWPORT
    page.set_viewport_size(
        {"width": size["width"], "height": min(max(int(height) + 40, size["height"]), 12000)}
    )
    page.wait_for_timeout(500)
    try:
        page.screenshot(path=str(path), full_page=True)
    finally:
        page.set_viewport_size(size)
    return path
