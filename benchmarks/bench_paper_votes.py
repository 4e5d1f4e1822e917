"""The paper's own votes, replayed: tv monitor, bicycle, sofa, dog; the paper's recipe beside the exact one.

Scenarios (the words and their order are the paper's usage scenarios, section 6; where the paper
only says "after N iterations" the last described step is repeated up to N steps):

- tv monitor: ▲tv monitor, television, crt screen | ▼bookcase, mezzanine, blinds, niche, sofa,
  decoration | ▼bookcase
- bicycle: ▲bicycle | ▲wheel, bicycle ▼shop | ▲bicycle, wheel ▼shop, steering wheel, inflatable
  bounce game | ▲bicycle, wheel ▼machinery, shops, runway, trailer, meat
- sofa: ▲sofa, armchair | ▲sofa, armchair ▼trouser, notebook, steering wheel, dog, pillow | the
  second step twice more (the paper's 14 iterations are not described one by one)
- dog: ▲dog | ▲dog, fur ▼grass, terraces, apron | ▲dog ▼grass, cushion, repeated to 8 steps

Words missing from the workspace corpus are listed and skipped (a step left empty is skipped).

Recipes: **exact** = the product default (``Session.distill()``: at most 100 concepts per class,
exact L1 optimum; each vote refits exactly within the bounds); **paper** = Adam (lr 0.2, batch
2,084, 10 epochs, lam 1e-4), each vote refitted with 5 warm-started Adam epochs. Variants of
the exact recipe (issue 8, item 4): soft votes (per-concept L1), bounds + erase, bounds + a
ground-truth mix in the target (label weight 0.3). After every step: the class's val and
held-out test AP, and val agreement with the teacher.

Epoch noise: val mAP of the paper's recipe after 10/13/16/20 epochs against the exact fit at the
same lam (1e-4), and the scenario classes' val AP at each, to set the per-step gains beside them.

Zero-weight votes: every scenario vote whose concept has influence 0 in the exact student,
applied alone, as a bound (the default: the weight must reach ``factor * ref``) and as a soft
vote (only its L1 penalty lifted): val/test AP change and the weight it gets.

Writes benchmarks/results/paper_votes.md and .json. ``--workspace`` as the other benchmarks.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_shortcut import private_copy  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
PAPER_LAM = 1e-4

U, D = "up", "down"
SCENARIOS = {
    "tvmonitor": [
        [("tv monitor", U), ("television", U), ("crt screen", U)],
        [(w, D) for w in ("bookcase", "mezzanine", "blinds", "niche", "sofa", "decoration")],
        [("bookcase", D)],
    ],
    "bicycle": [
        [("bicycle", U)],
        [("wheel", U), ("bicycle", U), ("shop", D)],
        [("bicycle", U), ("wheel", U), ("shop", D), ("steering wheel", D), ("inflatable bounce game", D)],
        [("bicycle", U), ("wheel", U)] + [(w, D) for w in ("machinery", "shops", "runway", "trailer", "meat")],
    ],
    "sofa": [
        [("sofa", U), ("armchair", U)],
        [("sofa", U), ("armchair", U)] + [(w, D) for w in ("trouser", "notebook", "steering wheel", "dog", "pillow")],
    ] + [[("sofa", U), ("armchair", U)] + [(w, D) for w in ("trouser", "notebook", "steering wheel", "dog", "pillow")]] * 2,
    "dog": [
        [("dog", U)],
        [("dog", U), ("fur", U), ("grass", D), ("terraces", D), ("apron", D)],
    ] + [[("dog", U), ("grass", D), ("cushion", D)]] * 6,
}
VARIANTS = {
    "exact, bounds (default)": ("exact", {}),
    "exact, soft votes": ("exact", {"mode": "soft"}),
    "exact, bounds + erase": ("exact", {"erase": True}),
    "exact, bounds + labels 0.3": ("exact", {"label_weight": 0.3}),
    "paper recipe (Adam)": ("paper", {}),
}
EPOCHS = (10, 13, 16, 20)


def replay(sess, cls: str, steps, opts) -> list[dict]:
    from inficond.exceptions import TuningError

    k = sess.class_idx(cls)
    words = set(sess.ws.concept_words)

    def row(i, votes, fid=None):
        return {"step": i, "votes": votes,
                "val": sess._class_metrics(k, "val")["ap"], "test": sess._class_metrics(k, "test")["ap"],
                "agreement_val": fid}

    rows = [row(0, "")]
    for i, step in enumerate(steps, 1):
        votes = [(w, d) for w, d in step if w in words]
        if not votes:
            continue
        try:
            res = sess.tune([{"class": cls, "concept": w, "direction": d} for w, d in votes],
                            on_conflict="replace", **opts)
        except TuningError as e:  # reported, not hidden
            rows.append({"step": i, "votes": "error: " + str(e)[:80], "val": None, "test": None, "agreement_val": None})
            break
        rows.append(row(i, " ".join(("▲" if d == U else "▼") + w for w, d in votes),
                        res.get("fidelity", {}).get("after", {}).get("agreement")))
    return rows


def epoch_noise(sess, classes) -> dict:
    from inficond.analysis import all_class_metrics
    from inficond.students import ConceptStudent

    tr, va = sess.rows("train"), sess.rows("val")
    X, T, Y = sess.X[tr].astype(float), sess.T[tr].astype(float), sess.Y[va]
    ks = [sess.class_idx(c) for c in classes]
    out = {}
    fits = {f"adam {e} epochs": ConceptStudent(lam=PAPER_LAM, solver="adam-paper", max_iter=e) for e in EPOCHS}
    fits["exact (same lam)"] = ConceptStudent(lam=PAPER_LAM, solver="lbfgsb")
    for name, st in fits.items():
        t0 = time.perf_counter()
        st.fit(X, T)
        m = all_class_metrics(Y, st.decision_function(sess.X[va]), excluded=sess.excluded)
        out[name] = {"val_map": m["mean"]["ap"], "seconds": time.perf_counter() - t0,
                     **{c: m["per_class"][k]["ap"] for c, k in zip(classes, ks)}}
    return out


def _diff(a, b):
    return None if a is None or b is None else a - b


def zero_weight_votes(sess, root) -> list[dict]:
    out = []
    words = sess.ws.concept_words
    for cls, steps in SCENARIOS.items():
        k = sess.class_idx(cls)
        seen = set()
        for step in steps:
            for w, d in step:
                if w not in words or (w, d) in seen:
                    continue
                seen.add((w, d))
                sess.revert(root)
                c = sess.concept_idx(w)
                if sess.student.coef_[k, c] != 0:
                    continue
                row = {"class": cls, "word": w, "direction": d}
                for mode in ("bound", "soft"):
                    sess.revert(root)
                    r = sess.tune([{"class": cls, "concept": w, "direction": d}], mode=mode)
                    row[mode] = {sp: _diff(r[sp]["after"]["ap"], r[sp]["before"]["ap"]) for sp in ("val", "test")}
                    row[mode]["weight"] = float(sess.student.coef_[k, c])
                out.append(row)
    sess.revert(root)
    return out


def run(ws_src: Path, tmp: Path, progress=print) -> dict:
    from inficond.session import Session

    t_all = time.perf_counter()
    words = Session(ws_src).ws.concept_words
    missing = sorted({w for steps in SCENARIOS.values() for s in steps for w, _ in s if w not in words})
    out = {"missing_words": missing, "scenarios": {}, "epoch_noise": None, "zero_weight": None}
    sessions = {}
    for recipe in ("exact", "paper"):
        sess = Session(private_copy(ws_src, tmp / recipe))
        t0 = time.perf_counter()
        sess.distill() if recipe == "exact" else sess.distill(lam=PAPER_LAM, solver="adam-paper")
        sessions[recipe] = (sess, sess.log.head())
        progress(f"{recipe} student distilled in {time.perf_counter() - t0:.0f} s")
    for cls, steps in SCENARIOS.items():
        out["scenarios"][cls] = {}
        for name, (recipe, opts) in VARIANTS.items():
            sess, root = sessions[recipe]
            sess.revert(root)
            out["scenarios"][cls][name] = rows = replay(sess, cls, steps, opts)
            progress(f"{cls} / {name}: " + ", ".join(
                f"{r['val']:.3f}/{r['test']:.3f}" if r["val"] is not None else r["votes"] for r in rows))
    sess, root = sessions["exact"]
    out["zero_weight"] = zero_weight_votes(sess, root)
    progress(f"zero-weight votes: {len(out['zero_weight'])}")
    out["epoch_noise"] = epoch_noise(sess, list(SCENARIOS))
    progress(f"epoch noise: {out['epoch_noise']}")
    out["seconds"] = time.perf_counter() - t_all
    return out


def _f(v, signed=False):
    return "n/a" if v is None else (f"{v:+.3f}" if signed else f"{v:.3f}")


def report(out: dict, ws: str) -> str:
    from machine import machine_line

    lines = [
        "## The paper's votes replayed (tv monitor, bicycle, sofa, dog): exact vs the paper's recipe",
        "",
        f"Machine: {machine_line()}",
        "",
        f"Workspace `{ws}`. Words missing from its corpus (skipped): {', '.join(out['missing_words']) or 'none'}. "
        f"Run time {out['seconds']:.0f} s. Class AP on val and on the held-out test split after each step; "
        "*agree* = share of val images where the student's prediction for the class equals the teacher's.",
        "",
        "| class | variant | val AP by step | test AP by step | val: last − first | test: last − first | agree (last) |",
        "|---|---|---|---|---|---|---|",
    ]
    for cls, variants in out["scenarios"].items():
        for name, rows in variants.items():
            ok = [r for r in rows if r["val"] is not None and r["test"] is not None]
            if not ok:
                lines.append(f"| {cls} | {name} | no AP (no positives) | | | | |")
                continue
            v = " → ".join(f"{r['val']:.3f}" for r in ok)
            t = " → ".join(f"{r['test']:.3f}" for r in ok)
            ag = ok[-1]["agreement_val"]
            lines.append(f"| {cls} | {name} | {v} | {t} | {_f(ok[-1]['val'] - ok[0]['val'], True)} | "
                         f"{_f(ok[-1]['test'] - ok[0]['test'], True)} | {_f(ag)} |")
    # the noise of the paper's recipe, from the figures above
    adam = [r for rows in out["scenarios"].values() for r in [rows.get("paper recipe (Adam)", [])]]
    jumps = [abs(b["val"] - a["val"]) for rows in adam for a, b in zip(rows, rows[1:])
             if a["val"] is not None and b["val"] is not None]
    en = out["epoch_noise"]
    e10, e13 = en.get("adam 10 epochs", {}).get("val_map"), en.get("adam 13 epochs", {}).get("val_map")
    ex = en.get("exact (same lam)", {}).get("val_map")
    if jumps and None not in (e10, e13, ex):
        lines += ["", f"Noise of the paper's recipe: one 5-epoch Adam refit moved a class's val AP by up to "
                  f"{max(jumps):.3f} (median {np.median(jumps):.3f}) whatever the votes; 3 more training epochs "
                  f"without any vote moved val mAP {e10:.3f} → {e13:.3f}; the exact fit at the same L1 has {ex:.3f}. "
                  "Per-step gains of a few points are inside that noise; the exact student has no such slack, so a "
                  "vote there can only trade fidelity to the teacher for something the user knows."]
    lines += ["", "Steps as replayed (exact recipe):", ""]
    for cls, variants in out["scenarios"].items():
        rows = variants["exact, bounds (default)"]
        lines.append(f"- {cls}: " + " | ".join(r["votes"] for r in rows[1:]))
    en = out["epoch_noise"]
    cls_names = [c for c in out["scenarios"]]
    lines += ["", f"Epoch noise of the paper's recipe (lam {PAPER_LAM:g}): val mAP and the scenario classes' val AP",
              "", "| fit | val mAP | " + " | ".join(cls_names) + " | seconds |",
              "|---|---|" + "---|" * len(cls_names) + "---|"]
    for name, r in en.items():
        lines.append(f"| {name} | {_f(r['val_map'])} | " + " | ".join(_f(r[c]) for c in cls_names) + f" | {r['seconds']:.1f} |")
    lines += ["", "Votes on zero-weight concepts, alone, from the exact student: AP change and the weight reached",
              "", "| class | vote | bound: val | test | weight | soft: val | test | weight |", "|---|---|---|---|---|---|---|---|"]
    for r in out["zero_weight"]:
        b, s = r["bound"], r["soft"]
        lines.append(f"| {r['class']} | {'▲' if r['direction'] == 'up' else '▼'}{r['word']} | {_f(b['val'], True)} | "
                     f"{_f(b['test'], True)} | {b['weight']:+.3f} | {_f(s['val'], True)} | {_f(s['test'], True)} | {s['weight']:+.3f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workspace", default="workspaces/dev")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-paper-votes-") as tmp:
        out = run(Path(a.workspace), Path(tmp))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "paper_votes.json").write_text(json.dumps(out, indent=1, default=float))
    text = report(out, a.workspace)
    (RESULTS / "paper_votes.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
