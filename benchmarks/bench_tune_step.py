"""The tuning step through ``Session.tune``, old code against new in one run, answers compared.

    nice -n 10 python benchmarks/bench_tune_step.py --base HEAD~1 --workspace WS --rounds 3 --votes 6
    nice -n 10 python benchmarks/bench_tune_step.py --base HEAD~1 --workspace WS --first --rounds 5

Default mode: each round starts one fresh process per version (alternating which goes first),
on its own working copy of ``WS`` (bench_scale.working_copy: SQLite copied, arrays linked).
There it opens the session, builds Z of train (as the page's first views do), then makes
``--votes`` steps, each an up-vote on one class's largest weight followed by undo, and times
``Session.tune`` (the whole call: metrics before and after, the refit, the log) and the refit's
own ``duration_ms``. The new weights of every step are compared with the other version's: the
largest |difference| is reported (the refit's layout may change BLAS's rounding).

``--first``: the first tune of a fresh server process, as the page meets it. Each sample is a
fresh process per version: open the session, call what the server's start-up calls
(``Session.warm_up`` where the code has it, waited for: the background thread's work, done
before the user's first vote arrives), then time the first ``Session.tune`` and the same step again (after undo).

Results: benchmarks/results/tune_step_<name>.md (and .json), with the machine and the load.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from bench_scale import pct, working_copy  # noqa: E402
from bench_startup import remove_worktrees, worktree  # noqa: E402
from machine import machine_line  # noqa: E402


def _picks(s, n):
    """``n`` (class, concept) pairs: the classes by number of non-zeros, each's largest weight."""
    import numpy as np

    coef = s.student.coef_
    order = np.argsort(-(coef != 0).sum(1), kind="stable")
    return [(int(k), int(np.argmax(np.abs(coef[k])))) for k in order[:n]]


def worker(ws: str, votes: int, first: bool) -> dict:
    import numpy as np

    from inficond.session import Session

    t0 = time.perf_counter()
    s = Session(ws)
    out = {"open_s": time.perf_counter() - t0}
    if first:
        t0 = time.perf_counter()
        warm = getattr(s, "warm_up", None)
        if warm is not None:
            warm()
        out["warm_up_s"] = time.perf_counter() - t0
        picks = _picks(s, 1) * 2  # the same step twice: the second is the warm reference
    else:
        t0 = time.perf_counter()
        s._Z("train")
        out["z_train_s"] = time.perf_counter() - t0
        picks = _picks(s, votes)
    tune_ms, refit_ms, coefs = [], [], []
    for k, c in picks:
        t0 = time.perf_counter()
        r = s.tune([{"class": k, "concept": c, "direction": "up"}])
        tune_ms.append((time.perf_counter() - t0) * 1000)
        refit_ms.append(r["duration_ms"])
        coefs.append(np.append(s.student.coef_[k], s.student.intercept_[k]).tolist())
        s.undo()
    out.update(tune_ms=tune_ms, refit_ms=refit_ms, coefs=coefs)
    return out


def run_version(src: Path, ws: Path, votes: int, first: bool) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src)}  # BLAS threads as the server has them
    cmd = [sys.executable, __file__, "--worker", str(ws), "--votes", str(votes)] + (["--first"] if first else [])
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if p.returncode:
        raise RuntimeError(f"worker on {src} failed:\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def summarize(vals: list[float]) -> dict:
    return {"p50": round(statistics.median(vals), 1), "p95": round(pct(vals, 95), 1), "n": len(vals)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worker")
    ap.add_argument("--base", default="HEAD", help="the old commit (a git worktree of it is made)")
    ap.add_argument("--workspace", type=Path)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--votes", type=int, default=6)
    ap.add_argument("--first", action="store_true")
    ap.add_argument("--name", default=None)
    a = ap.parse_args()
    if a.worker:
        print(json.dumps(worker(a.worker, a.votes, a.first)))
        return
    if a.workspace is None:
        ap.error("--workspace is required")
    tmp = Path(tempfile.mkdtemp(prefix="bench_tune_step_"))
    versions = {"old": worktree(a.base, tmp / "old"), "new": REPO / "src"}
    res: dict = {v: [] for v in versions}
    load = [os.getloadavg()[0]]
    try:
        for i in range(a.rounds):
            order = list(versions) if i % 2 == 0 else list(versions)[::-1]
            for v in order:
                ws = working_copy(a.workspace, tmp / f"ws-{v}")
                res[v].append(run_version(versions[v], ws, a.votes, a.first))
            load.append(os.getloadavg()[0])
    finally:
        remove_worktrees(tmp)
    diffs = [max(abs(x - y) for x, y in zip(co, cn))
             for ro, rn in zip(res["old"], res["new"]) for co, cn in zip(ro["coefs"], rn["coefs"])]
    out = {"base": a.base, "workspace": a.workspace.name, "rounds": a.rounds, "first": a.first,
           "machine": machine_line(), "load_1min": [round(x, 2) for x in load],
           "max_abs_weight_diff_old_new": max(diffs) if diffs else None}
    for v in versions:
        rs = res[v]
        if a.first:
            out[v] = {"first_tune_ms": summarize([r["tune_ms"][0] for r in rs]),
                      "second_tune_ms": summarize([r["tune_ms"][1] for r in rs]),
                      "first_refit_ms": summarize([r["refit_ms"][0] for r in rs]),
                      "warm_up_s": summarize([r["warm_up_s"] for r in rs]), "open_s": summarize([r["open_s"] for r in rs])}
        else:
            out[v] = {"tune_ms": summarize([x for r in rs for x in r["tune_ms"]]),
                      "refit_ms": summarize([x for r in rs for x in r["refit_ms"]]),
                      "z_train_s": summarize([r["z_train_s"] for r in rs])}
    name = a.name or ("first_" if a.first else "") + a.workspace.name
    key = "first_tune_ms" if a.first else "tune_ms"
    lines = [f"# Tuning step, paired: {a.base} (old) vs working tree (new), {a.workspace.name}", "",
             f"Machine: {out['machine']}. Load (1 min) over the run: {out['load_1min']}.", "",
             "| version | " + " | ".join(f"{m} p50 / p95 (n)" for m in out["new"]) + " |",
             "|---|" + "---|" * len(out["new"])]
    for v in versions:
        lines.append(f"| {v} | " + " | ".join(f"{d['p50']} / {d['p95']} ({d['n']})" for d in out[v].values()) + " |")
    lines += ["", f"new / old, {key} p50: {out['new'][key]['p50'] / out['old'][key]['p50']:.2f}, "
                  f"p95: {out['new'][key]['p95'] / out['old'][key]['p95']:.2f}. "
                  f"Largest |weight difference| old vs new over every step: {out['max_abs_weight_diff_old_new']:.3g}."]
    dst = HERE / "results" / f"tune_step_{name}"
    dst.with_suffix(".json").write_text(json.dumps(out, indent=1) + "\n")
    dst.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
