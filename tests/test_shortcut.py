"""End to end, small: a real teacher learns "grass means dog", the user's votes remove the shortcut.

The full version is benchmarks/bench_shortcut.py (its docstring says how the teacher and the
shortcut-free split are made). Here a few hundred development images are chosen by their labels
alone (dogs, grazing animals, other classes), prepared with the real encoder and teacher, and the
benchmark's own steps are run on them.
"""

from __future__ import annotations

import csv
import os
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_shortcut  # noqa: E402

# images per (split, group) drawn from the development data's labels (seed 0)
PLAN = {
    ("train", "dog"): 80, ("train", "grazer"): 40, ("train", "other"): 80,
    ("val", "dog"): 35, ("val", "grazer"): 20, ("val", "other"): 35,
    ("test", "dog"): 35, ("test", "grazer"): 20, ("test", "other"): 35,
}


def _subset(dev_data: Path, out: Path) -> Path:
    rows = list(csv.DictReader(open(dev_data / "labels.csv")))
    header = list(rows[0].keys())
    rng = np.random.default_rng(0)
    pools: dict = {}
    for r in rows:
        group = "dog" if r["dog"] == "1" else "grazer" if "1" in (r["cow"], r["sheep"], r["horse"]) else "other"
        # the small test split comes from the development train split, the val split from val
        pools.setdefault((r["split"], group), []).append(r)
    chosen = []
    for (split, group), n in PLAN.items():
        src = "val" if split == "val" else "train"
        pool = pools[(src, group)]
        idx = rng.permutation(len(pool))
        taken = {r["image"] for r in chosen}
        picked = [pool[i] for i in idx if pool[i]["image"] not in taken][:n]
        chosen += [{**r, "split": split} for r in picked]
    out.mkdir(parents=True)
    os.symlink((dev_data / "images").resolve(), out / "images")
    with open(out / "labels.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=header)
        w.writeheader()
        w.writerows(chosen)
    return out


@pytest.fixture(scope="module")
def shortcut_result(dev_data, tmp_path_factory):
    from inficond.prepare import prepare

    root = tmp_path_factory.mktemp("shortcut")
    data = _subset(dev_data, root / "data")
    ws = root / "ws"
    prepare(data, ws, progress=False)
    variants = {"bounds (default)": {}, "bounds + erase (marginal)": {"erase": True, "erase_how": "marginal"}}
    return bench_shortcut.run(ws, root / "tmp", variants=variants, max_concepts=30, progress=lambda *_: None,
                              synthetic=False)


def test_the_teacher_learned_the_shortcut(shortcut_result):
    a = shortcut_result["ap"]
    for split in ("val", "test"):
        assert a[split]["shortcut_teacher"] < a[split]["clean_teacher"] - 0.05
        assert a[split]["cost"] > 0.05  # the shortcut student is worse than the clean one on shortcut-free images
    assert shortcut_result["grazers_share"]["present"] > shortcut_result["grazers_share"]["absent"]


def test_votes_recover_the_shortcut_cost(shortcut_result):
    """Downtuning the context and uptuning dog, with the erase option, recovers at least half the cost."""
    a = shortcut_result["ap"]
    rec_val = a["val"]["recovered"]["bounds + erase (marginal)"]
    rec_test = a["test"]["recovered"]["bounds + erase (marginal)"]
    assert rec_val >= 0.5 and rec_test >= 0.5
    rows = shortcut_result["variants"]["bounds (default)"]
    assert rows[-1]["free_test"] > rows[0]["free_test"]  # bounds alone help too, less


def test_fidelity_is_reported_per_step(shortcut_result):
    rows = shortcut_result["variants"]["bounds (default)"]
    assert all(0 <= r["agreement_val"] <= 1 for r in rows[1:])
