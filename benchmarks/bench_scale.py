"""Synthetic scale: server memory, per-view latency, distill and tuning time at 4k / 30k / 100k images.

    nice -n 10 python benchmarks/bench_scale.py --source workspaces/dev --sizes 4000 30000 100000

Every workspace here is SYNTHETIC (benchmarks/synthetic_workspace.py): the real development
workspace's concept vectors and teacher logits tiled with 5 % noise to N images, the real
concepts and 20 classes, the real split proportions. Each is built once and cached under
``$INFICOND_CACHE/scale`` (default: the system temp folder's ``scale``); a run works on a copy
of it (SQLite copied, arrays and patches hard-linked: nothing rewrites them in place), so the
cached one never gains a student.

Per N, in one run:

1. ``inficond distill WS`` in its own process: wall time (what a user waits for, incl. the
   imports and the lambda search) and the engine's own ``seconds``;
2. ``inficond serve WS`` in its own process: start time (spawn to the first answer);
3. every view's API call once (the page's first load; the concept map's first call builds its
   t-SNE), then the server's memory (``/proc/PID/status``: VmRSS, RssAnon, and VmHWM at the end);
4. rounds: POST /api/tune (one up-vote on a class's top concept), then every view once (the
   first call after a state change: caches keyed by the student are empty), then every view
   ``--warm`` more times (cached), then POST /api/provenance/undo. Each round tunes the next
   class by AP gap.

All calls are real HTTP over loopback (httpx), one at a time. The targets from issue 10:
memory < 1 GB, every view p95 < 100 ms, distill < 10 s, tuning step p95 < 300 ms, concept map
unchanged in cost. The result goes to benchmarks/results/scale.md (and .json).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from machine import machine_line  # noqa: E402
from synthetic_workspace import build_synthetic, synthetic_info  # noqa: E402

ROUNDS = {4000: 8, 30000: 6, 100000: 4}  # fewer at 100k: 2 shared cores


def cache_dir() -> Path:
    base = os.environ.get("INFICOND_CACHE")
    return (Path(base) if base else Path(tempfile.gettempdir())) / "scale"


def cached_workspace(source: Path, n: int, noise: float, seed: int) -> Path:
    """The synthetic workspace for ``n`` images, built on first use."""
    path = cache_dir() / f"ws-{n}-noise{noise}-seed{seed}"
    if not (path / "workspace.sqlite").exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        build_synthetic(source, path, n, noise=noise, seed=seed)
        print(f"built {path} in {time.perf_counter() - t0:.1f} s", flush=True)
    info = synthetic_info(path)
    if not info or info["n_images"] != n:
        raise SystemExit(f"{path} is not the synthetic {n}-image workspace; remove it and run again")
    return path


def working_copy(path: Path, dst: Path) -> Path:
    """SQLite copied (distill and tune write there); arrays and patches hard-linked (read only)."""
    shutil.rmtree(dst, ignore_errors=True)
    dst.mkdir(parents=True)
    shutil.copy2(path / "workspace.sqlite", dst / "workspace.sqlite")
    for sub in ("arrays", "patches"):
        if (path / sub).is_dir():
            shutil.copytree(path / sub, dst / sub, copy_function=os.link)
    return dst


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    i = min(len(s) - 1, max(0, int(round(q / 100 * (len(s) - 1)))))
    return s[i]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_mem(pid: int) -> dict:
    """MiB figures of /proc/PID/status (VmRSS, RssAnon, RssFile, VmHWM)."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, val = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
            out[key] = round(int(val.split()[0]) / 1024, 1)
    return out


def inficond(*args: str) -> list[str]:
    return [sys.executable, "-m", "inficond.cli", *args]


def run_distill(ws: Path, timeout: float, lam: float | None = None) -> dict:
    t0 = time.perf_counter()
    extra = [] if lam is None else ["--lam", str(lam)]  # a fixed lambda: the fit alone, no lambda search
    try:
        p = subprocess.run(inficond("distill", str(ws), *extra), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"wall_s": None, "timed_out": timeout}
    wall = time.perf_counter() - t0
    if p.returncode:
        raise SystemExit(f"distill failed on {ws}:\n{p.stderr[-2000:]}")
    m = re.search(r"seconds\W+([\d.]+)", p.stdout)
    return {"wall_s": round(wall, 2), "engine_s": float(m[1]) if m else None, "lam": lam}


def start_server(ws: Path, src: Path | None = None) -> tuple[subprocess.Popen, str, float]:
    """``inficond serve`` on ``ws`` from the code in ``src`` (None: this checkout); seconds to its first answer."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = str(src) + os.pathsep + env.get("PYTHONPATH", "")
    t0 = time.perf_counter()
    proc = subprocess.Popen(inficond("serve", str(ws), "--port", str(port)), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=env)
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {proc.stderr.read()[-2000:]}")
        try:
            if httpx.get(base + "/api/summary", timeout=60).status_code == 200:
                return proc, base, time.perf_counter() - t0
        except httpx.TransportError:
            time.sleep(0.05)


def stop_server(proc: subprocess.Popen, timeout: float = 30) -> None:
    """Ctrl-C the server as a user would; kill it if it has not stopped after ``timeout`` seconds."""
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def timed(client: httpx.Client, method: str, url: str, **kw) -> tuple[float, httpx.Response]:
    t0 = time.perf_counter()
    r = client.request(method, url, **kw)
    ms = (time.perf_counter() - t0) * 1000
    if r.status_code != 200:
        raise SystemExit(f"{method} {url}: {r.status_code} {r.text[:500]}")
    return ms, r


def views(k: int, c: int, word: str) -> dict[str, str]:
    """Every view's data call for class ``k`` and concept ``c``, as the page makes them."""
    return {
        "configuration": "/api/summary",
        "performance": "/api/performance?split=val",
        "class concepts + what-if (k=10)": f"/api/classes/{k}/concepts?k=10&sort=influence",
        "concept detail + what-if": f"/api/concepts/{c}?cls={k}",
        "what-if, vote preview": f"/api/classes/{k}/whatif/{c}?factor=0.5",
        "concept map": "/api/concepts/map",
        "provenance": "/api/provenance",
        "suggestions (k=5)": f"/api/classes/{k}/suggestions?k=5",
        "search": f"/api/classes/{k}/concepts/search?q={word[:3]}",
    }


def bench_one(source: Path, n: int, a) -> dict:
    cached = cached_workspace(source, n, a.noise, a.seed)
    ws = working_copy(cached, Path(tempfile.mkdtemp(prefix=f"scale-{n}-")) / "ws")
    info = synthetic_info(ws)
    out = {"n_images": n, "synthetic": info, "splits": info["splits"]}
    try:
        out["distill"] = run_distill(ws, a.distill_timeout, a.lam)
        print(f"[SYNTHETIC {n}] distill {out['distill']}", flush=True)
        if out["distill"]["wall_s"] is None:
            return out
        proc, base, start_s = start_server(ws)
        out["server_start_s"] = round(start_s, 2)
        try:
            client = httpx.Client(base_url=base, timeout=600)
            # first load, as the page makes it
            _, r = timed(client, "GET", "/api/performance?split=val")
            classes = [c for c in r.json()["classes"] if not c["excluded"] and c["gap"] is not None]
            classes.sort(key=lambda c: -c["gap"])
            rounds = a.rounds or ROUNDS.get(n, 6)
            picks = []
            for c in classes[:rounds]:
                _, r = timed(client, "GET", f"/api/classes/{c['class_idx']}/concepts?k=10&sort=influence")
                top = r.json()["concepts"][0]
                picks.append((c["class_idx"], top["concept_idx"], top["word"]))
            first = {}
            for label, url in views(*picks[0]).items():
                first[label] = round(timed(client, "GET", url)[0], 1)
            out["first_call_ms"] = first
            out["mem_after_views_mib"] = proc_mem(proc.pid)
            cold: dict[str, list[float]] = {}
            warm: dict[str, list[float]] = {}
            tune_ms, engine_ms, undo_ms = [], [], []
            for i in range(rounds):
                k, c, word = picks[i % len(picks)]
                ms, r = timed(client, "POST", "/api/tune",
                              json={"instructions": [{"class": k, "concept": c, "direction": "up"}]})
                tune_ms.append(ms)
                engine_ms.append(r.json()["duration_ms"])
                urls = views(k, c, word)
                for label, url in urls.items():
                    cold.setdefault(label, []).append(timed(client, "GET", url)[0])
                for _ in range(a.warm):
                    for label, url in urls.items():
                        warm.setdefault(label, []).append(timed(client, "GET", url)[0])
                undo_ms.append(timed(client, "POST", "/api/provenance/undo",
                                     headers={"Content-Type": "application/json"})[0])
            out["rounds"] = rounds
            out["views"] = {
                label: {"cold_p50": round(statistics.median(cold[label]), 1), "cold_p95": round(pct(cold[label], 95), 1),
                        "warm_p50": round(statistics.median(warm[label]), 1) if warm else None,
                        "warm_p95": round(pct(warm[label], 95), 1) if warm else None,
                        "p95": round(pct(cold[label] + warm.get(label, []), 95), 1)}
                for label in cold
            }
            out["tune"] = {"p50": round(statistics.median(tune_ms), 1), "p95": round(pct(tune_ms, 95), 1),
                           "engine_p95": round(pct(engine_ms, 95), 1),
                           "undo_p95": round(pct(undo_ms, 95), 1)}
            out["mem_end_mib"] = proc_mem(proc.pid)
            for label, v in out["views"].items():
                print(f"[SYNTHETIC {n}] {label:32s} cold p95 {v['cold_p95']:8.1f} ms  warm p95 {v['warm_p95']} ms",
                      flush=True)
            print(f"[SYNTHETIC {n}] tune {out['tune']}  memory {out['mem_end_mib']}", flush=True)
        finally:
            stop_server(proc)
    finally:
        shutil.rmtree(ws.parent, ignore_errors=True)
    return out


def ratio(a, b) -> str:
    return "–" if a in (None, 0) or b is None else f"{b / a:.1f}×"


def report(results: list[dict], a) -> str:
    ns = [r["n_images"] for r in results]
    head = "| figure | target | " + " | ".join(f"{n:,} (synthetic)" for n in ns) + " | growth " + \
           " → ".join(f"{n // 1000}k" for n in ns) + " |"
    sep = "|---|---|" + "---|" * len(ns) + "---|"

    def row(label, target, vals, unit, ok=None):
        cells = [("–" if v is None else f"{v:,.1f} {unit}" if isinstance(v, float) else f"{v:,} {unit}") for v in vals]
        if ok is not None:
            cells = [c if v is None or ok(v) else f"**{c}**" for c, v in zip(cells, vals)]
        growth = " → ".join(ratio(vals[0], v) for v in vals) if vals and vals[0] else "–"
        return f"| {label} | {target} | " + " | ".join(cells) + f" | {growth} |"

    g = lambda r, *keys: _get(r, keys)  # noqa: E731
    lines = [head, sep,
             row("server memory after every view once (VmRSS)", "< 1 GB", [g(r, "mem_after_views_mib", "VmRSS") for r in results],
                 "MiB", lambda v: v < 1024),
             row("… peak over the run (VmHWM)", "< 1 GB", [g(r, "mem_end_mib", "VmHWM") for r in results], "MiB",
                 lambda v: v < 1024),
             row("… of which anonymous (RssAnon, end)", "", [g(r, "mem_end_mib", "RssAnon") for r in results], "MiB"),
             row("`inficond distill` wall (process, incl. λ search)", "< 10 s", [g(r, "distill", "wall_s") for r in results],
                 "s", lambda v: v < 10),
             row("… engine `seconds`", "", [g(r, "distill", "engine_s") for r in results], "s"),
             row("server start (spawn → first answer)", "< 2 s", [g(r, "server_start_s") for r in results], "s",
                 lambda v: v < 2),
             row("tuning step, POST /api/tune p95", "< 300 ms", [g(r, "tune", "p95") for r in results], "ms",
                 lambda v: v < 300),
             row("… engine `duration_ms` p95", "", [g(r, "tune", "engine_p95") for r in results], "ms"),
             row("undo p95", "", [g(r, "tune", "undo_p95") for r in results], "ms"),
             row("concept map, first call (builds the t-SNE)", "flat in N", [g(r, "first_call_ms", "concept map") for r in results],
                 "ms")]
    labels = list(next((r["views"] for r in results if "views" in r), {}))
    for lab in labels:
        lines.append(row(f"{lab}: p95 first call after a tune", "< 100 ms", [g(r, "views", lab, "cold_p95") for r in results],
                         "ms", lambda v: v < 100))
        lines.append(row(f"{lab}: p95 cached (repeat)", "< 100 ms", [g(r, "views", lab, "warm_p95") for r in results],
                         "ms", lambda v: v < 100))
    return "\n".join(lines)


def _get(d, keys):
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", default=str(REPO / "workspaces" / "dev"))
    ap.add_argument("--sizes", type=int, nargs="+", default=[4000, 30000, 100000])
    ap.add_argument("--noise", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rounds", type=int, help="tuning rounds per size (default: 8 / 6 / 4)")
    ap.add_argument("--warm", type=int, default=2, help="cached repeats of every view per round")
    ap.add_argument("--distill-timeout", type=float, default=1800)
    ap.add_argument("--lam", type=float, help="distill at this fixed lambda (the fit alone, no lambda search): "
                    "for quick paired runs of the views; the distill row then is not the default command's time")
    ap.add_argument("--out", default=str(HERE / "results" / "scale.md"))
    a = ap.parse_args()

    results = []
    t0 = time.perf_counter()
    for n in a.sizes:
        results.append(bench_one(Path(a.source), n, a))
    wall = time.perf_counter() - t0
    load = os.getloadavg()
    text = "\n".join([
        "# Synthetic scale (4k / 30k / 100k images)", "",
        "**All workspaces here are SYNTHETIC**: the real development workspace's rows tiled with "
        f"{a.noise:.0%} Gaussian noise (benchmarks/synthetic_workspace.py), {len(results and results[0]['splits'])} splits "
        "in the real proportions, the real concepts and classes. Latencies are real HTTP to an `inficond serve` "
        "process; bold = target missed; growth is each size's figure over the first size's.", "",
        *([f"Distilled at a fixed λ = {a.lam} (`inficond distill --lam`, no λ search): the distill rows are the "
            "fit alone, not what the default command costs.", ""] if a.lam is not None else []),
        report(results, a), "",
        f"Rounds per size: {', '.join(str(r.get('rounds')) for r in results)} (each: tune, every view once, "
        f"every view {a.warm} more times, undo). Machine: {machine_line()}; load average at the end "
        f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (shared, loaded); run took {wall:.0f} s.", "",
    ])
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(text)
    Path(a.out).with_suffix(".json").write_text(json.dumps({"results": results, "machine": machine_line(),
                                                            "load": load}, indent=1))
    print(text)


if __name__ == "__main__":
    main()
