"""Voting on any concept from the page, and the interface defects of issue 8, in a real browser
against a real server on a real workspace. Screenshots go to test-artifacts/screenshots/votes-*."""

from __future__ import annotations

import re

import numpy as np
import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.e2e
# the machine running these is shared: answers that take a second alone can take ten here
expect.set_options(timeout=30_000)


def included(session) -> list[dict]:
    return [c for c in session.performance("val")["classes"] if not c["excluded"] and c["student"]["ap"] is not None]


def idle(page: Page) -> None:
    page.wait_for_function("() => !document.querySelector('[aria-busy=true]')")


def open_class(page: Page, url: str, k: int) -> None:
    page.set_viewport_size({"width": 1440, "height": 900})
    page.goto(url)
    row = page.locator(f'[data-testid=class-row][data-class-idx="{k}"]')
    row.click()
    expect(row).to_have_attribute("aria-selected", "true")
    expect(page.locator("[data-testid=concept-row]").first).to_be_visible(timeout=60_000)
    idle(page)


def shot(page: Page, screenshots, tag: str, *views: str) -> None:
    page.screenshot(path=str(screenshots / f"votes-{tag}.png"))
    for v in views:
        page.locator(f"[data-testid=view-{v}]").screenshot(path=str(screenshots / f"votes-{tag}-{v}.png"))


def search(page: Page, text: str):
    page.locator("[data-testid=concept-search]").fill(text)
    hits = page.locator("[data-testid=search-hit]")
    expect(hits.first).to_be_visible()
    return hits


def test_every_concept_can_be_voted_from_the_page(page: Page, fresh_server, screenshots):
    """Search finds any corpus word (zero-weight and newly added ones too); votes come from the
    search, the concept detail and the map; they survive a reload; the strength reaches the step."""
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    s = fresh_server.session
    k = included(s)[0]["class_idx"]
    added = s.add_concepts(["zebra crossing"])["added"][0]  # a newly added word: influence 0 everywhere
    words = s.ws.concept_words
    coef = s.student.coef_[k]
    zero = int(np.flatnonzero(coef == 0)[0])
    open_class(page, fresh_server.url, k)
    blocks = page.locator("[data-testid=vote-block]")

    # any word can be found: a sample over the whole corpus, first, last and the added one
    for c in sorted({0, len(words) // 3, 2 * len(words) // 3, len(words) - 1, zero}):
        hits = search(page, words[c])
        expect(hits.first).to_have_attribute("data-word", words[c])

    # 1. from the search: a zero-weight concept and the newly added word
    hit = search(page, words[zero]).first
    expect(hit).to_contain_text("unused")
    hit.locator("[data-testid=vote-up]").click()
    hit = search(page, "zebra cross").first
    expect(hit).to_have_attribute("data-word", "zebra crossing")
    expect(hit).to_contain_text("added")
    hit.locator("[data-testid=vote-up]").click()
    expect(blocks).to_have_count(2)
    shot(page, screenshots, "search", "knowledge")

    # 2. from the concept detail: open a third word from the search and downtune it there
    third = next(i for i in np.flatnonzero(coef == 0) if int(i) != zero and words[int(i)] != "zebra crossing")
    search(page, words[int(third)]).first.locator("button.concept").click()
    expect(page.locator("[data-testid=detail-word]")).to_have_text(words[int(third)])
    expect(page.locator("[data-testid=detail-vote]")).to_contain_text(f"Vote for {s.ws.class_names[k]}:")
    expect(page.locator("[data-testid=vote-preview]")).to_contain_text("at strength 0.50")
    # the proposed bounds are drawn on the AP chart and read there
    expect(page.locator("[data-testid=detail-charts] [data-testid=proposal-mark]").first).to_be_visible()
    page.locator("[data-testid=detail-vote-down]").click()
    expect(blocks).to_have_count(3)

    # 3. from the map: select a highlighted point and uptune it on the map
    point = page.locator("[data-testid=embedding-top]").first
    word = point.get_attribute("data-word")
    # the click goes to this point itself: a neighbouring point or label drawn over it must not take it
    point.dispatch_event("click")
    expect(point).to_have_class(re.compile(r"\bsel\b"))
    page.locator("[data-testid=map-vote-up]").click()
    expect(blocks.filter(has_text=word)).to_have_count(1)
    expect(blocks).to_have_count(4)
    shot(page, screenshots, "three-ways", "knowledge", "detail", "embedding")

    # pending votes survive a reload (kept per workspace and class)
    page.reload()
    page.locator(f'[data-testid=class-row][data-class-idx="{k}"]').click()
    expect(blocks).to_have_count(4)

    # the vote strength: 0.2 is previewed and sent with the step
    page.locator("[data-testid=vote-strength]").evaluate(
        "e => { e.value = '0.2'; e.dispatchEvent(new Event('input', { bubbles: true })); }")
    search(page, words[zero]).first.locator("button.concept").click()
    expect(page.locator("[data-testid=vote-preview]")).to_contain_text("at strength 0.20")
    n = len(s.log.all_states())
    page.locator("[data-testid=fine-tune]").click()
    expect(page.locator("[data-testid=last-delta]")).to_be_visible(timeout=60_000)
    expect(blocks).to_have_count(0)
    assert len(s.log.all_states()) == n + 1
    assert s.log.all_states()[-1]["step_params"]["factor"] == pytest.approx(0.2)
    new = s.student.coef_[k]
    assert new[zero] > 0 and new[added["concept_idx"]] > 0 and new[int(third)] < 0
    # the FN/FP share change the server returns is shown
    expect(page.locator("[data-testid=error-shares]")).to_contain_text("FN")
    idle(page)
    shot(page, screenshots, "tuned", "knowledge", "provenance")
    # nothing is left pending after the step, also after a reload
    page.reload()
    page.locator(f'[data-testid=class-row][data-class-idx="{k}"]').click()
    expect(page.locator("[data-testid=concept-row]").first).to_be_visible()
    expect(blocks).to_have_count(0)
    assert not errors, errors


def test_conflict_in_plain_words_replace_and_stale_delta(page: Page, fresh_server, screenshots):
    s = fresh_server.session
    k = included(s)[0]["class_idx"]
    c = int(np.flatnonzero(s.student.coef_[k] == 0)[0])
    word = s.ws.concept_words[c]
    s.tune([{"class": k, "concept": c, "direction": "up"}])
    open_class(page, fresh_server.url, k)
    search(page, word).first.locator("[data-testid=vote-down]").click()
    page.locator("[data-testid=fine-tune]").click()
    box = page.locator("[data-testid=vote-conflict]")
    expect(box).to_contain_text(f"“{word}” was uptuned")
    expect(box).not_to_contain_text("on_conflict")
    expect(page.locator("[data-testid=notice]")).to_have_count(0)
    shot(page, screenshots, "conflict", "knowledge")
    page.locator("[data-testid=replace-vote]").click()
    delta = page.locator("[data-testid=last-delta]")
    expect(delta).to_be_visible(timeout=60_000)
    expect(box).to_have_count(0)
    assert s.earlier_vote(k, c) == "down"
    # the step's delta belongs to its state: undo removes it
    idle(page)
    page.locator("[data-testid=undo]").click()
    expect(delta).to_have_count(0)
    idle(page)
    assert s.earlier_vote(k, c) == "up"


def test_provenance_tree_keeps_the_current_state_in_view(page: Page, fresh_server, screenshots):
    s = fresh_server.session
    classes = included(s)
    # a history with branches: five steps, undo three, then two new ones
    for i in range(5):
        cls = classes[i % len(classes)]["class_idx"]
        top = s.class_concepts(cls, k=3)["concepts"][i % 3]
        s.tune([{"class": cls, "concept": top["concept_idx"], "direction": "down"}], on_conflict="replace")
    for _ in range(3):
        s.undo()
    for i in range(2):
        cls = classes[(i + 1) % len(classes)]["class_idx"]
        top = s.class_concepts(cls, k=3)["concepts"][0]
        s.tune([{"class": cls, "concept": top["concept_idx"], "direction": "up"}], on_conflict="replace")
    open_class(page, fresh_server.url, classes[0]["class_idx"])
    head = s.provenance()["head"]
    current = page.locator(f'[data-testid=prov-step][data-state-id="{head}"]')
    expect(current).to_contain_text("current")
    expect(page.locator('[data-testid=prov-step][data-lane="1"]').first).to_be_visible()

    # the current row lies inside the panel's visible area, below its sticky totals
    in_view = """(id) => {
        const row = document.querySelector(`[data-testid=prov-step][data-state-id="${id}"]`);
        const body = document.querySelector('[data-testid=view-provenance] .body');
        const total = document.querySelector('[data-testid=cumulative]');
        if (!row || !body || !total) return false;
        const r = row.getBoundingClientRect(), b = body.getBoundingClientRect(), t = total.getBoundingClientRect();
        return r.top >= t.bottom - 1 && r.bottom <= b.bottom + 1;
    }"""
    page.wait_for_function(in_view, arg=head, timeout=10_000)
    # undo twice: the (new) current state is scrolled into view again
    for _ in range(2):
        page.locator("[data-testid=undo]").click()
        idle(page)
    head = s.provenance()["head"]
    expect(page.locator(f'[data-testid=prov-step][data-state-id="{head}"]')).to_contain_text("current")
    page.wait_for_function(in_view, arg=head, timeout=10_000)
    # the total is the mean-AP change and per-class totals, never a sum of different classes' AP
    cum = s.provenance()["cumulative"]
    per = page.locator("[data-testid=cum-per-class]")
    for r in cum["per_class"]:
        expect(per).to_contain_text(r["name"])
    shown = page.locator("[data-testid=cum-val-map]").inner_text()
    v = cum["val_map_delta"] * 100
    want = "±0.00" if round(v, 2) == 0 else f"{'+' if v > 0 else '−'}{abs(v):.2f}"
    assert shown == want
    shot(page, screenshots, "provenance", "provenance")


def test_performance_view_gap_sample_size_and_test_ap(page: Page, live_server, screenshots):
    s = live_server.session
    perf = s.performance("val")
    test = {c["class_idx"]: c for c in s.performance("test")["classes"]}
    page.set_viewport_size({"width": 1440, "height": 900})
    page.goto(live_server.url)
    expect(page.locator("[data-testid=class-row]").first).to_be_visible()
    idle(page)
    for c in perf["classes"]:
        if c["excluded"] or c["gap"] is None:
            continue
        row = page.locator(f'[data-testid=class-row][data-class-idx="{c["class_idx"]}"]')
        gap = row.locator("[data-testid=class-gap]")
        v = -c["gap"] * 100  # student − teacher
        want = "0.0" if abs(v) < 0.05 else f"{'+' if v > 0 else '−'}{abs(v):.1f}"
        expect(gap).to_have_text(want)
        expect(gap).to_have_attribute("title", re.compile(r"student AP − teacher AP.*" + re.escape(want)))
        expect(row.locator("[data-testid=class-npos]")).to_contain_text(f"{c['n_pos']} pos")
        t = test[c["class_idx"]]["student"]["ap"]
        if t is not None:
            expect(row.locator("[data-testid=test-ap]")).to_contain_text(str(round(t * 100)))
        # the tooltip says the same sign as the row
        row.hover()
        expect(page.locator("[data-testid=tooltip]")).to_contain_text(f"{want} pts")
    shot(page, screenshots, "performance", "performance")


def test_map_labels_and_points_do_not_overlap(page: Page, live_server, screenshots):
    s = live_server.session
    page.set_viewport_size({"width": 1440, "height": 900})
    for cls in included(s)[:3]:
        open_class(page, live_server.url, cls["class_idx"])
        expect(page.locator("[data-testid=embedding-top]")).to_have_count(10)
        boxes = page.locator("[data-testid=map-label]").evaluate_all(
            "els => els.map(e => { const r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom, e.textContent]; })")
        assert len(boxes) >= 5
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                a, b = boxes[i], boxes[j]
                overlap = a[0] < b[2] - 1 and b[0] < a[2] - 1 and a[1] < b[3] - 1 and b[1] < a[3] - 1
                assert not overlap, (a, b)
        circles = page.locator("[data-testid=embedding-top]").evaluate_all(
            "els => els.map(e => [+e.getAttribute('cx'), +e.getAttribute('cy'), +e.getAttribute('r')])")
        for i in range(len(circles)):
            for j in range(i + 1, len(circles)):
                (x1, y1, r1), (x2, y2, r2) = circles[i], circles[j]
                assert np.hypot(x1 - x2, y1 - y2) >= r1 + r2 - 0.5, "a highlighted point hides under another"
        shot(page, screenshots, f"map-{cls['name']}", "embedding")


def test_hover_asks_once_per_rested_class_and_says_it_is_a_preview(page: Page, live_server):
    page.set_viewport_size({"width": 1440, "height": 900})
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if re.search(r"/api/classes/\d+/concepts\?k=10&sort=influence", r.url) else None)
    page.goto(live_server.url)
    rows = page.locator("[data-testid=class-row]:not(.excluded)")
    expect(rows.nth(3)).to_be_visible()
    idle(page)
    committed = page.locator("[data-testid=class-row][aria-selected=true]").get_attribute("data-class-name")
    n0 = len(asked)
    # sweep the pointer over every row in one motion, then rest on the last one
    first, last = rows.first.bounding_box(), rows.last.bounding_box()
    page.mouse.move(first["x"] + 40, first["y"] + 5)
    page.mouse.move(last["x"] + 40, last["y"] + last["height"] / 2, steps=rows.count() * 2)
    name = page.locator("[data-testid=class-row].preview").get_attribute("data-class-name")
    expect(page.locator("[data-testid=map-caption]")).to_contain_text(f"Preview: top 10 of {name}")
    # the knowledge view stays on the committed class until a click
    expect(page.locator("[data-testid=view-knowledge] [data-testid=vote-bar]")).to_contain_text(committed)
    swept = len(asked) - n0
    assert swept < rows.count() - 1, f"{swept} requests for {rows.count()} rows crossed"
    # back to a class already previewed in this state: no new request (cached)
    n1 = len(asked)
    off = page.locator("[data-testid=view-config]").bounding_box()  # off the list: back to the committed class
    page.mouse.move(off["x"] + 20, off["y"] + 20)
    expect(page.locator("[data-testid=map-caption]")).not_to_contain_text("Preview")
    page.mouse.move(last["x"] + 40, last["y"] + last["height"] / 2)
    expect(page.locator("[data-testid=map-caption]")).to_contain_text(f"Preview: top 10 of {name}")
    assert len(asked) == n1


def test_sparklines_share_one_scale_with_a_readable_tooltip(page: Page, live_server, screenshots):
    s = live_server.session
    k = included(s)[0]["class_idx"]
    open_class(page, live_server.url, k)
    sparks = page.locator("[data-testid=sparkline]")
    expect(sparks.first).to_be_visible()
    ticks = sparks.evaluate_all("els => els.map(e => [...e.querySelectorAll('text')].map(t => t.textContent).join('/'))")
    assert len(set(ticks)) == 1 and ticks[0], ticks  # every row has the same y-axis labels
    sparks.first.hover()
    tip = page.locator("[data-testid=tooltip]")
    expect(tip).to_contain_text("AP there")
    expect(tip).to_contain_text("influence set to")
    shot(page, screenshots, "sparkline-tip", "knowledge")


def test_discrepancy_sort_says_when_it_falls_back(page: Page, live_server, screenshots):
    """Where the student gets every (or no) val positive or negative right, the discrepancy of that
    subset is undefined: the view says so and sorts by class contrast instead of corpus order."""
    s = live_server.session
    found = [(c, key) for key, flag in (("discrepancy_p", "p_defined"), ("discrepancy_n", "n_defined"))
             for c in included(s) if not s._discrepancy_full(c["class_idx"])[flag] and 0 < c["n_pos"]]
    if not found:
        pytest.fail("the test workspace has no class with an undefined discrepancy")
    cls, key = found[0]
    open_class(page, live_server.url, cls["class_idx"])
    page.locator("[data-testid=knowledge-sort]").select_option(key)
    note = page.locator("[data-testid=sort-note]")
    expect(note).to_contain_text("undefined")
    expect(note).to_contain_text("class contrast")
    rows = page.locator("[data-testid=concept-row]")
    expect(rows.first).to_be_visible()
    idx = [int(i) for i in rows.evaluate_all("els => els.map(e => e.dataset.conceptIdx)")]
    assert idx != sorted(idx), "fell back to corpus order"
    shot(page, screenshots, "discrepancy-note", "knowledge")
