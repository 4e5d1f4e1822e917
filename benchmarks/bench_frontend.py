"""Front-end timings in headless Chromium, and server start time, on a real workspace.

    nice -n 10 python benchmarks/bench_frontend.py --workspace workspaces/dev
    # paired with an older checkout (e.g. `git worktree add ../base <commit>`, front end built there):
    nice -n 10 python benchmarks/bench_frontend.py --workspace workspaces/dev --baseline ../base

Measured (issue 10's targets in brackets):

- server start: spawn of ``inficond serve`` to its first answer (/api/summary) [< 2 s];
- first full render: navigation start until all six panels show content and none is loading,
  as in bench_server.py, read inside the page on the first animation frame where it holds
  [< 0.5 s];
- class click -> all views updated: from a class row's click (inside the page) until the row is
  selected, the knowledge view names the class, no panel is loading, and the next frame is
  painted; one click per well-populated class [median < 150 ms];
- fine-tune round trip as seen in the browser: one up-vote on a listed concept (the first, then
  the second, ... of the weakest class's list, so each round makes a new student state), from
  the Fine-tune click until the new provenance step is listed and no panel is loading; each
  round is followed by undo [p95 < 300 ms].

With ``--baseline DIR`` the same measurements run on the code in ``DIR`` (its ``src`` first on
PYTHONPATH, so its server and its built front end are used) in interleaved rounds: A B, B A,
A B, ...; each server gets its own copy of the workspace. The figures of the two are compared as
ratios (this / baseline), which hold on a loaded machine better than either figure alone.

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
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from bench_scale import pct, start_server, working_copy  # noqa: E402
from bench_server import CHROMIUM_ARGS  # noqa: E402
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

# every panel has content and none is loading (the condition of bench_server.py); the time is
# taken in the page when it first holds, not after a round trip to Python. Where the concept map
# draws its grey points on a canvas (since this session), they must have been drawn too.
RENDERED_JS = """() => (document.querySelector('[data-testid=config-student-map]')
    && document.querySelector('[data-testid=class-row]')
    && document.querySelector('[data-testid=embedding-top]')
    && (!document.querySelector('[data-testid=embedding-points]') || document.querySelector('[data-testid=embedding-points][data-drawn]'))
    && document.querySelector('[data-testid=concept-row]')
    && document.querySelector('[data-testid=view-detail] .empty, [data-testid=detail-gallery]')
    && document.querySelector('[data-testid=prov-step]')
    && !document.querySelector('[aria-busy=true]')) ? performance.now() : false"""


# main-thread work the browser reports (CDP Performance.getMetrics, seconds), and the page's elements
METRICS = {"task": "TaskDuration", "script": "ScriptDuration", "layout": "LayoutDuration", "style": "RecalcStyleDuration"}


def browser_work(cdp) -> dict:
    m = {x["name"]: x["value"] for x in cdp.send("Performance.getMetrics")["metrics"]}
    return {k: m[v] * 1000 for k, v in METRICS.items()}


def first_render(browser, base: str, runs: int, work: list[dict]) -> list[float]:
    """Times of ``runs`` first renders, each in a fresh context; appends each load's browser work
    (main-thread ms until the render, and the number of elements) to ``work``."""
    times = []
    for _ in range(runs):
        ctx = browser.new_context(viewport={"width": 1440, "height": 900})
        page = ctx.new_page()
        cdp = ctx.new_cdp_session(page)
        cdp.send("Performance.enable")
        page.goto(base + "/")
        times.append(page.wait_for_function(RENDERED_JS, timeout=60_000, polling="raf").json_value())
        work.append({**browser_work(cdp), "elements": page.evaluate("() => document.getElementsByTagName('*').length")})
        ctx.close()
    return times


def class_click(page, k: int, name: str) -> float:
    sel = f'[data-testid=class-row][data-class-idx="{k}"]'
    done = (f"""() => document.querySelector('{sel}').getAttribute('aria-selected') === 'true'
        && (document.querySelector('[data-testid=view-knowledge] [data-testid=vote-bar]') || {{}}).textContent
           ?.includes({json.dumps(name)})""")
    return page.evaluate(CLICK_JS, [sel, done])


# how long the click's one awaited answer (the class's top concepts) took, as the browser saw it
ANSWER_JS = """(k) => { const e = performance.getEntriesByType('resource')
    .filter(e => e.name.includes('/api/classes/' + k + '/concepts?k=10')).pop();
  return e ? e.responseEnd - e.startTime : null; }"""


def tune_round_trip(page, i: int) -> float:
    """Up-vote the ``i``-th listed concept and fine-tune: each round makes a student state not seen
    before (the engine answers a state it has seen from memory, so repeating one vote would flatter it)."""
    n = page.locator("[data-testid=prov-step]").count()
    rows = page.locator("[data-testid=concept-row]")
    rows.nth(i % rows.count()).locator("[data-testid=vote-up]").click()
    page.locator("[data-testid=vote-block]").first.wait_for()
    done = f"() => document.querySelectorAll('[data-testid=prov-step]').length > {n}"
    ms = page.evaluate(CLICK_JS, ["[data-testid=fine-tune]", done])
    page.locator("[data-testid=undo]").click()
    page.wait_for_function(f"() => document.querySelectorAll('[data-testid=prov-step]').length >= {n + 1}"
                           " && !document.querySelector('[aria-busy=true]')")
    page.locator('[data-testid=prov-step]:has-text("current")').first.wait_for()
    return ms


def one_round(p, ws: Path, src: Path | None, a, out: dict) -> None:
    """Start a server on ``ws``, then first renders, one click per class, and tune round trips."""
    proc, base, secs = start_server(ws, src)
    out["starts"].append(secs)
    try:
        perf = httpx.get(base + "/api/performance?split=val", timeout=120).json()
        httpx.get(base + "/api/concepts/map", timeout=120).raise_for_status()  # the t-SNE is built once per workspace
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        out["render"] += first_render(browser, base, a.renders, out["render_work"])
        classes = sorted((c for c in perf["classes"] if not c["excluded"]), key=lambda c: -c["n_pos"])
        ctx = browser.new_context(viewport={"width": 1440, "height": 900})
        page = ctx.new_page()
        cdp = ctx.new_cdp_session(page)
        cdp.send("Performance.enable")
        page.goto(base + "/")
        page.locator("[data-testid=concept-row]").first.wait_for(timeout=60_000)
        page.wait_for_function("() => !document.querySelector('[aria-busy=true]')", timeout=60_000)
        page.evaluate("() => performance.setResourceTimingBufferSize(100000)")
        for c in classes:  # each class once: the first click on a class after start
            w0 = browser_work(cdp)
            out["clicks"].append(class_click(page, c["class_idx"], c["name"]))
            w1 = browser_work(cdp)
            out["click_work"].append({**{k: w1[k] - w0[k] for k in w1}, "answer": page.evaluate(ANSWER_JS, c["class_idx"])})
        for i in range(a.tunes):
            out["tunes"].append(tune_round_trip(page, i))
        browser.close()
        out["n_classes"] = len(perf["classes"])
    finally:
        proc.terminate()
        proc.wait(30)


ROWS = [  # key, label, unit, statistic, target, met
    ("starts", "server start (spawn → first answer)", "s", "median", "< 2 s", lambda v: statistics.median(v) < 2),
    ("render", "first full render", "ms", "median", "< 500 ms", lambda v: statistics.median(v) < 500),
    ("clicks", "class click → all views updated", "ms", "median", "< 150 ms", lambda v: statistics.median(v) < 150),
    ("tunes", "fine-tune round trip in the browser", "ms", "p95", "< 300 ms", lambda v: pct(v, 95) < 300),
]


def table(res: dict, base: dict | None) -> list[str]:
    fmt = lambda v, u: f"{v:.2f} s" if u == "s" else f"{v:.0f} ms"  # noqa: E731
    stat = {"median": statistics.median, "p95": lambda v: pct(v, 95)}
    head = "| what | runs | min | median | p95 | max | target | met |"
    if base:
        head += " baseline (same statistic) | this / baseline |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for key, label, unit, st, target, ok in ROWS:
        v = res[key]
        row = (f"| {label} | {len(v)} | {fmt(min(v), unit)} | {fmt(statistics.median(v), unit)} | "
               f"{fmt(pct(v, 95), unit)} | {fmt(max(v), unit)} | {target} ({st}) | {'yes' if ok(v) else '**no**'} |")
        if base:
            b = base[key]
            row += f" {fmt(stat[st](b), unit)} | {stat[st](v) / stat[st](b):.2f} |"
        lines.append(row)
    return lines


def work_table(res: dict) -> list[str]:
    med = lambda v: statistics.median(v) if v else float("nan")  # noqa: E731
    cols = ["task", "script", "layout", "style"]
    lines = ["| side | what | main-thread tasks | script | layout | style | elements / answer |", "|---|---|---|---|---|---|---|"]
    for side, r in res.items():
        rw, cw = r["render_work"], r["click_work"]
        lines.append(f"| {side} | first render | " + " | ".join(f"{med([w[c] for w in rw]):.0f} ms" for c in cols)
                     + f" | {med([w['elements'] for w in rw]):.0f} elements |")
        ans = [w["answer"] for w in cw if w["answer"] is not None]
        lines.append(f"| {side} | class click | " + " | ".join(f"{med([w[c] for w in cw]):.0f} ms" for c in cols)
                     + f" | answer {med(ans):.0f} ms |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workspace", default=str(REPO / "workspaces" / "dev"))
    ap.add_argument("--baseline", default=None,
                    help="a checkout of older code (front end built) to compare with, in interleaved rounds")
    ap.add_argument("--rounds", type=int, default=3, help="server starts per side")
    ap.add_argument("--renders", type=int, default=2, help="page loads per round")
    ap.add_argument("--tunes", type=int, default=4, help="tune round trips per round")
    ap.add_argument("--out", default=str(HERE / "results" / "frontend.md"))
    a = ap.parse_args()
    from playwright.sync_api import sync_playwright

    baseline = Path(a.baseline).resolve() if a.baseline else None
    if baseline and not (baseline / "src" / "inficond" / "server" / "static" / "index.html").is_file():
        raise SystemExit(f"{baseline} has no built front end; run `cd {baseline}/web && npm run build` first")
    sides = {"this": None} if baseline is None else {"this": None, "baseline": baseline / "src"}
    tmp = Path(tempfile.mkdtemp(prefix="bench-frontend-"))
    res = {s: {"starts": [], "render": [], "clicks": [], "tunes": [], "render_work": [], "click_work": []} for s in sides}
    load0 = os.getloadavg()
    try:
        with sync_playwright() as p:
            for r in range(a.rounds):
                order = list(sides) if r % 2 == 0 else list(sides)[::-1]
                for side in order:
                    ws = working_copy(Path(a.workspace), tmp / f"{side}-{r}" / "ws")
                    one_round(p, ws, sides[side], a, res[side])
                    shutil.rmtree(ws.parent, ignore_errors=True)
                    print(f"round {r} {side}: " + ", ".join(
                        f"{k} {statistics.median(v):.0f}" for k, v in res[side].items() if k in dict.fromkeys(
                            r[0] for r in ROWS)), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    load = os.getloadavg()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO, capture_output=True,
                           text=True).stdout.strip()
    commit += " plus uncommitted changes" if dirty else " (clean)"
    text = [
        "# Front end and start-up (Chromium, real workspace)", "",
        f"Workspace `{Path(a.workspace).name}` (a copy per server), {res['this'].get('n_classes')} classes; headless "
        "Chromium (/usr/bin/chromium via Playwright), 1440x900; server `inficond serve` in its own process; "
        f"{a.rounds} server starts per side, {a.renders} page loads and {a.tunes} tune round trips per start, "
        f"each class clicked once per start. Code: {commit}.", "",
        *table(res["this"], res.get("baseline")), "",
    ]
    bc = None
    if baseline:
        bc = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=baseline, capture_output=True, text=True).stdout.strip()
        text += [f"Baseline: {bc} in interleaved rounds (A B, B A, ...):", "", *table(res["baseline"], None), ""]
    text += [f"Machine: {machine_line()}; load average at the start {load0[0]:.1f} / {load0[1]:.1f} / {load0[2]:.1f}, "
             f"at the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}.", ""]
    text += ["The browser's share (CDP `Performance.getMetrics`, main thread, median per first render or per "
             "click; for a click also how long its one awaited answer, the class's top concepts, took as the "
             "browser saw it, queueing on the server included):", "", *work_table(res), ""]
    text = "\n".join(text)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(text)
    Path(a.out).with_suffix(".json").write_text(json.dumps(
        {"results": res, "commit": commit, "baseline_commit": bc, "machine": machine_line(),
         "load_start": load0, "load_end": load}, indent=1))
    print(text)


if __name__ == "__main__":
    main()
