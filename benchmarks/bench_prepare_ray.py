"""`prepare` on Ray Data with 1 and 2 workers against the local loop, in one run on the same slice.

Every contender starts from the same seed workspace (dataset recorded, concept words encoded,
no image done), so each timed run is the image work itself: model loading, decode, regions,
concept vectors, teacher features, segments, then the teacher head fit and the patches. The
Ray runs share one local Ray instance started beforehand (its start-up is timed apart). The
arrays of every run are checked to be bit-identical to the local loop's.

Writes benchmarks/results/prepare_ray.md and .json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_line  # noqa: E402

from inficond.prepare import prepare  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def seed_workspace(data: str, out: Path, limit: int) -> None:
    """A workspace with everything before the image loop done (the concept text is the slow part)."""
    from inficond.concepts import default_corpus
    from inficond.data import load_dataset
    from inficond.encoders.base import create_encoder
    from inficond.store.workspace import Workspace

    ws = Workspace(out, create=True)
    ws.add_dataset(load_dataset(data).limit(limit))
    words = default_corpus()
    ws.add_concepts([w.word for w in words], [w.prompt for w in words], source="default")
    text = create_encoder("conse-effnet").encode_text([w.prompt or w.word for w in words])
    ws.save_array("concept_text", text.astype(np.float32))


def same_arrays(a: Path, b: Path) -> bool:
    names = sorted(p.name for p in (a / "arrays").glob("*.npy"))
    return names == sorted(p.name for p in (b / "arrays").glob("*.npy")) and all(
        np.array_equal(np.load(a / "arrays" / n), np.load(b / "arrays" / n)) for n in names)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "voc2012-subset"))
    ap.add_argument("--limit", type=int, default=32, help="first N images of each split (default 32: 96 images)")
    ap.add_argument("--batch-size", type=int, default=8, help="images per batch (a unit of work for a worker)")
    ap.add_argument("--rounds", type=int, default=2, help="interleaved rounds of the three runs")
    ap.add_argument("--note", default="", help="a line about the machine's state, added to the results")
    a = ap.parse_args()
    import ray

    tmp = Path(tempfile.mkdtemp())
    try:
        seed = tmp / "seed"
        seed_workspace(a.data, seed, a.limit)
        load_before = os.getloadavg()
        runs = []

        def run(name: str, rnd: int, **kw) -> None:
            out = tmp / f"{name}-{rnd}"
            shutil.copytree(seed, out)
            t0 = time.perf_counter()
            rep = prepare(a.data, out, limit=a.limit, batch_size=a.batch_size, progress=False, **kw)
            wall = time.perf_counter() - t0
            runs.append({"name": name, "round": rnd, "images": rep.n_processed_now, "wall_s": round(wall, 2),
                         "encode_s": rep.encode_seconds, "load_1min": round(os.getloadavg()[0], 1),
                         "identical_to_local": None if name == "local" else same_arrays(tmp / "local-0", out)})
            print(runs[-1], flush=True)
            if (name, rnd) != ("local", 0):
                shutil.rmtree(out)

        t0 = time.perf_counter()
        ray.init(num_cpus=len(os.sched_getaffinity(0)), include_dashboard=False, log_to_driver=False)
        ray_start = time.perf_counter() - t0
        contenders = [("local", {}), ("ray-1-worker", {"ray": "local", "ray_workers": 1}),
                      ("ray-2-workers", {"ray": "local", "ray_workers": 2})]
        for rnd in range(a.rounds):  # interleaved, every other round reversed: the load drifts
            order = contenders if rnd % 2 == 0 else contenders[::-1]
            if rnd == 0:
                order = contenders  # local first: the reference arrays
            for name, kw in order:
                run(name, rnd, **kw)
        ray.shutdown()
        load_after = os.getloadavg()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    med = {name: {k: float(np.median([r[k] for r in runs if r["name"] == name])) for k in ("wall_s", "encode_s")}
           for name, _ in contenders}
    base = med["local"]
    n_img = runs[0]["images"]
    lines = [
        "## Prepare on Ray",
        "",
        f"Machine: {machine_line()}",
        f"Load average (1, 5, 15 min) before: {', '.join(f'{x:.1f}' for x in load_before)}; "
        f"after: {', '.join(f'{x:.1f}' for x in load_after)}. {a.note}".rstrip(),
        "",
        f"`prepare` of {n_img} images (`--limit {a.limit}`, `--batch-size {a.batch_size}`), each run from the same "
        f"seed workspace (concept words already encoded); {a.rounds} interleaved round(s), medians shown. A local "
        f"Ray instance with {len(os.sched_getaffinity(0))} CPUs was started once beforehand in {ray_start:.1f} s "
        "(not in the times below). *Images* is the batch loop alone (for Ray: the actors' start, their model "
        "loading and the batches); *whole* adds loading the driver's models, the teacher head fit and the patches.",
        "",
        "| run | whole (s) | images (s) | images/s (images phase) | speed vs local (whole / images) | arrays identical to local |",
        "|---|---|---|---|---|---|",
    ]
    for name, _ in contenders:
        m = med[name]
        same = [r["identical_to_local"] for r in runs if r["name"] == name]
        same = "—" if name == "local" else ("yes" if all(same) else "**no**")
        lines.append(f"| {name} | {m['wall_s']:.1f} | {m['encode_s']:.1f} | {n_img / m['encode_s']:.2f} | "
                     f"{base['wall_s'] / m['wall_s']:.2f} × / {base['encode_s'] / m['encode_s']:.2f} × | {same} |")
    lines += ["", "Every run (whole s / images s / 1-min load after): " + "; ".join(
        f"{r['name']} r{r['round']}: {r['wall_s']:.0f} / {r['encode_s']:.0f} / {r['load_1min']}" for r in runs)]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "prepare_ray.md").write_text("\n".join(lines) + "\n")
    (RESULTS / "prepare_ray.json").write_text(json.dumps(
        {"machine": machine_line(), "limit": a.limit, "batch_size": a.batch_size, "ray_start_s": ray_start,
         "median": med,
         "load_before": load_before, "load_after": load_after, "runs": runs}, indent=2))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
