"""The concept map's grey points, drawn on a canvas under the SVG: a point under the pointer is
previewed (its label shows) and a click selects it (the concept detail view opens on it)."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from .test_app import wait_all_views

pytestmark = pytest.mark.e2e

# the first pixel a grey point painted (the map's background is #fcfdfe), in CSS pixels of the page
FIND_POINT = """(cv) => {
  const g = cv.getContext('2d'), d = g.getImageData(0, 0, cv.width, cv.height).data, dpr = cv.width / cv.clientWidth;
  const r = cv.getBoundingClientRect();
  for (let y = 40; y < cv.height - 60; y++) for (let x = 40; x < cv.width - 40; x++) {
    const i = 4 * (y * cv.width + x);
    if (d[i] < 215 && d[i + 1] < 220 && d[i + 2] < 228 && d[i] > 150) return [r.left + (x + 2) / dpr, r.top + (y + 2) / dpr];
  }
  return null;
}"""


def test_a_grey_point_previews_on_hover_and_opens_on_click(page: Page, live_server):
    page.set_viewport_size({"width": 1440, "height": 900})
    page.goto(live_server.url)
    wait_all_views(page)
    canvas = page.locator("[data-testid=embedding-points]")
    n_map = len(live_server.session.concept_map()["points"])
    assert int(canvas.get_attribute("data-drawn")) == n_map - page.locator("[data-testid=embedding-top]").count()
    xy = canvas.evaluate(FIND_POINT)
    assert xy is not None, "no grey point drawn"
    page.mouse.move(*xy)
    label = page.locator("[data-testid=map-label].hov")
    expect(label).to_have_count(1)
    word = label.text_content()
    page.mouse.click(*xy)
    expect(page.locator("[data-testid=view-detail]")).to_contain_text(word)
    # off the points: the preview ends
    page.mouse.move(xy[0], xy[1] - 300)
    page.mouse.move(5, 5)
    expect(page.locator("[data-testid=map-label].hov")).to_have_count(1)  # the selected concept keeps its label
