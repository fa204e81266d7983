"""End to end in chromium: background jobs in the user's hands.

* A model that cannot load (ResNet18 without its weights, offline) starts no build: Home says
  why and what to do, no progress bar stays, and the server log has no traceback.
* A long build (a folder collection of generated images) shows a Cancel button beside its bar;
  pressing it removes the bar, says the build was cancelled, and offers to start it again.
"""

import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

from tests.browser_support import (
    assert_no_exception,
    browser_text_model,
    goto_page,
    streamlit_server,
    wait_for_app,
)

pytestmark = pytest.mark.browser

TIMEOUT_MS = 240_000
FOLDER_IMAGES = 3000  # enough that the build is still running when the test presses Cancel


@pytest.fixture
def data_dir():
    path = Path(tempfile.mkdtemp(prefix="ee-browser-jobs-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def tab(page):
    """The shared browser tab (tests/browser_support.py), with room for a cold build on two cores."""
    page.set_default_timeout(TIMEOUT_MS)
    return page


@pytest.mark.ci_after  # 12 s
def test_unavailable_model_on_home_says_why_and_starts_no_build(browser, tab, data_dir):
    from embeddings.registry import model_status

    if model_status("resnet18", download=False)[0]:
        pytest.skip("ResNet18's weights are on this machine: it is not unavailable here")
    env = {"EMBEDDINGS_IMAGE_MODEL": "resnet18", "EMBEDDINGS_COLLECTION": "sample"}
    with streamlit_server(data_dir, browser_text_model(), env) as url:
        for _ in range(3):  # every visit asks again: nothing may start
            goto_page(tab, url)
            tab.get_by_text("can't be used on this machine yet").first.wait_for(state="visible")
            wait_for_app(tab)
            assert_no_exception(tab)
            assert tab.locator("[data-testid='stProgress']").count() == 0
        assert tab.get_by_text("efficientnet_lite0").first.is_visible()  # what to do
        assert tab.get_by_role("button", name="Download the weights and build the index").is_visible()
        log = (data_dir / "streamlit.log").read_text()
    assert "Traceback" not in log, log[-3000:]
    assert "ModelUnavailableError" not in log, log[-3000:]
    assert "Embedding sample (test) with resnet18" not in log  # no build was started


def make_folder(root: Path, n: int) -> Path:
    """A folder collection of ``n`` 512x512 JPEGs in two class folders (32 distinct gradients,
    encoded once and written in turn: encoding 3,000 of them took most of this test's time)."""
    import io

    from PIL import Image

    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 255, 512, dtype=np.float32)
    across, down = np.meshgrid(ramp, ramp)
    encoded = []
    for _ in range(32):
        r, g, b = rng.uniform(0.2, 1.0, size=3)
        pixels = np.stack([across * r, down * g, np.full((512, 512), 255 * b)], axis=-1)
        buffer = io.BytesIO()
        Image.fromarray(pixels.astype(np.uint8)).save(buffer, format="JPEG", quality=85)
        encoded.append(buffer.getvalue())
    for k in range(n):
        folder = root / ("red" if k % 2 else "blue")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{k:05d}.jpg").write_bytes(encoded[k % len(encoded)])
    return root


@pytest.mark.ci_after  # 12 s: 3,000 JPEGs to build from
def test_cancel_a_build_from_the_page(browser, tab, data_dir, tmp_path):
    folder = make_folder(tmp_path / "generated", FOLDER_IMAGES)
    env = {
        "EMBEDDINGS_FOLDERS": str(folder),
        "EMBEDDINGS_COLLECTION": str(folder),
        "EMBEDDINGS_IMAGE_MODEL": "pixels",
    }
    with streamlit_server(data_dir, browser_text_model(), env) as url:
        tab.goto(url, wait_until="domcontentloaded")
        bar = tab.locator("[data-testid='stProgress']")
        bar.first.wait_for(state="visible")
        tab.get_by_role("button", name="Cancel").first.click()
        tab.get_by_text("Building the index was cancelled").first.wait_for(state="visible")
        wait_for_app(tab)
        assert_no_exception(tab)
        assert bar.count() == 0
        assert tab.get_by_role("button", name="Start again").is_visible()
        log = (data_dir / "streamlit.log").read_text()
        assert "Traceback" not in log, log[-3000:]
        index_root = data_dir / "indexes"
        leftovers = [p for p in data_dir.rglob("*") if p.name.startswith(".tmp")]
        assert leftovers == [], leftovers
        built = list(index_root.rglob("manifest.json")) if index_root.exists() else []
        assert built == [], "a cancelled build leaves no index"
        tab.get_by_role("button", name="Start again").click()
        bar.first.wait_for(state="visible")  # it builds again, on the user's say
