"""The exact what-if at scale, old code against new: class concepts' curves and suggestion moves.

    nice -n 10 python benchmarks/bench_whatif_scale.py --base 400a8cd --workspace workspaces/dev WS30K WS100K

For each workspace (a distilled one; the synthetic ones from bench_scale_paired.py) and class,
the two computations behind the views whose first call after a tuning step grows with the
images: the class concepts' what-if curves (the top 10 concepts x 21 influences, AP on val) and
the suggestions' moves (every candidate concept up and down, AP on train), as
:meth:`Session._whatif` and :meth:`Session._suggest_moves` make them. Old and new code (a git
worktree each, through ``PYTHONPATH``) run in their own processes, alternating, ``--rounds``
times; Z is built before the clock starts. Every AP of both versions is compared.
Results: benchmarks/results/whatif_scale.md (and .json).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from bench_startup import remove_worktrees, worktree  # noqa: E402
from machine import machine_line  # noqa: E402

WORKER = r"""
import json, sys, time
import numpy as np
from inficond.analysis import rank_concepts, suggest_moves, whatif_curves
from inficond.session import TUNE_FACTOR, Session
from inficond.students.tuning import reference_influence
s = Session(sys.argv[1]); classes = json.loads(sys.argv[2]); st = s.student; REPEAT = int(sys.argv[4])
Zv, Zt = s._Z("val"), s._Z("train")
out = {"curves_s": [], "moves_s": [], "curves": [], "moves": []}
for k in classes:
    coef, b = st.coef_[k], float(st.intercept_[k]); dp, dn = s._discrepancy(k)
    yv, yt = s.Y[s.rows("val"), k], s.Y[s.rows("train"), k]
    top = [d["concept_idx"] for d in rank_concepts(coef, dp, dn, by="influence", k=10)]
    best = float("inf")
    for _ in range(REPEAT):
        t0 = time.perf_counter(); r = whatif_curves(Zv, coef, b, yv, top, metrics=("ap",))
        best = min(best, time.perf_counter() - t0)
    out["curves_s"].append(best); out["curves"].append(r["values"]["ap"].tolist())
    cand = np.unique([d["concept_idx"] for by in ("influence", "discrepancy_p", "discrepancy_n")
                      for d in rank_concepts(coef, dp, dn, by=by, k=30)]).astype(int)
    step = TUNE_FACTOR * np.maximum(np.abs(coef[cand]), reference_influence(coef))
    best = float("inf")
    for _ in range(REPEAT):
        t0 = time.perf_counter(); m = suggest_moves(Zt, coef, b, yt, cand, coef[cand] + step, coef[cand] - step, k=cand.size)
        best = min(best, time.perf_counter() - t0)
    out["moves_s"].append(best); out["moves"].append(m)
json.dump(out, open(sys.argv[3], "w"))
"""


def run(src: Path, ws: Path, classes: list[int], out: Path, repeat: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src)}
    subprocess.run([sys.executable, "-c", WORKER, str(ws), json.dumps(classes), str(out), str(repeat)], check=True, env=env)
    return json.loads(out.read_text())


def compare(old: dict, new: dict) -> tuple[float, int, int]:
    """Largest |AP difference| over every curve point and move, and how many move rankings are the same."""
    diff = 0.0
    for a, b in zip(old["curves"], new["curves"]):
        a, b = np.array(a, dtype=float), np.array(b, dtype=float)
        if not np.array_equal(np.isnan(a), np.isnan(b)):
            return float("inf"), 0, len(old["moves"])
        diff = max(diff, float(np.nanmax(np.abs(a - b), initial=0.0)))
    same = 0
    for a, b in zip(old["moves"], new["moves"]):
        same += [(m["concept_idx"], m["direction"]) for m in a] == [(m["concept_idx"], m["direction"]) for m in b]
        diff = max([diff] + [abs(x[key] - y[key]) for x, y in zip(a, b) for key in ("ap_before", "ap_after", "gain")])
    return diff, same, len(old["moves"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", required=True, help="git revision of the old code")
    ap.add_argument("--new", default=".", help="git revision of the new code, or '.' for this checkout's src")
    ap.add_argument("--workspace", type=Path, nargs="+", default=[REPO / "workspaces" / "dev"])
    ap.add_argument("--classes", default="0,3,6,9,12,15,18", help="comma-separated class indices")
    ap.add_argument("--rounds", type=int, default=3, help="old/new process pairs per workspace (order alternates)")
    ap.add_argument("--repeat", type=int, default=3, help="calls per class and process; the fastest counts")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "whatif_scale")
    a = ap.parse_args()
    classes = [int(c) for c in a.classes.split(",")]
    revs = {name: subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD" if rev == "." else rev],
                                 check=True, capture_output=True, text=True).stdout.strip()
            for name, rev in (("old", a.base), ("new", a.new))}
    tmp = Path(tempfile.mkdtemp(prefix="bench-whatif-"))
    rows, res = [], {}
    t_start = time.perf_counter()
    try:
        srcs = {"old": worktree(a.base, tmp / "old"),
                "new": REPO / "src" if a.new == "." else worktree(a.new, tmp / "new")}
        for ws in a.workspace:
            got = {"old": [], "new": []}
            for r in range(a.rounds):
                for name in (("old", "new") if r % 2 == 0 else ("new", "old")):
                    got[name].append(run(srcs[name], ws, classes, tmp / f"{name}.json", a.repeat))
                    print(f"[{ws.name}] round {r} {name}: curves {sum(got[name][-1]['curves_s']):.2f} s, "
                          f"moves {sum(got[name][-1]['moves_s']):.2f} s", flush=True)
            diff, same, total = compare(got["old"][0], got["new"][0])
            med = {(name, part): float(np.median([sum(g[f"{part}_s"]) for g in got[name]]))
                   for name in got for part in ("curves", "moves")}
            res[ws.name] = {"diff": diff, "same": same, "total": total, "median_s": {f"{k[0]}_{k[1]}": v for k, v in med.items()}}
            for part, label in (("curves", "class concepts' what-if (val; 10 concepts x 21 points)"),
                                ("moves", "suggestion moves (train; every candidate up and down)")):
                o, n = med[("old", part)], med[("new", part)]
                rows.append(f"| {ws.name} | {label} | {o * 1000:,.0f} ms | {n * 1000:,.0f} ms | {o / n:.2f}× |")
            rows.append(f"| {ws.name} | largest AP difference (every curve point, move and gain); same move ranking "
                        f"| | {diff:.3g}; {same} of {total} | |")
    finally:
        remove_worktrees(tmp)
    load = os.getloadavg()
    md = [f"# Exact what-if, old ({revs['old']}) vs new ({revs['new']}), paired", "",
          f"Machine: {machine_line()}; load average at the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}; "
          f"run took {time.perf_counter() - t_start:.0f} s. Classes {classes}; each call the fastest of {a.repeat}, "
          f"summed over the classes; medians over {a.rounds} processes per version (alternating).", "",
          "| workspace | what | old | new | old/new |", "|---|---|---|---|---|", *rows, ""]
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.with_suffix(".md").write_text("\n".join(md))
    a.out.with_suffix(".json").write_text(json.dumps({"revs": revs, "classes": classes, "machine": machine_line(),
                                                      "load": load, "results": res}, indent=1))
    print("\n".join(md))


if __name__ == "__main__":
    main()
