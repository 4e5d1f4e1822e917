"""Student quality: student vs teacher AP on val and test for the well-populated classes, and sparsity.

Students are fitted on the train split of a real workspace at several sparsity targets, plus the
paper's recipe (Adam, lr 0.2, batch 2,084, 10 epochs, L1 1e-4). Writes benchmarks/results/quality.md.
"""

from __future__ import annotations

import argparse
import json
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


def cached_concept_vectors(image_ids: list[str], encoder_kwargs: dict | None = None) -> tuple[np.ndarray, dict]:
    """(n, C) float16 concept vectors of the default encoder over the default corpus, from the grounding cache.

    The same numbers ``prepare`` stores (max over regions of cosine, clipped at 0, float16), without
    running the networks again: ``bench_grounding.Grounder`` re-embeds cached top-20 ImageNet outputs and
    face boxes, and checks itself against the encoder's own ``conse``.
    """
    import bench_grounding
    import grounding_cache

    from inficond.concepts.corpus import default_corpus
    from inficond.encoders.conse_effnet import ConseEffnetEncoder

    enc = ConseEffnetEncoder(**(encoder_kwargs or {}))
    ids, P, I = grounding_cache.load("lite0", enc.image_size, enc.window, enc.stride, 20)
    if list(ids) != list(image_ids):
        raise RuntimeError("the grounding cache's images differ from the workspace's")
    g = bench_grounding.Grounder(P, I, grounding_cache.load_faces() if enc.person_cue else None, enc.boxes)
    words = [w.text for w in default_corpus()]
    g.check(enc, words[:50], np.arange(8))
    return g.scores(enc, words, np.arange(len(ids))).astype(np.float16).astype(np.float32), enc.identity()


def fidelity_levers(X, T, Y, target):
    """Students at <= ``target`` concepts made with the levers tried for student fidelity (issue 7).

    - relaxed lasso: the L1 path's support at ``target`` concepts, then a refit on that support
      alone with the L1 strength times ``phi`` (other concepts held at 0 by bounds);
    - distillation temperature: the soft targets ``sigmoid(t / tau)`` (tau < 1 sharpens them);
    - ground truth mixed into the target, ``(1 - a) sigmoid(t) + a y`` (Hinton's mix).
    None of them is a default (see BENCHMARKS.md); their rows show what each gave.
    """
    from scipy.special import expit, logit

    out = []
    t0 = time.perf_counter()
    lam, base = lambda_for_sparsity(X, T, max_concepts=target, return_student=True)
    t_base = time.perf_counter() - t0
    support = base.coef_ != 0
    lo, hi = np.where(support, -np.inf, 0.0), np.where(support, np.inf, 0.0)
    for phi in (0.5, 0.1, 0.0):
        t0 = time.perf_counter()
        st = ConceptStudent(lam=np.maximum(lam * phi, 1e-12)).fit(X, T, lower=lo, upper=hi)
        out.append((f"relaxed lasso: ≤ {target} support, refit at {phi} × λ", st, t_base + time.perf_counter() - t0))
    for tau in (0.5, 2.0):
        t0 = time.perf_counter()
        lam_t, st = lambda_for_sparsity(X, T / tau, max_concepts=target, return_student=True)
        out.append((f"temperature τ = {tau}, ≤ {target} concepts", st, time.perf_counter() - t0))
    for mix in (0.6,):
        t0 = time.perf_counter()
        Tm = logit(np.clip((1 - mix) * expit(T) + mix * Y, 1e-6, 1 - 1e-6))
        lam_m, st = lambda_for_sparsity(X, Tm, max_concepts=target, return_student=True)
        out.append((f"ground truth mixed in, a = {mix}, ≤ {target} concepts", st, time.perf_counter() - t0))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--workspace", default="workspaces/dev")
    ap.add_argument("--min-val-positives", type=int, default=15)
    ap.add_argument("--targets", default="30,60,100")
    ap.add_argument("--out", default="quality", help="results file stem under benchmarks/results")
    ap.add_argument("--concepts-from-cache", action="store_true",
                    help="replace the workspace's concept vectors by the installed default conse-effnet encoder's "
                         "over the packaged default corpus, computed from bench_grounding's cached network outputs "
                         "(teacher logits, labels and splits stay the workspace's)")
    ap.add_argument("--encoder-kwargs", default="{}", help="JSON settings for --concepts-from-cache "
                    "(default: the installed defaults), e.g. '{\"description_weight\": 0}'")
    ap.add_argument("--levers", default="", help="also fit the fidelity levers (relaxed lasso, temperature) at "
                    "this many concepts, e.g. 30")
    a = ap.parse_args()
    s = Session(a.workspace)
    tr, va, te = s.rows("train"), s.rows("val"), s.rows("test")
    names = s.ws.class_names
    classes = [k for k in range(len(names)) if s.Y[va, k].sum() >= a.min_val_positives]
    X, T, Y = s.X, s.T, s.Y
    encoder_desc = s.ws.get_meta("encoder")
    if a.concepts_from_cache:
        X, encoder_desc = cached_concept_vectors(s.ws.image_ids, json.loads(a.encoder_kwargs))
    teacher = (mean_ap(Y[va], T[va], classes), mean_ap(Y[te], T[te], classes))
    rows = []
    for target in [int(t) for t in a.targets.split(",")]:
        t0 = time.perf_counter()
        lam = lambda_for_sparsity(X[tr], T[tr], max_concepts=target)
        st = ConceptStudent(lam=lam).fit(X[tr], T[tr])
        secs = time.perf_counter() - t0
        rows.append((f"exact (cd), ≤ {target} concepts", st, secs))
    exact_rows = list(rows)  # the grounding table below is for these
    t0 = time.perf_counter()
    paper = ConceptStudent(lam=1e-4, solver="adam-paper").fit(X[tr], T[tr])
    rows.append(("paper's recipe (Adam, 10 epochs, L1 1e-4)", paper, time.perf_counter() - t0))
    if a.levers:
        rows[-1:-1] = fidelity_levers(X[tr], T[tr], Y[tr].astype(float), int(a.levers))

    per_class = {}
    lines = [
        "## Student quality and sparsity",
        "",
        f"Machine: {machine_line()}",
        "",
        f"Workspace `{a.workspace}`; classes with ≥ {a.min_val_positives} val positives: "
        f"{', '.join(names[k] for k in classes)}. AP against ground truth; students fitted on train only.",
        "",
        f"Encoder: `{encoder_desc}`" + (" (concept vectors computed from the cached network outputs of "
                                         "bench_grounding, default corpus of "
                                         f"{X.shape[1]} words)." if a.concepts_from_cache else "."),
        "",
        "| student | fit incl. λ search (s) | val mAP | × teacher (val) | test mAP | × teacher (test) | "
        "non-zero concepts per class (median, these classes) |",
        "|---|---|---|---|---|---|---|",
        f"| teacher (EfficientNet-Lite2 + logistic head) | - | {teacher[0]:.3f} | 1 | {teacher[1]:.3f} | 1 | - |",
    ]
    results = {"workspace": a.workspace, "encoder": encoder_desc, "concepts_from_cache": a.concepts_from_cache, "classes": [names[k] for k in classes],
               "teacher": {"val": teacher[0], "test": teacher[1]}, "students": {}}
    for name, st, secs in rows:
        v = mean_ap(Y[va], st.decision_function(X[va]), classes)
        t = mean_ap(Y[te], st.decision_function(X[te]), classes)
        nz = int(np.median(np.count_nonzero(st.coef_[classes], axis=1)))
        lines.append(f"| {name} | {secs:.1f} | {v:.3f} | {v / teacher[0]:.3f} | {t:.3f} | {t / teacher[1]:.3f} | {nz} |")
        results["students"][name] = {"val": v, "test": t, "fit_s": secs, "median_nonzero": nz}
        per_class[name] = {names[k]: float(average_precision_score(Y[va, k], st.decision_function(X[va])[:, k]))
                           for k in classes}
        print(lines[-1], flush=True)
    teacher_pc = {names[k]: float(average_precision_score(Y[va, k], T[va, k])) for k in classes}
    first = rows[0][0]
    lines += ["", f"Per class on val, teacher vs {first}:", "", "| class | teacher AP | student AP | ratio |",
              "|---|---|---|---|"]
    for c in sorted(teacher_pc, key=lambda c: per_class[first][c] / teacher_pc[c]):
        lines.append(f"| {c} | {teacher_pc[c]:.3f} | {per_class[first][c]:.3f} | {per_class[first][c] / teacher_pc[c]:.3f} |")
    results["per_class_val"] = {"teacher": teacher_pc, **per_class}
    # Grounding on the student side: are a class's naming words among its top-10 concepts (by |influence|)?
    import bench_grounding

    from inficond.analysis.discrepancy import rank_concepts
    from inficond.concepts.corpus import default_corpus

    words = [w.word for w in default_corpus()] if a.concepts_from_cache else list(s.ws.concept_words)
    top10 = {}
    for name, st, _ in exact_rows:
        top10[name] = {}
        for k, c in enumerate(names):
            top = [words[d["concept_idx"]] for d in rank_concepts(st.coef_[k], k=10)]
            naming = [w for w in bench_grounding.CLASS_WORDS.get(c, [c]) if w in words]
            top10[name][c] = {"naming_in_corpus": naming, "top10": top,
                              "rank": next((i + 1 for i, w in enumerate(top) if w in naming), None)}
    results["student_top10_naming_words"] = top10
    lines += ["", "Student side of grounding: rank of the class's first naming word (bench_grounding.CLASS_WORDS) among "
              "its top-10 concepts by |influence| ('-' = not in the top 10):", "",
              "| class | naming words in corpus | " + " | ".join(n for n, _, _ in exact_rows) + " | top-10 at the first |",
              "|---|---|" + "---|" * len(exact_rows) + "---|"]
    for c in names:
        first = top10[rows[0][0]][c]
        lines.append(f"| {c} | {', '.join(first['naming_in_corpus']) or '(none)'} | "
                     + " | ".join(str(top10[n][c]['rank'] or '-') for n, _, _ in exact_rows)
                     + f" | {', '.join(first['top10'])} |")
    lines.append("| **classes with a hit** | | " + " | ".join(
        str(sum(v["rank"] is not None for v in top10[n].values())) for n, _, _ in exact_rows) + " | |")
    lines += ["", "The default (`inficond distill`) is ≤ 100 concepts per class."]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{a.out}.md").write_text("\n".join(lines) + "\n")
    (RESULTS / f"{a.out}.json").write_text(json.dumps(results, indent=2, default=str))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
