"""Crash harness: kill -9 `prepare`, `add-concepts`, `tune` and `export` at random moments.

One tiny workspace (a few images, a ten-word corpus) is built twice: once without
interruption (the reference) and once with every command killed with SIGKILL at random
moments (seeded) and then rerun, the way a user would rerun it. After every kill the
workspace must open, every concept array must match the word list, and nothing finished
before the kill may be lost or changed; at the end the killed run must equal the reference:
the same arrays, rows, teacher head, provenance, exported student and replay.

The commands are real ``inficond`` command lines in separate processes, forked from a server
that has the heavy libraries imported (see tests/_crash_server.py). Settings:
``INFICOND_CRASH_KILLS`` (default 50), ``INFICOND_CRASH_SEED`` (default 0) and
``INFICOND_CRASH_VERBOSE`` (print every attempt). The kill delays are seeded; what work they
interrupt also depends on the machine's speed, so two runs kill at different points.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from inficond.store.workspace import Workspace

KILLS = int(os.environ.get("INFICOND_CRASH_KILLS", "50"))
SEED = int(os.environ.get("INFICOND_CRASH_SEED", "0"))
WORDS = ["dog", "cat", "grass", "sky", "wheel", "water", "tree", "road", "person", "bird"]
# Most kills per command in one round (a command that finishes ends its kills); distill is
# killed too, as it writes the provenance root. Rounds repeat, on fresh workspaces, until KILLS.
PLAN = {"prepare": 5, "distill": 2, "add-concepts": 3, "prepare-again": 1, "tune-1": 3, "tune-2": 3, "export": 3}
MAX_ROUNDS = 15
# Commands whose kill clock starts at their first file write: loading the models before it
# takes seconds (more on a busy machine) and writes nothing. prepare writes from its start.
WATCHED = {"add-concepts", "export"}
ARRAYS = ["concept_text", "concept_vectors", "concept_argmax", "regions", "region_counts", "region_boxes",
          "teacher_features", "teacher_logits"]


class ForkServer:
    def __init__(self, log: Path):
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
                   TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1")
        self.log = log
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("_crash_server.py"))],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        assert json.loads(self.proc.stdout.readline()) == {"ready": True}

    def run(self, argv: list[str], kill_after: float | None = None, watch: Path | None = None) -> dict:
        req = {"argv": argv, "kill_after": kill_after, "watch": None if watch is None else str(watch),
               "log": str(self.log)}
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def commands(ws: Path, data: Path, corpus: Path) -> dict[str, list[str]]:
    w = str(ws)
    return {
        "prepare": ["prepare", "--data", str(data), "--out", w, "--limit", "2", "--batch-size", "1",
                    "--corpus", str(corpus)],
        "distill": ["distill", w, "--max-concepts", "4"],
        # 'Wheel' is 'wheel' (one case rule): only 'striped fur' is new
        "add-concepts": ["add-concepts", w, "striped fur", "Wheel"],
        # a second `make demo`: prepare resumes a workspace whose corpus add-concepts extended
        "prepare-again": ["prepare", "--data", str(data), "--out", w, "--limit", "2", "--batch-size", "1",
                          "--corpus", str(corpus)],
        "tune-1": ["tune", w, "cat", "--up", "grass", "--down", "road"],
        "tune-2": ["tune", w, "cat", "--up", "striped fur"],
        "export": ["export", w],
    }


def _states(ws_path: Path) -> list[tuple]:
    """Provenance states as (id, parent, kind, digest of the weights)."""
    con = sqlite3.connect(ws_path / "workspace.sqlite")
    try:
        rows = con.execute("SELECT id, parent_id, kind, coef, intercept, mean, scale FROM student_states "
                           "ORDER BY id").fetchall()
    except sqlite3.OperationalError:  # table not created yet
        rows = []
    finally:
        con.close()
    return [(r[0], r[1], r[2], hashlib.sha1(b"".join(r[3:])).hexdigest()) for r in rows]


def snapshot(ws_path: Path) -> dict:
    """What counts as finished work at this moment (and must survive any later kill)."""
    if not (ws_path / "workspace.sqlite").exists():
        return {}
    ws = Workspace(ws_path)  # opening also finishes renames a kill left pending
    snap = {"words": ws.concept_words, "states": _states(ws_path)}
    done = np.flatnonzero(ws.status == "done") if ws.n_images else np.array([], int)
    snap["done"] = done
    if ws.has_array("concept_vectors"):
        snap["vectors"] = np.asarray(ws.array("concept_vectors"))[done].copy()
    snap["patched"] = {r[0] for r in ws.db.execute("SELECT DISTINCT concept_idx FROM patches")}
    snap["data_root"] = ws.get_meta("data_root")
    ws.db.close()
    return snap


def check_consistent(ws_path: Path, before: dict) -> dict:
    """The workspace opens, its arrays match its word list, and ``before``'s finished work is intact."""
    now = snapshot(ws_path)
    if not now:
        assert not before, "the workspace disappeared"
        return now
    ws = Workspace(ws_path)
    c = len(ws.concept_words)
    if ws.has_array("concept_text"):
        assert np.asarray(ws.array("concept_text")).shape[0] == c, "concept_text rows != concept words"
    for name in ("concept_vectors", "concept_argmax"):
        if ws.has_array(name):
            assert ws.array(name).shape[1] == c, f"{name} columns != concept words"
    assert ws.get_meta("pending_array_renames") is None
    if ws.n_images:
        assert now["data_root"] is not None, "data_root lost"
    if (ws_path / "teacher" / "teacher.json").exists():
        from inficond.teachers import EffNetTeacher

        EffNetTeacher.load(ws_path / "teacher")  # complete and matching its digest
    for f in (ws_path / "export").rglob("student.json") if (ws_path / "export").exists() else []:
        json.loads(f.read_text())  # never half written
    ws.db.close()
    if before:
        assert now["words"][: len(before["words"])] == before["words"], "concept words lost or renamed"
        assert set(before["done"]) <= set(now["done"]), "finished images lost"
        if "vectors" in before:
            pos = np.searchsorted(now["done"], before["done"])
            got = now["vectors"][pos][:, : before["vectors"].shape[1]]
            np.testing.assert_array_equal(got, before["vectors"], err_msg="finished concept vectors changed")
        assert now["states"][: len(before["states"])] == before["states"], "provenance states lost or changed"
        assert before["patched"] <= now["patched"], "finished patches lost"
    return now


def compare_workspaces(ref: Path, got: Path) -> None:
    a, b = Workspace(ref), Workspace(got)
    assert b.concept_words == a.concept_words
    assert list(b.status) == list(a.status)
    for name in ARRAYS:
        np.testing.assert_array_equal(np.asarray(b.array(name)), np.asarray(a.array(name)), err_msg=name)
    for table, key in (("segments", "image_idx, segment"), ("patches", "concept_idx, rank"),
                       ("concepts", "idx"), ("images", "idx"), ("classes", "idx")):
        q = f"SELECT * FROM {table} ORDER BY {key}"
        assert b.db.execute(q).fetchall() == a.db.execute(q).fetchall(), table
    for meta in ("data_root", "skipped", "teacher_logits_rows", "patches_built", "corpus", "encoder"):
        assert b.get_meta(meta) == a.get_meta(meta), meta
    ta, tb = (json.loads((p / "teacher" / "teacher.json").read_text()) for p in (ref, got))
    assert tb["head_sha1"] == ta["head_sha1"]

    from inficond.session import Session

    sa, sb = Session(ref), Session(got)
    steps_a, steps_b = sa.log.steps(), sb.log.steps()
    assert [(s["kind"], s["instructions"]) for s in steps_b] == [(s["kind"], s["instructions"]) for s in steps_a]
    assert len(sb.log.all_states()) == len(sa.log.all_states()), "a step was lost or recorded twice"
    np.testing.assert_allclose(sb.student.coef_, sa.student.coef_, atol=1e-12)
    np.testing.assert_allclose(sb.student.intercept_, sa.student.intercept_, atol=1e-12)
    # the provenance path (across add-concepts) replays to the recorded head
    replayed = sb.log.replay(inputs=sb.ws)
    np.testing.assert_allclose(replayed.coef_, sb.log.load_state()[0].coef_, atol=1e-8)
    ja = json.loads((ref / "export" / f"state-{sa.log.head()}" / "student.json").read_text())
    jb = json.loads((got / "export" / f"state-{sb.log.head()}" / "student.json").read_text())
    assert jb == ja
    assert (got / "export" / f"state-{sb.log.head()}" / "student.onnx").read_bytes() == \
        (ref / "export" / f"state-{sa.log.head()}" / "student.onnx").read_bytes()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = ForkServer(tmp_path_factory.mktemp("crash-log") / "commands.log")
    yield srv
    srv.close()


def test_kill_9_at_random_moments_loses_nothing(server, dev_data, tmp_path):
    corpus = tmp_path / "words.txt"
    corpus.write_text("\n".join(WORDS) + "\n")
    ref = tmp_path / "reference"

    # the uninterrupted run: how long each command writes (from its first file write, or from
    # its start for the commands whose only write is a SQLite commit)
    seconds = {}
    for name, argv in commands(ref, dev_data, corpus).items():
        res = server.run(argv, watch=ref if name in WATCHED else None)
        assert res["rc"] == 0, f"reference {name} failed: {res}; see {server.log}"
        seconds[name] = res["seconds"] - (res["first_write"] or 0.0)

    rng = random.Random(SEED)
    kills = {name: 0 for name in PLAN}
    rounds = 0
    while sum(kills.values()) < KILLS and rounds < MAX_ROUNDS:
        rounds += 1
        got = tmp_path / f"killed-{rounds}"
        killed_round(server, commands(got, dev_data, corpus), got, seconds, rng, kills)
        compare_workspaces(ref, got)

    total = sum(kills.values())
    print(f"crash harness: {total} kills in {rounds} rounds (seed {SEED}): {kills}; "
          f"reference seconds of writing {seconds}")
    assert total >= KILLS, f"only {total} of {KILLS} planned kills landed: {kills}"


def killed_round(server, cmds: dict, got: Path, seconds: dict, rng: random.Random, kills: dict) -> None:
    """Run the commands on ``got``, each killed at random moments until it finishes or its
    kills for this round are spent, then rerun (uninterrupted) when it has not finished."""
    snap: dict = {}
    for name, argv in cmds.items():
        # A tune or distill records one new state; once committed the command is done
        # (rerunning it would record a second step).
        records_step = name.startswith("tune") or name == "distill"
        base = len(_states(got)) if got.exists() else 0
        finished = False
        for attempt in range(PLAN[name]):
            res = server.run(argv, kill_after=rng.uniform(0.0, seconds[name]),
                             watch=got if name in WATCHED and got.exists() else None)
            snap = check_consistent(got, snap)
            kills[name] += res["killed"]
            if os.environ.get("INFICOND_CRASH_VERBOSE"):
                print(name, res)
            if not res["killed"]:
                assert res["rc"] == 0, f"{name} failed: {res}; see {server.log}"
                if attempt == 0:  # a whole run: the machine may be faster now than for the reference
                    seconds[name] = min(seconds[name], res["seconds"] - (res["first_write"] or 0.0))
            finished = not res["killed"] or (records_step and len(snap["states"]) > base)
            if finished:
                break
        if not finished:
            res = server.run(argv)  # the user's rerun, uninterrupted
            assert res["rc"] == 0, f"{name} failed on rerun: {res}; see {server.log}"
            snap = check_consistent(got, snap)
        if records_step:
            assert len(snap["states"]) == base + 1, f"{name} recorded {len(snap['states']) - base} states"
