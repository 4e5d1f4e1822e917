"""The command line mirrors the Python API."""

from __future__ import annotations

import csv
import hashlib
import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from inficond.cli import main
from inficond.concepts import default_corpus
from inficond.session import Session
from tests.conftest import SMALL_LIMIT


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


def test_cli_performance_when_no_class_can_be_scored(workspace, capsys):
    """A tiny workspace (e.g. `prepare --limit 8`) can leave every class without enough positives:
    the table says so instead of failing on a missing mean."""
    import sqlite3

    with sqlite3.connect(workspace / "workspace.sqlite") as db:
        db.execute("UPDATE classes SET excluded = 1")
    assert Session(workspace).performance("val")["teacher_map"] is None
    assert main(["performance", str(workspace)]) == 0
    out = capsys.readouterr().out
    assert "no class has enough positives" in out and "excluded" in out


def test_cli_errors_exit_2_with_message(workspace, capsys, tmp_path):
    assert main(["concepts", str(workspace), "unicorn"]) == 2
    assert "unknown class 'unicorn'" in capsys.readouterr().err
    assert main(["performance", str(tmp_path / "missing")]) == 2
    assert "inficond prepare" in capsys.readouterr().err


# -- open_clip from the command line -------------------------------------------------------------
TINY_CLIP = {"embed_dim": 32,
             "vision_cfg": {"layers": 2, "width": 64, "head_width": 32, "patch_size": 8, "image_size": 32},
             "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2}}


def _inficond() -> list[str]:
    exe = Path(sys.executable).with_name("inficond")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "inficond.cli"]


def _labels_as_teacher(dev_data: Path, out: Path) -> Path:
    """A logits-file teacher from the ground truth (this test is about the encoder, not the teacher)."""
    with open(dev_data / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    classes = [c for c in rows[0] if c not in ("image", "split")]
    with open(out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image", *classes])
        w.writerows([r["image"], *(4 * int(r[c]) - 2 for c in classes)] for r in rows)
    return out


@pytest.mark.clip
def test_cli_prepare_with_an_open_clip_checkpoint(dev_data, tmp_path):
    import open_clip
    import torch

    from inficond.encoders.open_clip_encoder import OpenClipEncoder
    from inficond.store.workspace import Workspace

    cfg = tmp_path / "inficond-tiny-clip.json"
    cfg.write_text(json.dumps(TINY_CLIP))
    open_clip.add_model_config(cfg)
    torch.manual_seed(0)
    ckpt = tmp_path / "tiny.pt"
    torch.save(open_clip.create_model("inficond-tiny-clip", pretrained=None).state_dict(), ckpt)
    teacher = _labels_as_teacher(dev_data, tmp_path / "teacher.csv")
    ws = tmp_path / "ws"
    r = subprocess.run(_inficond() + ["prepare", "--data", str(dev_data), "--out", str(ws), "--limit", "3",
                                      "--encoder", "open_clip", "--clip-config", str(cfg), "--clip-weights", str(ckpt),
                                      "--teacher", f"file:{teacher}"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    w = Workspace(ws)
    ident = w.get_meta("encoder")
    assert ident["name"] == "open_clip" and ident["model"] == "inficond-tiny-clip"
    assert ident["weights"] == "sha256:" + hashlib.sha256(ckpt.read_bytes()).hexdigest()[:16]
    n, k = w.n_images, len(w.concept_words)
    assert n == 9 and k >= 584  # 3 images of each split; the default corpus
    assert np.load(ws / "arrays" / "regions.npy", mmap_mode="r").shape == (n, 1 + 8, 32)  # whole image + 8 segments
    assert np.load(ws / "arrays" / "concept_vectors.npy", mmap_mode="r").shape == (n, k)
    text = np.load(ws / "arrays" / "concept_text.npy")
    assert text.shape == (k, 32)
    # the checkpoint's weights, not random ones, made the embeddings
    enc = OpenClipEncoder(pretrained=str(ckpt), config=cfg)
    np.testing.assert_allclose(text[:5], enc.encode_text([w.text for w in default_corpus()[:5]]), atol=1e-5)


@pytest.mark.clip
def test_cli_open_clip_without_weights_refuses_with_how_to(dev_data, tmp_path, capsys):
    out = tmp_path / "ws"
    assert main(["prepare", "--data", str(dev_data), "--out", str(out), "--encoder", "open_clip"]) == 2
    err = capsys.readouterr().err
    assert "needs trained weights" in err and "--clip-weights TAG" in err and "laion2b_s34b_b79k" in err
    assert not out.exists()
    assert main(["prepare", "--data", str(dev_data), "--out", str(out), "--clip-weights", "x.pt"]) == 2
    assert "only apply to --encoder open_clip" in capsys.readouterr().err
    assert main(["prepare", "--data", str(dev_data), "--out", str(out), "--encoder", "open_clip",
                 "--clip-weights", str(tmp_path / "missing.pt")]) == 2
    assert "missing.pt does not exist" in capsys.readouterr().err


@pytest.mark.clip
def test_open_clip_random_weights_are_a_python_test_option_only():
    from inficond.encoders.open_clip_encoder import OpenClipEncoder
    from inficond.exceptions import EncoderLoadError

    with pytest.raises(EncoderLoadError, match="needs trained weights"):
        OpenClipEncoder("ViT-B-32")


# -- an older workspace: a plain message on resume, a notice on open -----------------------------
def _make_older(ws: Path) -> None:
    from inficond.store.workspace import Workspace

    w = Workspace(ws)
    w.set_meta("corpus", {**w.get_meta("corpus"), "digest": "07498bd84cfa4778", "n": 600})  # the pre-Broden corpus


def test_opening_an_older_workspace_gives_a_notice_not_an_error(workspace, dev_data, capsys):
    from inficond.prepare import OutdatedWorkspaceWarning

    assert Session(workspace).notices == []
    _make_older(workspace)
    with pytest.warns(OutdatedWorkspaceWarning, match="older default concept corpus") as rec:
        s = Session(workspace)
    msg = str(rec[0].message)
    assert "600 words; now" in msg and "inficond prepare --data" in msg and "--out NEW_DIR" in msg
    assert s.notices == [msg]
    assert s.performance("val")["classes"]  # it still works as built
    assert main(["performance", str(workspace)]) == 0
    err = capsys.readouterr().err
    assert err.startswith("inficond: notice: workspace") and "older default concept corpus" in err


def test_serve_prints_the_older_workspace_notice(workspace):
    _make_older(workspace)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = subprocess.Popen(_inficond() + ["serve", str(workspace), "--port", str(port)], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        for line in p.stdout:
            lines.append(line)
            if "serving" in line:
                break
    finally:
        p.terminate()
        p.wait(timeout=30)
    out = "".join(lines)
    assert "inficond: notice:" in out and "older default concept corpus" in out and "serving" in out


def test_resuming_an_older_workspace_says_what_to_rerun(workspace, dev_data):
    from inficond.exceptions import WorkspaceMismatchError
    from inficond.prepare import prepare

    _make_older(workspace)
    with pytest.raises(WorkspaceMismatchError) as e:
        prepare(dev_data, workspace, limit=SMALL_LIMIT, progress=False)
    msg = str(e.value)
    assert "older default concept corpus (600 words" in msg
    assert f"inficond prepare --data {dev_data} --out NEW_DIR" in msg and f"inficond serve {workspace}" in msg
    assert "{" not in msg  # plain words, not a JSON dump


# -- every command through the real command line (a separate process) ---------------------------
def _cli(*args, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "inficond.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def test_cli_commands_in_a_process(workspace, tmp_path):
    s = Session(workspace)
    top = s.class_concepts("dog", k=1)["concepts"][0]

    r = _cli("distill", workspace, "--max-concepts", "7")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout[: r.stdout.rindex("}") + 1])
    s2 = Session(workspace)
    assert out["state_id"] == s2.log.head() and s2.log.all_states()[-1]["kind"] == "distill"
    assert (np.count_nonzero(s2.student.coef_, axis=1) <= 7).all()

    top = s2.class_concepts("dog", k=1)["concepts"][0]
    r = _cli("whatif", workspace, "dog", top["word"], "--points", "5")
    assert r.returncode == 0, r.stderr
    w = json.loads(r.stdout)
    want = s2.whatif("dog", top["word"], n_points=5)
    assert w["word"] == top["word"] and len(w["grid"]) == 5
    np.testing.assert_allclose(w["grid"], want["grid"])
    for m, v in want["values"].items():
        np.testing.assert_allclose(np.array(w["values"][m], dtype=float), np.array(v, dtype=float), err_msg=m)

    r = _cli("suggest", workspace, "dog", "-k", "2")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == json.loads(json.dumps(s2.suggest("dog", k=2)))

    r = _cli("detail", workspace, top["word"], "--cls", "dog")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["word"] == top["word"] and d["concept_idx"] == top["concept_idx"] and len(d["images"]) > 0

    r = _cli("export", workspace, "--out", tmp_path / "export")
    assert r.returncode == 0, r.stderr
    paths = json.loads(r.stdout)
    doc = json.loads(Path(paths["json"]).read_text())
    np.testing.assert_allclose(np.array(doc["coef"]), s2.student.coef_)
    assert Path(paths["onnx"]).stat().st_size > 0

    imgs = [s2.ws.image_paths[i] for i in s2.rows("val")[:2]]
    r = _cli("predict", paths["json"], *imgs, "--out", tmp_path / "pred.json")
    assert r.returncode == 0, r.stderr
    preds = json.loads((tmp_path / "pred.json").read_text())
    assert [p["image"] for p in preds] == [str(i) for i in imgs] and all("logits" in p for p in preds)
    assert all(str(i) in r.stdout for i in imgs)


def test_cli_serve_answers_http(workspace):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "inficond.cli", "serve", str(workspace), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for _ in range(100):  # notices may come first
            line = proc.stdout.readline()
            if not line or f"127.0.0.1:{port}" in line:
                break
        assert f"127.0.0.1:{port}" in line, f"serve printed no URL; exit code {proc.poll()}"
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/summary", timeout=5) as r:
                    body = json.loads(r.read())
                break
            except (urllib.error.URLError, ConnectionError):
                assert proc.poll() is None and time.monotonic() < deadline, "serve did not come up"
                time.sleep(0.3)
        assert body["corpus"]["n_concepts"] == len(Session(workspace).ws.concept_words)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_older_default_teacher_settings_give_a_notice(workspace):
    from inficond.prepare import OutdatedWorkspaceWarning
    from inficond.store.workspace import Workspace

    w = Workspace(workspace)
    w.set_meta("teacher", {**w.get_meta("teacher"), "C": 0.123})
    with pytest.warns(OutdatedWorkspaceWarning, match="older default teacher settings \\(C 0.123"):
        Session(workspace)
