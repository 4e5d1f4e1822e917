"""Concept grounding: do the words that name a class find that class's images?

    .venv/bin/python benchmarks/bench_grounding.py [--report-test] [--throughput N]

For each of the 20 VOC classes a short list of naming words (CLASS_WORDS). A word's presence
score on an image is what the workspace's concept vector holds: the max over the image's regions
of cosine(region, word), clipped at 0. Reported per class: the AP of (a) the plain class word
(the first listed word) and (b) the max over the class's words, and the mAP over all 20 classes.

Every setting is chosen on train *minus* the workspace's test split (the test split is carved out
of labels.csv's ``train`` by ``inficond.data.load_dataset``), by the plain-word mAP there. Levers
are tried in order, each keeping the best setting so far (greedy); val is reported for each step,
test only once for the baseline and the chosen setting (``--report-test``).

The network runs once per setting of the image side (``grounding_cache.py``: per-region top-20
ImageNet probabilities and ids, and MTCNN face boxes); text-side levers re-embed those outputs.
The student side (is a class's naming word among its student's top-10 concepts?) is reported by
``bench_quality.py``, which fits the students.

Writes ``benchmarks/results/grounding.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import average_precision_score

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import grounding_cache  # noqa: E402
from machine import machine_line  # noqa: E402

OUT = ROOT / "benchmarks" / "results"

# The first word is the plain class word; the rest are common names for the same thing.
CLASS_WORDS = {
    "aeroplane": ["aeroplane", "airplane", "aircraft"],
    "bicycle": ["bicycle", "bike"],
    "bird": ["bird"],
    "boat": ["boat", "ship"],
    "bottle": ["bottle"],
    "bus": ["bus"],
    "car": ["car", "automobile"],
    "cat": ["cat", "kitten"],
    "chair": ["chair"],
    "cow": ["cow", "cattle"],
    "diningtable": ["dining table", "table"],
    "dog": ["dog", "puppy"],
    "horse": ["horse"],
    "motorbike": ["motorbike", "motorcycle"],
    "person": ["person", "people", "man", "woman"],
    "pottedplant": ["potted plant", "houseplant"],
    "sheep": ["sheep", "lamb"],
    "sofa": ["sofa", "couch"],
    "train": ["train", "locomotive"],
    "tvmonitor": ["tv monitor", "television", "monitor"],
}

# The default encoder before this benchmark (VERSION 1): names only, T = 2, top-10, no person cue.
BASELINE = dict(network="efficientnet-lite0", image_size=448, window=3, stride=1, top_k=10, temperature=2.0,
                hypernym_depth=0, hypernym_decay=0.5, description_weight=0.0, prompts=("{}",), person_cue=False,
                person_weight=1.0, text_anchor_weight=0.0)

# Levers in the order they are tried; each maps a name to the candidate overrides.
LEVERS = [
    ("temperature", [{"temperature": t} for t in (1.0, 2.0, 3.0, 5.0)]),
    ("top_k", [{"top_k": k} for k in (5, 10, 20)]),
    ("visual description", [{"description_weight": w} for w in (0.0, 0.5, 1.0, 2.0)]),
    ("WordNet hypernyms", [{"hypernym_depth": d, "hypernym_decay": g} for d in (0, 1, 2, 3, 4, 6)
                           for g in ((0.5,) if d == 0 else (0.5, 0.75, 1.0))]),
    ("prompt ensemble", [{"prompts": p} for p in (
        ("{}",), ("a photo of a {}.",), ("{}", "a photo of a {}."),
        ("{}", "a photo of a {}.", "a photo of the {}.", "a picture of a {}.", "a {} in the scene."))]),
    ("person cue (MTCNN faces)", [{"person_cue": False}] + [{"person_cue": True, "person_weight": w}
                                                            for w in (0.15, 0.25, 0.35, 0.5, 0.75, 1.0)]),
]


# Image-side levers, measured from per-cell logits (grounding_cache.build_cells) of a seeded subset:
# val and 1000 train-minus-test photos; their selection mAP is on those 1000. The whole image is
# always a region; "regions" lists the other region sets (see SegmentGrounder), "pool" how a word's
# cosines are pooled over an image's regions. Candidates of a lever may depend on the kept setting.
SUBSET = "val+sel1000"
WHOLE = ("window", 14)
IMAGE_LEVERS = [
    ("window size", lambda img: [{"regions": [("window", w)]} for w in (2, 3, 4, 5)]
     + [{"regions": [("window", 3), ("window", 5)]}]),
    ("SLIC superpixels", lambda img: [{"regions": img["regions"]}]
     + [{"regions": img["regions"] + [("slic", n, 10.0)]} for n in (16, 40)]
     + [{"regions": [("slic", n, 10.0)]} for n in (16, 40)]),
    ("text-side ConSE (words pulled onto their nearest anchors)",
     lambda img: [{"text_anchor_weight": 0.0}] + [{"text_anchor_weight": b, "text_anchor_temperature": t}
                                                  for b in (0.25, 0.5, 0.75) for t in (0.02, 0.05, 0.1)]),
    # Measured but never kept: pooling is the workspace's concept-vector rule (concepts/mapping.py),
    # not an encoder setting; the chosen setting stays max-pooled.
    ("pooling over regions (measured, not applied)", lambda img: [{"pool": p} for p in ("max", "top2", "top3")]),
]
IMAGE_KEYS = ("regions", "pool")


def load_data():
    """Image ids, class names, labels and splits (train / val / test as the workspace carves them)."""
    from inficond.data import load_dataset

    ds = load_dataset(grounding_cache.VOC)
    ids = grounding_cache.dev_ids()
    if list(ds.image_ids) != ids:
        raise RuntimeError("dataset order differs from labels.csv")
    return ids, list(ds.class_names), np.asarray(ds.labels), np.asarray(ds.splits)


class Grounder:
    """Presence scores of a word list under one encoder setting, from cached network outputs."""

    def __init__(self, P, I, faces, boxes):
        from inficond.encoders.person import region_person_scores

        self.P, self.I = P, I
        self.person = np.stack([region_person_scores(boxes, f) for f in faces]) if faces is not None else None

    def scores(self, enc, words: list[str], rows: np.ndarray, chunk: int = 512, pool: str = "max") -> np.ndarray:
        """(len(rows), len(words)) max (or ``pool``, see ``pool_regions``) over regions of cosine, clipped at 0.

        Same numbers as ``enc.conse`` followed by the cosine (checked on the first images), computed
        as a sparse (regions x 1000) mixing matrix times the anchors: no (regions, k, 384) gather.
        """
        import scipy.sparse as sp

        text = enc.encode_text(words)
        anchors = enc._class_emb.astype(np.float32)
        out = np.zeros((len(rows), len(words)), np.float32)
        for s in range(0, len(rows), chunk):
            r = rows[s : s + chunk]
            p = self.P[r][..., : enc.top_k].astype(np.float64)
            p = p ** (1.0 / enc.temperature) if enc.temperature != 1.0 else p
            p = (p / p.sum(-1, keepdims=True)).reshape(-1, enc.top_k)
            ix = self.I[r][..., : enc.top_k].reshape(-1, enc.top_k).astype(np.int64)
            n_reg = p.shape[0]
            W = sp.csr_matrix((p.ravel().astype(np.float32), ix.ravel(), np.arange(0, n_reg * enc.top_k + 1, enc.top_k)),
                              shape=(n_reg, len(anchors)))
            emb = np.asarray(W @ anchors)
            if enc.person_cue and self.person is not None:
                q = np.clip(enc.person_weight * self.person[r].reshape(-1), 0, 1)[:, None]
                emb = (1 - q) * emb + q * enc._person_emb
            emb /= np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
            sims = (emb @ text.T).reshape(len(r), -1, len(words))
            out[s : s + chunk] = np.maximum(pool_regions(sims, pool), 0.0)
        return out

    def check(self, enc, words: list[str], rows: np.ndarray) -> None:
        """Assert that ``scores`` equals the encoder's own ``conse`` path on ``rows``."""
        text = enc.encode_text(words)
        person = self.person[rows] if (enc.person_cue and self.person is not None) else None
        ref = np.maximum((enc.conse(self.P[rows], self.I[rows], person) @ text.T).max(1), 0.0)
        np.testing.assert_allclose(self.scores(enc, words, rows), ref, atol=2e-5)


POOLS = ("max", "top2", "top3", "softmax0.05", "softmax0.1")


def pool_regions(sims: np.ndarray, pool: str = "max") -> np.ndarray:
    """Pool (images, regions, words) cosines over regions: ``max``, ``topN`` (mean of the N largest) or
    ``softmaxT`` (the softmax(sims / T)-weighted mean, between max and mean)."""
    if pool == "max":
        return sims.max(1)
    if pool.startswith("top"):
        n = int(pool[3:])
        return -np.sort(-sims, axis=1)[:, :n].mean(1) if sims.shape[1] > n else sims.mean(1)
    if pool.startswith("softmax"):
        t = float(pool[7:])
        w = np.exp((sims - sims.max(1, keepdims=True)) / t)
        return (w * sims).sum(1) / w.sum(1)
    raise ValueError(f"unknown pool {pool!r}; use one of {POOLS}")


class SegmentGrounder:
    """Presence scores over region sets built from per-cell logits, on a cached subset of the photos.

    A region set is ``("window", w)``: every w x w window of cells at stride 1 (``w`` = the grid side is
    the whole image), or ``("slic", n, compactness)``: SLIC superpixels (``inficond.encoders.superpixels``).
    A region's logits are its cells' logits averaged (by covered area for superpixels), then softmax
    and top-k, as the encoder's graph does for its windows; ``("window", 3)`` plus the whole image
    reproduces the encoder's default regions.
    """

    def __init__(self, subset: str, faces, dev_ids: list[str], k: int = 20):
        self.sub_ids, self.L = grounding_cache.load_cells("lite0", 448, subset)
        pos = {i: j for j, i in enumerate(dev_ids)}
        self.sub_of_dev = {pos[i]: j for j, i in enumerate(self.sub_ids)}
        self.faces, self.subset, self.k = faces, subset, k
        self.grid = int(round(np.sqrt(self.L.shape[1])))
        self.sets: dict = {}

    def region_set(self, spec: tuple):
        """Per subset image: (boxes (n, 4), top-k probs (n, k), ids (n, k)); memoised on disk."""
        if spec in self.sets:
            return self.sets[spec]
        name = "-".join(f"{v:g}" if isinstance(v, float) else str(v) for v in spec)
        path = grounding_cache.cache_root() / f"regions-{self.subset}-{name}-k{self.k}.npz"
        if not path.exists():
            from tqdm import tqdm

            B, Pp, Ii, owner = [], [], [], []
            for j, i in enumerate(tqdm(self.sub_ids, desc=f"regions {name}")):
                boxes, logits = self._logits(spec, i, self.L[j].astype(np.float32))
                p = np.exp(logits - logits.max(1, keepdims=True))
                p /= p.sum(1, keepdims=True)
                ix = np.argpartition(-p, self.k, axis=1)[:, : self.k]
                pk = np.take_along_axis(p, ix, 1)
                o = np.argsort(-pk, axis=1)
                B.append(boxes.astype(np.float32))
                Pp.append(np.take_along_axis(pk, o, 1).astype(np.float32))
                Ii.append(np.take_along_axis(ix, o, 1).astype(np.int16))
                owner += [j] * len(boxes)
            np.savez(path, B=np.concatenate(B), P=np.concatenate(Pp), I=np.concatenate(Ii), owner=np.array(owner))
        with np.load(path) as d:  # an NpzFile re-reads an array on every d[name]: read each once
            B, P, I, owner = d["B"], d["P"], d["I"], d["owner"]
        starts = np.searchsorted(owner, np.arange(len(self.sub_ids) + 1))
        self.sets[spec] = [(B[a:b], P[a:b], I[a:b]) for a, b in zip(starts[:-1], starts[1:])]
        return self.sets[spec]

    def _logits(self, spec, image_id, L):
        g = self.grid
        if spec[0] == "window":
            from numpy.lib.stride_tricks import sliding_window_view

            w = spec[1]
            logits = sliding_window_view(L.reshape(g, g, -1), (w, w), axis=(0, 1)).mean((-1, -2))
            n = g - w + 1
            boxes = [[x / g, y / g, (x + w) / g, (y + w) / g] for y in range(n) for x in range(n)]
            return np.asarray(boxes), logits.reshape(n * n, -1)
        if spec[0] == "slic":
            from inficond.data.images import load_image
            from inficond.encoders.superpixels import pool_cells, slic_cell_weights

            im = load_image(grounding_cache.VOC / "images" / f"{image_id}.jpg").convert("RGB")
            px = np.asarray(im.resize((448, 448), resample=2))  # bilinear, as the encoder's pixels()
            w, boxes = slic_cell_weights(px, g, spec[1], spec[2])
            return boxes, pool_cells(w, L)
        raise ValueError(f"unknown region set {spec!r}")

    def scores(self, enc, words: list[str], rows: np.ndarray, sets: tuple, pool: str = "max") -> np.ndarray:
        """(len(rows), len(words)) pooled cosines over the union of region ``sets``; ``rows``: dev rows in the subset."""
        from inficond.encoders.person import region_person_scores

        text = enc.encode_text(words)
        got = [self.region_set(tuple(spec)) for spec in sets]
        out = np.zeros((len(rows), len(words)), np.float32)
        for o, r in enumerate(rows):
            j = self.sub_of_dev[int(r)]
            boxes = np.concatenate([g[j][0] for g in got])
            P = np.concatenate([g[j][1][:, : enc.top_k] for g in got])[None]
            I = np.concatenate([g[j][2][:, : enc.top_k] for g in got]).astype(np.int64)[None]
            person = region_person_scores(boxes, self.faces[r])[None] if enc.person_cue and self.faces else None
            sims = enc.conse(P, I, person) @ text.T
            out[o] = np.maximum(pool_regions(sims, pool)[0], 0.0)
        return out


def grounding_aps(S, words, Y, rows, classes):
    """Per class AP of the plain word and of the max over its words."""
    col = {w: i for i, w in enumerate(words)}
    plain, listed = {}, {}
    for k, c in enumerate(classes):
        ws = CLASS_WORDS[c]
        y = Y[rows, k]
        plain[c] = float(average_precision_score(y, S[:, col[ws[0]]]))
        listed[c] = float(average_precision_score(y, S[:, [col[w] for w in ws]].max(1)))
    return {"plain": plain, "listed": listed, "map_plain": float(np.mean(list(plain.values()))),
            "map_listed": float(np.mean(list(listed.values())))}


def throughput(settings: dict[str, dict], ids: list[str], rounds: int = 2) -> dict:
    """Images/s of ``encode_regions`` (decoding excluded) per setting, interleaved in rounds on one machine state."""
    from inficond.data.images import load_image
    from inficond.encoders.conse_effnet import ConseEffnetEncoder

    ims = [load_image(grounding_cache.VOC / "images" / f"{i}.jpg") for i in ids]
    encs = {name: ConseEffnetEncoder(**kw) for name, kw in settings.items()}
    for enc in encs.values():
        enc.encode_regions(ims[:2])  # warm-up: ONNX export/load, face detector load
    secs = {name: 0.0 for name in encs}
    for _ in range(rounds):
        for name, enc in encs.items():
            t0 = time.perf_counter()
            enc.encode_regions(ims)
            secs[name] += time.perf_counter() - t0
    return {name: rounds * len(ims) / secs[name] for name in encs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--report-test", action="store_true", help="report the test split for the baseline and the choice")
    ap.add_argument("--fresh", action="store_true", help="ignore memoised results of earlier runs")
    ap.add_argument("--no-faces", action="store_true", help="skip the person-cue lever (no face cache needed)")
    ap.add_argument("--throughput", type=int, default=0, metavar="N",
                    help="also time encode_regions on N val images, baseline vs chosen setting vs chosen without faces")
    a = ap.parse_args()
    from inficond.encoders.conse_effnet import ConseEffnetEncoder

    ids, classes, Y, split = load_data()
    sel, val, test = (np.flatnonzero(split == s) for s in ("train", "val", "test"))
    words = sorted({w for ws in CLASS_WORDS.values() for w in ws})
    _, P, I = grounding_cache.load("lite0", 448, 3, 1, 20)
    faces = None if a.no_faces else grounding_cache.load_faces()
    g = Grounder(P, I, faces, ConseEffnetEncoder(**BASELINE).boxes)

    memo_path = grounding_cache.cache_root() / "grounding_memo.json"
    memo = json.loads(memo_path.read_text()) if memo_path.exists() and not a.fresh else {}

    def run(setting, rows):
        """Grounding APs of one setting on one split; memoised on disk (key: setting, rows, encoder identity)."""
        enc = ConseEffnetEncoder(**setting)
        key = json.dumps([_memo_identity(enc), int(rows[0]), int(rows[-1]), len(rows), CLASS_WORDS], sort_keys=True)
        if key not in memo:
            memo[key] = grounding_aps(g.scores(enc, words, rows), words, Y, rows, classes)
            memo_path.write_text(json.dumps(memo))
        return memo[key]

    g.check(ConseEffnetEncoder(**{**BASELINE, "person_cue": faces is not None}), words, val[:16])
    steps = []
    cur = dict(BASELINE)
    base_sel, base_val = run(cur, sel), run(cur, val)
    steps.append({"lever": "baseline (VERSION 1 encoder)", "setting": {}, "sel": base_sel, "val": base_val,
                  "tried": []})
    print(f"baseline: sel {base_sel['map_plain']:.3f}/{base_sel['map_listed']:.3f} "
          f"val {base_val['map_plain']:.3f}/{base_val['map_listed']:.3f}", flush=True)
    for lever, cands in LEVERS:
        if a.no_faces and lever.startswith("person"):
            continue
        tried = []
        for over in cands:
            t0 = time.perf_counter()
            r = run({**cur, **over}, sel)
            tried.append({"override": over, "sel_map_plain": r["map_plain"], "sel_map_listed": r["map_listed"]})
            print(f"  {lever} {over}: sel {r['map_plain']:.3f}/{r['map_listed']:.3f} ({time.perf_counter() - t0:.0f}s)",
                  flush=True)
        best = max(tried, key=lambda t: t["sel_map_plain"])
        cur = {**cur, **best["override"]}
        r_sel, r_val = run(cur, sel), run(cur, val)
        steps.append({"lever": lever, "setting": best["override"], "sel": r_sel, "val": r_val, "tried": tried})
        print(f"{lever} -> {best['override']}: sel {r_sel['map_plain']:.3f}/{r_sel['map_listed']:.3f} "
              f"val {r_val['map_plain']:.3f}/{r_val['map_listed']:.3f}", flush=True)

    # -- image-side levers on the cell-logit subset -------------------------------------------
    sg = SegmentGrounder(SUBSET, faces, ids)
    in_sub = np.array(sorted(sg.sub_of_dev))
    sub_sel = in_sub[split[in_sub] == "train"]
    if not set(val) <= set(in_sub.tolist()):
        raise RuntimeError(f"subset {SUBSET} must hold every val image")

    def run_img(setting, img, rows, grounder):
        enc = ConseEffnetEncoder(**setting)
        key = json.dumps([_memo_identity(enc), img, grounder.subset, int(rows[0]), int(rows[-1]), len(rows), CLASS_WORDS],
                         sort_keys=True, default=list)
        if key not in memo:
            S = grounder.scores(enc, words, rows, [WHOLE] + [tuple(r) for r in img["regions"]], img["pool"])
            memo[key] = grounding_aps(S, words, Y, rows, classes)
            memo_path.write_text(json.dumps(memo))
        return memo[key]

    img = {"regions": [("window", cur["window"])], "pool": "max"}
    res_extra: dict = {}
    cur_text = dict(cur)  # the setting the text-side levers chose (windows of the top-k cache)
    r_sel = run_img(cur, img, sub_sel, sg)
    steps.append({"lever": f"(same setting, selection = the {len(sub_sel)} selection photos of {SUBSET})",
                  "setting": {}, "sel": r_sel, "val": run_img(cur, img, val, sg), "tried": [], "subset": True})
    for lever, cands in IMAGE_LEVERS:
        tried = []
        split_over = lambda o: ({k: v for k, v in o.items() if k not in IMAGE_KEYS},  # noqa: E731
                                {k: v for k, v in o.items() if k in IMAGE_KEYS})
        for over in cands(img):
            t0 = time.perf_counter()
            enc_over, img_over = split_over(over)
            r = run_img({**cur, **enc_over}, {**img, **img_over}, sub_sel, sg)
            tried.append({"override": over, "sel_map_plain": r["map_plain"], "sel_map_listed": r["map_listed"]})
            print(f"  {lever} {over}: sel {r['map_plain']:.3f}/{r['map_listed']:.3f} ({time.perf_counter() - t0:.0f}s)",
                  flush=True)
        best = max(tried, key=lambda t: t["sel_map_plain"])
        enc_over, img_over = split_over(best["override"])
        if "not applied" in lever:
            r_sel, r_val = run_img(cur, {**img, **img_over}, sub_sel, sg), run_img(cur, {**img, **img_over}, val, sg)
            res_extra["not applied"] = {"lever": lever, "best": best["override"], "sel": r_sel, "val": r_val,
                                        "tried": tried}
            print(f"{lever}: best {best['override']} sel {r_sel['map_plain']:.3f} val {r_val['map_plain']:.3f} "
                  "(not applied)", flush=True)
            continue
        cur, img = {**cur, **enc_over}, {**img, **img_over}
        r_sel, r_val = run_img(cur, img, sub_sel, sg), run_img(cur, img, val, sg)
        steps.append({"lever": lever, "setting": best["override"], "sel": r_sel, "val": r_val, "tried": tried,
                      "subset": True})
        print(f"{lever} -> {best['override']}: sel {r_sel['map_plain']:.3f}/{r_sel['map_listed']:.3f} "
              f"val {r_val['map_plain']:.3f}/{r_val['map_listed']:.3f}", flush=True)

    if len(img["regions"]) == 1 and img["regions"][0][0] == "window":
        cur = {**cur, "window": img["regions"][0][1]}  # the encoder's own setting (whole image + windows)
    res = {"machine": machine_line(), "n": {"selection (train minus test)": int(len(sel)), "val": int(len(val)),
                                            "test": int(len(test)), f"selection in {SUBSET}": int(len(sub_sel))},
           "image_setting": img, **res_extra,
           "class_words": CLASS_WORDS, "baseline_setting": {k: list(v) if isinstance(v, tuple) else v
                                                            for k, v in BASELINE.items()},
           "chosen_setting": {k: list(v) if isinstance(v, tuple) else v for k, v in cur.items()},
           "selection_metric": "plain-word mAP over 20 classes on train minus test", "steps": steps}
    if a.throughput:
        chosen_no_faces = {**cur, "person_cue": False}
        res["throughput_img_s"] = throughput({"baseline": BASELINE, "chosen": cur, "chosen without person cue":
                                              chosen_no_faces}, [ids[i] for i in val[: a.throughput]])
        res["throughput_note"] = (f"encode_regions on {a.throughput} val images, decoding excluded, 2 interleaved rounds; "
                                  "a shared machine, so compare the ratios")
    if a.report_test:
        sg_test = SegmentGrounder("test", faces, ids)
        res["test"] = {"baseline": run(BASELINE, test), "chosen text side": run(cur_text, test),
                       "chosen": run_img(cur, img, test, sg_test)}
    write(res, classes)


def write(res: dict, classes: list[str]) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "grounding.json").write_text(json.dumps(res, indent=2, default=str))
    steps = res["steps"]
    md = ["## Concept grounding", "", f"Machine: {res['machine']}", "",
          f"Presence score of a word = max over an image's regions of cosine(region, word), clipped at 0 (the "
          f"workspace's concept vector). AP per class against ground truth; mAP over all 20 classes. Settings chosen "
          f"greedily, lever by lever, on the plain-word mAP of train minus test ({res['n']['selection (train minus test)']} "
          f"images); val ({res['n']['val']}) reported for each step.", "",
          "### Levers (mAP over 20 classes: plain class word / max over the listed words)", "",
          "| step | kept setting | selection mAP | val mAP | tried on selection (plain-word mAP) |", "|---|---|---|---|---|"]
    for s in steps:
        tried = "; ".join(f"{_fmt(t['override'])}: {t['sel_map_plain']:.3f}" for t in s["tried"]) or "-"
        mark = " (subset)" if s.get("subset") else ""
        md.append(f"| {s['lever']} | {_fmt(s['setting']) or '-'} | {s['sel']['map_plain']:.3f} / {s['sel']['map_listed']:.3f}{mark} | "
                  f"{s['val']['map_plain']:.3f} / {s['val']['map_listed']:.3f} | {tried} |")
    b, f = steps[0]["val"], steps[-1]["val"]
    md += ["", "### Per class on val, before and after", "",
           "| class | words | before plain | before listed | after plain | after listed |", "|---|---|---|---|---|---|"]
    for c in classes:
        md.append(f"| {c} | {', '.join(res['class_words'][c])} | {b['plain'][c]:.2f} | {b['listed'][c]:.2f} | "
                  f"{f['plain'][c]:.2f} | {f['listed'][c]:.2f} |")
    md.append(f"| **mAP** | | **{b['map_plain']:.3f}** | **{b['map_listed']:.3f}** | **{f['map_plain']:.3f}** | "
              f"**{f['map_listed']:.3f}** |")
    if "test" in res:
        t = res["test"]
        md += ["", f"Test split ({res['n']['test']} images), reported once: baseline {t['baseline']['map_plain']:.3f} / "
               f"{t['baseline']['map_listed']:.3f}, chosen text side {t['chosen text side']['map_plain']:.3f} / "
               f"{t['chosen text side']['map_listed']:.3f}, chosen {t['chosen']['map_plain']:.3f} / {t['chosen']['map_listed']:.3f} "
               "(plain / listed)."]
    if "not applied" in res:
        na = res["not applied"]
        md += ["", f"{na['lever']}: " + "; ".join(f"{_fmt(t['override'])}: {t['sel_map_plain']:.3f}" for t in na["tried"])
               + f" on the selection subset; the best ({_fmt(na['best'])}) gives val {na['val']['map_plain']:.3f} / "
               f"{na['val']['map_listed']:.3f}."]
    md += ["", f"Chosen setting: `{_fmt(res['chosen_setting'])}`; image side: `{_fmt(res['image_setting'])}`."]
    if "throughput_img_s" in res:
        tp = res["throughput_img_s"]
        md += ["", "Encoder throughput (" + res["throughput_note"] + "): " + ", ".join(
            f"{k} {v:.1f} images/s ({v / tp['baseline']:.2f}x)" for k, v in tp.items()) + "."]
    (OUT / "grounding.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


def _memo_identity(enc) -> dict:
    """The encoder identity without its VERSION: every setting the benchmark passes is explicit, so a new
    default (a version bump) leaves the memoised results of earlier settings valid."""
    return {k: v for k, v in enc.identity().items() if k != "version"}


def _fmt(d: dict) -> str:
    return ", ".join(f"{k}={list(v) if isinstance(v, tuple) else v}" for k, v in d.items())


if __name__ == "__main__":
    main()
