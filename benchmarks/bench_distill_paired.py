"""Paired benchmark: the whole ``inficond distill`` command at two commits, on the same machine, alternating.

Each commit's ``src/`` is exported with ``git archive`` to a temporary folder, the workspace is copied
once (distill writes its provenance log), and the command runs in a fresh process per run, the two
commits alternating (before, after, before, after, ...) so that a change of the machine's load hits
both alike. Reported: the wall time of each process (what a user waits for: start-up, loading the
workspace, the λ search, the fit, recording the state), its CPU time (user + system; on a shared
machine the wall time also counts waiting for a core, the CPU time does not) and the command's own
``seconds``.

Usage::

    python benchmarks/bench_distill_paired.py --workspace workspaces/dev --before 65e778a --after HEAD --pairs 2
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_line  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def export_src(rev: str, dest: Path) -> Path:
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev, "src"], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest / "src"


def run_distill(src: Path, ws: Path, extra: list[str]) -> tuple[float, float, float]:
    code = (f"import sys; sys.path.insert(0, {str(src)!r}); import inficond; "
            f"assert inficond.__file__.startswith({str(src)!r}), inficond.__file__; "
            f"from inficond.cli import main; sys.argv = ['inficond', 'distill', {str(ws)!r}, *{extra!r}]; "
            "sys.exit(main())")
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(src)})
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
    if p.returncode:
        raise RuntimeError(f"distill failed at {src}:\n{p.stdout}\n{p.stderr}")
    secs = next((float(line.split(":")[1].strip().rstrip(",")) for line in p.stdout.splitlines()
                 if line.strip().startswith('"seconds"')), float("nan"))
    return wall, secs, cpu


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workspace", required=True)
    ap.add_argument("--before", required=True, help="git revision of the baseline")
    ap.add_argument("--after", default="HEAD")
    ap.add_argument("--pairs", type=int, default=2)
    ap.add_argument("--max-concepts", type=int, help="passed to distill (default: the command's default)")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "distill_paired.json"))
    a = ap.parse_args(argv)
    extra = [] if a.max_concepts is None else ["--max-concepts", str(a.max_concepts)]
    with tempfile.TemporaryDirectory(prefix="inficond-paired-") as tmp:
        tmp = Path(tmp)
        trees = {f"before ({a.before})": export_src(a.before, tmp / "before"),
                 f"after ({a.after})": export_src(a.after, tmp / "after")}
        ws = tmp / "ws"
        shutil.copytree(a.workspace, ws)
        load0 = os.getloadavg()
        res: dict[str, list] = {k: [] for k in trees}
        for i in range(a.pairs):
            for name, src in trees.items():
                wall, secs, cpu = run_distill(src, ws, extra)
                res[name].append({"wall_s": wall, "command_seconds": secs, "process_cpu_s": cpu})
                print(f"pair {i + 1}: {name}: process {wall:.2f} s ({cpu:.2f} s CPU), distill {secs:.2f} s", flush=True)
    (b, rb), (f, rf) = res.items()
    ratios = [y["wall_s"] / x["wall_s"] for x, y in zip(rb, rf)]
    cpu_ratios = [y["process_cpu_s"] / x["process_cpu_s"] for x, y in zip(rb, rf)]
    out = {"machine": machine_line(), "load_average_at_start": load0, "load_average_at_end": os.getloadavg(),
           "workspace": a.workspace, "runs": res, "after_over_before_wall_per_pair": ratios,
           "after_over_before_cpu_per_pair": cpu_ratios}
    Path(a.out).write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
