"""The per-class HTML report: values equal the engine's, self-contained, rendered by Chromium."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from inficond.cli import main
from inficond.report import class_report, write_class_report
from inficond.session import Session

SCREENSHOTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "screenshots"


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {**browser_type_launch_args, "executable_path": "/usr/bin/chromium",
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync"]}


class Cells(HTMLParser):
    """Collects every element's attributes, in document order."""

    def __init__(self):
        super().__init__()
        self.elements: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))


def parse(text: str) -> list[tuple[str, dict]]:
    p = Cells()
    p.feed(text)
    return p.elements


@pytest.fixture
def tuned(workspace) -> tuple[Session, str, list[int]]:
    """The workspace with two tuning steps on its weakest class and one on another class."""
    s = Session(workspace)
    perf = s.performance("val")
    ranked = sorted((c for c in perf["classes"] if not c["excluded"]), key=lambda c: -(c["gap"] or 0))
    cls, other = ranked[0]["name"], ranked[1]["name"]
    top = [c["word"] for c in s.class_concepts(cls, k=3)["concepts"]]
    states = [s.tune([{"class": cls, "concept": top[0], "direction": "up"}])["state_id"]]
    s.tune([{"class": other, "concept": s.class_concepts(other, k=1)["concepts"][0]["word"], "direction": "down"}])
    states.append(s.tune([{"class": cls, "concept": top[1], "direction": "down"},
                          {"class": cls, "concept": top[2], "direction": "up"}])["state_id"])
    return s, cls, states


def test_report_values_equal_the_sessions(tuned, tmp_path):
    s, cls, states = tuned
    out = tmp_path / "r.html"
    assert main(["report", str(s.path), cls, "--out", str(out)]) == 0
    text = out.read_text()
    els = parse(text)
    k = s.class_idx(cls)

    for split in ("val", "test"):
        row = s.performance(split)["classes"][k]
        for model in ("teacher", "student"):
            cells = {}
            in_row = False
            for tag, a in els:
                if tag == "tr":
                    in_row = a.get("data-split") == split and a.get("data-model") == model
                elif in_row and tag == "td" and "data-metric" in a:
                    cells[a["data-metric"]] = a.get("data-value")
            for m in ("ap", "precision", "recall", "f1", "accuracy"):
                want = row[model][m]
                assert cells[m] == (None if want is None else repr(float(want))), (split, model, m)
        for sub in ("pos", "neg"):
            counts = row["alignment"][sub]["counts"]
            got, in_row = {}, False
            for tag, a in els:
                if tag == "tr":
                    in_row = a.get("data-split") == split and a.get("data-subset") == sub
                elif in_row and tag == "td" and "data-category" in a:
                    got[a["data-category"]] = int(a["data-value"])
            assert got == counts

    words = [a["data-concept"] for tag, a in els if tag == "tr" and "data-concept" in a]
    assert words == [c["word"] for c in s.class_concepts(cls, k=10)["concepts"]]
    # the history lists the distillation and this class's two steps, not the other class's step
    rows = [(int(a["data-state"]), a["data-kind"]) for tag, a in els if tag == "tr" and "data-state" in a]
    assert [r for r in rows if r[1] == "tune"] == [(st, "tune") for st in states]
    assert rows[0][1] == "distill"
    prov = {p["state_id"]: p for p in s.provenance()["steps"]}
    after = [a["data-value"] for tag, a in els if tag == "td" and a.get("data-field") == "val-after"]
    assert after == [repr(float(prov[st]["val"]["after"]["ap"])) for st in states]
    assert f"<title>InFiConD report: {cls}</title>" in text


def test_report_is_self_contained(tuned):
    s, cls, _ = tuned
    text = class_report(s, cls)
    els = parse(text)
    imgs = [a["src"] for tag, a in els if tag == "img"]
    n_patches = sum(len(c["patches"]) for c in s.class_concepts(cls, k=10)["concepts"])
    assert n_patches > 0 and len(imgs) == n_patches
    assert all(src.startswith("data:image/") for src in imgs)
    assert not [a for tag, a in els if tag in ("link", "script")]
    assert not re.search(r"""(src|href)=["'](https?:)?//""", text)
    assert sum(tag == "svg" for tag, _ in els) == 10 + 1  # a what-if curve per concept, the history chart


def test_report_without_tuning_says_so(prepared_workspace, tmp_path):
    s = Session(prepared_workspace)
    path = write_class_report(s, 0, tmp_path / "a.html")
    text = path.read_text()
    assert "no tuning step on the current path" in text
    assert [a["data-kind"] for tag, a in parse(text) if tag == "tr" and "data-kind" in a] == ["distill"]


def test_unknown_class_is_named(prepared_workspace, tmp_path, capsys):
    assert main(["report", str(prepared_workspace), "zebra", "--out", str(tmp_path / "z.html")]) == 2
    assert "'zebra'" in capsys.readouterr().err
    assert not (tmp_path / "z.html").exists()


@pytest.mark.e2e
def test_report_renders_in_chromium(tuned, tmp_path, page):
    s, cls, _ = tuned
    path = write_class_report(s, cls, tmp_path / f"{cls}.html")
    page.set_viewport_size({"width": 1200, "height": 900})
    page.route("**/*", lambda route: route.abort() if not route.request.url.startswith(("file:", "data:"))
               else route.continue_())  # offline: any request off the file would fail the page
    page.goto(path.as_uri())
    assert page.locator("h1").inner_text() == f"Student report: {cls}"
    # every patch decoded, every chart laid out
    assert page.evaluate("() => [...document.images].every(i => i.complete && i.naturalWidth > 0)")
    assert page.locator("table.concepts svg polyline").count() == 10
    box = page.locator("table.concepts").bounding_box()
    assert box and box["width"] > 600 and box["height"] > 300
    val = s.performance("val")["classes"][s.class_idx(cls)]["student"]["ap"]
    assert page.locator("[data-field=kpi-val] .v").inner_text() == f"{val:.3f}"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "report.png"), full_page=True)
