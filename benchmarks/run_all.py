"""Run every benchmark script and gather benchmarks/results/*.md into BENCHMARKS.md."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = ["prepare", "encoder_throughput", "zero_shot", "distill", "whatif", "server"]


def gather() -> None:
    parts = ["# Benchmarks", "",
             "Every figure below is written by a script in `benchmarks/` (`make bench` runs them all);",
             "each section names the machine it ran on. Timings are wall-clock on a shared 2-core VM.", ""]
    results = sorted((HERE / "results").glob("*.md"), key=lambda p: (ORDER.index(p.stem) if p.stem in ORDER else 99, p.stem))
    for p in results:
        parts += [p.read_text().strip(), ""]
    (HERE.parent / "BENCHMARKS.md").write_text("\n".join(parts))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data")
    ap.add_argument("--gather-only", action="store_true")
    ap.add_argument("--workspace", default="workspaces/dev")
    a = ap.parse_args()
    if not a.gather_only:
        extra = ["--data", a.data] if a.data else []
        for script in sorted(HERE.glob("bench_*.py")):
            args = extra if script.stem in ("bench_prepare", "bench_encoder_throughput", "bench_zero_shot") else ["--workspace", a.workspace]
            print(f"== {script.name}", flush=True)
            subprocess.run([sys.executable, str(script), *args], check=True)
    gather()


if __name__ == "__main__":
    main()
