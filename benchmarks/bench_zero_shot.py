"""Zero-shot sanity check: does "a photo of a {class}" find the class in the encoder's space?

    .venv/bin/python benchmarks/bench_zero_shot.py [--student] [--cache PATH.npz]

For each encoder, every val image is encoded; an image's score for a class is the cosine of the
class prompt with (a) the best region (max over regions) and (b) the whole-image region.
mAP is over the classes with at least 10 val positives (the others are listed as skipped).

conse-effnet is the real check. open_clip is run with a tiny *randomly initialised* model (no
weights can be downloaded here), so its numbers are chance level by construction: they only
show the pipeline runs end to end.

``--student`` also encodes the train split and fits, per class, an L2 logistic regression on
the standardised default-corpus concept vectors (600 columns) to the *ground truth* labels:
a proxy for how much class information the concept space holds (the real students are fit to
teacher logits by another module). ``--cache`` keeps conse-effnet's per-region top-k
ImageNet probabilities (small) so a rerun skips the network.

Writes ``benchmarks/results/zero_shot.{md,json}``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_encoder_throughput import OUT, VOC, machine  # noqa: E402

MIN_POS = 10


def read_labels():
    with open(VOC / "labels.csv") as f:
        reader = csv.DictReader(f)
        classes = [c for c in reader.fieldnames if c not in ("image", "split")]
        rows = list(reader)
    ids = [r["image"] for r in rows]
    y = np.array([[int(r[c]) for c in classes] for r in rows], np.uint8)
    split = np.array([r["split"] for r in rows])
    return ids, classes, y, split


def load(ids):
    return [Image.open(VOC / "images" / f"{i}.jpg").convert("RGB") for i in ids]


def mean_ap(y, scores, cols):
    from sklearn.metrics import average_precision_score

    return {c: float(average_precision_score(y[:, j], scores[:, k])) for k, (c, j) in enumerate(cols)}


def conse_topk(enc, ids, cache: Path | None):
    """(n, R, k) probabilities and class ids for ``ids`` (from the cache where present)."""
    have = {}
    if cache and cache.exists():
        d = np.load(cache, allow_pickle=False)
        if "ids" in d and d["P"].shape[1] == enc.max_regions:
            have = {i: k for k, i in enumerate(d["ids"].tolist())}
            P_all, I_all = d["P"], d["I"]
    todo = [i for i in ids if i not in have]
    P = np.zeros((len(ids), enc.max_regions, enc.top_k), np.float32)
    I = np.zeros((len(ids), enc.max_regions, enc.top_k), np.int16)
    pos = {i: k for k, i in enumerate(ids)}
    for i in ids:
        if i in have:
            P[pos[i]], I[pos[i]] = P_all[have[i]], I_all[have[i]]
    t = time.perf_counter()
    for s in range(0, len(todo), 32):
        chunk = todo[s : s + 32]
        p, ix = enc.forward(enc.pixels(load(chunk)))
        for i, pp, ii in zip(chunk, p, ix):
            P[pos[i]], I[pos[i]] = pp, ii
    rate = len(todo) / (time.perf_counter() - t) if todo else None
    if cache and todo:
        np.savez(cache, ids=np.array(ids), P=P, I=I)
    return P, I, rate


def conse_scores(enc, P, I, text, chunk=128):
    """Max-over-regions and whole-image cosines, each (n, C)."""
    best = np.zeros((len(P), len(text)), np.float32)
    whole = np.zeros_like(best)
    for s in range(0, len(P), chunk):
        emb = enc.conse(P[s : s + chunk], I[s : s + chunk])
        sims = emb @ text.T
        best[s : s + chunk], whole[s : s + chunk] = sims.max(1), sims[:, 0]
    return best, whole


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--student", action="store_true", help="also fit the ground-truth student proxy (encodes train too)")
    ap.add_argument("--cache", type=Path, default=None, help="npz cache of conse-effnet top-k outputs")
    args = ap.parse_args()
    info = machine()
    ids, classes, y, split = read_labels()
    val = np.flatnonzero(split == "val")
    cols = [(c, j) for j, c in enumerate(classes) if y[val, j].sum() >= MIN_POS]
    skipped = [c for c in classes if c not in dict(cols)]
    prompts = [f"a photo of a {c}" for c, _ in cols]
    res = {"machine": info, "n_val": int(len(val)), "classes": [c for c, _ in cols], "skipped_classes": skipped,
           "min_val_positives": MIN_POS, "encoders": {}}

    from inficond.encoders.conse_effnet import ConseEffnetEncoder

    enc = ConseEffnetEncoder(person_cue=False)  # this script feeds cached top-k only; faces: bench_grounding.py
    use = np.arange(len(ids)) if args.student else val
    P, I, rate = conse_topk(enc, [ids[i] for i in use], args.cache)
    where = {int(i): k for k, i in enumerate(use)}
    vrows = [where[int(i)] for i in val]
    best, whole = conse_scores(enc, P[vrows], I[vrows], enc.encode_text(prompts))
    words, _ = best, whole
    plain_best, _ = conse_scores(enc, P[vrows], I[vrows], enc.encode_text([c for c, _ in cols]))
    r = {"identity": enc.identity(), "encode_img_per_s": rate,
         "max_region": mean_ap(y[val], best, cols), "whole_image": mean_ap(y[val], whole, cols),
         "max_region_plain_word": mean_ap(y[val], plain_best, cols)}
    if args.student:
        from sklearn.linear_model import LogisticRegression

        from inficond.concepts.corpus import default_corpus

        text = enc.encode_text([w.text for w in default_corpus()])
        V, _ = conse_scores(enc, P, I, text)
        tr = np.array([where[int(i)] for i in np.flatnonzero(split == "train")])
        mu, sd = V[tr].mean(0), V[tr].std(0) + 1e-6
        X = (V - mu) / sd
        st = np.zeros((len(vrows), len(cols)), np.float32)
        for k, (c, j) in enumerate(cols):
            m = LogisticRegression(C=0.05, max_iter=3000).fit(X[tr], y[use[tr], j])
            st[:, k] = m.decision_function(X[vrows])
        r["student_proxy"] = mean_ap(y[val], st, cols)
        r["student_proxy_note"] = "L2 logistic regression (C=0.05) on 600 standardised concept vectors, fit to ground truth on train"
    res["encoders"]["conse-effnet"] = r

    import open_clip
    import torch
    from open_clip.model import CLIPTextCfg, CLIPVisionCfg

    from inficond.encoders.open_clip_encoder import OpenClipEncoder

    torch.manual_seed(0)
    tiny = open_clip.model.CLIP(
        embed_dim=32, vision_cfg=CLIPVisionCfg(layers=2, width=64, head_width=32, patch_size=8, image_size=32),
        text_cfg=CLIPTextCfg(context_length=16, vocab_size=49408, width=32, heads=2, layers=2),
    )
    oc = OpenClipEncoder("tiny-random", model=tiny, template="{}")
    t = time.perf_counter()
    regs = oc.encode_regions(load([ids[i] for i in val]))
    rate = len(val) / (time.perf_counter() - t)
    text = oc.encode_text(prompts)
    sims = [rg.embeddings @ text.T for rg in regs]
    res["encoders"]["open_clip (tiny, random weights)"] = {
        "identity": oc.identity(), "encode_img_per_s": rate,
        "max_region": mean_ap(y[val], np.stack([s.max(0) for s in sims]), cols),
        "whole_image": mean_ap(y[val], np.stack([s[0] for s in sims]), cols),
    }
    prior = {c: float(y[val, j].mean()) for c, j in cols}
    res["chance_ap"] = prior

    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "zero_shot.json").write_text(json.dumps(res, indent=2))
    names = [c for c, _ in cols]
    head = "| encoder | scoring | mAP | " + " | ".join(names) + " |"
    md = ["# Zero-shot sanity check (val split)", "",
          f"Machine: {info['nproc']} cores ({info['cpu']}), torch {info['torch_threads']} threads, "
          f"load average at start {info['loadavg_at_start'][0]:.1f}.", "",
          f"{len(val)} val images; classes with >= {MIN_POS} val positives ({len(cols)}); skipped: {', '.join(skipped)}.",
          "Text: `a photo of a {class}` (conse-effnet also with the plain class word).", "", head,
          "|" + "---|" * (len(names) + 3)]

    def line(enc_name, how, aps):
        md.append(f"| {enc_name} | {how} | {np.mean(list(aps.values())):.3f} | " + " | ".join(f"{aps[c]:.2f}" for c in names) + " |")

    for enc_name, r in res["encoders"].items():
        for how in ("max_region", "whole_image", "max_region_plain_word", "student_proxy"):
            if how in r:
                line(enc_name, how.replace("_", " "), r[how])
    line("chance (positive rate)", "-", prior)
    md += ["", "conse-effnet runs without its face cue here (person_cue=False); benchmarks/bench_grounding.py measures "
           "the full encoder."]
    md += ["", "open_clip is a tiny randomly initialised model (no weights available offline): chance level by "
           "construction; it checks the pipeline only."]
    if args.student:
        md.append(f"student proxy: {res['encoders']['conse-effnet']['student_proxy_note']}; not the teacher-distilled student.")
    (OUT / "zero_shot.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
