"""Per-region top-k ImageNet outputs of the dev photos, computed once per network setting.

    .venv/bin/python benchmarks/grounding_cache.py [--net lite0] [--size 448] [--top-k 20]

Text-side levers (class texts, hypernyms, prompts, temperature) only change how these outputs
are embedded, so ``bench_grounding.py`` re-embeds them without re-running the CNN. The cache is
``$INFICOND_CACHE/grounding/<net>-<size>-w<window>-s<stride>-k<k>.npz`` with ``ids`` (labels.csv
order), ``P`` float32 and ``I`` int16 of shape ``(n, regions, k)``; region 0 is the whole image.
The run resumes from partial chunks and shows a progress bar.
"""

from __future__ import annotations

import argparse
import csv
import os
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
VOC = Path(os.environ.get("INFICOND_DATA", ROOT.parent / "shared" / "data" / "voc2012-subset"))


def cache_root() -> Path:
    from inficond.encoders.conse_effnet import cache_dir

    return cache_dir() / "grounding"


def dev_ids() -> list[str]:
    with open(VOC / "labels.csv") as f:
        return [r["image"] for r in csv.DictReader(f)]


def cache_path(net: str, size: int, window: int, stride: int, k: int, subset: str = "all") -> Path:
    tag = "" if subset == "all" else f"-{subset}"
    return cache_root() / f"{net}-{size}-w{window}-s{stride}-k{k}{tag}.npz"


def subset_ids(subset: str) -> list[str]:
    """``all``: every dev photo; ``val+sel400``: val and 400 seeded train-minus-test photos (labels.csv order)."""
    ids = dev_ids()
    if subset == "all":
        return ids
    if subset != "val+sel400":
        raise ValueError(f"unknown subset {subset!r}; use 'all' or 'val+sel400'")
    from inficond.data import load_dataset

    split = np.asarray(load_dataset(VOC).splits)
    sel = np.flatnonzero(split == "train")
    keep = set(np.flatnonzero(split == "val")) | set(np.random.default_rng(0).choice(sel, 400, replace=False))
    return [i for j, i in enumerate(ids) if j in keep]


def build(net: str = "lite0", size: int = 448, window: int = 3, stride: int = 1, k: int = 20,
          chunk: int = 200, subset: str = "all") -> Path:
    """Run the encoder's network over the dev photos (resumable by chunk); return the npz path."""
    from tqdm import tqdm

    from inficond.data.images import load_image
    from inficond.encoders.conse_effnet import ConseEffnetEncoder

    out = cache_path(net, size, window, stride, k, subset)
    if out.exists():
        return out
    ids = subset_ids(subset)
    enc = ConseEffnetEncoder(network=f"efficientnet-{net}", image_size=size, window=window, stride=stride, top_k=k)
    parts = out.with_suffix(".parts")
    parts.mkdir(parents=True, exist_ok=True)
    secs, n_done = 0.0, 0
    for s in tqdm(range(0, len(ids), chunk), desc=f"{net}@{size} top-{k}", unit="chunk"):
        part = parts / f"{s:06d}.npz"
        if part.exists():
            continue
        P, I = [], []
        for i in ids[s : s + chunk]:
            im = load_image(VOC / "images" / f"{i}.jpg")
            t = time.perf_counter()
            p, ix = enc.forward(enc.pixels([im]))
            secs += time.perf_counter() - t
            n_done += 1
            P.append(p[0])
            I.append(ix[0].astype(np.int16))
        np.savez(part, P=np.stack(P), I=np.stack(I))
    P = np.concatenate([np.load(parts / f"{s:06d}.npz")["P"] for s in range(0, len(ids), chunk)])
    I = np.concatenate([np.load(parts / f"{s:06d}.npz")["I"] for s in range(0, len(ids), chunk)])
    np.savez(out, ids=np.array(ids), P=P, I=I)
    for p in parts.iterdir():
        p.unlink()
    parts.rmdir()
    if n_done:
        print(f"network forward: {n_done / secs:.1f} images/s ({n_done} images)")
    return out


def load(net: str = "lite0", size: int = 448, window: int = 3, stride: int = 1, k: int = 20, subset: str = "all"):
    d = np.load(build(net, size, window, stride, k, subset=subset))
    return d["ids"].tolist(), d["P"], d["I"]


def face_cache_path(max_side: int, min_face: int) -> Path:
    return cache_root() / f"faces-mtcnn-{max_side}-m{min_face}.npz"


def build_faces(max_side: int = 320, min_face: int = 20, chunk: int = 200) -> Path:
    """MTCNN face boxes and probabilities of every dev photo (resumable by chunk)."""
    from tqdm import tqdm

    from inficond.data.images import load_image
    from inficond.encoders.person import FaceDetector

    out = face_cache_path(max_side, min_face)
    if out.exists():
        return out
    ids = dev_ids()
    det = FaceDetector(max_side=max_side, min_face_size=min_face, num_threads=1)
    parts = out.with_suffix(".parts")
    parts.mkdir(parents=True, exist_ok=True)
    secs, n_done = 0.0, 0
    for s in tqdm(range(0, len(ids), chunk), desc=f"faces@{max_side}", unit="chunk"):
        part = parts / f"{s:06d}.npz"
        if part.exists():
            continue
        B, Q, owner = [], [], []
        for j, i in enumerate(ids[s : s + chunk]):
            im = load_image(VOC / "images" / f"{i}.jpg")
            t = time.perf_counter()
            b, q = det.detect([im])[0]
            secs += time.perf_counter() - t
            n_done += 1
            B.append(b)
            Q.append(q)
            owner += [s + j] * len(q)
        np.savez(part, B=np.concatenate(B), Q=np.concatenate(Q), owner=np.array(owner, np.int64))
    got = [np.load(parts / f"{s:06d}.npz") for s in range(0, len(ids), chunk)]
    np.savez(out, ids=np.array(ids), B=np.concatenate([g["B"] for g in got]),
             Q=np.concatenate([g["Q"] for g in got]), owner=np.concatenate([g["owner"] for g in got]))
    for p in parts.iterdir():
        p.unlink()
    parts.rmdir()
    if n_done:
        print(f"face detection: {n_done / secs:.1f} images/s ({n_done} images)")
    return out


def load_faces(max_side: int = 320, min_face: int = 20) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per dev photo (labels.csv order): face boxes (n, 4) fractions and probabilities (n,)."""
    d = np.load(build_faces(max_side, min_face))
    n = len(d["ids"])
    return [(d["B"][d["owner"] == i], d["Q"][d["owner"] == i]) for i in range(n)]


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--net", default="lite0", choices=["lite0", "lite1", "lite2"])
    ap.add_argument("--size", type=int, default=448)
    ap.add_argument("--window", type=int, default=3)
    ap.add_argument("--stride", type=int, default=1)
    ap.add_argument("--top-k", type=int, default=20)
    ap.add_argument("--subset", default="all", choices=["all", "val+sel400"])
    ap.add_argument("--faces", action="store_true", help="build the MTCNN face cache instead")
    a = ap.parse_args()
    print(build_faces() if a.faces else build(a.net, a.size, a.window, a.stride, a.top_k, subset=a.subset))
