"""Front-end timings in headless Chromium, and server start time, on a real workspace.

    nice -n 10 python benchmarks/bench_frontend.py --workspace workspaces/dev

Measured (issue 10's targets in brackets):

- server start: spawn of ``inficond serve`` to its first answer (/api/summary) [< 2 s];
- first full render: navigation start until all six panels show content and none is loading,
  as in bench_server.py [< 0.5 s];
- class click -> all views updated: from a class row's click (inside the page) until the row is
  selected, the knowledge view names the class, no panel is loading, and the next frame is
  painted; one click per well-populated class [median < 150 ms];
- fine-tune round trip as seen in the browser: one up-vote on the top concept, from the
  Fine-tune click until the new provenance step is listed and no panel is loading; each round
  is followed by undo [p95 < 300 ms].

The workspace is copied first (SQLite copied, arrays and patches hard-linked; the server only
replaces whole files), so tuning here never changes it. The server runs in its own process
(``inficond serve``), and the browser talks to it over loopback.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from bench_scale import pct, start_server, working_copy  # noqa: E402
from bench_server import CHROMIUM_ARGS, first_render  # noqa: E402
from machine import machine_line  # noqa: E402

# click inside the page and time it there (no Python round trip in the figure); Svelte flushes
# its updates in microtasks, so one timer tick after the click the loading panels are marked busy
CLICK_JS = """async ([sel, done]) => {
  const ready = new Function('return (' + done + ')()');
  const t0 = performance.now();
  document.querySelector(sel).click();
  await new Promise(r => setTimeout(r, 0));
  while (!(ready() && !document.querySelector('[aria-busy=true]'))) {
    if (performance.now() - t0 > 60000) throw new Error('timed out: ' + sel);
    await new Promise(r => setTimeout(r, 2));
  }
  await new Promise(r => requestAnimationFrame(() => r()));
  return performance.now() - t0;
}"""


def class_click(page, k: int, name: str) -> float:
    sel = f'[data-testid=class-row][data-class-idx="{k}"]'
    done = (f"""() => document.querySelector('{sel}').getAttribute('aria-selected') === 'true'
        && (document.querySelector('[data-testid=view-knowledge] [data-testid=vote-bar]') || {{}}).textContent
           ?.includes({json.dumps(name)})""")
    return page.evaluate(CLICK_JS, [sel, done])


def tune_round_trip(page) -> float:
    n = page.locator("[data-testid=prov-step]").count()
    page.locator("[data-testid=concept-row]").nth(0).locator("[data-testid=vote-up]").click()
    page.locator("[data-testid=vote-block]").first.wait_for()
    done = f"() => document.querySelectorAll('[data-testid=prov-step]').length > {n}"
    ms = page.evaluate(CLICK_JS, ["[data-testid=fine-tune]", done])
    page.locator("[data-testid=undo]").click()
    page.wait_for_function(f"() => document.querySelectorAll('[data-testid=prov-step]').length >= {n + 1}"
                           " && !document.querySelector('[aria-busy=true]')")
    page.locator('[data-testid=prov-step]:has-text("current")').first.wait_for()
    return ms


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workspace", default=str(REPO / "workspaces" / "dev"))
    ap.add_argument("--starts", type=int, default=3)
    ap.add_argument("--renders", type=int, default=3)
    ap.add_argument("--tunes", type=int, default=8)
    ap.add_argument("--out", default=str(HERE / "results" / "frontend.md"))
    a = ap.parse_args()
    from playwright.sync_api import sync_playwright

    ws = working_copy(Path(a.workspace), Path(tempfile.mkdtemp(prefix="bench-frontend-")) / "ws")
    starts = []
    for _ in range(a.starts):
        proc, base, secs = start_server(ws)
        starts.append(secs)
        if len(starts) < a.starts:
            proc.terminate()
            proc.wait(30)
    print(f"server start: {[round(s, 2) for s in starts]} s", flush=True)
    try:
        perf = httpx.get(base + "/api/performance?split=val", timeout=120).json()
        httpx.get(base + "/api/concepts/map", timeout=120).raise_for_status()  # the t-SNE is built once per workspace
        render = first_render(base, runs=a.renders)
        print(f"first full render: {[round(t) for t in render]} ms", flush=True)
        classes = sorted((c for c in perf["classes"] if not c["excluded"]), key=lambda c: -c["n_pos"])
        clicks, tunes = [], []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            page = browser.new_context(viewport={"width": 1440, "height": 900}).new_page()
            page.goto(base + "/")
            page.locator("[data-testid=concept-row]").first.wait_for(timeout=60_000)
            page.wait_for_function("() => !document.querySelector('[aria-busy=true]')", timeout=60_000)
            for c in classes:  # each class once: the first click on a class after start
                clicks.append(class_click(page, c["class_idx"], c["name"]))
            print(f"class click: median {statistics.median(clicks):.0f} ms, {[round(t) for t in clicks]}", flush=True)
            for _ in range(a.tunes):
                tunes.append(tune_round_trip(page))
            print(f"fine-tune round trip: {[round(t) for t in tunes]} ms", flush=True)
            browser.close()
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(ws.parent, ignore_errors=True)
    load = os.getloadavg()
    rows = [
        ("server start (spawn → first answer)", f"{len(starts)} starts", starts, "s", statistics.median(starts), "median", "< 2 s",
         statistics.median(starts) < 2),
        ("first full render", f"{len(render)} page loads", render, "ms", statistics.median(render), "median", "< 500 ms",
         statistics.median(render) < 500),
        ("class click → all views updated", f"{len(clicks)} classes", clicks, "ms", statistics.median(clicks), "median",
         "< 150 ms", statistics.median(clicks) < 150),
        ("fine-tune round trip in the browser", f"{len(tunes)} rounds", tunes, "ms", pct(tunes, 95), "p95", "< 300 ms",
         pct(tunes, 95) < 300),
    ]
    fmt = lambda v, u: f"{v:.2f} s" if u == "s" else f"{v:.0f} ms"  # noqa: E731
    lines = ["| what | runs | min | median | p95 | max | target | met |", "|---|---|---|---|---|---|---|---|"]
    for label, runs, vals, unit, fig, _, target, ok in rows:
        lines.append(f"| {label} | {runs} | {fmt(min(vals), unit)} | {fmt(statistics.median(vals), unit)} | "
                     f"{fmt(pct(vals, 95), unit)} | {fmt(max(vals), unit)} | {target} | {'yes' if ok else '**no**'} |")
    text = "\n".join([
        "# Front end and start-up (Chromium, real workspace)", "",
        f"Workspace `{Path(a.workspace).name}` (a copy), {perf and len(perf['classes'])} classes; headless Chromium "
        "(/usr/bin/chromium via Playwright), 1440x900; server `inficond serve` in its own process.", "",
        *lines, "",
        f"Machine: {machine_line()}; load average at the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} "
        "(shared with other agents' work, so these are upper bounds).", "",
    ])
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(text)
    Path(a.out).with_suffix(".json").write_text(json.dumps(
        {"server_start_s": starts, "first_render_ms": render, "class_click_ms": clicks, "tune_round_trip_ms": tunes,
         "machine": machine_line(), "load": load}, indent=1))
    print(text)


if __name__ == "__main__":
    main()
