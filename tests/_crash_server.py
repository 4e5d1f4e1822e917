"""Fork server for the crash harness (tests/test_crash.py); not a test module.

Importing torch, transformers and sentence-transformers takes ~15 s per process here, and the
harness starts well over a hundred ``inficond`` processes. This server pays the imports once
and then forks one child per command: each child is a separate process that runs the real
command line (``inficond.cli.main(argv)``) from the start and is killed with SIGKILL, exactly
like ``kill -9`` of ``inficond ...``. The parent only imports modules (it never runs a model),
so no thread pool exists when it forks.

Protocol: one JSON object per stdin line, ``{"argv": [...], "kill_after": seconds or null,
"watch": folder or null, "log": path}``; one JSON line back per command: ``{"rc": int or null,
"killed": bool, "seconds": float, "first_write": seconds or null}``. With ``watch`` the
``kill_after`` clock starts when the command first writes a file in that folder (SQLite's
-wal/-shm files aside: opening a database creates them), so kills land in the writing phase
whatever the time spent loading models was on a busy machine.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time


def preload() -> None:
    import onnx  # noqa: F401
    import onnxruntime  # noqa: F401
    import sentence_transformers  # noqa: F401
    import sklearn.linear_model  # noqa: F401
    import torch  # noqa: F401
    import transformers.models.bert.modeling_bert  # noqa: F401

    import inficond.cli  # noqa: F401
    import inficond.concepts  # noqa: F401
    import inficond.encoders.conse_effnet  # noqa: F401
    import inficond.prepare  # noqa: F401
    import inficond.session  # noqa: F401
    import inficond.students.export  # noqa: F401
    import inficond.teachers  # noqa: F401


def _first_write(folder: str, since: float) -> bool:
    """Whether any file under ``folder`` (SQLite's -wal/-shm aside) changed since ``since`` (epoch)."""
    for root, _, files in os.walk(folder):
        for f in files:
            if f.endswith(("-wal", "-shm")):
                continue
            try:
                if os.stat(os.path.join(root, f)).st_mtime >= since:
                    return True
            except FileNotFoundError:  # renamed meanwhile: that is a write too
                return True
    return False


def run(argv: list[str], kill_after: float | None, log: str, watch: str | None = None) -> dict:
    t0 = time.monotonic()
    wall0 = time.time() - 0.01
    pid = os.fork()
    if pid == 0:  # the child: the real CLI, its output to the log
        rc = 1
        try:
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            sys.stdout = os.fdopen(1, "w", buffering=1)
            sys.stderr = os.fdopen(2, "w", buffering=1)
            from inficond.cli import main

            rc = main(argv)
        except SystemExit as e:
            rc = e.code if isinstance(e.code, int) else 1
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(rc or 0)
    start = None if watch else t0  # when the kill_after clock starts
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if start is None and _first_write(watch, wall0):
            start = time.monotonic()
        if kill_after is not None and start is not None and time.monotonic() - start >= kill_after:
            os.kill(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
            break
        time.sleep(0.002 if start is None else 0.005)
    code = os.waitstatus_to_exitcode(status)
    killed = code == -signal.SIGKILL  # not killed: it had finished (with its own exit code)
    first = None if start is None else round(start - t0, 3)
    return {"rc": None if killed else code, "killed": killed, "seconds": round(time.monotonic() - t0, 3),
            "first_write": first}


def main() -> None:
    preload()
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        print(json.dumps(run(req["argv"], req.get("kill_after"), req["log"], req.get("watch"))), flush=True)


if __name__ == "__main__":
    main()
