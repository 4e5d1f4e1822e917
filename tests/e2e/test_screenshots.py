"""The README's screenshots, taken by driving the app in Chromium, so they show the current app.

Every run writes them to ``test-artifacts/screenshots/readme/``. With
``INFICOND_UPDATE_SCREENSHOTS=1`` they also replace ``docs/screenshots/`` (what the README shows);
``make screenshots`` does that on the development workspace (``INFICOND_SCREENSHOT_WS``, copied
first, as the shots cast a pending vote). Without it they come from the test workspace.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Page, expect

from .conftest import REPO, SCREENSHOTS, LiveServer

pytestmark = pytest.mark.e2e
LOAD_MS = 60_000  # a first load on a busy 2-core machine takes more than the default 5 s

DOCS = REPO / "docs" / "screenshots"
README = REPO / "README.md"
SIZE = {"width": 1440, "height": 900}
# file name -> the view it shows (None: the whole app)
SHOTS = {"app.png": None, "knowledge.png": "knowledge", "detail.png": "detail", "embedding.png": "embedding"}


@pytest.fixture
def browser_context_args(browser_context_args):
    # the views at twice the CSS pixels, sharp on a high-density screen; the whole app at 1x
    return {**browser_context_args, "device_scale_factor": 2}


@pytest.fixture
def screenshot_server(request, tmp_path):
    ws = os.environ.get("INFICOND_SCREENSHOT_WS")
    if not ws:
        yield request.getfixturevalue("live_server")
        return
    from inficond.session import Session

    src = Path(ws)
    if not (src / "workspace.sqlite").is_file():
        pytest.fail(f"INFICOND_SCREENSHOT_WS={ws} is not a workspace (no workspace.sqlite)")
    request.getfixturevalue("built_front_end")
    dst = tmp_path / "ws"
    shutil.copytree(src, dst)
    session = Session(dst)
    if session.log.head() is None:
        pytest.fail(f"{ws} has no distilled student: run `inficond distill {ws}` first")
    with LiveServer(session) as srv:
        yield srv


def drive(page: Page, url: str) -> None:
    """The weakest class (the app's start), its top concept opened, one ▲ vote pending."""
    page.set_viewport_size(SIZE)
    page.goto(url)
    expect(page.locator("[data-testid=class-row][aria-selected=true]")).to_have_count(1, timeout=LOAD_MS)
    rows = page.locator("[data-testid=concept-row]")
    expect(rows.first).to_be_visible(timeout=LOAD_MS)
    expect(page.locator("[data-testid=embedding-top]").first).to_be_visible(timeout=LOAD_MS)
    expect(page.locator("[data-testid=prov-step]").first).to_be_visible(timeout=LOAD_MS)
    rows.first.locator("[data-testid=concept-open]").click()
    expect(page.locator("[data-testid=detail-charts] svg")).to_have_count(5, timeout=LOAD_MS)
    rows.nth(1).locator("[data-testid=vote-up]").click()
    expect(page.locator("[data-testid=vote-block]")).to_have_count(1)
    page.mouse.move(SIZE["width"] - 1, SIZE["height"] - 1)  # no hover card in the picture
    page.wait_for_function("() => !document.querySelector('[aria-busy=true]')"
                           " && [...document.images].every((i) => i.complete && i.naturalWidth > 0)", timeout=LOAD_MS)


def test_readme_screenshots(page: Page, screenshot_server):
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    drive(page, screenshot_server.url)
    expect(page.locator("[role=alert]")).to_have_count(0)

    out = SCREENSHOTS / "readme"
    out.mkdir(parents=True, exist_ok=True)
    for name, view in SHOTS.items():
        if view is None:
            page.screenshot(path=str(out / name), scale="css")
        else:
            page.locator(f"[data-testid=view-{view}]").screenshot(path=str(out / name))
        img = np.asarray(Image.open(out / name).convert("L"), dtype=float)
        if view is None:
            assert img.shape == (SIZE["height"], SIZE["width"])
        assert img.std() > 20, f"{name} is nearly blank"
    assert not errors, errors

    if os.environ.get("INFICOND_UPDATE_SCREENSHOTS") == "1":
        DOCS.mkdir(parents=True, exist_ok=True)
        for name in SHOTS:
            shutil.copyfile(out / name, DOCS / name)


def test_readme_shows_the_screenshots_the_test_takes():
    """The README shows exactly the shots above, and each is in docs/screenshots/ as a PNG."""
    shown = set(re.findall(r"docs/screenshots/([\w.-]+\.png)", README.read_text(encoding="utf-8")))
    assert shown, "the README shows no screenshot"
    assert shown == set(SHOTS), f"README and test disagree: shown {sorted(shown)}, taken {sorted(SHOTS)}"
    for name in shown:
        assert (DOCS / name).is_file(), f"docs/screenshots/{name} is missing: run `make screenshots`"
        with Image.open(DOCS / name) as img:
            img.verify()
