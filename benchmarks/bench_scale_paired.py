"""Synthetic scale, old code against new in one run: every view after a tune, the tuning step, memory.

    nice -n 10 python benchmarks/bench_scale_paired.py --base 5d45f18 --n 30000 --rounds 6
    nice -n 10 python benchmarks/bench_scale_paired.py --base 5d45f18 --n 100000 --rounds 4 \\
        --student-from "$INFICOND_CACHE/scale/ws-30000-noise0.05-seed0-default"

The workspace is bench_scale.py's SYNTHETIC one (the development workspace's rows tiled with 5 %
noise, cached under ``$INFICOND_CACHE/scale``), distilled once with the default command (λ search,
<= 100 concepts per class; by the new code) or given another workspace's student
(``--student-from``: a 100,000-image distill needs ~3 GB, more than one process may use here);
the result is cached next to it. Old and new code (git worktrees, through ``PYTHONPATH``) each
serve their own copy of it, both at once, so both hold the same student. Rounds alternate which
version goes first; each is bench_scale.py's round (POST /api/tune, every view once: the first
call after a state change, every view ``--warm`` more times, undo), so both see the same load.

Besides the times, every answer of the two versions is compared (timing fields left out): the
table says how many were identical and the largest difference of any number in the others.
Results: benchmarks/results/scale_paired_<n>.md (and .json).
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
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from bench_memory import COPY_STUDENT  # noqa: E402
from bench_scale import (cache_dir, cached_workspace, pct, proc_mem, run_distill, start_server,  # noqa: E402
                         stop_server, timed, views, working_copy)
from bench_startup import remove_worktrees, worktree  # noqa: E402
from machine import machine_line  # noqa: E402

# timings, and the summary's workspace path (each version serves its own copy)
SKIP_KEYS = {"duration_ms", "seconds", "created_at", "workspace"}


def strip_timing(x):
    if isinstance(x, dict):
        return {k: strip_timing(v) for k, v in x.items() if k not in SKIP_KEYS}
    if isinstance(x, list):
        return [strip_timing(v) for v in x]
    return x


def max_diff(a, b) -> float:
    """Largest |a - b| over the numbers of two answers of the same shape (inf where the shapes differ)."""
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return float("inf")
        return max((max_diff(a[k], b[k]) for k in a), default=0.0)
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return float("inf")
        return max((max_diff(x, y) for x, y in zip(a, b)), default=0.0)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return abs(float(a) - float(b))
    return 0.0 if a == b else float("inf")


def distilled_workspace(n: int, source: Path, student_from: Path | None, src: Path, tmp: Path) -> Path:
    tag = f"student-of-{student_from.name}" if student_from else "default"
    path = cache_dir() / f"ws-{n}-noise0.05-seed0-{tag}"
    if not (path / "workspace.sqlite").exists():
        fresh = working_copy(cached_workspace(source, n, 0.05, 0), tmp / "distilled")
        env = {**os.environ, "PYTHONPATH": str(src)}
        if student_from:
            subprocess.run([sys.executable, "-c", COPY_STUDENT, str(student_from), str(fresh)], check=True, env=env)
        else:
            os.environ["PYTHONPATH"] = str(src)
            print(f"[SYNTHETIC {n}] distill (default command): {run_distill(fresh, 3600)}", flush=True)
        shutil.copytree(fresh, path)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", required=True, help="git revision of the old code")
    ap.add_argument("--new", default=".", help="git revision of the new code, or '.' for this checkout's src")
    ap.add_argument("--source", type=Path, default=REPO / "workspaces" / "dev")
    ap.add_argument("--n", type=int, default=30000, help="synthetic images")
    ap.add_argument("--rounds", type=int, default=6, help="rounds per version (tune, views, repeats, undo)")
    ap.add_argument("--warm", type=int, default=2, help="cached repeats of every view per round")
    ap.add_argument("--student-from", type=Path, metavar="WS",
                    help="serve WS's current student instead of distilling (same concepts and classes)")
    ap.add_argument("--out", type=Path, help="default: benchmarks/results/scale_paired_<n>")
    a = ap.parse_args()
    out = a.out or HERE / "results" / f"scale_paired_{a.n // 1000}k"
    revs = {name: subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD" if rev == "." else rev],
                                 check=True, capture_output=True, text=True).stdout.strip()
            for name, rev in (("old", a.base), ("new", a.new))}
    tmp = Path(tempfile.mkdtemp(prefix="bench-scale-paired-"))
    servers = {}
    t_start = time.perf_counter()
    try:
        srcs = {"old": worktree(a.base, tmp / "old"),
                "new": REPO / "src" if a.new == "." else worktree(a.new, tmp / "new")}
        ws = distilled_workspace(a.n, a.source, a.student_from, srcs["new"], tmp)
        for name in ("old", "new"):
            proc, base, _ = start_server(working_copy(ws, tmp / f"ws-{name}"), src=srcs[name])
            servers[name] = (proc, httpx.Client(base_url=base, timeout=600))
        picks = []
        for name, (_, cl) in servers.items():  # the same requests to both: the same caches
            _, r = timed(cl, "GET", "/api/performance?split=val")
            classes = [c for c in r.json()["classes"] if not c["excluded"] and c["gap"] is not None]
            classes.sort(key=lambda c: -c["gap"])
            if not picks:
                for c in classes[: a.rounds]:
                    top = timed(cl, "GET", f"/api/classes/{c['class_idx']}/concepts?k=10&sort=influence")[1]
                    top = top.json()["concepts"][0]
                    picks.append((c["class_idx"], top["concept_idx"], top["word"]))
            else:
                for k, _, _ in picks:
                    timed(cl, "GET", f"/api/classes/{k}/concepts?k=10&sort=influence")
        res = {v: {"first": {}, "cold": {}, "warm": {}, "tune": [], "undo": []} for v in servers}
        answers = {v: [] for v in servers}
        for name, (proc, cl) in servers.items():  # the page's first load (after the picks' class concepts)
            for label, url in views(*picks[0]).items():
                ms, r = timed(cl, "GET", url)
                res[name]["first"][label] = round(ms, 1)
            res[name]["mem_after_views"] = proc_mem(proc.pid)
        for i in range(a.rounds):
            k, c, word = picks[i % len(picks)]
            for name in (("old", "new") if i % 2 == 0 else ("new", "old")):
                cl, got = servers[name][1], []
                ms, r = timed(cl, "POST", "/api/tune", json={"instructions": [{"class": k, "concept": c, "direction": "up"}]})
                res[name]["tune"].append(ms)
                got.append(r.json())
                for label, url in views(k, c, word).items():
                    ms, r = timed(cl, "GET", url)
                    res[name]["cold"].setdefault(label, []).append(ms)
                    got.append(r.json())
                for _ in range(a.warm):
                    for label, url in views(k, c, word).items():
                        res[name]["warm"].setdefault(label, []).append(timed(cl, "GET", url)[0])
                res[name]["undo"].append(timed(cl, "POST", "/api/provenance/undo",
                                               headers={"Content-Type": "application/json"})[0])
                answers[name].append(got)
        for name, (proc, _) in servers.items():
            res[name]["mem_end"] = proc_mem(proc.pid)
    finally:
        for proc, cl in servers.values():
            cl.close()
            stop_server(proc)
        remove_worktrees(tmp)
    wall = time.perf_counter() - t_start
    load = os.getloadavg()

    labels = ["tune", *views(*picks[0])]
    pairs = [(lab, strip_timing(x), strip_timing(y)) for ro, rn in zip(answers["old"], answers["new"])
             for lab, x, y in zip(labels, ro, rn)]
    same = sum(x == y for _, x, y in pairs)
    worst = max((max_diff(x, y) for _, x, y in pairs if x != y), default=0.0)
    differ = sorted({lab for lab, x, y in pairs if x != y})

    def p95(v):
        return round(pct(v, 95), 1)

    rows = [("tuning step, POST /api/tune p95", [p95(res[v]["tune"]) for v in ("old", "new")], "ms"),
            ("tuning step p50", [round(statistics.median(res[v]["tune"]), 1) for v in ("old", "new")], "ms"),
            ("undo p95", [p95(res[v]["undo"]) for v in ("old", "new")], "ms")]
    for label in res["new"]["cold"]:
        rows.append((f"{label}: p95 first call after a tune", [p95(res[v]["cold"][label]) for v in ("old", "new")], "ms"))
        rows.append(("… p50", [round(statistics.median(res[v]["cold"][label]), 1) for v in ("old", "new")], "ms"))
    for label in res["new"]["warm"]:
        rows.append((f"{label}: p95 cached", [p95(res[v]["warm"][label]) for v in ("old", "new")], "ms"))
    for label in res["new"]["first"]:
        rows.append((f"{label}: page's first load", [res[v]["first"][label] for v in ("old", "new")], "ms"))
    rows += [("server memory after every view once (VmRSS)", [res[v]["mem_after_views"]["VmRSS"] for v in ("old", "new")], "MiB"),
             ("server memory peak over the run (VmHWM)", [res[v]["mem_end"]["VmHWM"] for v in ("old", "new")], "MiB")]
    md = [f"# Synthetic scale, {a.n:,} SYNTHETIC images: old ({revs['old']}) vs new ({revs['new']}), paired", "",
          f"Machine: {machine_line()}; load average at the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}; "
          f"run took {wall:.0f} s. Both versions served the same student "
          + (f"(copied from `{a.student_from.name}`)" if a.student_from else "(the default `inficond distill`)")
          + f" at once; {a.rounds} rounds each, alternating which went first; the two servers' memory was "
          "measured in the same run (one after the other would give the same: it does not depend on the load).", "",
          f"Answers compared (tune result and every view's first call after it, timing fields left out): "
          f"{same} of {len(pairs)} identical" + (f"; the others ({', '.join(differ)}): largest difference of a number "
                                                 f"{worst:.3g}" if same < len(pairs) else "") + ".", "",
          "| figure | old | new | new/old |", "|---|---|---|---|"]
    for label, (o, n), unit in rows:
        md.append(f"| {label} | {o:,.1f} {unit} | {n:,.1f} {unit} | {n / o:.2f} |" if o else f"| {label} | {o} | {n} | – |")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text("\n".join(md) + "\n")
    out.with_suffix(".json").write_text(json.dumps({"n": a.n, "revs": revs, "machine": machine_line(), "load": load,
                                                    "identical": [same, len(pairs)], "max_diff": worst, "differ": differ,
                                                    "results": res}, indent=1))
    print("\n".join(md))


if __name__ == "__main__":
    main()
