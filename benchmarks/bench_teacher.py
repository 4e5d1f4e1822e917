"""The default teacher's settings, chosen without the test split.

The offline teacher is EfficientNet-Lite2 features + one L2-regularised logistic regression per
class (``inficond.teachers.effnet``). Two settings matter: the input size and the head's ``C``.
This script chooses both by 3-fold cross-validation on the **train** split (the carved test split
is excluded; folds are seeded), reports val mAP for every candidate, and reports test mAP only for
the chosen setting and for the previous default (C 0.001 at 320 px, which had been picked looking
at val and test).

Pooled features are extracted once per size for the train, val and test images and cached under
``$INFICOND_CACHE/bench_teacher`` (``--cache``); a rerun only fits heads.
Writes ``benchmarks/results/teacher.md`` and ``teacher.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import average_precision_score
from tqdm.auto import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_line  # noqa: E402

from inficond.data import load_dataset  # noqa: E402
from inficond.data.images import load_image  # noqa: E402
from inficond.prepare import DECODE_MAX_SIDE, resolve_data_path  # noqa: E402
from inficond.teachers.effnet import EffNetTeacher, default_cache_dir  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
PREVIOUS = (320, 0.001)  # the default before this selection


def workspace_features(ws_path: str | None, size: int) -> dict | None:
    """image id -> pooled features from a workspace whose default teacher ran at ``size`` (saves extraction)."""
    if not ws_path:
        return None
    from inficond.store.workspace import Workspace

    ws = Workspace(ws_path)
    ident = ws.get_meta("teacher") or {}
    if ident.get("kind") != "effnet" or ident.get("model") != "efficientnet-lite2" or ident.get("image_size") != size:
        return None
    done = np.flatnonzero(ws.status == "done")
    feats = np.asarray(ws.array("teacher_features"))
    return {ws.image_ids[i]: feats[i].astype(np.float32) for i in done}


def features(ds, split_rows: np.ndarray, size: int, cache: Path, batch: int = 32, known: dict | None = None) -> np.ndarray:
    """(len(split_rows), 1280) float32 pooled features at ``size``, cached by image ids and size."""
    ids = [ds.image_ids[i] for i in split_rows]
    if known and all(i in known for i in ids):
        return np.stack([known[i] for i in ids])
    key = hashlib.sha256(json.dumps([ids, size]).encode()).hexdigest()[:16]
    path = cache / f"effnet-lite2-{size}-{key}.npy"
    if path.exists():
        return np.load(path)
    part = path.with_suffix(".partial.npy")
    out = np.load(part) if part.exists() else np.full((len(ids), 1280), np.nan, np.float32)
    t = EffNetTeacher([], image_size=size)
    todo = np.flatnonzero(np.isnan(out[:, 0]))
    bar = tqdm(total=len(ids), initial=len(ids) - len(todo), desc=f"features {size}px", unit="img")
    for s in range(0, len(todo), batch):
        rows = todo[s : s + batch]
        out[rows] = t.features([load_image(ds.paths[split_rows[r]], max_side=DECODE_MAX_SIDE) for r in rows])
        np.save(part, out)  # resumable
        bar.update(len(rows))
    bar.close()
    np.save(path, out)
    part.unlink(missing_ok=True)
    return out


def mean_ap(y: np.ndarray, s: np.ndarray, classes: list[int]) -> float:
    return float(np.mean([average_precision_score(y[:, k], s[:, k]) for k in classes]))


def head_scores(Xtr, Ytr, Xev, C: float, names: list[str]) -> np.ndarray:
    t = EffNetTeacher(names, C=C).fit(Xtr, Ytr)
    return t.logits_from_features(Xev)


def cv_map(X, Y, C: float, names: list[str], folds: int, seed: int, min_pos: int) -> float:
    """Mean over folds of the held-out-fold mAP (classes with ≥ min_pos positives in that fold)."""
    order = np.random.default_rng(seed).permutation(len(X))
    parts = np.array_split(order, folds)
    maps = []
    for f in range(folds):
        ev = parts[f]
        tr = np.concatenate([parts[g] for g in range(folds) if g != f])
        cls = [k for k in range(Y.shape[1]) if Y[ev, k].sum() >= min_pos and Y[tr, k].sum() > 0]
        maps.append(mean_ap(Y[ev], head_scores(X[tr], Y[tr], X[ev], C, names), cls))
    return float(np.mean(maps))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=None, help="dataset folder (default $INFICOND_DATA or ../shared/data/voc2012-subset)")
    ap.add_argument("--sizes", default="260,320,384")
    ap.add_argument("--Cs", default="0.0003,0.001,0.003,0.01")
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--min-val-positives", type=int, default=15, help="classes in the val mean (as bench_quality)")
    ap.add_argument("--cache", default=None)
    ap.add_argument("--features-only", action="store_true", help="extract and cache the features, fit nothing")
    ap.add_argument("--workspace", help="reuse this workspace's teacher features (float16) for its teacher's size")
    a = ap.parse_args()
    repo = Path(__file__).resolve().parents[1]
    data = resolve_data_path(a.data or os.environ.get("INFICOND_DATA") or repo.parent / "shared/data/voc2012-subset")
    ds = load_dataset(data)  # same carving as prepare's defaults (test_fraction 0.15, seed 0)
    names = list(ds.class_names)
    splits = np.asarray(ds.splits)
    rows = {s: np.flatnonzero(splits == s) for s in ("train", "val", "test")}
    Y = {s: np.asarray(ds.labels)[r] for s, r in rows.items()}
    cache = Path(a.cache) if a.cache else default_cache_dir() / "bench_teacher"
    cache.mkdir(parents=True, exist_ok=True)
    sizes = [int(x) for x in a.sizes.split(",")]
    Cs = [float(x) for x in a.Cs.split(",")]
    val_cls = [k for k in range(len(names)) if Y["val"][:, k].sum() >= a.min_val_positives]

    known = {size: workspace_features(a.workspace, size) for size in sizes}
    feats = {size: {s: features(ds, rows[s], size, cache, known=known[size]) for s in ("train", "val")} for size in sizes}
    if a.features_only:
        return
    grid = []
    # Head fits are cached too (per size, C, folds, seed and train/val ids): a rerun, or a run of
    # one size in parallel with another, only adds what is missing.
    done_path = cache / "grid.json"
    done = json.loads(done_path.read_text()) if done_path.exists() else {}
    ids_key = hashlib.sha256(json.dumps([[ds.image_ids[i] for i in rows[s]] for s in ("train", "val")]).encode()).hexdigest()[:12]
    for size in sizes:
        for C in Cs:
            fit_key = f"{size}|{C:g}|{a.folds}|{a.seed}|{a.min_val_positives}|{ids_key}"
            if fit_key in done:
                grid.append(done[fit_key])
                continue
            t0 = time.perf_counter()
            cv = cv_map(feats[size]["train"], Y["train"], C, names, a.folds, a.seed, min_pos=5)
            val = mean_ap(Y["val"], head_scores(feats[size]["train"], Y["train"], feats[size]["val"], C, names), val_cls)
            grid.append({"image_size": size, "C": C, "train_cv_map": round(cv, 4), "val_map": round(val, 4),
                         "seconds": round(time.perf_counter() - t0, 1)})
            print(grid[-1], flush=True)
            done = json.loads(done_path.read_text()) if done_path.exists() else {}
            done[fit_key] = grid[-1]
            done_path.write_text(json.dumps(done, indent=1))
    best = max(grid, key=lambda g: g["train_cv_map"])
    # Test is looked at only now, for the chosen setting and the previous default.
    reported = {}
    for size, C in {(best["image_size"], best["C"]), PREVIOUS}:
        if size not in feats:
            continue
        te = features(ds, rows["test"], size, cache, known=known[size])
        s = head_scores(feats[size]["train"], Y["train"], te, C, names)
        reported[f"{size}px C={C:g}"] = {"test_map": round(mean_ap(Y["test"], s, val_cls), 4),
                                         "val_map": next(g["val_map"] for g in grid if (g["image_size"], g["C"]) == (size, C))}
    out = {"machine": machine_line(), "data": str(data), "n_train": len(rows["train"]), "n_val": len(rows["val"]),
           "n_test": len(rows["test"]), "folds": a.folds, "seed": a.seed,
           "classes_in_mean": [names[k] for k in val_cls], "grid": grid,
           "chosen": {"image_size": best["image_size"], "C": best["C"], "by": "train 3-fold CV mAP"},
           "reported": reported}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "teacher.json").write_text(json.dumps(out, indent=2))
    md = ["# Default teacher settings (EfficientNet-Lite2 + logistic head), chosen on train", "",
          f"Machine: {out['machine']}", f"Data: {data} — train {out['n_train']} (test carved out), "
          f"val {out['n_val']}, test {out['n_test']}. Means over the {len(val_cls)} classes with "
          f"≥ {a.min_val_positives} val positives.", "",
          f"Selection: the highest {a.folds}-fold CV mAP on the train split (seed {a.seed}); val is shown, not used.",
          "", "| size | C | train CV mAP | val mAP | fit s |", "|---|---|---|---|---|"]
    for g in grid:
        mark = " **chosen**" if g is best else ""
        md.append(f"| {g['image_size']} | {g['C']:g}{mark} | {g['train_cv_map']:.4f} | {g['val_map']:.4f} | {g['seconds']} |")
    md += ["", "Test (looked at only after choosing):", "", "| setting | val mAP | test mAP |", "|---|---|---|"]
    md += [f"| {k} | {v['val_map']:.4f} | {v['test_map']:.4f} |" for k, v in reported.items()]
    (RESULTS / "teacher.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
