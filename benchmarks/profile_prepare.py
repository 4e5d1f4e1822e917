"""Where the time of one `inficond prepare` goes: imports, set-up, each stage, patches, process exit.

    .venv/bin/python benchmarks/profile_prepare.py [--limit 24] [--src PATH|--rev COMMIT] [--tag NAME]

Runs ``inficond prepare`` once in a child process (a fresh workspace, the model cache as it is)
with timers around the imports and the stages (wall time and the calling thread's CPU time), and
times the child's exit from outside (from its last line to its end). Writes
``benchmarks/results/prepare_profile_<tag>.md`` and ``.json``. Stage tasks run on the pipeline's
threads, so their wall times overlap: read the timeline, not the sum.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_line  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"

# (module, attribute) pairs wrapped with timers in the child; missing ones are skipped, so an
# older commit's code can be profiled too.
STAGES = [
    ("inficond.prepare", "load_dataset"), ("inficond.prepare", "concept_text"),
    ("inficond.prepare", "_finish_teacher"), ("inficond.prepare", "decode_batch"), ("inficond.prepare", "write_batch"),
    ("inficond.prepare", "_run_batches_locally"), ("inficond.encoders.base", "create_encoder"),
    ("inficond.teachers", "create_teacher"), ("inficond.concepts", "build_patches"),
    ("inficond.prepare:BatchStages", "load"), ("inficond.prepare:BatchStages", "teacher"),
    ("inficond.prepare:BatchStages", "assemble"), ("inficond.prepare:BatchStages", "segments"),
    ("inficond.encoders.conse_effnet:ConseEffnetEncoder", "network_outputs"),
    ("inficond.encoders.conse_effnet:ConseEffnetEncoder", "person_scores"),
    ("inficond.encoders.conse_effnet:ConseEffnetEncoder", "embed"),
    ("inficond.encoders.person:FaceDetector", "__init__"),
]

CHILD = r"""
import importlib, json, sys, threading, time
T0 = time.perf_counter()
EV = []

def timed(f, name):
    def g(*a, **k):
        t, c = time.perf_counter(), time.thread_time()
        try:
            return f(*a, **k)
        finally:
            EV.append((name, threading.current_thread().name, t - T0, time.perf_counter() - T0, time.thread_time() - c))
    return g

t = time.perf_counter()
import inficond.cli as cli, inficond.prepare
EV.append(("import inficond.cli, inficond.prepare", "MainThread", t - T0, time.perf_counter() - T0, 0.0))
for spec, attr in json.loads(sys.argv[1]):
    mod, _, cls = spec.partition(":")
    try:
        obj = importlib.import_module(mod)
        obj = getattr(obj, cls) if cls else obj
        setattr(obj, attr, timed(getattr(obj, attr), f"{cls or mod.rsplit('.', 1)[-1]}.{attr}"))
    except (ImportError, AttributeError):
        pass
try:
    cli.main(sys.argv[2:])
finally:
    import os
    print("PROFILE " + json.dumps({"events": EV, "in_process": time.perf_counter() - T0, "cpu": sum(os.times()[:2]),
                                   "modules": {m: m in sys.modules for m in ("torch", "torchvision", "sklearn", "sentence_transformers")},
                                   "end": time.time()}), flush=True)
"""


def profile(src: Path, data: str, out: Path, limit: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(src))
    args = ["prepare", "--data", data, "--out", str(out), "--limit", str(limit)]
    load = os.getloadavg()[0]
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(STAGES), *args], env=env, capture_output=True, text=True)
    wall, end = time.perf_counter() - t, time.time()
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    rep = json.loads(next(line[8:] for line in proc.stdout.splitlines() if line.startswith("PROFILE ")))
    rep.update(wall=wall, exit=end - rep.pop("end"), load_before=load, load_after=os.getloadavg()[0])
    return rep


def report(rep: dict, label: str) -> list[str]:
    agg: dict[str, list] = {}
    for name, _, s, e, c in rep["events"]:
        a = agg.setdefault(name, [0, 0.0, 0.0, s, e])
        a[0] += 1
        a[1] += e - s
        a[2] += c
        a[3], a[4] = min(a[3], s), max(a[4], e)
    lines = [f"**{label}**: whole process {rep['wall']:.2f} s (in the process {rep['in_process']:.2f} s, exit "
             f"{rep['exit']:.2f} s, interpreter start and the rest {rep['wall'] - rep['in_process'] - rep['exit']:.2f} s); "
             f"CPU {rep['cpu']:.1f} s; 1-min load {rep['load_before']:.1f} → {rep['load_after']:.1f}; imported: "
             + ", ".join(k for k, v in rep["modules"].items() if v), "",
             "| step | calls | first start (s) | last end (s) | wall, summed (s) | its thread's CPU (s) |", "|---|---|---|---|---|---|"]
    for name, (n, w, c, s, e) in sorted(agg.items(), key=lambda kv: kv[1][3]):
        lines.append(f"| {name} | {n} | {s:.2f} | {e:.2f} | {w:.2f} | {c:.2f} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "voc2012-subset"))
    ap.add_argument("--limit", type=int, default=24)
    ap.add_argument("--rev", action="append", default=[],
                    help="commit to profile (repeatable; its src/ is extracted); default: this checkout's src/")
    ap.add_argument("--tag", default=None)
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="profile-prepare-"))
    try:
        trees = []
        for rev in a.rev or ["."]:
            if rev == ".":
                trees.append((rev, ROOT / "src"))
                continue
            into = tmp / f"src-{rev[:10]}"
            into.mkdir()
            archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "src"], check=True, capture_output=True).stdout
            subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
            trees.append((rev, into / "src"))
        lines = [f"`benchmarks/profile_prepare.py --limit {a.limit}" + "".join(f" --rev {r[:10]}" for r, _ in trees)
                 + "`, one run each, the model cache warm.", "", f"Machine: {machine_line()}.", ""]
        reps = {}
        for rev, src in trees:
            reps[rev] = profile(src, a.data, tmp / f"ws-{rev[:10]}", a.limit)
            lines += report(reps[rev], f"code {rev[:10]}") + [""]
            shutil.rmtree(tmp / f"ws-{rev[:10]}", ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    tag = a.tag or f"limit{a.limit}"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"prepare_profile_{tag}.md").write_text("\n".join(lines) + "\n")
    (RESULTS / f"prepare_profile_{tag}.json").write_text(json.dumps({"machine": machine_line(), "runs": reps}, indent=2))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
