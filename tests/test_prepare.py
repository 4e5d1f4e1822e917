"""prepare(): the real pipeline on slices of the development data."""

from __future__ import annotations

import csv
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from inficond.exceptions import DataError, WorkspaceMismatchError
from inficond.prepare import prepare, resolve_data_path
from inficond.store.workspace import Workspace


def test_workspace_arrays_are_complete_and_consistent(prepared_workspace):
    ws = Workspace(prepared_workspace)
    n, k, c = ws.n_images, len(ws.class_names), len(ws.concept_words)
    assert (ws.status == "done").all()
    assert set(ws.splits) == {"train", "val", "test"}
    assert 500 <= c <= 700
    vec = np.asarray(ws.array("concept_vectors"), dtype=np.float32)
    assert vec.shape == (n, c) and vec.min() >= 0 and vec.max() <= 1.0001
    assert (vec.max(1) > 0).all(), "every image should match some concept"
    counts = np.asarray(ws.array("region_counts"))
    regions = np.asarray(ws.array("regions"), dtype=np.float32)
    text = np.asarray(ws.array("concept_text"))
    # the stored vector is the max cosine over the image's regions, clipped at 0
    i = 3
    sims = regions[i, : counts[i]] @ text.T
    np.testing.assert_allclose(vec[i], np.clip(sims.max(0), 0, None), atol=2e-3)
    norms = np.linalg.norm(regions[i, : counts[i]], axis=1)
    np.testing.assert_allclose(norms, 1, atol=2e-3)
    logits = np.asarray(ws.array("teacher_logits"))
    assert logits.shape == (n, k) and np.isfinite(logits).all()
    n_patches = ws.db.execute("SELECT COUNT(*) FROM patches").fetchone()[0]
    assert n_patches >= c
    f = ws.db.execute("SELECT file FROM patches LIMIT 1").fetchone()[0]
    assert (ws.path / f).stat().st_size > 0
    assert ws.db.execute("SELECT COUNT(*) FROM segments").fetchone()[0] >= n
    assert (ws.path / "teacher").exists(), "the default teacher's head is saved for reuse"


def test_second_prepare_does_no_work(prepared_workspace, dev_data, tmp_path):
    ws = tmp_path / "ws"
    shutil.copytree(prepared_workspace, ws)
    from tests.conftest import SMALL_LIMIT

    rep = prepare(dev_data, ws, limit=SMALL_LIMIT, progress=False)
    assert rep.n_processed_now == 0
    assert rep.n_done == rep.n_images


def test_prepare_refuses_a_different_corpus(prepared_workspace, dev_data, tmp_path):
    ws = tmp_path / "ws"
    shutil.copytree(prepared_workspace, ws)
    words = tmp_path / "words.txt"
    words.write_text("dog\ncat\ngrass\n")
    from tests.conftest import SMALL_LIMIT

    with pytest.raises(WorkspaceMismatchError, match="corpus"):
        prepare(dev_data, ws, limit=SMALL_LIMIT, corpus=words, progress=False)


def test_missing_data_says_what_to_pass(tmp_path, monkeypatch):
    monkeypatch.delenv("INFICOND_DATA", raising=False)
    with pytest.raises(DataError, match="--data"):
        resolve_data_path(None)
    with pytest.raises(DataError, match="INFICOND_DATA"):
        resolve_data_path(tmp_path / "nowhere")


def _small_csv_dataset(dev_data: Path, dst: Path, n_per_split: int = 4) -> list[str]:
    """A CSV-layout dataset with real photos plus one corrupt and one truncated file."""
    (dst / "images").mkdir(parents=True)
    rows = list(csv.DictReader(open(dev_data / "labels.csv")))
    keep = [r for r in rows if r["split"] == "train"][:n_per_split] + [r for r in rows if r["split"] == "val"][:n_per_split]
    for r in keep:
        shutil.copy(dev_data / "images" / f"{r['image']}.jpg", dst / "images" / f"{r['image']}.jpg")
    bad = dict(keep[0], image="corrupt_text")
    (dst / "images" / "corrupt_text.jpg").write_text("this is not a jpeg")
    trunc = dict(keep[1], image="truncated")
    data = (dev_data / "images" / f"{keep[1]['image']}.jpg").read_bytes()
    (dst / "images" / "truncated.jpg").write_bytes(data[: len(data) // 3])
    with open(dst / "labels.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
        w.writeheader()
        w.writerows(keep + [bad, trunc])
    return ["corrupt_text", "truncated"]


def test_corrupt_images_are_skipped_and_reported(dev_data, tmp_path):
    bad = _small_csv_dataset(dev_data, tmp_path / "data")
    rep = prepare(tmp_path / "data", tmp_path / "ws", batch_size=4, progress=False)
    assert sorted(i for i, _ in rep.corrupt) == sorted(bad)
    assert rep.n_done == rep.n_images - 2
    ws = Workspace(tmp_path / "ws")
    assert all(ws.status[ws.image_ids.index(b)] == "corrupt" for b in bad)


def test_prepare_resumes_after_kill_9(dev_data, tmp_path):
    """kill -9 in the middle; the rerun redoes no finished image and ends with the same arrays."""
    ws_dir = tmp_path / "ws"
    cmd = [sys.executable, "-m", "inficond.cli", "prepare", "--data", str(dev_data), "--out", str(ws_dir),
           "--limit", "12", "--batch-size", "4"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db = ws_dir / "workspace.sqlite"
    done = 0
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if db.exists():
            try:
                con = sqlite3.connect(db, timeout=1)
                done = con.execute("SELECT COUNT(*) FROM images WHERE status = 'done'").fetchone()[0]
                con.close()
            except sqlite3.OperationalError:
                done = 0
            if done >= 4:
                break
        time.sleep(0.2)
    assert proc.poll() is None, "prepare finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    ws = Workspace(ws_dir)
    done_before = int((ws.status == "done").sum())
    assert 4 <= done_before < ws.n_images
    done_idx = np.flatnonzero(ws.status == "done")
    kept = np.asarray(ws.array("concept_vectors"))[done_idx].copy()

    rep = prepare(dev_data, ws_dir, limit=12, batch_size=4, progress=False)
    assert rep.n_processed_now == rep.n_images - done_before
    assert rep.n_done == rep.n_images
    ws = Workspace(ws_dir)
    np.testing.assert_array_equal(np.asarray(ws.array("concept_vectors"))[done_idx], kept)
    assert (np.asarray(ws.array("region_counts")) > 0).all()


def test_prepare_resumes_a_workspace_extended_by_add_concepts(dev_data, tmp_path):
    """A second `make demo` after a concept was added: prepare must accept the longer word list."""
    from inficond.concepts import extend_concepts
    from inficond.encoders.base import create_encoder

    words = tmp_path / "words.txt"
    words.write_text("dog\ncat\ngrass\nsky\nwheel\n")
    ws_dir = tmp_path / "ws"
    prepare(dev_data, ws_dir, limit=1, batch_size=2, corpus=words, progress=False)
    ws = Workspace(ws_dir)
    assert extend_concepts(ws, create_encoder("conse-effnet"), ["striped fur", "Dog"]) == [5]
    arrays = {n: np.asarray(ws.array(n)).copy() for n in ("concept_text", "concept_vectors", "concept_argmax")}
    patches = ws.db.execute("SELECT * FROM patches ORDER BY concept_idx, rank").fetchall()

    rep = prepare(dev_data, ws_dir, limit=1, batch_size=2, corpus=words, progress=False)
    assert rep.n_processed_now == 0 and rep.n_concepts == 6
    ws = Workspace(ws_dir)
    assert ws.concept_words == ["dog", "cat", "grass", "sky", "wheel", "striped fur"]
    for name, before in arrays.items():
        np.testing.assert_array_equal(np.asarray(ws.array(name)), before, err_msg=name)
    assert ws.db.execute("SELECT * FROM patches ORDER BY concept_idx, rank").fetchall() == patches


def test_prepare_finishes_images_added_before_add_concepts(dev_data, tmp_path):
    """add-concepts on a half-prepared workspace: the resumed prepare fills the pending images'
    columns for the added word too, as a run that had the word from the start."""
    from inficond.concepts import extend_concepts
    from inficond.encoders.base import create_encoder

    words = tmp_path / "words.txt"
    words.write_text("dog\ncat\ngrass\n")
    ws_dir = tmp_path / "ws"
    prepare(dev_data, ws_dir, limit=1, batch_size=1, corpus=words, progress=False)
    ws = Workspace(ws_dir)
    enc = create_encoder("conse-effnet")
    extend_concepts(ws, enc, ["wheel"])
    # mark two images pending again, as a run killed before them would have left them
    ws.mark_images([0, 2], "pending")
    rep = prepare(dev_data, ws_dir, limit=1, batch_size=1, corpus=words, progress=False)
    assert rep.n_processed_now == 2
    ws = Workspace(ws_dir)
    from inficond.concepts import map_concepts

    text = np.asarray(ws.array("concept_text"), np.float32)
    assert text.shape[0] == 4
    vec, _ = map_concepts(ws.array("regions"), ws.array("region_counts"), text)
    np.testing.assert_allclose(np.asarray(ws.array("concept_vectors"), np.float32), vec, atol=2e-3)


def _plain_loop(stages, batches, paths, ids, write, workers=1, depth=1):
    """Every stage of one image after the other, image by image (the pipeline's reference)."""
    from inficond.prepare import decode_batch

    done = 0
    for batch in batches:
        for i in batch:
            imgs, ok, bad = decode_batch(paths, [i])
            done += write(ok, bad, stages.run(imgs, [ids[j] for j in ok]) if ok else None)
    return done


def test_pipeline_writes_the_bytes_of_a_plain_per_image_loop(dev_data, tmp_path, monkeypatch):
    """The threaded pipeline (2 workers, 2 batches in flight, models on one thread each) against a
    plain loop with the models on all threads: every array, segment and patch row is identical."""
    import inficond.prepare as P

    prepare(dev_data, tmp_path / "piped", limit=3, batch_size=4, progress=False)
    monkeypatch.setattr(P, "_run_batches_locally", _plain_loop)
    monkeypatch.setattr(P, "pipeline_threads", lambda cpus=None: (1, 2))
    prepare(dev_data, tmp_path / "plain", limit=3, batch_size=4, progress=False)
    a, b = Workspace(tmp_path / "piped"), Workspace(tmp_path / "plain")
    names = sorted(p.stem for p in (a.path / "arrays").glob("*.npy"))
    assert "regions" in names and "teacher_features" in names
    for name in names:
        np.testing.assert_array_equal(np.asarray(a.array(name)), np.asarray(b.array(name)), err_msg=name)
    for table in ("segments", "patches"):
        q = f"SELECT * FROM {table} ORDER BY 1, 2"
        assert a.db.execute(q).fetchall() == b.db.execute(q).fetchall(), table


def test_after_runs_when_every_dependency_is_done_and_passes_failures_on():
    from concurrent.futures import ThreadPoolExecutor

    from inficond.prepare import _after

    with ThreadPoolExecutor(max_workers=1) as pool:  # one worker: a waiting task would deadlock
        a, b = pool.submit(lambda: 2), pool.submit(lambda: 3)
        assert _after(pool, [a, b], lambda x, y: x * y).result(timeout=30) == 6
        bad = pool.submit(lambda: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            _after(pool, [a, bad], lambda x, y: x + y).result(timeout=30)
        chained = _after(pool, [_after(pool, [a], lambda x: x + 1)], lambda x: x * 10)
        assert chained.result(timeout=30) == 30


def test_a_failing_stage_stops_prepare_with_its_error_and_leaves_later_batches_pending(dev_data, tmp_path, monkeypatch):
    import inficond.prepare as P

    calls = []
    real = P.BatchStages.teacher

    def teacher_failing_on_the_third_batch(self, imgs, image_ids):
        calls.append(image_ids)  # teacher tasks start in batch order (submitted in order, FIFO pool)
        if len(calls) == 3:
            raise RuntimeError("teacher stage broke")
        return real(self, imgs, image_ids)

    monkeypatch.setattr(P.BatchStages, "teacher", teacher_failing_on_the_third_batch)
    with pytest.raises(RuntimeError, match="teacher stage broke"):
        prepare(dev_data, tmp_path / "ws", limit=2, batch_size=1, progress=False)
    ws = Workspace(tmp_path / "ws")
    # batches are written in order, so only the two before the failing one are done
    assert sorted(ws.image_ids[i] for i in np.flatnonzero(ws.status == "done")) == sorted(c[0] for c in calls[:2])


def test_concept_text_is_cached_by_encoder_identity_and_words(tmp_path, monkeypatch):
    from inficond.encoders.base import create_encoder
    from inficond.prepare import concept_text

    monkeypatch.setenv("INFICOND_CACHE", str(tmp_path / "cache"))
    enc = create_encoder("conse-effnet")
    words = ["dog", "a photo of grass", "striped fur"]
    first = concept_text(enc, words)
    np.testing.assert_array_equal(first, enc.encode_text(words).astype(np.float32))
    files = list((tmp_path / "cache" / "concept_text").glob("*.npy"))
    assert len(files) == 1

    calls = []
    monkeypatch.setattr(enc, "encode_text", lambda w: calls.append(w) or np.zeros((len(w), 384), np.float32))
    np.testing.assert_array_equal(concept_text(enc, words), first)  # from the cache
    assert calls == []
    concept_text(enc, words[:2])  # other words: another entry
    assert len(calls) == 1 and len(list((tmp_path / "cache" / "concept_text").glob("*.npy"))) == 2
    files[0].write_bytes(b"not an array")  # a damaged entry is recomputed, not trusted
    assert (concept_text(enc, words) == 0).all() and len(calls) == 2
    other = create_encoder("conse-effnet", top_k=10)  # another identity: another entry
    monkeypatch.setattr(other, "encode_text", lambda w: np.ones((len(w), 384), np.float32))
    assert (concept_text(other, words) == 1).all()


def test_pipeline_threads_splits_the_cores_between_two_workers():
    from inficond.prepare import pipeline_threads

    assert pipeline_threads(1) == (1, 1)
    assert pipeline_threads(2) == (2, 1)
    assert pipeline_threads(16) == (2, 8)


_MODELS_WITHOUT_TORCH = r"""
import sys
from inficond.encoders.base import create_encoder
from inficond.teachers import create_teacher

enc = create_encoder("conse-effnet", num_threads=1)
teach = create_teacher("effnet-lite2", ["a", "b"], n_threads=1)
before = "torch" in sys.modules
enc._runner = enc._make_runner()  # the cached ONNX export: no torch needed
teach.load_models()
print(before, "torch" in sys.modules)
"""


def test_encoder_and_teacher_build_and_load_their_onnx_models_without_torch(dev_data, tmp_path):
    """``prepare`` imports torch on a background thread while the ONNX models load: building the
    encoder and the teacher and opening their (cached) ONNX sessions must not import it first."""
    prepare(dev_data, tmp_path / "ws", limit=1, batch_size=4, progress=False)  # fills the ONNX cache
    run = subprocess.run([sys.executable, "-c", _MODELS_WITHOUT_TORCH], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split() == ["False", "False"]


def test_prepare_leaves_no_preload_thread_running(dev_data, tmp_path):
    import threading

    prepare(dev_data, tmp_path / "ws", limit=1, batch_size=4, progress=False)
    assert not [t for t in threading.enumerate() if t.name == "inficond-preload"]


def test_torch_threads_block_entered_before_torch_is_imported_applies_and_restores():
    import sys

    import torch

    import inficond.prepare as P

    before = torch.get_num_threads()
    saved = sys.modules.pop("torch")
    try:
        with P._torch_threads(1) as block:  # as if the preload thread had not imported torch yet
            sys.modules["torch"] = saved
            assert block.before is None
            P._torch_imported()  # what the preload thread does after the import
            assert block.before == before and torch.get_num_threads() == 1
    finally:
        sys.modules["torch"] = saved
    assert torch.get_num_threads() == before and not P._TORCH_PENDING
