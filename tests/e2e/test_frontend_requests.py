"""Which API requests the page makes: each answer asked for once per student state.

Several views show the same answer (the summary in four views; a class's top concepts in the
knowledge view and the concept map). These tests count the requests the browser sends on load,
on a class click and after a fine-tuning step, against a real server.
"""

from __future__ import annotations

from collections import Counter

import pytest
from playwright.sync_api import Page, expect

from .test_app import wait_all_views

pytestmark = pytest.mark.e2e


def record_api(page: Page) -> list[str]:
    urls: list[str] = []
    page.on("request", lambda r: urls.append(r.url.split("//", 1)[1].split("/", 1)[1]) if "/api/" in r.url
            and "/api/media/" not in r.url else None)
    return urls


def twice(urls: list[str]) -> dict[str, int]:
    return {u: n for u, n in Counter(urls).items() if n > 1}


def test_a_page_load_asks_for_each_answer_once(page: Page, live_server):
    urls = record_api(page)
    page.goto(live_server.url)
    wait_all_views(page)
    page.wait_for_timeout(300)  # the suggestions follow the class's concepts
    assert not twice(urls), f"asked more than once: {twice(urls)}"
    for need in ("api/summary", "api/performance?split=val", "api/performance?split=test", "api/provenance",
                 "api/concepts/map"):
        assert need in urls, f"{need} not requested: {urls}"
    concepts = [u for u in urls if "/concepts?k=" in u]
    assert len(concepts) == 1, concepts  # knowledge view and concept map share one answer


def test_a_class_click_asks_for_that_class_once(page: Page, live_server):
    page.goto(live_server.url)
    wait_all_views(page)
    page.wait_for_timeout(300)
    selected = page.locator("[data-testid=class-row][aria-selected=true]").get_attribute("data-class-idx")
    other = page.locator(f"[data-testid=class-row]:not([data-class-idx='{selected}']):not(.excluded)").first
    k = other.get_attribute("data-class-idx")
    urls = record_api(page)
    other.click()
    expect(other).to_have_attribute("aria-selected", "true")
    page.wait_for_function("() => !document.querySelector('[aria-busy=true]')")
    page.wait_for_timeout(300)
    assert urls.count(f"api/classes/{k}/concepts?k=10&sort=influence") == 1, urls
    assert urls.count(f"api/classes/{k}/suggestions?k=5") == 1, urls
    assert all(f"/classes/{k}/" in u for u in urls), f"a click asked for more than its class: {urls}"


def test_a_class_click_asks_for_its_patches_in_one_request(page: Page, live_server):
    page.goto(live_server.url)
    wait_all_views(page)
    page.wait_for_timeout(300)
    k = page.locator("[data-testid=class-row]:not([aria-selected=true]):not(.excluded)").first.get_attribute("data-class-idx")
    other = page.locator(f"[data-testid=class-row][data-class-idx='{k}']")
    media: list[str] = []
    page.on("request", lambda r: media.append(r.url) if "/api/media/" in r.url else None)
    other.click()
    expect(other).to_have_attribute("aria-selected", "true")
    page.wait_for_function("() => !document.querySelector('[aria-busy=true]')")
    imgs = page.locator("[data-testid=view-knowledge] [data-testid=concept-row] figure img")
    expect(imgs.first).to_be_visible()
    page.wait_for_timeout(300)
    # one request for the patches not shown before (a concept in both classes' lists is not asked again)
    assert len(media) == 1 and "/api/media/patches?ids=" in media[0], media
    shown = imgs.evaluate_all("els => els.map(e => e.getAttribute('src'))")
    assert shown and all(s.startswith("data:image/") for s in shown), shown[:3]
    assert 0 < media[0].split("?", 1)[1].count("ids=") <= len(shown)


def test_a_tuning_step_refetches_each_view_once_and_not_the_map(page: Page, fresh_server):
    page.goto(fresh_server.url)
    wait_all_views(page)
    page.wait_for_timeout(300)
    steps = page.locator("[data-testid=prov-step]").count()
    page.locator("[data-testid=concept-row]").nth(0).locator("[data-testid=vote-up]").click()
    urls = record_api(page)
    page.locator("[data-testid=fine-tune]").click()
    expect(page.locator("[data-testid=prov-step]")).to_have_count(steps + 1)
    page.wait_for_function("() => !document.querySelector('[aria-busy=true]')")
    page.wait_for_timeout(300)
    assert urls[0] == "api/tune", urls
    assert not twice(urls), f"asked more than once: {twice(urls)}"
    assert "api/concepts/map" not in urls  # the map's points depend on the corpus words only
    for need in ("api/summary", "api/performance?split=val", "api/performance?split=test", "api/provenance"):
        assert need in urls, f"{need} not asked again after the step: {urls}"

    # undo answers with the new provenance: the page keeps it instead of asking again
    urls.clear()
    page.locator("[data-testid=undo]").click()
    expect(page.locator("[data-testid=prov-step]:has-text('current')").first).to_be_visible()
    page.wait_for_function("() => !document.querySelector('[aria-busy=true]')")
    page.wait_for_timeout(300)
    assert urls[0] == "api/provenance/undo" and "api/provenance" not in urls, urls
    assert not twice(urls), f"asked more than once: {twice(urls)}"
