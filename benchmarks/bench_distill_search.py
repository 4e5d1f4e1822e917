"""Paired benchmark of the sparsity search alone, two commits, and how their answers compare.

``inficond distill`` spends nearly all its time in ``lambda_for_sparsity(return_student=True)``
(the λ search and its closing cold fit). This times that call at two commits in fresh processes,
alternating (before, after, before, ...), on a workspace's train split, and reports each run's CPU
time (user + system of the process over the call alone, which a shared machine's waiting does not
inflate the way it inflates wall time) and wall time. Each commit's ``src/`` is exported with
``git archive``; ``--after .`` takes the working tree's ``src/``.

Then the answers: the λ per class (after / before), the supports (the same concepts, aliases
counted as one), and the objective at the after-commit's λ: its student against the
before-commit's solver fitted cold at that same λ (the largest absolute difference per class).

Usage::

    python benchmarks/bench_distill_search.py --workspace workspaces/dev --before 5d45f18 --after HEAD \
        --pairs 3 --max-concepts 100 --n-jobs 1
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_line  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

# One run in a fresh process: load the train split, time the search, save its answer; or, with a
# λ file, fit cold at those λ and save the objective.
CHILD = r"""
import inspect, json, resource, sys, time
import numpy as np
from inficond.store.workspace import Workspace
from inficond.students import estimator as E
ws_path, max_concepts, n_jobs, out, lam_file = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
ws = Workspace(ws_path)
idx = ws.split_indices("train")
X = np.asarray(ws.array("concept_vectors")[idx], dtype=np.float64)
T = np.asarray(ws.array("teacher_logits")[idx], dtype=np.float64)
kw = {}
if n_jobs != "default" and "n_jobs" in inspect.signature(E.lambda_for_sparsity).parameters:
    kw["n_jobs"] = int(n_jobs)
if lam_file != "-":
    lam = np.load(lam_file)
    st = E.ConceptStudent(lam=lam).fit(X, T)
    np.savez(out, objective=st.objective(X, T), coef=st.coef_)
    sys.exit(0)
r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
lam, st = E.lambda_for_sparsity(X, T, max_concepts=max_concepts, return_student=True, **kw)
wall, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF)
cpu = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
np.savez(out, lam=lam, coef=st.coef_, objective=st.objective(X, T))
print(json.dumps({"cpu_s": cpu, "wall_s": wall, "n_train": int(X.shape[0]), "n_concepts": int(X.shape[1]),
                  "peak_rss_mib": r1.ru_maxrss / 1024}))
"""


def export_src(rev: str, dest: Path) -> Path:
    if rev == ".":
        return REPO / "src"
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev, "src"], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest / "src"


def child(src: Path, ws: str, max_concepts: int, n_jobs: str, out: Path, lam_file: str = "-") -> dict:
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    p = subprocess.run([sys.executable, "-c", CHILD, ws, str(max_concepts), n_jobs, str(out), lam_file],
                       capture_output=True, text=True, env=env)
    if p.returncode:
        raise RuntimeError(f"run at {src} failed:\n{p.stdout}\n{p.stderr}")
    return json.loads(p.stdout.strip().splitlines()[-1]) if lam_file == "-" else {}


def supports_equal(a: np.ndarray, b: np.ndarray, groups: list[list[int]]) -> np.ndarray:
    """Per class: the same concepts non-zero, each alias group counted as one concept."""
    a, b = a != 0, b != 0
    for g in groups:
        a[:, g[0]] |= a[:, g[1:]].any(axis=1)
        b[:, g[0]] |= b[:, g[1:]].any(axis=1)
        a[:, g[1:]] = b[:, g[1:]] = False
    return (a == b).all(axis=1)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workspace", required=True)
    ap.add_argument("--before", required=True, help="git revision of the baseline")
    ap.add_argument("--after", default="HEAD", help="git revision, or '.' for the working tree")
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--max-concepts", type=int, default=100)
    ap.add_argument("--n-jobs", default="default", help="the after-commit's worker threads ('default': its default)")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "distill_search_paired.json"))
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="inficond-search-") as tmp:
        tmp = Path(tmp)
        trees = {"before": export_src(a.before, tmp / "before"), "after": export_src(a.after, tmp / "after")}
        load0 = os.getloadavg()
        runs: dict[str, list] = {"before": [], "after": []}
        for i in range(a.pairs):
            for name, src in trees.items():
                r = child(src, a.workspace, a.max_concepts, a.n_jobs, tmp / f"{name}.npz")
                runs[name].append(r)
                print(f"pair {i + 1}: {name}: search + closing fit {r['cpu_s']:.2f} s CPU, {r['wall_s']:.2f} s wall, "
                      f"peak RSS {r['peak_rss_mib']:.0f} MiB", flush=True)
        load1 = os.getloadavg()
        old, new = np.load(tmp / "before.npz"), np.load(tmp / "after.npz")
        np.save(tmp / "lam_after.npy", new["lam"])
        child(trees["before"], a.workspace, a.max_concepts, a.n_jobs, tmp / "old_at_new.npz", str(tmp / "lam_after.npy"))
        old_at_new = np.load(tmp / "old_at_new.npz")
    from inficond.store.workspace import Workspace
    from inficond.students._solvers import _duplicate_columns

    ws = Workspace(a.workspace)
    X = np.asarray(ws.array("concept_vectors")[ws.split_indices("train")], dtype=np.float64)
    Z = (X - X.mean(0)) / np.where(X.std(0) > 0, X.std(0), 1.0)
    groups = [g.tolist() for g in _duplicate_columns(np.asfortranarray(Z))]
    cpu_ratio = [y["cpu_s"] / x["cpu_s"] for x, y in zip(runs["before"], runs["after"])]
    wall_ratio = [y["wall_s"] / x["wall_s"] for x, y in zip(runs["before"], runs["after"])]
    out = {
        "machine": machine_line(), "load_average_at_start": load0, "load_average_at_end": load1,
        "workspace": a.workspace, "max_concepts": a.max_concepts, "before": a.before, "after": a.after,
        "after_n_jobs": a.n_jobs, "runs": runs,
        "after_over_before_cpu_per_pair": cpu_ratio, "after_over_before_wall_per_pair": wall_ratio,
        "lam_after_over_before": (new["lam"] / old["lam"]).tolist(),
        "nnz_before": np.count_nonzero(old["coef"], axis=1).tolist(),
        "nnz_after": np.count_nonzero(new["coef"], axis=1).tolist(),
        "same_support_aliases_as_one": supports_equal(old["coef"], new["coef"], groups).tolist(),
        "objective_after_minus_before_solver_at_after_lam": (new["objective"] - old_at_new["objective"]).tolist(),
        "alias_groups": groups,
    }
    Path(a.out).write_text(json.dumps(out, indent=2))
    r = np.array(out["lam_after_over_before"])
    d = np.abs(out["objective_after_minus_before_solver_at_after_lam"])
    print(f"CPU after/before per pair: {', '.join(f'{x:.2f}' for x in cpu_ratio)}; "
          f"wall: {', '.join(f'{x:.2f}' for x in wall_ratio)}; load {load0[0]:.1f} -> {load1[0]:.1f}")
    print(f"lam after/before: {r.min():.4f} .. {r.max():.4f} ({int(np.sum(r == 1))} of {r.size} equal); "
          f"same supports (aliases as one) in {sum(out['same_support_aliases_as_one'])} of {r.size} classes; "
          f"objective at the new lam, new student vs the old solver: max |diff| {d.max():.1e}")


if __name__ == "__main__":
    main()
