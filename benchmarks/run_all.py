"""Run every benchmark script and gather benchmarks/results/*.md into benchmarks/results/ALL.md.

BENCHMARKS.md is written by hand from these results (paired tables, what limits each figure), so a
run never overwrites it: compare ALL.md with it and update the sections whose figures moved.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = ["prepare", "encoder_throughput", "zero_shot", "distill", "distill_100", "quality", "whatif", "tuning_scenario", "shortcut", "paper_votes", "vote_options",
         "server"]


def gather(results: Path = HERE / "results", out: Path | None = None) -> Path:
    """Every ``results/*.md`` (but ``out``) in ``ORDER``, the others after by name, as one file."""
    out = results / "ALL.md" if out is None else out
    parts = ["# Benchmark results, as the scripts wrote them", "",
             "Gathered by `benchmarks/run_all.py`; BENCHMARKS.md quotes them with the analysis.", ""]
    files = sorted((p for p in results.glob("*.md") if p != out),
                   key=lambda p: (ORDER.index(p.stem) if p.stem in ORDER else 99, p.stem))
    for p in files:
        text = p.read_text().strip()
        if text.startswith("# "):  # a result file is one section: demote all its headings a level
            text = "\n".join("#" + line if line.startswith("#") else line for line in text.splitlines())
        parts += [text, ""]
    out.write_text("\n".join(parts))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data")
    ap.add_argument("--gather-only", action="store_true")
    ap.add_argument("--workspace", default="workspaces/dev")
    a = ap.parse_args()
    if not a.gather_only:
        env = dict(os.environ, **({"INFICOND_DATA": a.data} if a.data else {}))
        ws = ["--workspace", a.workspace]
        runs = [  # quiet-machine order: the whole prepare first, then what reads its workspace
            ["bench_prepare.py", *(["--data", a.data] if a.data else [])],
            ["bench_encoder_throughput.py"],
            ["bench_zero_shot.py"],
            ["bench_distill.py", *ws],
            ["bench_distill.py", *ws, "--max-concepts", "100", "--out", str(HERE / "results" / "distill_100.md")],
            ["bench_quality.py", *ws],
            ["bench_whatif.py", *ws],
            ["bench_tuning_scenario.py", *ws],
            ["bench_shortcut.py", *ws],
            ["bench_paper_votes.py", *ws],
            ["bench_vote_options.py"],  # reads the two results above
            ["bench_server.py", *ws],
        ]
        for script, *args in runs:
            print(f"== {script} {' '.join(args)}", flush=True)
            subprocess.run([sys.executable, str(HERE / script), *args], check=True, env=env)
    print(f"gathered into {gather()}")


if __name__ == "__main__":
    main()
