"""Scripted concept-tuning scenarios on the development workspace, val AND held-out test AP.

Two users are simulated on the weakest classes (largest teacher−student val AP gap):
- "semantic": each round uptunes the 3 concepts whose words are closest in the text space to the
  class name (the obviously relevant ones) and downtunes the 3 most influential concepts whose
  words are far from it (co-occurring but irrelevant), like the paper's usage scenarios.
- "suggestions (train)": each round applies the engine's top-3 suggestions, picked by exact
  what-if AP on the train split (the default);
- "suggestions (val)": the same picked on val, which shows how much of a val-driven gain
  survives on the test split nobody looked at.

Runs on a private copy of the workspace. Writes benchmarks/results/tuning_scenario.md.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_line  # noqa: E402

from inficond.exceptions import TuningError  # noqa: E402
from inficond.session import Session  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def class_text(s: Session, name: str) -> np.ndarray:
    text = np.asarray(s.ws.array("concept_text"), dtype=np.float64)
    words = s.ws.concept_words
    if name in words:
        return text[words.index(name)]
    from inficond.predict import encoder_from_identity

    return encoder_from_identity(s.ws.get_meta("encoder")).encode_text([name])[0]


def semantic_votes(s: Session, k: int, used: set) -> list[dict]:
    text = np.asarray(s.ws.array("concept_text"), dtype=np.float64)
    sim = text @ class_text(s, s.ws.class_names[k])
    coef = s.student.coef_[k]
    ups = [c for c in np.argsort(-sim) if (c, "down") not in used][:3]
    top = np.argsort(-np.abs(coef))[:15]
    downs = [c for c in top if coef[c] > 0 and sim[c] < np.quantile(sim, 0.5) and (c, "up") not in used][:3]
    return [{"class": k, "concept": int(c), "direction": "up"} for c in ups] + \
           [{"class": k, "concept": int(c), "direction": "down"} for c in downs]


def suggestion_votes(s: Session, k: int, used: set, split: str = "train") -> list[dict]:
    out = []
    for m in s.suggest(k, k=6, split=split):
        opposite = "down" if m["direction"] == "up" else "up"
        if (m["concept_idx"], opposite) not in used:
            out.append({"class": k, "concept": m["concept_idx"], "direction": m["direction"]})
    return out[:3]


def run(ws: Path, k: int, policy, rounds: int) -> dict:
    s = Session(ws)
    v0 = s.performance("val")["classes"][k]["student"]["ap"]
    t0 = s.performance("test")["classes"][k]["student"]["ap"]
    used: set = set()
    times = []
    for _ in range(rounds):
        votes = policy(s, k, used)
        if not votes:
            break
        try:
            start = time.perf_counter()
            step = s.tune(votes)
            times.append((time.perf_counter() - start) * 1000)
        except TuningError:
            break
        used |= {(v["concept"], v["direction"]) for v in votes}
    v1 = s.performance("val")["classes"][k]["student"]["ap"]
    t1 = s.performance("test")["classes"][k]["student"]["ap"]
    words = s.ws.concept_words
    return {"val": (v0, v1), "test": (t0, t1), "steps": len(times), "ms": float(np.median(times)) if times else None,
            "votes": sorted({(words[c], d) for c, d in used})}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--workspace", default="workspaces/dev")
    ap.add_argument("--classes", type=int, default=3, help="how many of the weakest classes")
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    src = Session(a.workspace)
    perf = src.performance("val")
    weak = sorted((c for c in perf["classes"] if not c["excluded"] and c["gap"] is not None), key=lambda c: -c["gap"])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for c in weak[: a.classes]:
            policies = (("semantic", semantic_votes), ("suggestions (train)", suggestion_votes),
                        ("suggestions (val)", lambda s, k, used: suggestion_votes(s, k, used, "val")))
            for name, policy in policies:
                ws = Path(tmp) / f"{c['name']}-{name.replace(' ', '_')}"
                shutil.copytree(a.workspace, ws)
                r = run(ws, c["class_idx"], policy, a.rounds)
                rows.append((c, name, r))
                print(c["name"], name, r, flush=True)
    lines = [
        "## Concept tuning scenarios: val vs held-out test AP",
        "",
        f"Machine: {machine_line()}",
        "",
        f"Workspace `{a.workspace}`; the {a.classes} weakest classes (largest val AP gap to the teacher), "
        f"up to {a.rounds} tuning steps each. *semantic*: up the 3 concepts nearest the class name in the text "
        "space, down 3 influential concepts far from it. *suggestions (split)*: the engine's top-3 suggestions by what-if AP on that split.",
        "",
        "| class | teacher val AP | policy | steps | val AP before → after | test AP before → after | step (ms, median) | votes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c, name, r in rows:
        votes = ", ".join(f"{'▲' if d == 'up' else '▼'}{w}" for w, d in r["votes"])
        lines.append(
            f"| {c['name']} | {c['teacher']['ap']:.3f} | {name} | {r['steps']} | {r['val'][0]:.3f} → {r['val'][1]:.3f} "
            f"({r['val'][1] - r['val'][0]:+.3f}) | {r['test'][0]:.3f} → {r['test'][1]:.3f} ({r['test'][1] - r['test'][0]:+.3f}) "
            f"| {r['ms']:.0f} | {votes} |"
        )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "tuning_scenario.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
