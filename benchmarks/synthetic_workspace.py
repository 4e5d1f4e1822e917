"""A synthetic-scale workspace: a real workspace's rows tiled with small noise to N images.

    python benchmarks/synthetic_workspace.py workspaces/dev /tmp/scale/ws-100000 --n 100000

The source workspace is only read. Each synthetic image is a copy of a real one of the same
split (so the split proportions stay the real ones, to within one image) with Gaussian noise on
its concept vector (``noise`` x each concept's standard deviation) and on its teacher logits
(``noise`` x each class's standard deviation); labels, region boxes, patch argmaxes, segments
and the image file are the source image's. Concepts, classes, corpus and patches are copied as
they are. The per-region embeddings (``regions.npy``, 110 kB an image) are not tiled, so adding
concepts does not work on a synthetic workspace; no view reads them.

The workspace says it is synthetic in its ``meta`` table (key ``synthetic``), and every image
id starts with ``syn``; :func:`synthetic_info` reads the flag back for reports.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import time
from pathlib import Path

import numpy as np

SYNTHETIC_KEY = "synthetic"
# meta keys describing one prepared dataset that do not hold for the tiled copy
_SKIP_META = {"format_version", "image_ids", "teacher_logits_rows", "student_head", "prepare_report",
              "pending_array_renames", "pending_patches", SYNTHETIC_KEY}
#: per-image arrays tiled row by row (the views read these; ``regions`` is left out, see above)
TILED_ARRAYS = ("concept_argmax", "region_boxes", "region_counts")


def split_counts(splits: np.ndarray, n: int) -> dict[str, int]:
    """Images per split for ``n`` images in the proportions of ``splits`` (largest remainders)."""
    names = [s for s in ("train", "val", "test") if (splits == s).any()]
    frac = np.array([(splits == s).mean() for s in names])
    base = np.floor(frac * n).astype(int)
    for j in np.argsort(-(frac * n - base), kind="stable")[: n - base.sum()]:
        base[j] += 1
    return dict(zip(names, base.tolist()))


def synthetic_info(path: str | Path) -> dict | None:
    """The ``synthetic`` note of the workspace at ``path``, or None for a real workspace."""
    db = sqlite3.connect(f"file:{Path(path) / 'workspace.sqlite'}?mode=ro", uri=True)
    try:
        row = db.execute("SELECT value FROM meta WHERE key = ?", (SYNTHETIC_KEY,)).fetchone()
    finally:
        db.close()
    return None if row is None else json.loads(row[0])


def build_synthetic(source: str | Path, out: str | Path, n: int, noise: float = 0.05, seed: int = 0) -> Path:
    """Tile the done images of workspace ``source`` to ``n`` images in a new workspace ``out``.

    Parameters
    ----------
    source : path
        A prepared workspace (only read).
    out : path
        Folder of the new workspace; must not exist yet.
    n : int
        Number of synthetic images (>= the number of splits in the source).
    noise : float, default 0.05
        Noise standard deviation as a fraction of each concept's (and each class's logit) std.
    seed : int, default 0

    Returns
    -------
    Path of the new workspace.
    """
    from inficond.store.workspace import Workspace

    source, out = Path(source), Path(out)
    if out.exists():
        raise FileExistsError(f"{out} exists; build_synthetic writes a new workspace (remove it or pick another folder)")
    if not (noise >= 0 and np.isfinite(noise)):
        raise ValueError(f"noise must be a finite fraction >= 0, got {noise!r}")
    src = Workspace(source)
    if not src.has_array("teacher_logits"):
        raise ValueError(f"{source} is not fully prepared (no teacher_logits)")
    done = np.flatnonzero(src.status == "done")
    splits = src.splits[done]
    counts = split_counts(splits, int(n))
    if int(n) < len(counts) or min(counts.values()) < 1:
        raise ValueError(f"n={n} is too small to keep {len(counts)} splits in their proportions")

    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    # the source row of every synthetic image: each split cycles through a shuffle of its own rows,
    # so every real image appears n/len(source) times (+-1); then the order is shuffled as a whole
    parts = [np.resize(rng.permutation(done[splits == s]), counts[s]) for s in counts]
    origin = np.concatenate(parts)
    origin = origin[rng.permutation(len(origin))]

    tmp = out.with_name(out.name + ".building")
    shutil.rmtree(tmp, ignore_errors=True)
    ws = Workspace(tmp, create=True)
    with ws.transaction() as db:
        for key, value in src.db.execute("SELECT key, value FROM meta"):
            if key not in _SKIP_META:
                db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))
        db.executemany("INSERT INTO classes(idx, name, excluded, reason) VALUES (?, ?, ?, ?)",
                       src.db.execute("SELECT idx, name, excluded, reason FROM classes ORDER BY idx").fetchall())
        db.executemany("INSERT INTO concepts(idx, word, prompt, source) VALUES (?, ?, ?, ?)",
                       src.db.execute("SELECT idx, word, prompt, source FROM concepts ORDER BY idx").fetchall())
        ids, paths, labels = src.image_ids, src.image_paths, src.labels
        lab = ["".join(map(str, r.tolist())) for r in labels]
        db.executemany(
            "INSERT INTO images(idx, image_id, path, split, labels, status) VALUES (?, ?, ?, ?, ?, 'done')",
            ((i, f"syn{i:07d}-{ids[o]}", str(paths[o]), str(src.splits[o]), lab[o]) for i, o in enumerate(origin.tolist())),
        )
        # patches and segments point at a source image; give them its first synthetic copy
        first = {}
        for i, o in enumerate(origin.tolist()):
            first.setdefault(o, i)
        db.executemany(
            "INSERT INTO patches(concept_idx, rank, image_idx, region, similarity, box, file) VALUES (?, ?, ?, ?, ?, ?, ?)",
            ((c, r, first[im], reg, s, b, f) for c, r, im, reg, s, b, f in
             src.db.execute("SELECT concept_idx, rank, image_idx, region, similarity, box, file FROM patches")
             if im in first),
        )
        seg: dict[int, list] = {}
        for row in src.db.execute("SELECT image_idx, segment, concept_idx, similarity, box FROM segments"):
            seg.setdefault(row[0], []).append(row[1:])
        db.executemany(
            "INSERT INTO segments(image_idx, segment, concept_idx, similarity, box) VALUES (?, ?, ?, ?, ?)",
            ((i, *r) for i, o in enumerate(origin.tolist()) for r in seg.get(o, ())),
        )
        note = {
            "source": str(source.resolve().name), "n_images": int(n), "n_source_images": int(len(done)),
            "noise": float(noise), "seed": int(seed), "splits": counts,
            "note": "SYNTHETIC: real rows tiled with Gaussian noise for scale tests; not real images or results",
        }
        db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (SYNTHETIC_KEY, json.dumps(note, sort_keys=True)))
        db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
                   ("teacher_logits_rows", json.dumps(int(n))))

    X = src.array("concept_vectors")
    T = np.asarray(src.array("teacher_logits"), dtype=np.float32)
    # std per column over the done rows, in chunks (float16 sums would overflow)
    xs = np.asarray(X[done], dtype=np.float32).std(0)
    ts = T[done].std(0)
    vec = ws.open_array("concept_vectors", (int(n), X.shape[1]), X.dtype)
    for a in range(0, int(n), 8192):  # chunks keep the build's memory flat at 100k images
        o = origin[a:a + 8192]
        rows = np.asarray(X[o], dtype=np.float32) + rng.standard_normal((len(o), X.shape[1]), np.float32) * (noise * xs)
        vec[a:a + len(o)] = rows.astype(X.dtype)
    vec.flush()
    del vec
    ws.save_array("teacher_logits", (T[origin] + rng.standard_normal(T[origin].shape, np.float32) * (noise * ts)).astype(np.float32))
    for name in TILED_ARRAYS:
        if src.has_array(name):
            a_src = src.array(name)
            dst = ws.open_array(name, (int(n), *a_src.shape[1:]), a_src.dtype)
            for a in range(0, int(n), 8192):
                dst[a:a + 8192] = a_src[origin[a:a + 8192]]
            dst.flush()
            del dst
    for name in ("concept_text", "concept_map"):  # per concept, not per image
        if src.has_array(name):
            ws.save_array(name, np.asarray(src.array(name)))
    if (source / "patches").is_dir():
        shutil.copytree(source / "patches", tmp / "patches")
    ws.db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
                  ("synthetic_build_seconds", json.dumps(round(time.perf_counter() - t0, 1))))
    ws.db.close()
    src.db.close()
    tmp.rename(out)  # a half-built workspace never carries the final name
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("source")
    ap.add_argument("out")
    ap.add_argument("--n", type=int, required=True)
    ap.add_argument("--noise", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    print(build_synthetic(a.source, a.out, a.n, a.noise, a.seed))


if __name__ == "__main__":
    main()
