"""Benchmark: what-if curves (vectorised) vs a loop of scikit-learn metric calls.

Setting of the student knowledge view: one class, the top 10 concepts by influence,
21 influence values each, 5 metrics (AP, F1, precision, recall, accuracy), on ~445
validation images with 584 concepts. Both paths compute the same numbers (checked here).

Run:  .venv/bin/python benchmarks/bench_whatif.py   (writes benchmarks/results/whatif.md)
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import numpy as np
import sklearn
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    f1_score,
    precision_score,
    recall_score,
)

from inficond.analysis import rank_concepts, whatif_curves, whatif_scores

N, C, NONZERO, TOP, POINTS = 445, 584, 40, 10, 21
METRICS = ("ap", "f1", "precision", "recall", "accuracy")
OUT = Path(__file__).parent / "results" / "whatif.md"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def sklearn_loop(Z, w, b, y, concepts, grid):
    scores = whatif_scores(Z, w, b, concepts, grid)
    out = {m: np.empty(grid.shape) for m in METRICS}
    for i in range(grid.shape[0]):
        for j in range(grid.shape[1]):
            s = scores[i, j]
            p = s > 0
            out["ap"][i, j] = average_precision_score(y, s)
            out["f1"][i, j] = f1_score(y, p, zero_division=0)
            out["precision"][i, j] = precision_score(y, p, zero_division=0)
            out["recall"][i, j] = recall_score(y, p, zero_division=0)
            out["accuracy"][i, j] = accuracy_score(y, p)
    return out


def timed(fn, repeats):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        res = fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times)), res


def real_problem(workspace):
    """The weakest class of a real workspace: val Z, its influences, labels, top-10 concepts."""
    from inficond.session import Session

    s = Session(workspace)
    perf = s.performance("val")
    k = max((c for c in perf["classes"] if not c["excluded"] and c["gap"] is not None), key=lambda c: c["gap"])["class_idx"]
    st = s.student
    rows = s.rows("val")
    Z = (s.X[rows] - st.mean_) / st.scale_
    w, b, y = st.coef_[k], float(st.intercept_[k]), s.Y[rows, k]
    return Z, w, b, y, f"workspace `{workspace}`, class {s.ws.class_names[k]!r}"


def main():
    import argparse

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--workspace", help="a real workspace (default: a synthetic problem of the same size)")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    # Concept vectors look like clipped cosine similarities; rounding to float16 (as stored)
    # creates tied scores, which the AP must handle like sklearn.
    X = np.clip(rng.normal(0.2, 0.08, (N, C)), 0, None).astype(np.float16).astype(np.float64)
    Z = (X - X.mean(0)) / X.std(0)
    w = np.zeros(C)
    w[rng.choice(C, NONZERO, replace=False)] = rng.laplace(scale=0.5, size=NONZERO)
    y = (Z @ w + rng.normal(scale=2.0, size=N) > 2.0).astype(np.uint8)
    b = -1.0
    source = "synthetic data"
    if args.workspace:
        Z, w, b, y, source = real_problem(args.workspace)
    concepts = np.array([r["concept_idx"] for r in rank_concepts(w, k=TOP)])

    whatif_curves(Z, w, b, y, concepts, n_points=POINTS, metrics=METRICS)  # warm-up
    t_vec, res = timed(lambda: whatif_curves(Z, w, b, y, concepts, n_points=POINTS,
                                             metrics=METRICS), 50)
    t_sk, ref = timed(lambda: sklearn_loop(Z, w, b, y, concepts, res["grid"]), 3)
    err = max(np.abs(res["values"][m] - ref[m]).max() for m in METRICS)

    lines = [
        "## What-if curves",
        "",
        f"Setting ({source}): {TOP} concepts x {POINTS} influence values x {len(METRICS)} metrics "
        f"({', '.join(METRICS)}), n = {Z.shape[0]} images, C = {Z.shape[1]} concepts, "
        f"{int(np.count_nonzero(w))} non-zero influences, positives = {int(y.sum())}.",
        "",
        "| path | median time | |",
        "|---|---|---|",
        f"| `whatif_curves` (vectorised, 50 runs) | {t_vec * 1e3:.2f} ms | target < 50 ms |",
        f"| loop of sklearn.metrics calls (3 runs, {TOP * POINTS * len(METRICS)} calls) "
        f"| {t_sk * 1e3:.0f} ms | |",
        f"| ratio | {t_sk / t_vec:.0f}x | |",
        "",
        f"Max absolute difference between the two paths over all curve points: {err:.1e}.",
        "",
        "Machine:",
        f"- nproc: {os.cpu_count()} (affinity: {len(os.sched_getaffinity(0))}); "
        f"CPU: {cpu_model()}",
        f"- Python {platform.python_version()}, numpy {np.__version__}, "
        f"scikit-learn {sklearn.__version__}",
        "- Shared machine (other processes running), so timings are indicative.",
        "",
    ]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
