"""The command line mirrors the Python API."""

from __future__ import annotations

from inficond.cli import main
from inficond.session import Session


def test_cli_performance_concepts_tune_provenance(workspace, capsys):
    assert main(["performance", str(workspace)]) == 0
    assert "student mAP" in capsys.readouterr().out
    assert main(["concepts", str(workspace), "dog", "-k", "3"]) == 0
    out = capsys.readouterr().out
    assert [line.split(".")[0].strip() for line in out.splitlines()[1:]] == ["1", "2", "3"]
    word = Session(workspace).class_concepts("dog", k=1)["concepts"][0]["word"]
    n0 = len(Session(workspace).provenance()["steps"])
    assert main(["tune", str(workspace), "dog", "--up", word]) == 0
    assert len(Session(workspace).provenance()["steps"]) == n0 + 1
    assert main(["provenance", str(workspace), "--undo"]) == 0


def test_cli_errors_exit_2_with_message(workspace, capsys, tmp_path):
    assert main(["concepts", str(workspace), "unicorn"]) == 2
    assert "unknown class 'unicorn'" in capsys.readouterr().err
    assert main(["performance", str(tmp_path / "missing")]) == 2
    assert "inficond prepare" in capsys.readouterr().err
