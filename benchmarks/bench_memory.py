"""Server memory on a SYNTHETIC workspace, old commit against new.

    nice -n 10 python benchmarks/bench_memory.py --base b00fdda --new HEAD --n 30000 --rounds 3

The workspace is bench_scale.py's synthetic one (benchmarks/synthetic_workspace.py: the
development workspace's rows tiled with 5 % noise to N images, cached under
``$INFICOND_CACHE/scale``), distilled once at a fixed λ (by the new code of the first run, and
cached next to it) or given the student of another workspace (``--student-from``: at 100,000
images a distill needs ~3 GB, more than a helper may use here); each version serves its own
working copy of that workspace, so both hold the same student.

Per version, in its own ``inficond serve`` process (code from a git worktree of the revision,
through ``PYTHONPATH``): every view once as the page loads them, then ``/proc/PID/status``
(VmRSS, RssAnon, RssFile); then rounds of *tune (one up-vote on the top concept of the class
with the largest AP gap, then the next) → every view once → undo*, and VmHWM (the peak) at the
end. Memory does not depend on the load, so the versions run one after the other.
Results go to benchmarks/results/memory.md (and .json).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from bench_scale import (cache_dir, cached_workspace, proc_mem, run_distill, start_server, stop_server,  # noqa: E402
                         timed, views, working_copy)
from bench_startup import remove_worktrees, worktree  # noqa: E402
from machine import machine_line  # noqa: E402
from synthetic_workspace import synthetic_info  # noqa: E402


# The student of one workspace recorded as the distillation of another with the same concepts
# and classes (its standardisation is the first workspace's train split: still a valid student).
COPY_STUDENT = """
import sys
from inficond.session import Session
src, dst = Session(sys.argv[1]), Session(sys.argv[2])
assert src.ws.concept_words == dst.ws.concept_words and src.ws.class_names == dst.ws.class_names
dst.log.record_distill(src.student, {"copied_from": sys.argv[1]})
"""


def serve_and_measure(src: Path, ws: Path, rounds: int) -> dict:
    os.environ["PYTHONPATH"] = str(src)  # start_server runs `python -m inficond.cli serve` with this env
    proc, base, start_s = start_server(ws)
    try:
        client = httpx.Client(base_url=base, timeout=600)
        _, r = timed(client, "GET", "/api/performance?split=val")
        classes = [c for c in r.json()["classes"] if not c["excluded"] and c["gap"] is not None]
        classes.sort(key=lambda c: -c["gap"])
        picks = []
        for c in classes[:rounds]:
            _, r = timed(client, "GET", f"/api/classes/{c['class_idx']}/concepts?k=10&sort=influence")
            top = r.json()["concepts"][0]
            picks.append((c["class_idx"], top["concept_idx"], top["word"]))
        for url in views(*picks[0]).values():
            timed(client, "GET", url)
        after_views = proc_mem(proc.pid)
        tune_ms = []
        for k, c, word in picks:
            ms, _ = timed(client, "POST", "/api/tune", json={"instructions": [{"class": k, "concept": c, "direction": "up"}]})
            tune_ms.append(round(ms, 1))
            for url in views(k, c, word).values():
                timed(client, "GET", url)
            timed(client, "POST", "/api/provenance/undo", headers={"Content-Type": "application/json"})
        return {"start_s": round(start_s, 2), "after_views": after_views, "end": proc_mem(proc.pid),
                "tune_ms": tune_ms}
    finally:
        stop_server(proc)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", required=True, help="git revision of the old code")
    ap.add_argument("--new", default="HEAD", help="git revision of the new code, or '.' for this checkout's src")
    ap.add_argument("--source", type=Path, default=REPO / "workspaces" / "dev")
    ap.add_argument("--n", type=int, default=30000, help="synthetic images")
    ap.add_argument("--lam", type=float, default=0.0006, help="fixed λ of the one distillation both versions serve")
    ap.add_argument("--rounds", type=int, default=3, help="tune → views → undo rounds")
    ap.add_argument("--student-from", type=Path, metavar="WS",
                    help="record WS's current student as the distillation instead of distilling (same concepts "
                         "and classes; for sizes whose distill would not fit the machine's memory)")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "memory")
    a = ap.parse_args()
    revs = {name: subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD" if rev == "." else rev],
                                 check=True, capture_output=True, text=True).stdout.strip()
            for name, rev in (("old", a.base), ("new", a.new))}
    tmp = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    try:
        versions = {"old": worktree(a.base, tmp / "old"),
                    "new": REPO / "src" if a.new == "." else worktree(a.new, tmp / "new")}
        tag = f"student-of-{a.student_from.name}" if a.student_from else f"lam{a.lam}"
        distilled = cache_dir() / f"ws-{a.n}-noise0.05-seed0-{tag}"
        distill = None
        if not (distilled / "workspace.sqlite").exists():  # distilled once, by the new code, and kept
            fresh = working_copy(cached_workspace(a.source, a.n, 0.05, 0), tmp / "distilled")
            os.environ["PYTHONPATH"] = str(versions["new"])
            if a.student_from:
                subprocess.run([sys.executable, "-c", COPY_STUDENT, str(a.student_from), str(fresh)], check=True)
                distill = {"student_from": str(a.student_from)}
            else:
                distill = run_distill(fresh, 3600, a.lam)
            print(f"[SYNTHETIC {a.n}] student: {distill}", flush=True)
            shutil.copytree(fresh, distilled)
        res = {}
        for name, src in versions.items():
            res[name] = serve_and_measure(src, working_copy(distilled, tmp / f"ws-{name}"), a.rounds)
            print(f"[SYNTHETIC {a.n}] {name}: {res[name]}", flush=True)
    finally:
        remove_worktrees(tmp)

    info = synthetic_info(distilled)
    rows = [("VmRSS after every view once", "after_views", "VmRSS"),
            ("… of which anonymous (RssAnon)", "after_views", "RssAnon"),
            ("… of which file-backed (RssFile: mapped arrays, libraries)", "after_views", "RssFile"),
            (f"peak over the run (VmHWM, after {a.rounds} tune → views → undo rounds)", "end", "VmHWM"),
            ("VmRSS at the end", "end", "VmRSS")]
    md = [f"# Server memory, {a.n:,} SYNTHETIC images, old ({revs['old']}) vs new ({revs['new']})", "",
          f"Machine: {machine_line()}. Workspace: {info['n_images']:,} synthetic images tiled from "
          f"`{a.source.name}` (splits {info['splits']}), "
          + (f"serving the student distilled on `{a.student_from.name}` (same concepts and classes)"
             if a.student_from else f"one distillation at λ = {a.lam}") + " in both versions. MiB.", "",
          "| what | old | new | new/old |", "|---|---|---|---|"]
    for label, when, key in rows:
        o, n = res["old"][when][key], res["new"][when][key]
        md.append(f"| {label} | {o:,.1f} | {n:,.1f} | {n / o:.2f} |")
    md += ["", f"Tuning step (POST /api/tune) ms: old {res['old']['tune_ms']}, new {res['new']['tune_ms']} "
               "(one after the other, not paired: read with the load in mind).", ""]
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.with_suffix(".md").write_text("\n".join(md))
    a.out.with_suffix(".json").write_text(json.dumps({"n": a.n, "revs": revs, "lam": a.lam, "distill": distill,
                                                      "machine": machine_line(), "results": res}, indent=1))
    print("\n".join(md))


if __name__ == "__main__":
    main()
