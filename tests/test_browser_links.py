"""End to end in chromium: a link copied from the address bar opens the same view in a new browser."""

import re

import pytest

from tests.browser_support import (
    VIEWPORT,
    assert_no_exception,
    click_tile,
    gallery_ids,
    screenshot,
    wait_for_app,
)
from tests.test_browser_images import BUILD_TIMEOUT_MS, neighbour_captions, open_gallery

pytestmark = pytest.mark.browser


def neighbours_shown(page) -> list[str]:
    """The neighbour grid's captions (class mark, label, cosine), in page order."""
    return [c for c in neighbour_captions(page) if re.search(r"cos -?[0-9]", c)]


@pytest.mark.ci_after  # 21 s: two browser contexts
def test_a_shared_image_search_link_shows_the_same_neighbours(app_url, page, browser):
    gallery = open_gallery(page, app_url)
    ids = gallery_ids(gallery)
    click_tile(gallery, 5)
    page.get_by_text(f"Query #{ids[5]}").first.wait_for(state="visible", timeout=60_000)
    wait_for_app(page)
    page.locator("[data-testid='stSlider'] input[type='range']").first.focus()
    page.keyboard.press("ArrowRight")  # k 10 -> 11
    page.get_by_text("Top 11 neighbours").first.wait_for(state="visible", timeout=60_000)
    wait_for_app(page)
    assert_no_exception(page)
    link = page.url
    assert f"q={ids[5]}" in link and "k=11" in link and "image_model=" in link, link
    before = neighbours_shown(page)
    assert len(before) == 11

    other = browser.new_context(viewport=VIEWPORT)  # a new browser: no cookies, a new session
    try:
        fresh = other.new_page()
        fresh.goto(link, wait_until="domcontentloaded")
        fresh.get_by_text(f"Query #{ids[5]}").first.wait_for(state="visible", timeout=BUILD_TIMEOUT_MS)
        wait_for_app(fresh)
        assert_no_exception(fresh)
        assert fresh.get_by_text("Top 11 neighbours").first.is_visible()
        assert neighbours_shown(fresh) == before
        assert not fresh.locator("[data-testid='stAlertContentWarning']").count()
        screenshot(fresh, "links_shared_image_search")

        fresh.goto(link.replace(f"q={ids[5]}", "q=99999"), wait_until="domcontentloaded")
        fresh.get_by_text("Pick a query").first.wait_for(state="visible", timeout=BUILD_TIMEOUT_MS)
        wait_for_app(fresh)
        assert_no_exception(fresh)
        assert fresh.get_by_text(
            "The query image #99999 is past the end of this collection"
        ).first.is_visible()
        assert "q=" not in fresh.url  # the address bar now holds the view shown
        screenshot(fresh, "links_stale_image_search")
    finally:
        other.close()
