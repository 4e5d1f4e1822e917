"""Finding and removing a shortcut from the page: a teacher that learned "grass means dog", the
"Try" suggestion chips, the knowledge view's "Find shortcuts", and "Remove shortcut" (a ▼ vote with
erase), in a real browser
against a real server. Screenshot: test-artifacts/screenshots/shortcut-found.png."""

from __future__ import annotations

import json
import shutil

import pytest
from playwright.sync_api import Page, expect

from _data_fixtures import plant_shortcut

from .conftest import LiveServer
from .test_votes_ui import idle, open_class

pytestmark = pytest.mark.e2e
expect.set_options(timeout=60_000)


def test_a_planted_shortcut_is_found_and_removed_from_the_page(page: Page, built_front_end, e2e_workspace,
                                                                 tmp_path, screenshots):
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    dst = tmp_path / "ws"
    shutil.copytree(e2e_workspace, dst)
    s = plant_shortcut(dst)
    k = s.class_idx("dog")
    with LiveServer(s) as srv:
        open_class(page, srv.url, k)
        g = s.concept_idx("grass")
        # the "Try" chips: on this teacher ▼grass is a plain suggestion too; a click adds it as a pending vote
        chip = page.locator("[data-testid=suggestions] button", has_text="grass")
        expect(chip).to_have_count(1)
        expect(chip).to_contain_text("▼")
        chip.click()
        block = page.locator(f'[data-testid=vote-block][data-concept-idx="{g}"]')
        expect(block).to_contain_text("▼ grass")
        block.click()  # withdrawn again: the shortcut is removed below with erase instead
        expect(block).to_have_count(0)
        # nothing is computed until asked: the search costs refits
        expect(page.locator("[data-testid=shortcut]")).to_have_count(0)
        page.locator("[data-testid=find-shortcuts]").click()
        card = page.locator('[data-testid=shortcut][data-word="grass"]')
        expect(card).to_be_visible()
        expect(card).to_contain_text("Possible shortcut: ▼ grass")
        expect(card).to_contain_text("train AP")
        idle(page)
        page.locator("[data-testid=view-knowledge]").screenshot(path=str(screenshots / "shortcut-found.png"))
        before = s.log.head()
        card.locator("[data-testid=erase-shortcut]").click()
        # the step lands, the cards go (the student changed), and the step was an erase-downvote
        expect(page.locator("[data-testid=shortcut]")).to_have_count(0)
        expect(page.locator("[data-testid=last-delta]")).to_be_visible()
        head = s.log.head()
        assert head != before
        row = s.log._row(head)
        params = json.loads(row["step_params"])
        assert params.get("erase") == [[k, g]], params
    assert not errors, errors
