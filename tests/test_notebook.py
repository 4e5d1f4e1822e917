"""examples/quickstart.ipynb runs top to bottom in a real kernel (nbclient + ipykernel)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import SMALL_LIMIT

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "quickstart.ipynb"


def outputs_text(cell) -> str:
    parts = []
    for o in cell.get("outputs", []):
        parts.append(o.get("text", ""))
        parts.extend(str(v) for v in o.get("data", {}).values())
    return "\n".join(parts)


def test_quickstart_notebook_runs(prepared_workspace, dev_data, tmp_path, monkeypatch):
    # the slice the shared fixture already prepared, so `prepare` in the notebook resumes at once
    ws = tmp_path / "quickstart"
    shutil.copytree(prepared_workspace, ws)
    monkeypatch.setenv("INFICOND_DATA", str(dev_data))
    monkeypatch.setenv("INFICOND_EXAMPLE_WS", str(ws))
    monkeypatch.setenv("INFICOND_EXAMPLE_LIMIT", str(SMALL_LIMIT))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert not any(c.get("outputs") for c in nb.cells if c.cell_type == "code"), "commit the notebook without outputs"
    client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}},
                            env=dict(os.environ))
    client.execute()  # raises CellExecutionError on the first failing cell

    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not any(o.output_type == "error" for o in c.outputs) for c in code)
    texts = [outputs_text(c) for c in code]
    assert "images," in texts[1] and "0 corrupt" in texts[1]
    assert "val mAP: teacher" in texts[2]
    assert "val: AP" in texts[3] and "test: AP" in texts[3]
    shown = code[4].outputs
    html = next(o["data"]["text/html"] for o in shown if "text/html" in o.get("data", {}))
    assert "<iframe" in html and "http://127.0.0.1:" in html and "#class=" in html
    report = next(ws.glob("reports/*.html"))
    assert report.stat().st_size > 10_000 and str(report) in texts[5]
