"""Shortcut benchmark: a teacher that learned a context shortcut, and the votes that remove it.

Setup (chosen before any result was seen)
-----------------------------------------
- Class **dog**, context **grass**. Dog is the best-populated animal class of the development
  data and is photographed both indoors (sofas, people) and outdoors (lawns), so both halves of
  a shortcut-free split have images; cows, sheep and horses are nearly always on grass, which
  would leave "class without context" almost empty. The paper's own dog scenario downtunes
  grass, and the issue's synthetic shortcut uses dog + grass, so the figures are comparable.
- **Context judged without labels**: the workspace's concept presence of the word "grass"
  (the encoder's concept vector column). Present: presence at or above the 70th percentile over
  all usable images; absent: at or below the 50th percentile; images in between are ambiguous
  and used neither for the shortcut teacher's training nor in the shortcut-free splits.
  The label check printed with the results (share of cow/sheep/horse images per group) shows
  whether the judgement tracks real grass.
- **Shortcut teacher**: a real image model, the default teacher's recipe (a logistic head,
  ``EffNetTeacher.fit`` with the workspace teacher's C, on the EfficientNet-Lite2 pooled features the workspace
  stored in ``teacher_features``), for the dog column only, fitted on the *train* split with
  positives = dogs with context present only, negatives = every non-dog image with the context
  absent plus a random 10% (seed 0) of non-dog images with the context present. Dogs without
  context are left out. The other 19 classes keep the workspace teacher's logits.
  **Clean teacher**: the same head on every train image (so the comparison is one model family).
- **Students**: ``Session.distill`` (default: at most 100 concepts per class) on the train split,
  from the shortcut teacher's logits; the clean student is distilled the same way from the clean
  teacher's logits (dog's lam chosen by the same sparsity rule).
- **Shortcut-free splits**: within val (for choosing options) and within test (reported only):
  dogs with the context absent (positives) and non-dogs with the context present (negatives).
  AP of the dog logit on these images. A shortcut pushes the negatives up and the positives down.
- **Scripted user, votes fixed before the results**: step 1 downtunes the context words
  grass, lawn, field, meadow, pasture; step 2 uptunes dog, puppy; step 3 repeats both (the paper's
  users repeat votes that worked). Words missing from the corpus are reported and skipped.
- **Variants** (design choices of issue 8, chosen on the val shortcut-free split): hard bounds
  (default), bounds + erase (marginal / partial), soft votes (per-concept L1).
- **Suggestions**: ``Session.suggest(dog, k=5)`` on the shortcut student: does a context word
  appear among the top 3, as the vote or among the words of the context it stands for? The
  suggestions include suspected shortcuts (partial correlation of a
  concept's presence with the teacher's logit given the train label, each scored by applying its
  erase-downvote); the top suggestion is also applied alone. The same suggestions on the
  workspace's own teacher show whether they flood ordinary classes.

Targets: the votes recover at least half of the AP the shortcut cost on the shortcut-free test
split (cost = clean student AP - shortcut student AP), and a context word is in the top-3
suggestions.

Runs on a private copy of the workspace (arrays linked read-only, ``teacher_logits`` rewritten);
``--workspace`` lets the lead re-run it after the encoder/corpus change. Writes
benchmarks/results/shortcut.md and .json.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

RESULTS = Path(__file__).resolve().parent / "results"
CLASS = "dog"
CONTEXT = "grass"
DOWN_WORDS = ["grass", "lawn", "field", "meadow", "pasture"]
UP_WORDS = ["dog", "puppy"]
PRESENT_Q, ABSENT_Q = 0.70, 0.50
KEEP_CONTEXT_NEGATIVES = 0.10
VARIANTS = {
    "bounds (default)": {},
    "bounds + erase (marginal)": {"erase": True, "erase_how": "marginal"},
    "bounds + erase (partial)": {"erase": True, "erase_how": "partial"},
    "soft votes (L1)": {"mode": "soft"},
}


def private_copy(src: Path, dst: Path, skip=()) -> Path:
    """A workspace at ``dst`` sharing ``src``'s arrays by symlink (never written: the Workspace
    writes arrays by atomic rename, which replaces a link, not its target) and a copy of its DB;
    arrays named in ``skip`` are left out (the caller writes its own)."""
    (dst / "arrays").mkdir(parents=True)
    for f in (src / "arrays").iterdir():
        if f.suffix == ".npy" and f.stem not in skip:
            os.symlink(f.resolve(), dst / "arrays" / f.name)
    with sqlite3.connect(src / "workspace.sqlite") as a, sqlite3.connect(dst / "workspace.sqlite") as b:
        a.backup(b)
    return dst


def context_groups(X: np.ndarray, col: int, usable: np.ndarray):
    """Boolean (present, absent) per image from the concept presence of column ``col``."""
    v = X[:, col].astype(float)
    hi, lo = np.quantile(v[usable], PRESENT_Q), np.quantile(v[usable], ABSENT_Q)
    return (v >= hi) & usable, (v <= lo) & usable


def fit_head(features, y, C):
    from inficond.teachers.effnet import EffNetTeacher

    t = EffNetTeacher(["target"], C=C).fit(features, y[:, None].astype(np.uint8))
    return lambda F: t.logits_from_features(F)[:, 0].astype(np.float64)


def ap(y, s) -> float:
    from inficond.analysis import class_metrics

    return float(class_metrics(np.asarray(y), np.asarray(s))["ap"])


def build(ws_path: Path, cls: str = CLASS, context: str = CONTEXT, seed: int = 0) -> dict:
    """The shortcut and clean teachers' dog logits and the split masks, from a workspace."""
    from inficond.store.workspace import Workspace

    ws = Workspace(ws_path)
    k = ws.class_index(cls)
    col = ws.concept_index(context)
    X = np.asarray(ws.array("concept_vectors"), dtype=np.float32)
    F = np.asarray(ws.array("teacher_features"), dtype=np.float32)
    Y = ws.labels
    usable = ws.status == "done"
    split = ws.splits
    present, absent = context_groups(X, col, usable)
    y = Y[:, k] > 0
    train = (split == "train") & usable
    rng = np.random.default_rng(seed)
    neg_ctx = np.flatnonzero(train & ~y & present)
    keep = rng.choice(neg_ctx, size=int(round(KEEP_CONTEXT_NEGATIVES * neg_ctx.size)), replace=False)
    sc_rows = np.sort(np.concatenate([np.flatnonzero(train & y & present), np.flatnonzero(train & ~y & absent), keep]))
    C = float((ws.get_meta("teacher") or {}).get("C") or 0.001)  # the workspace teacher's own setting
    shortcut = fit_head(F[sc_rows], y[sc_rows], C)(F)
    clean = fit_head(F[train], y[train], C)(F)
    free = {s: np.flatnonzero((split == s) & usable & ((y & absent) | (~y & present))) for s in ("val", "test")}
    grazers = [ws.class_index(c) for c in ("cow", "sheep", "horse") if c in ws.class_names]
    check = {name: float(Y[m][:, grazers].any(1).mean()) for name, m in (("present", present), ("absent", absent))}
    return {
        "k": k, "X": X, "Y": Y, "y": y, "T": np.asarray(ws.array("teacher_logits"), dtype=np.float32),
        "shortcut": shortcut, "clean": clean, "free": free, "teacher_rows": int(sc_rows.size),
        "counts": {
            "teacher_train_pos": int((train & y & present).sum()), "teacher_train_neg_absent": int((train & ~y & absent).sum()),
            "teacher_train_neg_present_kept": int(keep.size),
            **{f"{s}_free_pos": int(y[free[s]].sum()) for s in free}, **{f"{s}_free_neg": int((~y[free[s]]).sum()) for s in free},
        },
        "grazers_share": check, "C": C,
    }


def resolve(words, vocab) -> tuple[list[str], list[str]]:
    have = [w for w in words if w in vocab]
    return have, [w for w in words if w not in vocab]


def synthetic_shortcut(ws_src: Path, tmp: Path, b: dict, downs, lam_kw, progress=print, n_steps: int = 4) -> dict:
    """The issue's synthetic case: dog's teacher logit + 2 std of the standardised "grass" presence.

    Four downvote steps on the context words, for each variant; AP on the shortcut-free splits.
    """
    from inficond.session import Session
    from inficond.store.workspace import Workspace

    k, y, free = b["k"], b["y"], b["free"]
    T = b["T"].astype(np.float64)
    ws = Workspace(ws_src)
    train = ws.split_indices("train")
    g = b["X"][:, ws.concept_index(CONTEXT)].astype(np.float64)
    zg = (g - g[train].mean()) / g[train].std()
    Ts = T.copy()
    Ts[:, k] += 2 * T[train, k].std() * zg
    res = {"clean_teacher": {}, "shortcut_teacher": {}, "variants": {}}
    for sp in ("val", "test"):
        r = free[sp]
        res["clean_teacher"][sp], res["shortcut_teacher"][sp] = ap(y[r], T[r, k]), ap(y[r], Ts[r, k])
    sessions = {}
    for name, TT in (("clean", T), ("shortcut", Ts)):
        path = private_copy(ws_src, tmp / f"synthetic-{name}", skip=("teacher_logits",))
        Workspace(path).save_array("teacher_logits", TT.astype(np.float32))
        sess = Session(path)
        sess.distill(**lam_kw)
        sessions[name] = sess

    def free_ap(sess, sp):
        r, st = free[sp], sess.student
        return ap(y[r], ((b["X"][r] - st.mean_) / st.scale_) @ st.coef_[k] + st.intercept_[k])

    res["clean_student"] = {sp: free_ap(sessions["clean"], sp) for sp in ("val", "test")}
    sess = sessions["shortcut"]
    root = sess.log.head()
    for name, opts in (("bounds (default)", {}), ("bounds + erase (marginal)", {"erase": True}),
                       ("bounds + erase (partial)", {"erase": True, "erase_how": "partial"})):
        sess.revert(root)
        rows = [{sp: free_ap(sess, sp) for sp in ("val", "test")}]
        for _ in range(n_steps):
            sess.tune([{"class": CLASS, "concept": w, "direction": "down"} for w in downs], **opts)
            rows.append({sp: free_ap(sess, sp) for sp in ("val", "test")})
        res["variants"][name] = rows
        progress(f"synthetic {name}: " + ", ".join(f"{r['val']:.3f}/{r['test']:.3f}" for r in rows))
    return res


def normal_teacher_suggestions(ws_src: Path, tmp: Path, lam_kw, progress=print) -> list[dict]:
    """On the workspace's own teacher (no planted shortcut): each class's top-3 suggestions, and the
    val/test AP after applying each shortcut suggestion among them alone (val would be the
    split to choose on; test is only reported)."""
    from inficond.session import Session

    sess = Session(private_copy(ws_src, tmp / "normal-ws"))
    sess.distill(**lam_kw)
    root = sess.log.head()
    rows = []
    for cls in sess.ws.class_names:
        every = sess.suggest(cls, k=10, shortcuts=5)  # what "Find shortcuts" asks for
        top = every[:3]
        found = [m for m in every if m.get("kind") == "shortcut"]
        applied = []
        for m in found[:1]:  # the first card the page shows
            res = sess.tune([{"class": cls, "concept": m["word"], "direction": "down"}], erase=True)
            applied.append({"word": m["word"], "gain_train": m["gain"],
                            **{f"{sp}_before": res[sp]["before"]["ap"] for sp in ("val", "test")},
                            **{f"{sp}_after": res[sp]["after"]["ap"] for sp in ("val", "test")}})
            sess.revert(root)
        rows.append({"class": cls, "top3": [{"word": m["word"], "direction": m["direction"], "kind": m.get("kind"),
                                             "gain": m["gain"]} for m in top], "shortcuts_applied": applied,
                     "shortcuts_found": [{"word": m["word"], "gain": m["gain"], "n_related": len(m.get("related", []))}
                                         for m in found]})
    progress(f"normal teacher: {sum(len(r['shortcuts_applied']) for r in rows)} shortcut suggestions in 20 top-3s")
    return rows


def run(ws_src: Path, tmp: Path, variants=VARIANTS, max_concepts: int | None = None, progress=print,
        synthetic: bool = True) -> dict:
    from inficond.session import Session
    from inficond.students import ConceptStudent, lambda_for_sparsity

    t_start = time.perf_counter()
    b = build(ws_src)
    k, y, free = b["k"], b["y"], b["free"]
    words = Session(ws_src).ws.concept_words
    downs, missing_down = resolve(DOWN_WORDS, words)
    ups, missing_up = resolve(UP_WORDS, words)

    # clean student (dog only; per-class lam is independent of the other classes)
    s0 = Session(ws_src)
    train = s0.rows("train")
    lam_kw = {"max_concepts": max_concepts} if max_concepts else {}
    from inficond.session import DEFAULT_MAX_CONCEPTS

    mc = max_concepts or DEFAULT_MAX_CONCEPTS
    Xtr, t_clean = b["X"][train], b["clean"][train, None]
    lam = lambda_for_sparsity(Xtr, t_clean, max_concepts=mc)
    clean_student = ConceptStudent(lam=lam).fit(Xtr, t_clean)

    def scores(student_logits_fn, rows):
        return student_logits_fn(rows)

    out = {"class": CLASS, "context": CONTEXT, "votes": {"down": downs, "up": ups},
           "missing_words": missing_down + missing_up, "counts": b["counts"], "grazers_share": b["grazers_share"], "C": b["C"],
           "ap": {}, "variants": {}}
    for s in ("val", "test"):
        r = free[s]
        out["ap"][s] = {
            "clean_teacher": ap(y[r], b["clean"][r]),
            "shortcut_teacher": ap(y[r], b["shortcut"][r]),
            "clean_student": ap(y[r], clean_student.decision_function(b["X"][r])[:, 0]),
        }
    progress(f"teachers and clean student ready ({time.perf_counter() - t_start:.0f} s): {out['ap']}")

    # the shortcut student, through the product path (Session on a private copy)
    base = private_copy(ws_src, tmp / "shortcut-ws", skip=("teacher_logits",))
    T = b["T"].copy()
    T[:, k] = b["shortcut"]
    from inficond.store.workspace import Workspace

    Workspace(base).save_array("teacher_logits", T.astype(np.float32))
    sess = Session(base)
    sess.distill(**lam_kw)
    root = sess.log.head()

    def free_ap(s: Session, split: str) -> float:
        r = free[split]
        st = s.student
        return ap(y[r], ((b["X"][r] - st.mean_) / st.scale_) @ st.coef_[k] + st.intercept_[k])

    def full_ap(s: Session, split: str) -> float:
        return s._class_metrics(k, split)["ap"]

    for split in ("val", "test"):
        out["ap"][split]["shortcut_student"] = free_ap(sess, split)
    sugg = sess.suggest(CLASS, k=5)
    # how much each suggested concept's presence goes with the context's (no labels involved)
    g = b["X"][:, sess.concept_idx(CONTEXT)].astype(float)
    out["suggestions"] = [{"word": m["word"], "direction": m["direction"], "gain": m["gain"],
                           "kind": m.get("kind", "move"), "erase": bool(m.get("erase")),
                           "weight": float(sess.student.coef_[k, m["concept_idx"]]),
                           "corr_with_context": float(np.corrcoef(b["X"][:, m["concept_idx"]].astype(float), g)[0, 1]),
                           "related": list(m.get("related", []))}
                          for m in sugg]
    out["context_word_weights"] = {w: float(sess.student.coef_[k, sess.concept_idx(w)]) for w in downs}
    out["suggest_top3_has_context"] = any(m["word"] in DOWN_WORDS and m["direction"] == "down" for m in sugg[:3])
    # a shortcut suggestion stands for a context (its related words, shown with it in the page)
    out["suggest_top3_names_context"] = {
        w: next((f"{m['word']}: " + ("the vote" if m["word"] == w else f"related word {m['related'].index(w) + 1} of {len(m['related'])}")
                 for m in sugg[:3] if m["direction"] == "down" and (m["word"] == w or w in m.get("related", []))), None)
        for w in downs}
    # where the context words rank among the shortcut suspects (partial correlation given the label)
    from inficond.analysis.suggest import shortcut_suspects

    tr = sess.rows("train")
    order = [d["concept_idx"] for d in shortcut_suspects(sess._Z("train"), sess.T[tr, k], sess.Y[tr, k], k=len(words), min_corr=-2)]
    out["suspect_rank"] = {w: order.index(sess.concept_idx(w)) + 1 for w in downs}
    out["suspect_top"] = [words[c] for c in order[:10]]
    out["n_concepts"] = len(order)
    # the top suggestion applied alone, as the UI would (its erase option included): shortcut-free AP
    top = sugg[0] if sugg else None
    if top:
        sess.tune([{"class": CLASS, "concept": top["word"], "direction": top["direction"]}], erase=bool(top.get("erase")))
        out["top_suggestion_applied"] = {"vote": top["word"], **{f"free_{sp}": free_ap(sess, sp) for sp in ("val", "test")}}
        sess.revert(root)
    progress(f"shortcut student ready: {out['ap']}; suggestions {out['suggestions']}")

    steps = [[(w, "down") for w in downs], [(w, "up") for w in ups], [(w, "down") for w in downs] + [(w, "up") for w in ups]]
    for name, opts in variants.items():
        sess.revert(root)
        rows = [{"step": 0, "votes": "", **{f"free_{sp}": free_ap(sess, sp) for sp in ("val", "test")},
                 **{f"all_{sp}": full_ap(sess, sp) for sp in ("val", "test")}, "agreement_val": None}]
        for i, votes in enumerate(steps, 1):
            res = sess.tune([{"class": CLASS, "concept": w, "direction": d} for w, d in votes], **opts)
            fid = res.get("fidelity", {})
            rows.append({"step": i, "votes": " ".join(("▼" if d == "down" else "▲") + w for w, d in votes),
                         **{f"free_{sp}": free_ap(sess, sp) for sp in ("val", "test")},
                         **{f"all_{sp}": full_ap(sess, sp) for sp in ("val", "test")},
                         "agreement_val": (fid.get("after") or {}).get("agreement")})
        out["variants"][name] = rows
        progress(f"{name}: " + ", ".join(f"{r['free_val']:.3f}/{r['free_test']:.3f}" for r in rows))
    if synthetic:
        out["synthetic"] = synthetic_shortcut(ws_src, tmp, b, downs, lam_kw, progress)
    out["normal_teacher"] = normal_teacher_suggestions(ws_src, tmp, lam_kw, progress)
    for s in ("val", "test"):
        a = out["ap"][s]
        cost = a["clean_student"] - a["shortcut_student"]
        a["cost"] = cost
        a["recovered"] = {n: (rows[-1][f"free_{s}"] - a["shortcut_student"]) / cost if cost > 0 else None
                          for n, rows in out["variants"].items()}
    out["seconds"] = time.perf_counter() - t_start
    return out


def context_words(related: list[str], shown: int = 8) -> str:
    """The related words of a shortcut suggestion, as the page shows them."""
    if not related:
        return ""
    more = f", +{len(related) - shown} more" if len(related) > shown else ""
    return f"; same context: {', '.join(related[:shown])}{more}"


def report(out: dict, ws: str) -> str:
    from machine import machine_line

    a = out["ap"]
    c = out["counts"]
    lines = [
        "## Shortcut benchmark: a teacher that learned 'grass means dog', and the votes that remove it",
        "",
        f"Machine: {machine_line()}",
        "",
        f"Workspace `{ws}`. Class **{out['class']}**, context **{out['context']}** judged from the concept presence "
        f"of \"{out['context']}\" (present ≥ {PRESENT_Q:.0%} quantile, absent ≤ {ABSENT_Q:.0%}). Shortcut teacher: "
        f"logistic head (C {out['C']:g}, the workspace teacher's) on EfficientNet-Lite2 features, trained on {c['teacher_train_pos']} dogs with "
        f"context, {c['teacher_train_neg_absent']} non-dogs without it and {c['teacher_train_neg_present_kept']} "
        f"non-dogs with it (10%). Shortcut-free splits: val {c['val_free_pos']} dogs without context + "
        f"{c['val_free_neg']} non-dogs with it; test {c['test_free_pos']} + {c['test_free_neg']}. "
        f"Label check of the context judgement: cow/sheep/horse images are {out['grazers_share']['present']:.0%} of "
        f"'present' and {out['grazers_share']['absent']:.0%} of 'absent'. Missing words: "
        f"{', '.join(out['missing_words']) or 'none'}. Run time {out['seconds']:.0f} s. The full recipe (split, "
        "teacher, votes, targets) is the docstring of `benchmarks/bench_shortcut.py`.",
        "",
        "| AP on the shortcut-free split | val | test |",
        "|---|---|---|",
    ]
    for key, label in (("clean_teacher", "clean teacher"), ("shortcut_teacher", "shortcut teacher"),
                       ("clean_student", "clean student"), ("shortcut_student", "shortcut student (before votes)"),
                       ("cost", "cost of the shortcut (clean − shortcut student)")):
        lines.append(f"| {label} | {a['val'][key]:.3f} | {a['test'][key]:.3f} |")
    lines += ["", "Votes (fixed before any result): step 1 ▼ " + ", ".join(out["votes"]["down"]) + "; step 2 ▲ "
              + ", ".join(out["votes"]["up"]) + "; step 3 both again.", "",
              "| variant | step | shortcut-free val AP | shortcut-free test AP | all-images val AP | all-images test AP | val agreement with teacher |",
              "|---|---|---|---|---|---|---|"]
    for name, rows in out["variants"].items():
        for r in rows:
            ag = "" if r["agreement_val"] is None else f"{r['agreement_val']:.3f}"
            lines.append(f"| {name} | {r['step']} | {r['free_val']:.3f} | {r['free_test']:.3f} | {r['all_val']:.3f} | "
                         f"{r['all_test']:.3f} | {ag} |")
    lines += ["", "| variant | share of the cost recovered, val | test | target ≥ 0.5 (test) |", "|---|---|---|---|"]
    for name in out["variants"]:
        rv, rt = a["val"]["recovered"][name], a["test"]["recovered"][name]
        fmt = lambda v: "n/a" if v is None else f"{v:.2f}"  # noqa: E731
        lines.append(f"| {name} | {fmt(rv)} | {fmt(rt)} | {'met' if rt is not None and rt >= 0.5 else 'not met'} |")
    if out.get("synthetic"):
        sy = out["synthetic"]
        lines += ["", "### Synthetic shortcut (the issue's case): dog's teacher logit + 2 std of \"grass\"", "",
                  "Same shortcut-free splits; four steps, each downtuning " + ", ".join(out["votes"]["down"]) + ".", "",
                  "| AP on the shortcut-free split | val | test |", "|---|---|---|"]
        for key in ("clean_teacher", "shortcut_teacher", "clean_student"):
            lines.append(f"| {key.replace('_', ' ')} | {sy[key]['val']:.3f} | {sy[key]['test']:.3f} |")
        lines += ["", "| variant | val AP by step | test AP by step |", "|---|---|---|"]
        for name, rows in sy["variants"].items():
            lines.append(f"| {name} | " + " → ".join(f"{r['val']:.3f}" for r in rows) + " | "
                         + " → ".join(f"{r['test']:.3f}" for r in rows) + " |")
    sug = ", ".join(f"{'possible shortcut: ' if m.get('kind') == 'shortcut' else ''}{'▲' if m['direction'] == 'up' else '▼'}"
                    f"{m['word']}{' (erase)' if m.get('erase') else ''} (+{m['gain']:.3f}, weight {m['weight']:+.3f}, "
                    f"presence corr. with {out['context']} {m['corr_with_context']:+.2f}"
                    + context_words(m.get("related", [])) + ")" for m in out["suggestions"])
    named = out.get("suggest_top3_names_context", {})
    named_s = "; ".join(f"{w}: {v or 'no'}" for w, v in named.items())
    cw = ", ".join(f"{w} {v:+.3f}" for w, v in out.get("context_word_weights", {}).items())
    rk = ", ".join(f"{w} #{r}" for w, r in out.get("suspect_rank", {}).items())
    lines += ["", f"Suggestions for dog on the shortcut student (train split, AP gain of the vote alone; weight moves by exact "
              f"what-if, suspected shortcuts by applying ▼ with erase and refitting): {sug}. "
              f"One of the voted context words among the top 3 as the vote itself: **{'yes' if out['suggest_top3_has_context'] else 'no'}**; "
              f"named in a top-3 suggestion (the vote or a word of the context it stands for): "
              f"**{'yes' if any(named.values()) else 'no'}** ({named_s}). "
              f"The shortcut student's weights on the voted context words: {cw}.", "",
              f"Suspected shortcuts are the concepts with the highest partial correlation between their presence and the "
              f"teacher's logit given the train label; here the top 10 are {', '.join(out.get('suspect_top', []))}; "
              f"the voted context words rank {rk} of {out['n_concepts']} concepts."]
    if out.get("top_suggestion_applied"):
        t = out["top_suggestion_applied"]
        lines += [f"Applying the top suggestion alone (▼{t['vote']}, erase): shortcut-free AP val {a['val']['shortcut_student']:.3f} → "
                  f"{t['free_val']:.3f} ({(t['free_val'] - a['val']['shortcut_student']) / a['val']['cost']:.0%} of the cost "
                  f"recovered), test {a['test']['shortcut_student']:.3f} → {t['free_test']:.3f} "
                  f"({(t['free_test'] - a['test']['shortcut_student']) / a['test']['cost']:.0%})."]
    if out.get("normal_teacher"):
        nt = out["normal_teacher"]
        n_sc = sum(m["kind"] == "shortcut" for r in nt for m in r["top3"])
        n_found = sum(bool(r.get("shortcuts_found")) for r in nt)
        lines += ["", f"On the workspace's own teacher (no planted shortcut), each class's top-3 suggestions: {n_sc} suspected "
                  f"shortcut(s) among the {len(nt)} classes' top 3. \"Find shortcuts\" (the page's on-request search) shows at "
                  f"least one card for {n_found} of {len(nt)} classes; its first card is applied alone (▼ with erase) from the "
                  "distilled student, AP before → after:", "",
                  "| class | top-3 suggestions | \"Find shortcuts\" cards (train gain, related words) | first card applied: val AP | test AP |",
                  "|---|---|---|---|---|"]
        for r in nt:
            t3 = ", ".join(f"{'▲' if m['direction'] == 'up' else '▼'}{m['word']}{' (erase)' if m['kind'] == 'shortcut' else ''} "
                           f"+{m['gain']:.3f}" for m in r["top3"]) or "none"
            va = "; ".join(f"{x['word']} {x['val_before']:.3f} → {x['val_after']:.3f}" for x in r["shortcuts_applied"]) or ""
            te = "; ".join(f"{x['word']} {x['test_before']:.3f} → {x['test_after']:.3f}" for x in r["shortcuts_applied"]) or ""
            fs = ", ".join(f"▼{x['word']} +{x['gain']:.3f} ({x['n_related']})" for x in r.get("shortcuts_found", [])) or "none"
            lines.append(f"| {r['class']} | {t3} | {fs} | {va} | {te} |")
    lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap_ = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap_.add_argument("--workspace", default="workspaces/dev")
    ap_.add_argument("--max-concepts", type=int, default=None)
    a = ap_.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-shortcut-") as tmp:
        out = run(Path(a.workspace), Path(tmp), max_concepts=a.max_concepts)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "shortcut.json").write_text(json.dumps(out, indent=1, default=float))
    text = report(out, a.workspace)
    (RESULTS / "shortcut.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
