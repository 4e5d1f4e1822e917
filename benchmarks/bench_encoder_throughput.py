"""Encoder throughput on the dev photos: every contender on the same images, interleaved rounds.

    .venv/bin/python benchmarks/bench_encoder_throughput.py [--n 48] [--rounds 2] [--int8]

Contenders (``encode_regions`` end to end unless stated; images decoded before timing):

* per-image loop and batched, PyTorch eager and onnxruntime (the models on all cores);
* ``prepare``'s split: the network (one onnxruntime thread) and the face detector (one torch
  thread) as two tasks side by side, image by image, the way the local pipeline runs them;
* the face detector alone, with facenet-pytorch's max pools and with ours (channels-last), and a
  check that their detections are bit-identical;
* with ``--int8``: the encoder's network and the teacher's backbone quantised to int8 by
  onnxruntime (static, QDQ, per-channel weights, calibrated on train photos), timed against the
  float models on one thread, with how far their outputs move.

Each contender runs once per round, rounds interleaved (forward, then reversed), and the median
is reported, so load changes on a shared machine hit every contender alike. Writes
``benchmarks/results/encoder_throughput.{md,json}``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_line  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
VOC = Path(os.environ.get("INFICOND_DATA", ROOT.parent / "shared" / "data" / "voc2012-subset"))
OUT = ROOT / "benchmarks" / "results"


def timed(fn, *args):
    t = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t


def plain_pools(detector) -> None:
    """facenet-pytorch's own MaxPool2d layers back in a FaceDetector (the baseline)."""
    for net in (detector._mtcnn.pnet, detector._mtcnn.rnet, detector._mtcnn.onet):
        for name, child in list(net.named_children()):
            if hasattr(child, "pool"):
                setattr(net, name, child.pool)


def int8_section(n_cal: int, images: list[Image.Image], rounds: int) -> dict:
    """Quantise both networks (calibrated on ``n_cal`` train photos), time them against float on one
    thread, and measure how far their outputs move on ``images``."""
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from inficond.data import load_dataset
    from inficond.data.images import load_image
    from inficond.encoders.conse_effnet import ConseEffnetEncoder
    from inficond.teachers.effnet import EffNetTeacher
    from inficond.teachers.torch_teacher import pil_to_batch

    ds = load_dataset(VOC)
    train = ds.indices("train")
    cal_idx = sorted(np.random.default_rng(0).choice(train, n_cal, replace=False))
    cal = [load_image(ds.paths[i], max_side=1024) for i in cal_idx]
    enc = ConseEffnetEncoder(num_threads=1)
    enc.load_models()
    teacher = EffNetTeacher(["x"], n_threads=1)
    teacher.load_models()
    nets = {"encoder network (EfficientNet-Lite0, 448 px)": (enc._onnx_path(), "pixels", enc.pixels, 1),
            "teacher backbone (EfficientNet-Lite2, 384 px)": (teacher.onnx_path(), "x",
                                                             lambda ims: pil_to_batch(ims, teacher.image_size), 8)}

    class Reader(CalibrationDataReader):
        def __init__(self, name, arr):
            self.it = iter([{name: arr[i : i + 1]} for i in range(len(arr))])

        def get_next(self):
            return next(self.it, None)

    def session(path):
        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads = 1, 1
        return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])

    out = {}
    tmp = Path(tempfile.mkdtemp(prefix="int8-"))
    for label, (path, name, prep, batch) in nets.items():
        pre, q = tmp / "pre.onnx", tmp / f"{name}-int8.onnx"
        quant_pre_process(str(path), str(pre))
        quantize_static(str(pre), str(q), Reader(name, prep(cal)), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, op_types_to_quantize=["Conv"])
        x = prep(images)
        sess = {"float32": session(path), "int8": session(q)}
        times, res = {k: [] for k in sess}, {}
        for r in range(rounds):
            for k in (list(sess) if r % 2 == 0 else list(sess)[::-1]):
                sess[k].run(None, {name: x[:batch]})
                t = time.perf_counter()
                res[k] = [sess[k].run(None, {name: x[i : i + batch]}) for i in range(0, len(x), batch)]
                times[k].append((time.perf_counter() - t) / len(x) * 1000)
        row = {k: statistics.median(v) for k, v in times.items()}
        a = np.concatenate([o[0] for o in res["float32"]])
        b = np.concatenate([o[0] for o in res["int8"]])
        if name == "pixels":  # top-k probabilities and ids: agreement of the top class, region embeddings' cosine
            ia = np.concatenate([o[1] for o in res["float32"]])
            ib = np.concatenate([o[1] for o in res["int8"]])
            ea, eb = enc.conse(a, ia), enc.conse(b, ib)
            row["quality"] = (f"top-1 ImageNet class of a region unchanged for {100 * (ia[..., 0] == ib[..., 0]).mean():.0f}%; "
                              f"region embeddings' cosine to the float ones: mean {(ea * eb).sum(-1).mean():.3f}, "
                              f"min {(ea * eb).sum(-1).min():.3f}")
        else:
            row["quality"] = (f"features' correlation with the float ones {np.corrcoef(a.ravel(), b.ravel())[0, 1]:.3f}, "
                              f"mean relative error {np.abs(a - b).mean() / np.abs(a).mean():.2f}")
        out[label] = row
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=48, help="images, the same for every contender")
    ap.add_argument("--batch", type=int, default=16, help="batch size of the batched contenders")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--int8", action="store_true", help="also quantise both networks and compare (slow: ~1 min)")
    ap.add_argument("--int8-calibration", type=int, default=64, help="train photos for the int8 calibration")
    args = ap.parse_args()
    import torch

    from inficond.concepts.mapping import map_concepts
    from inficond.encoders.conse_effnet import ConseEffnetEncoder

    load_start = os.getloadavg()
    with open(VOC / "labels.csv") as f:
        ids = [r["image"] for r in csv.DictReader(f)][: args.n]
    images, t_decode = timed(lambda: [Image.open(VOC / "images" / f"{i}.jpg").convert("RGB") for i in ids])
    threads = torch.get_num_threads()

    ort_all, t_init = timed(lambda: ConseEffnetEncoder())
    _, t_load = timed(ort_all.load_models)
    ort_batched = ConseEffnetEncoder(batch_size=args.batch)
    eager = ConseEffnetEncoder(backend="torch")
    eager_batched = ConseEffnetEncoder(backend="torch", batch_size=args.batch)
    net1 = ConseEffnetEncoder(num_threads=1)  # prepare's split: one thread per task
    faces_fast = ConseEffnetEncoder()._face_detector()
    faces_plain = ConseEffnetEncoder()._face_detector()
    plain_pools(faces_plain)
    for e in (ort_all, ort_batched, eager, eager_batched, net1):
        e.encode_regions(images[:2])  # sessions, exports, first-call costs

    split_pool = ThreadPoolExecutor(max_workers=2)

    def split(ims):
        # prepare's pipeline for the encoder alone: network and faces of each image as two tasks
        out = []
        with_threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            for im in ims:
                net = split_pool.submit(net1.network_outputs, [im])
                person = split_pool.submit(net1.person_scores, [im])
                out.extend(net1.embed(net.result(), person.result()))
        finally:
            torch.set_num_threads(with_threads)
        return out

    contenders = {
        "per-image loop, PyTorch eager (the plain loop)": lambda: [eager.encode_regions([im]) for im in images],
        f"batched (batch {args.batch}), PyTorch eager": lambda: eager_batched.encode_regions(images),
        "per-image loop, onnxruntime": lambda: [ort_all.encode_regions([im]) for im in images],
        f"batched (batch {args.batch}), onnxruntime": lambda: ort_batched.encode_regions(images),
        "prepare's split: network ‖ face detector, one thread each": lambda: split(images),
        "face detector alone, facenet-pytorch's pools": lambda: faces_plain.detect(images),
        "face detector alone, channels-last pools (ours)": lambda: faces_fast.detect(images),
    }
    times = {k: [] for k in contenders}
    outs = {}
    for r in range(args.rounds):
        for k in (list(contenders) if r % 2 == 0 else list(contenders)[::-1]):
            outs[k], t = timed(contenders[k])
            times[k].append(t)
    split_pool.shutdown()
    med = {k: statistics.median(v) for k, v in times.items()}
    faces_equal = all(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) for a, b in zip(
        outs["face detector alone, facenet-pytorch's pools"], outs["face detector alone, channels-last pools (ours)"]))
    split_equal = all(np.array_equal(a.embeddings, b[0].embeddings) for a, b in zip(
        outs["prepare's split: network ‖ face detector, one thread each"], outs["per-image loop, onnxruntime"]))

    rng = np.random.default_rng(0)
    n_full, C = 3576, 642
    reg = rng.standard_normal((n_full, ort_all.max_regions, ort_all.dim), dtype=np.float32).astype(np.float16)
    txt = rng.standard_normal((C, ort_all.dim), dtype=np.float32)
    _, t_map = timed(map_concepts, reg, np.full(n_full, ort_all.max_regions), txt)
    int8 = int8_section(args.int8_calibration, images, args.rounds) if args.int8 else None
    load_end = os.getloadavg()

    plain = med["per-image loop, PyTorch eager (the plain loop)"]
    res = {"machine": machine_line(), "torch_threads": threads, "n_images": len(images), "rounds": args.rounds,
           "times_s": times, "median_s": med, "faces_bit_identical": faces_equal, "split_bit_identical": split_equal,
           "decode_img_per_s": len(images) / t_decode, "init_s": t_init, "load_models_s": t_load,
           "map_concepts_full_s": t_map, "loadavg_start": load_start, "loadavg_end": load_end, "int8": int8}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "encoder_throughput.json").write_text(json.dumps(res, indent=2))
    md = [
        f"`benchmarks/bench_encoder_throughput.py --n {args.n} --rounds {args.rounds}{' --int8' if args.int8 else ''}`. "
        f"Machine: {machine_line()}; 1-minute load average {load_start[0]:.1f} at the start, {load_end[0]:.1f} at "
        "the end (shared machine: compare the rows, not the seconds across sections).",
        "",
        f"The same {len(images)} VOC photos for every contender, decoded beforehand ({len(images) / t_decode:.0f} "
        f"images/s on their own); EfficientNet-Lite0 at {ort_all.image_size} px, {ort_all.max_regions} regions per "
        f"image, the MTCNN face cue; {args.rounds} interleaved rounds, medians.",
        "",
        "| contender | images/s | vs the plain loop |",
        "|---|---|---|",
    ] + [f"| {k} | {len(images) / v:.2f} | {plain / v:.2f} × |" for k, v in med.items()] + [
        "",
        f"The split's embeddings equal the per-image loop's bit for bit: {'yes' if split_equal else 'NO'}. "
        f"The two face detectors' boxes and probabilities are bit-identical: {'yes' if faces_equal else 'NO'}. "
        f"Encoder start {t_init:.1f} s, loading its models {t_load:.1f} s (ONNX session and MTCNN; the ONNX "
        f"export is cached). map_concepts on (N, R, D, C) = ({n_full}, {ort_all.max_regions}, {ort_all.dim}, {C}): "
        f"{t_map:.1f} s.",
    ]
    if int8:
        md += ["", f"int8 (static QDQ quantisation by onnxruntime, per-channel int8 weights, uint8 activations, "
               f"calibrated on {args.int8_calibration} train photos), one thread, same {len(images)} photos:", "",
               "| network | float32 ms/image | int8 ms/image | speed-up | how far the outputs move |", "|---|---|---|---|---|"]
        md += [f"| {k} | {v['float32']:.1f} | {v['int8']:.1f} | {v['float32'] / v['int8']:.2f} × | {v['quality']} |"
               for k, v in int8.items()]
    (OUT / "encoder_throughput.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
