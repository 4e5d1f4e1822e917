"""Whole `prepare` of the development data (encoder + teacher + mapping + segments + patches).

Target: at least 15 images/s over the 3,576 images on the 2-core machine.
Writes benchmarks/results/prepare.md.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_line  # noqa: E402

from inficond.prepare import prepare  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "voc2012-subset"))
    ap.add_argument("--out", help="workspace folder (default: a temporary one, removed afterwards)")
    ap.add_argument("--limit", type=int)
    a = ap.parse_args()
    tmp = None
    out = Path(a.out) if a.out else Path(tempfile.mkdtemp()) / "ws"
    if not a.out:
        tmp = out.parent
    t0 = time.perf_counter()
    rep = prepare(a.data, out, limit=a.limit)
    wall = time.perf_counter() - t0
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    d = rep.to_dict()
    lines = [
        "## Prepare throughput (whole pipeline)",
        "",
        f"Machine: {machine_line()}",
        "",
        "| images processed | wall time (s) | images/s | peak RSS (MiB) | concepts | corrupt |",
        "|---|---|---|---|---|---|",
        f"| {d['n_processed_now']} | {wall:.1f} | {d['n_processed_now'] / wall:.1f} | {peak_mib:.0f} | {d['n_concepts']} | {d['n_corrupt']} |",
        "",
        "Includes model loading, the teacher head fit, segments and patch crops; target ≥ 15 images/s.",
    ]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "prepare.md").write_text("\n".join(lines) + "\n")
    (RESULTS / "prepare.json").write_text(json.dumps({**d, "wall": wall, "peak_rss_mib": peak_mib}, indent=2, default=str))
    print("\n".join(lines))
    if tmp:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
