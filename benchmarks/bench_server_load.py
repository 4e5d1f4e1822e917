"""Mixed load on a real server: concurrent clients mixing reads with tune and undo, then a check
that the provenance log lost and duplicated no step. Writes benchmarks/results/server_load.md|json.

    python benchmarks/bench_server_load.py --workspace workspaces/dev --clients 50 --seconds 60

The workspace is copied to a temporary folder and served by a separate ``inficond serve``
process on 127.0.0.1 (so the clients do not share its interpreter). Each client loops: ~75%
reads over every view, ~17% a one-vote tune, ~8% undo. A client undoes only after a tune of its
own succeeded, so every undo has a step above the starting head to undo. Each (class, concept)
pair always gets the same direction, so no vote is ever refused as a conflict. Afterwards:

- every tune the clients saw succeed is one new state in the log, and there is no other;
- the head lies (#tunes - #undos) tune steps above the starting head, on its path.

``tests/test_server_security.py`` runs a few-second version of the same check.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
JSON = {"Content-Type": "application/json"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    if not s:
        return float("nan")
    return s[min(len(s) - 1, max(0, int(round(q / 100 * (len(s) - 1)))))]


class ServerProcess:
    """``inficond serve WS`` on a free loopback port, as a child process."""

    def __init__(self, workspace: Path, startup_s: float = 180):
        self.workspace, self.startup_s = Path(workspace), startup_s
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> "ServerProcess":
        exe = Path(sys.executable).with_name("inficond")
        cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "inficond.cli"]
        self.proc = subprocess.Popen([*cmd, "serve", str(self.workspace), "--port", str(self.port)],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + self.startup_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"inficond serve exited: {self.proc.stdout.read()}")
            try:
                if httpx.get(f"{self.url}/api/summary", timeout=5).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.proc.kill()
        raise RuntimeError("inficond serve did not answer in time")

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.output = self.proc.stdout.read()


def targets(client: httpx.Client, per_class: int = 6) -> dict:
    """Classes in the mean and a few of each one's top concepts, from the API itself."""
    perf = client.get("/api/performance").json()
    classes = [c["class_idx"] for c in perf["classes"] if not c["excluded"]]
    concepts = {k: [c["concept_idx"] for c in client.get(f"/api/classes/{k}/concepts",
                                                          params={"k": per_class}).json()["concepts"]]
                for k in classes}
    patches = [p["patch_id"] for p in client.get(f"/api/classes/{classes[0]}/concepts", params={"k": 3})
               .json()["concepts"][0]["patches"]]
    return {"classes": classes, "concepts": concepts, "patches": patches}


def reads(t: dict, rng: random.Random) -> list[str]:
    k = rng.choice(t["classes"])
    c = rng.choice(t["concepts"][k])
    urls = ["/api/summary", "/api/performance?split=val", "/api/performance?split=test",
            f"/api/classes/{k}/concepts?k=10", f"/api/classes/{k}/whatif/{c}", f"/api/concepts/{c}?cls={k}",
            "/api/provenance", "/api/concepts/map", f"/api/classes/{k}/suggestions?k=5"]
    urls += [f"/api/media/patches/{p}" for p in t["patches"][:1]]
    return urls


def client_loop(base: str, t: dict, seed: int, deadline: float, out: dict, lock: threading.Lock,
                p_tune: float, p_undo: float) -> None:
    rng = random.Random(seed)
    mine = {"tunes": 0, "undos": 0, "states": [], "errors": [], "lat": {"read": [], "tune": [], "undo": []}}
    outstanding = 0
    with httpx.Client(base_url=base, timeout=300) as client:
        while time.monotonic() < deadline:
            u = rng.random()
            if u < p_undo and outstanding:
                kind, method, url, body = "undo", "POST", "/api/provenance/undo", None
            elif u < p_undo + p_tune:
                k = rng.choice(t["classes"])
                c = rng.choice(t["concepts"][k])
                direction = "up" if (k + c) % 2 == 0 else "down"  # fixed per pair: never a conflict
                kind, method, url = "tune", "POST", "/api/tune"
                body = {"instructions": [{"class": k, "concept": c, "direction": direction}]}
            else:
                kind, method, url, body = "read", "GET", rng.choice(reads(t, rng)), None
            t0 = time.perf_counter()
            try:
                if method == "GET":
                    r = client.get(url)
                else:
                    r = client.post(url, headers=JSON, **({"json": body} if body is not None else {}))
            except httpx.HTTPError as e:
                mine["errors"].append(f"{method} {url}: {type(e).__name__}")
                continue
            mine["lat"][kind].append((time.perf_counter() - t0) * 1000)
            if r.status_code != 200:
                mine["errors"].append(f"{method} {url}: {r.status_code} {r.text[:200]}")
                continue
            if kind == "tune":
                mine["tunes"] += 1
                outstanding += 1
                mine["states"].append(r.json()["state_id"])
            elif kind == "undo":
                mine["undos"] += 1
                outstanding -= 1
    with lock:
        out["clients"].append(mine)


def depth_above(steps: list[dict], head, start) -> int | None:
    """Tune steps from ``start`` up to ``head`` along parent links; None when start is not below."""
    parent = {s["state_id"]: s["parent_id"] for s in steps}
    n, sid = 0, head
    while sid != start:
        if sid not in parent or parent[sid] is None:
            return None
        sid, n = parent[sid], n + 1
    return n


def run_load(base: str, clients: int, seconds: float, seed: int = 0,
             p_tune: float = 0.17, p_undo: float = 0.08) -> dict:
    """Drive ``clients`` threads for ``seconds`` against ``base``; returns counts, latencies, checks."""
    with httpx.Client(base_url=base, timeout=300) as c:
        t = targets(c)
        prov0 = c.get("/api/provenance").json()
    start, before = prov0["head"], {s["state_id"] for s in prov0["steps"]}
    out: dict = {"clients": []}
    lock = threading.Lock()
    deadline = time.monotonic() + seconds
    t0 = time.perf_counter()
    threads = [threading.Thread(target=client_loop, args=(base, t, seed + i, deadline, out, lock, p_tune, p_undo))
               for i in range(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t0
    with httpx.Client(base_url=base, timeout=300) as c:
        prov = c.get("/api/provenance").json()
    tunes = sum(m["tunes"] for m in out["clients"])
    undos = sum(m["undos"] for m in out["clients"])
    seen = [s for m in out["clients"] for s in m["states"]]
    new = [s for s in prov["steps"] if s["state_id"] not in before]
    lat = {k: [x for m in out["clients"] for x in m["lat"][k]] for k in ("read", "tune", "undo")}
    every = [x for v in lat.values() for x in v]
    errors = [e for m in out["clients"] for e in m["errors"]]
    return {
        "clients": clients, "seconds": round(wall, 1), "requests": len(every),
        "per_second": round(len(every) / wall, 1),
        "reads": len(lat["read"]), "tunes": tunes, "undos": undos, "errors": len(errors),
        "error_samples": errors[:5],
        "p50_ms": round(pct(every, 50), 1), "p95_ms": round(pct(every, 95), 1), "p99_ms": round(pct(every, 99), 1),
        "by_kind": {k: {"n": len(v), "p50_ms": round(pct(v, 50), 1), "p95_ms": round(pct(v, 95), 1),
                        "mean_ms": round(statistics.fmean(v), 1) if v else None} for k, v in lat.items()},
        "check": {
            "new_states_in_log": len(new),
            "new_states_are_tunes": all(s["kind"] == "tune" for s in new),
            "state_ids_unique": len(set(seen)) == len(seen),
            "log_matches_clients": sorted(map(str, seen)) == sorted(str(s["state_id"]) for s in new),
            "head_depth": depth_above(prov["steps"], prov["head"], start),
            "expected_head_depth": tunes - undos,
        },
    }


def ok(result: dict) -> bool:
    c = result["check"]
    return (result["errors"] == 0 and c["new_states_in_log"] == result["tunes"] and c["new_states_are_tunes"]
            and c["state_ids_unique"] and c["log_matches_clients"] and c["head_depth"] == c["expected_head_depth"])


def main() -> int:
    sys.path.insert(0, str(HERE))
    from machine import machine, machine_line

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workspace", default=str(REPO / "workspaces" / "dev"))
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--baseline-seconds", type=float, default=15, help="one client first, same mix (the baseline)")
    ap.add_argument("--out", default=str(HERE / "results" / "server_load"))
    a = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="inficond-load-"))
    try:
        ws = tmp / "ws"
        shutil.copytree(a.workspace, ws)
        with ServerProcess(ws) as srv:
            base = run_load(srv.url, 1, a.baseline_seconds, seed=a.seed + 1000)
            result = run_load(srv.url, a.clients, a.seconds, seed=a.seed)
        result["baseline_1_client"] = base
        result["passed"] = ok(result) and ok(base)
        result["workspace"] = a.workspace
        result["machine"] = machine()
        result["loadavg_after"] = os.getloadavg()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2))
    bk = result["by_kind"]
    c = result["check"]
    lines = [
        "# Mixed load on a real server",
        "",
        f"`python benchmarks/bench_server_load.py --workspace {a.workspace} --clients {a.clients} "
        f"--seconds {a.seconds:g}`",
        "",
        f"Machine: {machine_line()}; load average after the run {result['loadavg_after'][0]:.1f}.",
        "",
        f"{result['clients']} clients for {result['seconds']} s on 127.0.0.1 against `inficond serve` "
        f"(separate process): {result['requests']:,} requests ({result['per_second']}/s), "
        f"{result['errors']} errors.",
        "",
        "| requests | n | p50 ms | p95 ms | mean ms | p95 with 1 client (baseline) |",
        "|---|---|---|---|---|---|",
        *[f"| {k} | {v['n']:,} | {v['p50_ms']} | {v['p95_ms']} | {v['mean_ms']} | {base['by_kind'][k]['p95_ms']} |"
          for k, v in bk.items()],
        f"| all | {result['requests']:,} | {result['p50_ms']} | {result['p95_ms']} | | {base['p95_ms']} |",
        "",
        f"Baseline: 1 client for {base['seconds']} s, same mix: {base['requests']} requests "
        f"({base['per_second']}/s), {base['errors']} errors. With {a.clients} clients the throughput is "
        f"{result['per_second'] / base['per_second']:.2f}x the baseline's and p95 "
        f"{result['p95_ms'] / base['p95_ms']:.1f}x.",
        "",
        f"Provenance check: {result['tunes']} tunes and {result['undos']} undos succeeded; the log has "
        f"{c['new_states_in_log']} new states (all tunes: {c['new_states_are_tunes']}; the same ids the "
        f"clients got: {c['log_matches_clients']}); the head is {c['head_depth']} steps above the start "
        f"(expected {c['expected_head_depth']}). Passed: {result['passed']}.",
        "",
        "Every engine call holds one lock, so latency under load is mostly queueing behind tune steps.",
    ]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
