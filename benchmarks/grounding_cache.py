"""Per-region top-k ImageNet outputs of the dev photos, computed once per network setting.

    .venv/bin/python benchmarks/grounding_cache.py [--net lite0] [--size 448] [--top-k 20]

Text-side levers (class texts, hypernyms, prompts, temperature) only change how these outputs
are embedded, so ``bench_grounding.py`` re-embeds them without re-running the CNN. The cache is
``$INFICOND_CACHE/grounding/<net>-<size>-w<window>-s<stride>-k<k>.npz`` with ``ids`` (labels.csv
order), ``P`` float32 and ``I`` int16 of shape ``(n, regions, k)``; region 0 is the whole image.
The run resumes from partial chunks and shows a progress bar.

    .venv/bin/python benchmarks/grounding_cache.py --cells --subset val+sel1000   # and --subset test

caches every cell's 1000 ImageNet logits instead (``cells-<net>-<size>-<subset>.npy``, float16, with a
``.ids.txt`` naming the rows): the image-side levers (window sizes, superpixels) pool them.
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
    """``all``: every dev photo; ``val+selN``: val and N seeded train-minus-test photos (labels.csv order;
    each N draws its own seeded set); ``test``: the workspace's test split (for the one final report)."""
    ids = dev_ids()
    if subset == "all":
        return ids
    if subset != "test" and not (subset.startswith("val+sel") and subset[7:].isdigit()):
        raise ValueError(f"unknown subset {subset!r}; use 'all', 'test' or 'val+selN' (e.g. 'val+sel400')")
    from inficond.data import load_dataset

    split = np.asarray(load_dataset(VOC).splits)
    if subset == "test":
        return [i for i, s in zip(ids, split) if s == "test"]
    sel = np.flatnonzero(split == "train")
    n_sel = min(int(subset[7:]), len(sel))
    keep = set(np.flatnonzero(split == "val")) | set(np.random.default_rng(0).choice(sel, n_sel, replace=False))
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


def cells_path(net: str, size: int, subset: str) -> Path:
    return cache_root() / f"cells-{net}-{size}-{subset}.npy"


def build_cells(net: str = "lite0", size: int = 448, subset: str = "val+sel400", chunk: int = 100) -> Path:
    """Every cell's ImageNet logits, float16 ``(n, g * g, 1000)`` (``subset_ids`` order), resumable by chunk.

    Windows and segments of any shape are pooled from these (``bench_grounding.py``), so one network run
    serves every image-side region lever. A ``.ids.txt`` file beside the array names its rows."""
    from tqdm import tqdm

    from inficond.data.images import load_image
    from inficond.encoders.conse_effnet import ConseEffnetEncoder, _build_module, _OnnxRunner, cache_dir

    out = cells_path(net, size, subset)
    if out.exists():
        return out
    ids = subset_ids(subset)
    enc = ConseEffnetEncoder(network=f"efficientnet-{net}", image_size=size, person_cue=False)
    onnx = cache_dir() / "onnx" / f"cells-efficientnet-{net}-{size}.onnx"
    if not onnx.exists():
        import torch

        module = _build_module(size, 3, 1, 1, f"efficientnet-{net}", cells=True)
        onnx.parent.mkdir(parents=True, exist_ok=True)
        with torch.no_grad():
            torch.onnx.export(module, (torch.zeros(1, size, size, 3, dtype=torch.uint8),), str(onnx),
                              input_names=["pixels"], output_names=["probs", "idx", "cells"],
                              dynamic_axes={"pixels": {0: "batch"}}, opset_version=17, dynamo=False)
    sess = _OnnxRunner(onnx, 2).sess
    parts = out.with_suffix(".parts")
    parts.mkdir(parents=True, exist_ok=True)
    secs, n_done = 0.0, 0
    for s in tqdm(range(0, len(ids), chunk), desc=f"cells {net}@{size}", unit="chunk"):
        part = parts / f"{s:06d}.npy"
        if part.exists():
            continue
        L = []
        for i in ids[s : s + chunk]:
            px = enc.pixels([load_image(VOC / "images" / f"{i}.jpg")])
            t = time.perf_counter()
            L.append(sess.run(["cells"], {"pixels": px})[0][0].astype(np.float16))
            secs += time.perf_counter() - t
            n_done += 1
        tmp = part.with_suffix(".tmp.npy")
        np.save(tmp, np.stack(L))
        os.replace(tmp, part)
    L = np.concatenate([np.load(parts / f"{s:06d}.npy") for s in range(0, len(ids), chunk)])
    (out.parent / f"{out.stem}.ids.txt").write_text("\n".join(ids) + "\n")
    tmp = out.with_suffix(".tmp.npy")
    np.save(tmp, L)
    os.replace(tmp, out)
    for p in parts.iterdir():
        p.unlink()
    parts.rmdir()
    if n_done:
        print(f"network forward: {n_done / secs:.1f} images/s ({n_done} images)")
    return out


def load_cells(net: str = "lite0", size: int = 448, subset: str = "val+sel400"):
    """(ids, cell logits (n, g * g, 1000) float16, memory-mapped)."""
    path = build_cells(net, size, subset)
    ids = (path.parent / f"{path.stem}.ids.txt").read_text().split()
    return ids, np.load(path, mmap_mode="r")


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
    ap.add_argument("--subset", default="all", help="'all' or 'val+selN' (val and N seeded selection photos)")
    ap.add_argument("--faces", action="store_true", help="build the MTCNN face cache instead")
    ap.add_argument("--cells", action="store_true", help="build the per-cell logits cache instead (for segments)")
    a = ap.parse_args()
    if a.faces:
        print(build_faces())
    elif a.cells:
        print(build_cells(a.net, a.size, a.subset))
    else:
        print(build(a.net, a.size, a.window, a.stride, a.top_k, subset=a.subset))
