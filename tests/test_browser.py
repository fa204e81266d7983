"""End to end in chromium: a live ``streamlit run app.py``, pages navigated, screenshots saved.

Screenshots go to ``$SCREENSHOT_DIR`` or ``<repo>/screenshots/`` (printed at the end).
"""

import pytest

from tests.browser_support import (
    assert_no_exception,
    click_nav,
    goto_page,
    plotly_charts,
    screenshot,
    screenshot_dir,
    wait_for_app,
)

pytestmark = pytest.mark.browser

NAV_PAGES = [
    ("Home", "Embedding Explorer"),
    ("Word similarity", "Word similarity"),
    ("t-SNE map", "t-SNE map"),
]


def test_word_list_gives_heatmap_and_pairs(app_url, page):
    goto_page(page, app_url, "words")
    assert_no_exception(page)
    box = page.get_by_role("textbox", name="Words or phrases, separated by commas or new lines")
    box.fill("sun, moon, star, apple, banana, car")
    box.press("Control+Enter")
    wait_for_app(page, expect_rerun=True)
    assert_no_exception(page)
    heatmap = plotly_charts(page).first
    heatmap.wait_for(state="visible")
    ticks = heatmap.locator(".xtick text").evaluate_all("els => els.map(e => e.textContent)")
    assert {"sun", "moon", "banana"} <= set(ticks), ticks
    assert page.get_by_text("Most similar pairs").is_visible()
    assert page.locator("[data-testid='stDataFrame']").count() == 2
    screenshot(page, "words_typed_list")

    page.get_by_role("tab", name="Compare to one word").click()
    wait_for_app(page, expect_rerun=True)
    assert_no_exception(page)
    plotly_charts(page).first.wait_for(state="visible")
    screenshot(page, "words_compare_to_one_word")


def test_bad_input_shows_a_message(app_url, page):
    goto_page(page, app_url, "words")
    box = page.get_by_role("textbox", name="Words or phrases, separated by commas or new lines")
    box.fill("lonely")
    box.press("Control+Enter")
    wait_for_app(page, expect_rerun=True)
    assert_no_exception(page)
    assert page.get_by_text("needs at least 2 words").first.is_visible()
    assert plotly_charts(page).count() == 0


def test_every_page_renders(app_url, page):
    goto_page(page, app_url)
    for title, heading in NAV_PAGES:
        click_nav(page, title)
        assert_no_exception(page)
        assert page.get_by_role("heading", name=heading).first.is_visible()
        if title == "t-SNE map":
            plotly_charts(page).first.wait_for(state="visible")
        path = screenshot(page, title.lower().replace(" ", "_"))
        assert path.stat().st_size > 10_000
    print(f"\nscreenshots: {screenshot_dir()}")
