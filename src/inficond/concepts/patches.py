"""Concept patches: small crops showing where each concept is most present.

For each concept, the done images with the highest ``concept_vectors`` value are cropped to the
box of the region that reached the value (``concept_argmax`` -> ``region_boxes``). The crops are
saved as JPEGs under ``WS/patches/`` and listed in the ``patches`` table, for the interface.
"""

from __future__ import annotations

import io
import json
import os
import re
from pathlib import Path

import numpy as np
from PIL import Image

from inficond.store.workspace import fsync_dir

PATCH_DIR = "patches"


def patch_file(concept_idx: int, rank: int) -> str:
    """Path of a patch relative to the workspace folder."""
    return f"{PATCH_DIR}/c{int(concept_idx):05d}_r{int(rank):02d}.jpg"


def top_images(vectors_col: np.ndarray, usable: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` usable images with the largest positive values, best first (ties: lower index)."""
    v = np.where(usable, np.asarray(vectors_col, np.float32), -np.inf)
    cand = np.flatnonzero(v > 0)
    if len(cand) == 0:
        return cand
    order = np.lexsort((cand, -v[cand]))  # primary key: value descending; secondary: index
    return cand[order[:k]]


def crop_box(img: Image.Image, box, size: int) -> Image.Image:
    """Crop fractions ``x0, y0, x1, y1`` of ``img`` and fit the crop into ``size`` x ``size`` (aspect kept)."""
    W, H = img.size
    x0, y0, x1, y1 = (float(b) for b in box)
    l, t = int(np.floor(np.clip(x0, 0, 1) * W)), int(np.floor(np.clip(y0, 0, 1) * H))
    r, b = int(np.ceil(np.clip(x1, 0, 1) * W)), int(np.ceil(np.clip(y1, 0, 1) * H))
    crop = img.crop((l, t, max(r, l + 1), max(b, t + 1)))
    crop.thumbnail((size, size), Image.BILINEAR)
    if max(crop.size) < size:  # small boxes are enlarged so every patch reads at the same scale
        s = size / max(crop.size)
        crop = crop.resize((max(1, round(crop.width * s)), max(1, round(crop.height * s))), Image.BILINEAR)
    return crop


def build_patches(ws, concept_idx=None, per_concept: int = 8, size: int = 112, quality: int = 85) -> int:
    """Crop and store the top ``per_concept`` patches of each concept.

    Parameters
    ----------
    ws : Workspace
        Needs ``concept_vectors``, ``concept_argmax`` and ``region_boxes``.
    concept_idx : int or list of int, optional
        Concepts to (re)build; default all.
    per_concept : int, default 8
    size : int, default 112
        Longer side of a patch in pixels.
    quality : int, default 85
        JPEG quality.

    Returns
    -------
    int
        Patches written. Rerunning replaces the rows (and files) of the given concepts.
    """
    vectors = ws.array("concept_vectors")
    argmax = ws.array("concept_argmax")
    boxes = ws.array("region_boxes")
    n_concepts = vectors.shape[1]
    if concept_idx is None:
        concepts = list(range(n_concepts))
    else:
        concepts = [int(c) for c in np.atleast_1d(concept_idx)]
        bad = [c for c in concepts if not 0 <= c < n_concepts]
        if bad:
            raise IndexError(f"concept indices {bad[:5]} out of range 0..{n_concepts - 1}")
    usable = ws.status == "done"
    paths = ws.image_paths

    jobs: dict[int, list[tuple[int, int, int, float]]] = {}  # image -> [(concept, rank, region, value)]
    for c in concepts:
        col = np.asarray(vectors[:, c], np.float32)
        top = top_images(col, usable, per_concept)
        regs = np.asarray(argmax[top, c]) if len(top) else top  # one read per concept, not per patch
        for rank, (i, r) in enumerate(zip(top.tolist(), regs.tolist())):
            jobs.setdefault(i, []).append((c, rank, r, float(col[i])))

    root = str(ws.path)
    boxes_of = {i: np.asarray(boxes[i], np.float64) for i in jobs}

    def crop_image(i: int) -> list[tuple]:
        """Decode image ``i`` once and write all of its patches (whatever the number of concepts using it)."""
        try:
            with Image.open(paths[i]) as im:
                img = im.convert("RGB")
        except OSError:
            return []  # the image went missing since prepare: skip its patches
        out = []
        for c, rank, r, sim in jobs[i]:
            box = boxes_of[i][r].tolist()
            buf = io.BytesIO()
            crop_box(img, box, size).save(buf, "JPEG", quality=quality)
            rel = patch_file(c, rank)
            _write_unsynced(os.path.join(root, rel), buf.getvalue())
            out.append((c, rank, i, r, sim, json.dumps([round(v, 5) for v in box]), rel))
        return out

    if jobs:
        os.makedirs(os.path.join(root, PATCH_DIR), exist_ok=True)
    # Images on two threads: decoding, resizing, JPEG encoding and file creation release the GIL
    # (5,136 patches of 72 images: 2.2-2.6 s on one thread). Each file and row is the same
    # whatever the order; the rows are sorted below.
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=_threads()) as pool:
        rows = [row for part in pool.map(crop_image, sorted(jobs)) for row in part]

    # Ranks are renumbered after skipped images so each concept's ranks are 0..k-1.
    rows.sort(key=lambda t: (t[0], t[1]))
    final, next_rank = [], {}
    for c, rank, i, r, sim, box, rel in rows:
        k = next_rank.get(c, 0)
        next_rank[c] = k + 1
        if k != rank:
            new_rel = patch_file(c, k)
            (Path(ws.path) / rel).replace(Path(ws.path) / new_rel)
            rel = new_rel
        final.append((c, k, i, r, sim, box, rel))
    _sync(Path(ws.path) / PATCH_DIR)  # the files are durable before the table points at them
    with ws.transaction() as db:
        db.executemany("DELETE FROM patches WHERE concept_idx = ?", [(c,) for c in concepts])
        db.executemany(
            "INSERT INTO patches(concept_idx, rank, image_idx, region, similarity, box, file) VALUES (?, ?, ?, ?, ?, ?, ?)",
            final,
        )
    # Files of ranks that no longer exist (fewer positives than last time) are removed.
    # One listing, not a glob per concept (that was quadratic: 2.5 s for 642 concepts).
    wanted = set(concepts)
    folder = Path(ws.path) / PATCH_DIR
    for name in os.listdir(folder) if folder.is_dir() else []:
        m = _PATCH_NAME.fullmatch(name)
        if m and int(m[1]) in wanted and int(m[2]) >= next_rank.get(int(m[1]), 0):
            (folder / name).unlink(missing_ok=True)
    return len(final)


_PATCH_NAME = re.compile(r"c(\d+)_r(\d+)\.jpg")


def _threads() -> int:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(4, cpus))


def _write_unsynced(path: str, data: bytes) -> None:
    """Write through a temporary file and a rename (old or new, never half), without fsync: ``_sync``
    makes all of a build's files durable at once (an fsync of each file and of the folder per
    patch took 11 of a small prepare's ~30 s). The folder exists (``build_patches`` makes it)."""
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _sync(folder: Path) -> None:
    """Flush written files to disk: one ``sync`` where the OS has it, else each file and the folder."""
    if hasattr(os, "sync"):
        os.sync()
        return
    if not folder.is_dir():
        return
    for f in folder.iterdir():
        with open(f, "rb+") as fh:
            os.fsync(fh.fileno())
    fsync_dir(folder)


def read_patches(ws, concept_idx: int) -> list[dict]:
    """Rows of the ``patches`` table for one concept, best first."""
    rows = ws.db.execute(
        "SELECT rank, image_idx, region, similarity, box, file FROM patches WHERE concept_idx = ? ORDER BY rank",
        (int(concept_idx),),
    ).fetchall()
    return [dict(rank=r[0], image_idx=r[1], region=r[2], similarity=r[3], box=json.loads(r[4]), file=r[5]) for r in rows]
