"""Server and front-end timings: first full render, per-view endpoint latency, fine-tune round
trip, and 10 concurrent polling clients. Writes benchmarks/results/server.md.

    python benchmarks/bench_server.py --workspace workspaces/small

The workspace is copied to a temporary folder first, so tuning here never changes it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from machine import machine  # noqa: E402

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    if not s:
        return float("nan")
    i = min(len(s) - 1, max(0, int(round(q / 100 * (len(s) - 1)))))
    return s[i]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(session):
    import uvicorn

    from inficond.server import create_app

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(session), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return server, f"http://127.0.0.1:{port}"


def time_get(client: httpx.Client, url: str, n: int) -> list[float]:
    client.get(url).raise_for_status()  # warm-up (caches, first t-SNE)
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        r = client.get(url)
        out.append((time.perf_counter() - t0) * 1000)
        r.raise_for_status()
    return out


def first_render(base: str, runs: int) -> list[float]:
    from playwright.sync_api import sync_playwright

    js = """() => !!(document.querySelector('[data-testid=config-student-map]')
        && document.querySelector('[data-testid=class-row]')
        && document.querySelector('[data-testid=embedding-top]')
        && document.querySelector('[data-testid=concept-row]')
        && document.querySelector('[data-testid=view-detail] .empty, [data-testid=detail-gallery]')
        && document.querySelector('[data-testid=prov-step]')
        && !document.querySelector('[aria-busy=true]'))"""
    times = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        for _ in range(runs):
            ctx = browser.new_context(viewport={"width": 1440, "height": 900})
            page = ctx.new_page()
            page.goto(base + "/")
            page.wait_for_function(js, timeout=60_000, polling=10)
            times.append(page.evaluate("() => performance.now()"))
            ctx.close()
        browser.close()
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--workspace", default=str(REPO / "workspaces" / "small"))
    ap.add_argument("--repeats", type=int, default=40)
    ap.add_argument("--out", default=str(HERE / "results" / "server.md"))
    a = ap.parse_args()

    from inficond.session import Session

    tmp = Path(tempfile.mkdtemp(prefix="bench-server-"))
    ws = tmp / "ws"
    shutil.copytree(a.workspace, ws)
    session = Session(ws)
    server, base = start_server(session)
    client = httpx.Client(base_url=base, timeout=60)

    perf = session.performance("val")
    cls = max((c for c in perf["classes"] if not c["excluded"] and c["gap"] is not None), key=lambda c: c["gap"])
    k = cls["class_idx"]
    top = session.class_concepts(k, k=10)["concepts"]
    c0 = top[0]["concept_idx"]
    patch = top[0]["patches"][0]["patch_id"] if top[0]["patches"] else None
    endpoints = [
        ("(a) configuration", "/api/summary"),
        ("(b) performance", "/api/performance?split=val"),
        ("(c) concept map", "/api/concepts/map"),
        ("(c)/(d) class concepts, k=10", f"/api/classes/{k}/concepts?k=10&sort=influence"),
        ("(d) suggestions, k=5", f"/api/classes/{k}/suggestions?k=5"),
        ("(e) concept detail + what-if", f"/api/concepts/{c0}?cls={k}"),
        ("(e) what-if, 21 points", f"/api/classes/{k}/whatif/{c0}"),
        ("(f) provenance", "/api/provenance"),
    ]
    if patch is not None:
        endpoints.append(("media: one patch", f"/api/media/patches/{patch}"))

    rows = []
    for label, url in endpoints:
        ts = time_get(client, url, a.repeats)
        rows.append((label, url, statistics.median(ts), pct(ts, 95)))
        print(f"{label:34s} p50 {rows[-1][2]:7.1f} ms  p95 {rows[-1][3]:7.1f} ms", flush=True)

    # fine-tune round trip (HTTP POST to response), then undo so each run starts from one state
    tune_ms, engine_ms, undo_ms = [], [], []
    body = {"instructions": [{"class": k, "concept": top[0]["concept_idx"], "direction": "up"},
                             {"class": k, "concept": top[1]["concept_idx"], "direction": "down"}]}
    for _ in range(8):
        t0 = time.perf_counter()
        r = client.post("/api/tune", json=body)
        tune_ms.append((time.perf_counter() - t0) * 1000)
        r.raise_for_status()
        engine_ms.append(r.json()["duration_ms"] or 0)
        t0 = time.perf_counter()
        client.post("/api/provenance/undo", headers={"Content-Type": "application/json"}).raise_for_status()
        undo_ms.append((time.perf_counter() - t0) * 1000)
    print(f"fine-tune round trip p50 {statistics.median(tune_ms):.1f} ms p95 {pct(tune_ms, 95):.1f} ms", flush=True)

    # 10 clients polling the views at once
    poll_urls = [u for _, u in endpoints if "/media/" not in u]
    lat: list[float] = []
    errs: list[str] = []
    lock = threading.Lock()

    def poller(i: int) -> None:
        with httpx.Client(base_url=base, timeout=60) as c:
            for j in range(20):
                url = poll_urls[(i + j) % len(poll_urls)]
                t0 = time.perf_counter()
                try:
                    r = c.get(url)
                    ok = r.status_code == 200
                except httpx.HTTPError as e:  # pragma: no cover - reported below
                    ok, r = False, e
                ms = (time.perf_counter() - t0) * 1000
                with lock:
                    lat.append(ms)
                    if not ok:
                        errs.append(f"{url}: {r}")

    t0 = time.perf_counter()
    with ThreadPoolExecutor(10) as ex:
        list(ex.map(poller, range(10)))
    wall = time.perf_counter() - t0
    print(f"10 clients: {len(lat)} requests, {len(errs)} errors, p95 {pct(lat, 95):.1f} ms", flush=True)

    render = first_render(base, runs=3)
    print(f"first full render: {render}", flush=True)
    server.should_exit = True
    shutil.rmtree(tmp, ignore_errors=True)

    m = machine()
    s = session.summary()
    lines = [
        "# Server and interface benchmark", "",
        f"Workspace: `{Path(a.workspace).name}` — {s['dataset']['n_images']} images, {s['dataset']['n_classes']} classes, "
        f"{s['corpus']['n_concepts']} concepts; class under test: `{cls['name']}` (largest AP gap). "
        "The server runs in-process (uvicorn, one worker); requests are real HTTP over loopback (httpx).", "",
        "## Time to first full render", "",
        "Headless Chromium (Playwright), 1440x900, from navigation start until all six panels show content "
        "(config figures, class rows, highlighted map points, knowledge rows, detail hint, provenance rows) "
        "and no panel is loading.", "",
        "| run | time |", "|---|---|",
        *[f"| {i + 1} | {t:.0f} ms |" for i, t in enumerate(render)],
        f"| median | **{statistics.median(render):.0f} ms** |", "",
        f"## Data endpoint per view ({a.repeats} sequential calls each, after one warm-up)", "",
        "| view | endpoint | p50 | p95 | target p95 < 100 ms |", "|---|---|---|---|---|",
        *[f"| {lab} | `{url}` | {p50:.1f} ms | {p95:.1f} ms | {'yes' if p95 < 100 else '**no**'} |"
          for lab, url, p50, p95 in rows], "",
        "## Fine-tune round trip (8 runs, 2 votes; each followed by undo)", "",
        "| measure | p50 | p95 | max |", "|---|---|---|---|",
        f"| POST /api/tune, round trip | {statistics.median(tune_ms):.1f} ms | {pct(tune_ms, 95):.1f} ms | {max(tune_ms):.1f} ms |",
        f"| of which engine `duration_ms` | {statistics.median(engine_ms):.1f} ms | {pct(engine_ms, 95):.1f} ms | {max(engine_ms):.1f} ms |",
        f"| POST /api/provenance/undo | {statistics.median(undo_ms):.1f} ms | {pct(undo_ms, 95):.1f} ms | {max(undo_ms):.1f} ms |",
        "", f"Target: round trip < 500 ms — {'met' if pct(tune_ms, 95) < 500 else '**not met**'} (p95).", "",
        "## 10 concurrent clients polling", "",
        "10 threads, each with its own httpx client, 20 GETs each cycling over the view endpoints above.", "",
        "| requests | errors | p50 | p95 | max | wall |", "|---|---|---|---|---|---|",
        f"| {len(lat)} | {len(errs)} | {statistics.median(lat):.1f} ms | {pct(lat, 95):.1f} ms | {max(lat):.1f} ms | {wall:.2f} s |",
        "", "Every engine call goes through one lock, so concurrent requests queue rather than overlap; "
        "the p95 here is mostly queueing.", "",
        "## Machine", "",
        f"- nproc: {os.cpu_count()} (affinity: {len(os.sched_getaffinity(0))}); CPU: {m['cpu']}; RAM {m['mem_gib']} GiB",
        f"- Python {m['python']}; Chromium /usr/bin/chromium (headless)",
        "- Shared machine (other processes running), so timings are indicative.", "",
    ]
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text("\n".join(lines))
    print(f"wrote {a.out}")
    if errs:
        print("errors:", errs[:5], file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
