"""Student quality: student vs teacher AP on val and test for the well-populated classes, and sparsity.

Students are fitted on the train split of a real workspace at several sparsity targets, plus the
paper's recipe (Adam, lr 0.2, batch 2,084, 10 epochs, L1 1e-4). Writes benchmarks/results/quality.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import average_precision_score

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_line  # noqa: E402

from inficond.session import Session  # noqa: E402
from inficond.students import ConceptStudent, lambda_for_sparsity  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def mean_ap(y: np.ndarray, scores: np.ndarray, classes: list[int]) -> float:
    return float(np.mean([average_precision_score(y[:, k], scores[:, k]) for k in classes]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--workspace", default="workspaces/dev")
    ap.add_argument("--min-val-positives", type=int, default=15)
    ap.add_argument("--targets", default="30,60,100,200")
    a = ap.parse_args()
    s = Session(a.workspace)
    tr, va, te = s.rows("train"), s.rows("val"), s.rows("test")
    names = s.ws.class_names
    classes = [k for k in range(len(names)) if s.Y[va, k].sum() >= a.min_val_positives]
    X, T, Y = s.X, s.T, s.Y
    teacher = (mean_ap(Y[va], T[va], classes), mean_ap(Y[te], T[te], classes))
    rows = []
    for target in [int(t) for t in a.targets.split(",")]:
        t0 = time.perf_counter()
        lam = lambda_for_sparsity(X[tr], T[tr], max_concepts=target)
        st = ConceptStudent(lam=lam).fit(X[tr], T[tr])
        secs = time.perf_counter() - t0
        rows.append((f"exact (cd), ≤ {target} concepts", st, secs))
    t0 = time.perf_counter()
    paper = ConceptStudent(lam=1e-4, solver="adam-paper").fit(X[tr], T[tr])
    rows.append(("paper's recipe (Adam, 10 epochs, L1 1e-4)", paper, time.perf_counter() - t0))

    lines = [
        "## Student quality and sparsity",
        "",
        f"Machine: {machine_line()}",
        "",
        f"Workspace `{a.workspace}`; classes with ≥ {a.min_val_positives} val positives: "
        f"{', '.join(names[k] for k in classes)}. AP against ground truth; students fitted on train only.",
        "",
        "| student | fit incl. λ search (s) | val mAP | test mAP | non-zero concepts per class (median, these classes) |",
        "|---|---|---|---|---|",
        f"| teacher (EfficientNet-Lite2 + logistic head) | - | {teacher[0]:.3f} | {teacher[1]:.3f} | - |",
    ]
    for name, st, secs in rows:
        v = mean_ap(Y[va], st.decision_function(X[va]), classes)
        t = mean_ap(Y[te], st.decision_function(X[te]), classes)
        nz = int(np.median(np.count_nonzero(st.coef_[classes], axis=1)))
        lines.append(f"| {name} | {secs:.1f} | {v:.3f} | {t:.3f} | {nz} |")
        print(lines[-1], flush=True)
    lines += ["", "The default (`inficond distill`) is ≤ 100 concepts per class."]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "quality.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
