"""Where the sparsity search of ``inficond distill`` spends its time: cProfile (CPU time, so a
shared machine's waiting does not count) of ``lambda_for_sparsity(return_student=True)`` on a
workspace's train split, grouped into the solver's parts, with the counts that explain them.

Usage::

    python benchmarks/profile_distill_search.py --workspace workspaces/dev [--max-concepts 100]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import time

import numpy as np

from inficond.students import lambda_for_sparsity

GROUPS = {  # (file suffix, function) -> part; tottime (own time, incl. the BLAS calls it makes)
    "Newton models (working sets, Hessians X'SX by syrk, line search)": [("_solvers.py", "solve_cd")],
    "gradients (R'Z each outer iteration; Z W' at each fit's start)": [("_solvers.py", "smooth_loss_grad"),
                                                          ("_solvers.py", "_loss_grad_at_logits")],
    "sub-problems: active-set steps (Python + einsum)": [("_solvers.py", "_feature_sign")],
    "sub-problems: batched linear solves (LAPACK)": [("_linalg.py", "solve")],
    "sub-problems: coordinate-descent fallback": [("_solvers.py", "sweep"), ("_solvers.py", "_cd_quadratic"),
                                                 ("_solvers.py", "_cd_quadratic_one"),
                                                 ("_solvers.py", "_newton_polish")],
    "losses (softplus) and KKT checks": [("_solvers.py", "_softplus"), ("_solvers.py", "_loss_from_logits"),
                                        ("_solvers.py", "kkt_violation")],
}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workspace", required=True)
    ap.add_argument("--max-concepts", type=int, default=100)
    a = ap.parse_args(argv)
    from inficond.store.workspace import Workspace

    ws = Workspace(a.workspace)
    idx = ws.split_indices("train")
    X = np.asarray(ws.array("concept_vectors")[idx], dtype=np.float64)
    T = np.asarray(ws.array("teacher_logits")[idx], dtype=np.float64)
    pr = cProfile.Profile(time.process_time)
    c0, t0 = time.process_time(), time.perf_counter()
    pr.enable()
    lam, st = lambda_for_sparsity(X, T, max_concepts=a.max_concepts, return_student=True)
    pr.disable()
    cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    stats = pstats.Stats(pr).stats  # {(file, line, func): (cc, nc, tottime, cumtime, callers)}
    own = {}
    calls = {}
    for (file, _, func), (_, nc, tt, _, _) in stats.items():
        for part, keys in GROUPS.items():
            if any(file.endswith(f) and func == fn for f, fn in keys):
                own[part] = own.get(part, 0.0) + tt
        calls[func] = calls.get(func, 0) + nc
    total = sum(v[2] for v in stats.values())
    print(f"workspace {a.workspace}: {X.shape[0]} train images x {X.shape[1]} concepts, {T.shape[1]} classes; "
          f"<= {a.max_concepts} concepts per class; load average {os.getloadavg()[0]:.2f}")
    print(f"search + final cold fit: {cpu:.2f} s CPU ({wall:.2f} s wall; profiled, so slower than unprofiled)")
    print(f"solver calls (batched over classes) {calls.get('solve_cd', 0)}, outer iterations "
          f"{calls.get('_loss_grad_at_logits', 0)}, sub-problems "
          f"{calls.get('_solve_quadratic', 0)}, of which finished by coordinate descent "
          f"{calls.get('_cd_quadratic', 0)}, batched linear solves {calls.get('solve', 0)}")
    print("| part | CPU s | share |\n|---|---:|---:|")
    for part, v in sorted(own.items(), key=lambda kv: -kv[1]):
        print(f"| {part} | {v:.2f} | {v / total:.0%} |")
    rest = total - sum(own.values())
    print(f"| everything else (Python glue, imports) | {rest:.2f} | {rest / total:.0%} |")
    print(f"non-zeros per class: {st.n_nonzero_.tolist()}")


if __name__ == "__main__":
    main()
