"""The class view's "Label conflicts" and "Near-duplicates" sections under AppTest (instant ``pixels``
model): a click shows a conflict's neighbours, the threshold filters the pairs, test against train."""

from __future__ import annotations

import re
from pathlib import Path

# 3.11's parser is not thread-safe, "SystemError: AST constructor recursion depth mismatch")
import pytest
import torch  # noqa: F401  (imported now, not first in a job thread while the page compiles: CPython
from streamlit.testing.v1 import AppTest

from tests.conftest import assert_clean, shown_text, wait_for_jobs
from tests.test_conflicts import colour_folder

pytestmark = pytest.mark.app_env(shared_data="conflicts-app")  # the sample's index is built once here
APP = str(Path(__file__).resolve().parent.parent / "app.py")
TIMEOUT = 90
CLASS_VIEW = "How well are classes separated?"


def text_of(at: AppTest) -> str:
    kinds = ("markdown", "caption", "info", "warning", "error", "subheader")
    return "\n".join(shown_text(el.value) for kind in kinds for el in at.get(kind))


def class_view(at: AppTest) -> AppTest:
    """Open the image page's class view and wait for every background job (index, sections)."""
    at.run()
    at.switch_page("pages/images.py").run()
    wait_for_jobs(at, TIMEOUT)
    at.segmented_control(key="image_view").set_value(CLASS_VIEW).run()
    wait_for_jobs(at, TIMEOUT)
    assert_clean(at)
    assert not at.get("progress"), "a background job did not finish"
    return at


def pair_count(at: AppTest) -> int:
    found = re.search(r"\*\*([\d,]+)\*\* pairs at cosine", "\n".join(m.value for m in at.markdown))
    assert found, text_of(at)
    return int(found.group(1).replace(",", ""))


def test_label_conflicts_list_ranked_images_and_a_click_shows_neighbours(app_env):
    at = class_view(AppTest.from_file(APP, default_timeout=TIMEOUT))
    text = text_of(at)
    assert "Label conflicts" in text and "neighbours say" in text
    found = re.search(r"\*\*([\d,]+)\*\* of 2,000 images", "\n".join(m.value for m in at.markdown))
    assert found and int(found.group(1).replace(",", "")) > 0
    buttons = [b for b in at.button if b.key and b.key.startswith("conflict_show_")]
    assert len(buttons) == 10
    first = int(buttons[0].key.rsplit("_", 1)[1])
    images_before = len(at.get("image"))
    buttons[0].click().run()
    assert_clean(at)
    shown = "\n".join(m.value for m in at.markdown)
    assert f"**#{first}**, labelled" in shown and "of its 10 nearest neighbours carry another label" in shown
    assert len(at.get("image")) == images_before + 1 + 10  # the image itself and its 10 neighbours
    assert list((app_env / "indexes").glob("*/conflicts-k10-*.npz")), "saved beside the index"
    # a higher share keeps fewer conflicts, from the same result (no job)
    at.slider(key="conflict_share").set_value(1.0).run()
    assert_clean(at)
    assert not at.get("progress")
    fewer = re.search(r"\*\*([\d,]+)\*\* of 2,000 images", "\n".join(m.value for m in at.markdown))
    assert int(fewer.group(1).replace(",", "")) < int(found.group(1).replace(",", ""))


def test_the_threshold_changes_the_near_duplicate_pairs(app_env):
    at = class_view(AppTest.from_file(APP, default_timeout=TIMEOUT))
    assert at.slider(key="dup_threshold").value == 0.9
    at.slider(key="dup_threshold").set_value(0.8).run()
    assert_clean(at)
    assert not at.get("progress")
    low = pair_count(at)
    at.slider(key="dup_threshold").set_value(0.95).run()
    high = pair_count(at)
    assert low > high, (low, high)
    assert low > 0 and "cos " in text_of(at)
    assert len(list((app_env / "indexes").glob("*/duplicates-within-*.npz"))) == 1  # one search for both


def test_test_images_against_train_after_building_the_train_index(app_env, tmp_path, monkeypatch):
    root = colour_folder(tmp_path / "colours")
    monkeypatch.setenv("EMBEDDINGS_COLLECTION", str(root))
    at = class_view(AppTest.from_file(APP, default_timeout=TIMEOUT))
    at.slider(key="dup_threshold").set_value(0.999).run()
    assert pair_count(at) == 0  # within test: no copies
    at.radio(key="dup_scope").set_value("test against train").run()
    assert "needs its index, which is not built yet" in text_of(at)
    at.button(key="build_other_split").click().run()
    wait_for_jobs(at, TIMEOUT)
    assert_clean(at)
    assert "**1** of the 12 test images (8.3%) have a near-duplicate among the 24 train images" in "\n".join(
        m.value for m in at.markdown
    )
    assert "test #8 red · train #16 red" in text_of(at)  # test/red/000.png is train/red/000.png
