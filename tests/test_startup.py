"""What starting the server and ``inficond --help`` import (benchmarks/bench_startup.py times it).

Each check runs in a fresh interpreter, so what the test process already imported does not hide
an import. No timing is asserted: the guard is the list of modules, which is what made the
server start take 2.6 s (scikit-learn alone was 1.1 s of the import).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

# Not needed to open a workspace and answer the page's first requests: model code (torch,
# onnxruntime, sentence-transformers), the t-SNE (openTSNE) and scikit-learn with what it pulls in.
SERVER_MUST_NOT_LOAD = ("sklearn", "torch", "onnxruntime", "openTSNE", "sentence_transformers",
                        "transformers", "pandas", "scipy.stats", "scipy.optimize")

SERVE_AND_ANSWER = """
import json, sys
from inficond.cli import build_parser
from inficond.server import create_app
from inficond.session import Session
from fastapi.testclient import TestClient

args = build_parser().parse_args(["serve", sys.argv[1]])
client = TestClient(create_app(Session(args.workspace)), base_url="http://127.0.0.1")
cls = client.get("/api/summary").json()["dataset"]["class_names"][0]
for url in ("/api/summary", "/api/performance?split=val", f"/api/classes/{cls}/concepts?k=10",
            "/api/provenance"):
    r = client.get(url)
    assert r.status_code == 200, (url, r.status_code, r.text[:300])
print(json.dumps(sorted(sys.modules)))
"""

HELP = """
import contextlib, io, json, sys
from inficond.cli import main
with contextlib.redirect_stdout(io.StringIO()) as out:
    try:
        main(["--help"])
    except SystemExit as e:
        assert e.code == 0, e.code
assert "serve" in out.getvalue()
print(json.dumps(sorted(sys.modules)))
"""


def _modules_after(code: str, *args: str) -> set[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_server_answers_first_requests_without_heavy_imports(workspace):
    loaded = _modules_after(SERVE_AND_ANSWER, str(workspace))
    assert "inficond.server.app" in loaded and "inficond.session" in loaded  # the probe did run
    assert [m for m in SERVER_MUST_NOT_LOAD if m in loaded] == []


def test_cli_help_imports_no_engine():
    loaded = _modules_after(HELP)
    assert "inficond.cli" in loaded
    heavy = ("torch", "sklearn", "onnxruntime", "scipy", "fastapi", "numpy", "inficond.launch")
    assert [m for m in heavy if m in loaded] == []


def test_teacher_classes_still_import_from_the_package():
    code = """
import json, sys
import inficond.teachers as t
before = "inficond.teachers.effnet" in sys.modules
names = [t.EffNetTeacher.__name__, t.LogitsFileTeacher.__name__, t.OnnxTeacher.__name__, t.TorchTeacher.__name__]
try:
    t.NoSuchTeacher
    missing = None
except AttributeError as e:
    missing = str(e)
print(json.dumps([before, names, missing]))
"""
    env = dict(os.environ, PYTHONPATH=str(SRC))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    before, names, missing = json.loads(out.stdout.strip().splitlines()[-1])
    assert before is False  # loaded on first use only
    assert names == ["EffNetTeacher", "LogitsFileTeacher", "OnnxTeacher", "TorchTeacher"]
    assert "NoSuchTeacher" in missing
