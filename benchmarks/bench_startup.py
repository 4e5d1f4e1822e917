"""Server start-up and ``inficond --help``, old commit against new, paired and interleaved.

    nice -n 10 python benchmarks/bench_startup.py --base b00fdda --new HEAD --workspace workspaces/dev --rounds 9

Times, for each code version in turn within each round (the order alternates, so a load spike
hits both sides alike):

1. ``inficond serve WS``: spawn of the process to its first 200 answer of ``/api/summary``
   (what bench_frontend.py's "server start" measures; issue 10's target is < 2 s);
2. ``inficond --help``: spawn to exit;
3. ``import inficond.server.app`` alone: spawn to exit.

Each version runs from a git worktree of its revision (``--base``, ``--new``; made in a temporary
folder, removed at the end; the front end is this checkout's build, linked in), or ``--new .``
from this checkout's ``src`` as it is; both with this checkout's virtual environment, through
``PYTHONPATH``. The workspace
is a working copy (SQLite copied, arrays hard-linked), shared by both. It also lists the heavy
packages each version's server process has imported once it has answered (scikit-learn, torch,
onnxruntime, ...), read from a probe process that builds the app as ``inficond serve`` does.

Results go to benchmarks/results/startup.md (and .json), with the load average before and after.
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

import httpx

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from bench_scale import free_port, working_copy  # noqa: E402
from machine import machine_line  # noqa: E402

HEAVY = ("sklearn", "torch", "onnxruntime", "openTSNE", "scipy.stats", "scipy.optimize", "pandas",
         "sentence_transformers", "transformers", "PIL", "tqdm", "scipy.special", "scipy")

# Run in the measured version's interpreter: build the app as `inficond serve` does, answer one
# request, then list the heavy packages that are loaded.
PROBE = """
import json, sys
from fastapi.testclient import TestClient
from inficond.server import create_app
from inficond.session import Session
app = create_app(Session(sys.argv[1]))
assert TestClient(app, base_url="http://127.0.0.1").get("/api/summary").status_code == 200
print(json.dumps([m for m in sys.argv[2:] if m in sys.modules]))
"""


def env_for(src: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(src), PYTHONDONTWRITEBYTECODE="0")
    env.pop("INFICOND_TOKEN", None)
    return env


def time_serve(src: Path, ws: Path) -> float:
    port = free_port()
    url = f"http://127.0.0.1:{port}/api/summary"
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "inficond.cli", "serve", str(ws), "--port", str(port)],
                            env=env_for(src), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"server from {src} exited: {proc.stderr.read()[-2000:]}")
            try:
                if httpx.get(url, timeout=60).status_code == 200:
                    return time.perf_counter() - t0
            except httpx.TransportError:
                time.sleep(0.02)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def time_cmd(src: Path, args: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, *args], env=env_for(src), check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def heavy_loaded(src: Path, ws: Path) -> list[str]:
    out = subprocess.run([sys.executable, "-c", PROBE, str(ws), *HEAVY], env=env_for(src), check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def worktree(rev: str, dst: Path) -> Path:
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(dst), rev], check=True,
                   capture_output=True)
    static = REPO / "src" / "inficond" / "server" / "static"
    if static.is_dir() and not (dst / "src" / "inficond" / "server" / "static").exists():
        (dst / "src" / "inficond" / "server" / "static").symlink_to(static, target_is_directory=True)
    return dst / "src"


def remove_worktrees(tmp: Path) -> None:
    """Remove the ``old``/``new`` worktrees :func:`worktree` made under ``tmp``, then ``tmp``."""
    for name in ("old", "new"):
        if (tmp / name).exists():
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tmp / name)],
                           capture_output=True)
    shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", required=True, help="git revision of the old code")
    ap.add_argument("--new", default="HEAD", help="git revision of the new code, or '.' for this checkout's src")
    ap.add_argument("--workspace", type=Path, default=REPO / "workspaces" / "dev")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "startup")
    a = ap.parse_args()
    if not (a.workspace / "workspace.sqlite").is_file():
        raise SystemExit(f"{a.workspace} is not a workspace (no workspace.sqlite)")
    base_rev = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", a.base], check=True,
                              capture_output=True, text=True).stdout.strip()
    head_rev = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD" if a.new == "." else a.new],
                              check=True, capture_output=True, text=True).stdout.strip()
    dirty = a.new == "." and bool(subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "src"],
                                                 check=True, capture_output=True, text=True).stdout.strip())
    tmp = Path(tempfile.mkdtemp(prefix="bench-startup-"))
    try:
        versions = {"old": worktree(a.base, tmp / "old"),
                    "new": REPO / "src" if a.new == "." else worktree(a.new, tmp / "new")}
        ws = working_copy(a.workspace, tmp / "ws")
        load_before = os.getloadavg()
        heavy = {name: heavy_loaded(src, ws) for name, src in versions.items()}
        for name, src in versions.items():  # one unmeasured start each: page cache and .pyc files
            time_serve(src, ws)
        tasks = {
            "serve: spawn → first /api/summary": lambda src: time_serve(src, ws),
            "`inficond --help`": lambda src: time_cmd(src, ["-m", "inficond.cli", "--help"]),
            "`import inficond.server.app`": lambda src: time_cmd(src, ["-c", "import inficond.server.app"]),
        }
        times = {task: {name: [] for name in versions} for task in tasks}
        for r in range(a.rounds):
            order = list(versions) if r % 2 == 0 else list(versions)[::-1]
            for task, fn in tasks.items():
                for name in order:
                    times[task][name].append(fn(versions[name]))
            print(f"round {r + 1}/{a.rounds}: " + "; ".join(
                f"{task.split(':')[0]} old {times[task]['old'][-1]:.2f} new {times[task]['new'][-1]:.2f}"
                for task in tasks), flush=True)
        load_after = os.getloadavg()
    finally:
        remove_worktrees(tmp)

    rows = []
    for task in tasks:
        old, new = (statistics.median(times[task][n]) for n in ("old", "new"))
        pair = statistics.median(o / n for o, n in zip(times[task]["old"], times[task]["new"]))
        rows.append((task, old, new, pair, min(times[task]["new"]), max(times[task]["new"])))
    head = f"{head_rev}{' + uncommitted changes' if dirty else ''}"
    md = [
        f"# Server start-up, old ({base_rev}) vs new ({head}), paired",
        "",
        f"Machine: {machine_line()}. Load average (1/5/15 min) before {'/'.join(f'{x:.1f}' for x in load_before)}, "
        f"after {'/'.join(f'{x:.1f}' for x in load_after)}. {a.rounds} interleaved rounds, workspace "
        f"`{a.workspace.name}`; medians in seconds.",
        "",
        "| what | old | new | old/new (median of paired ratios) | new min-max |",
        "|---|---|---|---|---|",
        *[f"| {t} | {o:.2f} | {n:.2f} | {p:.2f}× | {lo:.2f}-{hi:.2f} |" for t, o, n, p, lo, hi in rows],
        "",
        "Heavy packages in the server process after its first answer:",
        "",
        *[f"- {name}: {', '.join(mods) or 'none of ' + ', '.join(HEAVY)}" for name, mods in heavy.items()],
        "",
    ]
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.with_suffix(".md").write_text("\n".join(md))
    a.out.with_suffix(".json").write_text(json.dumps({
        "base": base_rev, "head": head, "machine": machine_line(), "load_before": load_before,
        "load_after": load_after, "seconds": times, "heavy_modules": heavy}, indent=1))
    print("\n".join(md))


if __name__ == "__main__":
    main()
