"""Whole `inficond prepare`, paired: a base commit's code against this checkout's, same images, same run.

    .venv/bin/python benchmarks/bench_prepare.py [--base COMMIT] [--limit 100] [--rounds 2] [--cache warm|cold]

Contenders, each a fresh ``python -m inficond.cli prepare`` process writing a fresh workspace:

* ``base``: the code of ``--base`` (``git archive`` of its ``src/`` into a temporary folder, first
  on ``PYTHONPATH``);
* ``new``: this checkout's code (the local pipeline), or with ``--new COMMIT`` that commit's
  (extracted like the base, so other uncommitted work stays out of the figure);
* ``plain``: this checkout's code with the batch loop replaced by a plain per-image loop (decode
  one image, run every stage on it, write it; the models on all cores), the baseline the issue
  asks for.

Rounds are interleaved (base, new, plain, then reversed) so load changes on a shared machine hit
every contender alike; the medians are reported, and every run with its load average. Every
workspace's arrays, segments, patch rows and patch files are checked to be identical to the first run's.

``--cache warm``: the model cache (``$INFICOND_CACHE``, ONNX exports, MiniLM embeddings, the
concept text) is filled by one untimed run of each contender first, as after a first ``prepare``.
``--cache cold``: every timed run gets an empty cache folder (first use on a new machine: ONNX
exports and MiniLM embeddings are computed in the run).

Writes ``benchmarks/results/prepare_<tag>.md`` and ``.json`` (tag: ``--tag``, default from the
limit and the cache).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_line  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
#: the last commit before the threaded local pipeline and the model-loading caches (the baseline
#: of the figures in BENCHMARKS.md, "Prepare throughput")
BEFORE_PIPELINE = "8e824f8e44bc41a5055fb98f29bfdfbb7a9cbdd2"

# The plain per-image loop, run in a child process on this checkout's code: the pipeline driver
# is swapped for a loop that decodes one image and runs every stage on it before the next.
PLAIN = r"""
import sys
import inficond.prepare as P
from inficond.cli import main

def plain_loop(stages, batches, paths, ids, write, workers=1, depth=1):
    done = 0
    for batch in batches:
        for i in batch:
            imgs, ok, bad = P.decode_batch(paths, [i])
            done += write(ok, bad, stages.run(imgs, [ids[j] for j in ok]) if ok else None)
    return done

P._run_batches_locally = plain_loop
P.pipeline_threads = lambda cpus=None: (1, len(P.os.sched_getaffinity(0)))
sys.argv = ["inficond"] + sys.argv[1:]
main()
"""


def base_tree(commit: str, into: Path) -> Path:
    """``src/`` of ``commit`` extracted under ``into`` (the repository itself is not touched)."""
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit, "src"], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into / "src"


def run_prepare(kind: str, src: Path, data: str, out: Path, limit: int, cache: Path | None) -> dict:
    env = dict(os.environ, PYTHONPATH=str(src))
    if cache is not None:
        env["INFICOND_CACHE"] = str(cache)
    args = ["prepare", "--data", data, "--out", str(out), "--limit", str(limit)]
    cmd = [sys.executable, "-c", PLAIN, *args] if kind == "plain" else [sys.executable, "-m", "inficond.cli", *args]
    load = os.getloadavg()[0]
    cpu0 = os.times()
    t = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    cpu1 = os.times()
    cpu = (cpu1.children_user - cpu0.children_user) + (cpu1.children_system - cpu0.children_system)
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} prepare failed:\n{proc.stderr[-3000:]}")
    from inficond.store.workspace import Workspace

    rep = Workspace(out).get_meta("prepare_report")
    return {"kind": kind, "wall": wall, "cpu": cpu, "images": rep["n_processed_now"], "encode_seconds": rep.get("encode_seconds"),
            "load_before": load, "load_after": os.getloadavg()[0]}


def same_workspace(a: Path, b: Path) -> bool:
    import sqlite3

    names = sorted(p.name for p in (a / "arrays").glob("*.npy"))
    if names != sorted(p.name for p in (b / "arrays").glob("*.npy")):
        return False
    if not all(np.array_equal(np.load(a / "arrays" / n), np.load(b / "arrays" / n)) for n in names):
        return False
    rows = []
    for ws in (a, b):
        with sqlite3.connect(ws / "workspace.sqlite") as db:
            rows.append([db.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall() for t in ("segments", "patches")])
    if rows[0] != rows[1]:
        return False
    files = [sorted((ws / "patches").iterdir()) for ws in (a, b)]  # the patch JPEGs, byte for byte
    return [f.name for f in files[0]] == [f.name for f in files[1]] and all(
        x.read_bytes() == y.read_bytes() for x, y in zip(*files))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "voc2012-subset"))
    ap.add_argument("--base", default=BEFORE_PIPELINE,
                    help="commit whose code is the baseline (default: the last one before the local pipeline)")
    ap.add_argument("--new", default=".",
                    help="commit whose code is 'new' and 'plain' ('.' = this checkout's src/, uncommitted work included)")
    ap.add_argument("--limit", type=int, default=100, help="first N images of each split (default 100: 300 images)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--cache", choices=("warm", "cold"), default="warm")
    ap.add_argument("--contenders", default="base,new,plain")
    ap.add_argument("--tag", help="results file name part (default: limit and cache)")
    ap.add_argument("--note", default="", help="a line about the machine's state, added to the results")
    a = ap.parse_args()
    kinds = a.contenders.split(",")
    tag = a.tag or f"limit{a.limit}_{a.cache}"
    tmp = Path(tempfile.mkdtemp(prefix="bench-prepare-"))
    try:
        new = ROOT / "src" if a.new == "." else base_tree(a.new, tmp / "new")
        srcs = {"base": base_tree(a.base, tmp / "base"), "new": new, "plain": new}
        if a.cache == "warm":
            for k in kinds:  # fill the default cache as a first prepare would
                run_prepare(k, srcs[k], a.data, tmp / f"warmup-{k}", min(a.limit, 4), None)
                shutil.rmtree(tmp / f"warmup-{k}")
        runs, first = [], None
        for r in range(a.rounds):
            for k in (kinds if r % 2 == 0 else kinds[::-1]):
                out = tmp / f"ws-{k}-{r}"
                cache = tmp / f"cache-{k}-{r}" if a.cache == "cold" else None
                res = run_prepare(k, srcs[k], a.data, out, a.limit, cache)
                res["round"] = r
                res["identical_to_first"] = True if first is None else same_workspace(first, out)
                first = first or out
                runs.append(res)
                print(json.dumps(res), flush=True)
                if cache is not None:
                    shutil.rmtree(cache)
                if out != first:
                    shutil.rmtree(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    med = {k: {m: statistics.median(x[m] for x in runs if x["kind"] == k) for m in ("wall", "cpu", "encode_seconds")}
           for k in kinds}
    n = runs[0]["images"]
    ref = med.get("base", med[kinds[0]])
    lines = [f"`benchmarks/bench_prepare.py --base {a.base[:10]} --new {a.new[:10]} --limit {a.limit} --rounds {a.rounds} --cache {a.cache}`: "
             f"{n} images, {a.rounds} interleaved rounds, medians.", "",
             f"Machine: {machine_line()}." + (f" {a.note}" if a.note else ""), "",
             "| contender | whole (s) | images/s (whole) | image loop (s) | CPU (s, user + sys) | speed vs base (whole / loop) "
             "| CPU vs base | identical to the first run |",
             "|---|---|---|---|---|---|---|---|"]
    for k in kinds:
        m = med[k]
        same = all(x["identical_to_first"] for x in runs if x["kind"] == k)
        lines.append(f"| {k} | {m['wall']:.1f} | {n / m['wall']:.2f} | {m['encode_seconds']:.1f} | {m['cpu']:.0f} | "
                     f"{ref['wall'] / m['wall']:.2f} × / {ref['encode_seconds'] / m['encode_seconds']:.2f} × | "
                     f"{m['cpu'] / ref['cpu']:.2f} | {'yes' if same else 'NO'} |")
    lines += ["", "Every run (whole s / loop s / CPU s / 1-min load before → after): " + "; ".join(
        f"{x['kind']} {x['wall']:.1f} / {x['encode_seconds']:.1f} / {x['cpu']:.0f} / {x['load_before']:.1f} → "
        f"{x['load_after']:.1f}" for x in runs)]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"prepare_{tag}.md").write_text("\n".join(lines) + "\n")
    (RESULTS / f"prepare_{tag}.json").write_text(json.dumps(
        {"base": a.base, "new": a.new, "limit": a.limit, "cache": a.cache, "machine": machine_line(), "note": a.note,
         "median": med, "runs": runs}, indent=2))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
