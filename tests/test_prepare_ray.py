"""prepare on Ray Data: a local Ray cluster (2 CPUs) on a 12-image slice, against the local path."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest

from inficond.exceptions import DataError, WorkspaceMismatchError
from inficond.prepare import prepare
from inficond.store.workspace import Workspace

ray = pytest.importorskip("ray")

LIMIT = 4  # first 4 images of each split: 12 images
WORDS = "dog\ncat\ngrass\nsky\nwheel\nwater\nperson\nchair\n"
TABLES = {"segments": "SELECT * FROM segments ORDER BY image_idx, segment",
          "patches": "SELECT * FROM patches ORDER BY concept_idx, rank",
          "images": "SELECT idx, image_id, status FROM images ORDER BY idx"}


@pytest.fixture(scope="module")
def ray_cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    p = tmp_path_factory.mktemp("corpus") / "words.txt"
    p.write_text(WORDS)
    return p


@pytest.fixture(scope="module")
def local_ws(dev_data, corpus, tmp_path_factory):
    """The reference: the same slice prepared by the local loop."""
    out = tmp_path_factory.mktemp("local") / "ws"
    prepare(dev_data, out, limit=LIMIT, batch_size=2, corpus=corpus, progress=False)
    return out


def assert_same_workspace(a, b):
    arrays = sorted(p.name for p in (a / "arrays").glob("*.npy"))
    assert arrays == sorted(p.name for p in (b / "arrays").glob("*.npy"))
    assert "teacher_features.npy" in arrays and "concept_vectors.npy" in arrays
    for name in arrays:
        x, y = np.load(a / "arrays" / name), np.load(b / "arrays" / name)
        assert x.dtype == y.dtype and np.array_equal(x, y), name
    wa, wb = Workspace(a), Workspace(b)
    for name, q in TABLES.items():
        assert wa.db.execute(q).fetchall() == wb.db.execute(q).fetchall(), name


def test_ray_prepare_writes_the_local_bytes(ray_cluster, dev_data, corpus, local_ws, tmp_path):
    rep = prepare(dev_data, tmp_path / "ws", limit=LIMIT, batch_size=2, corpus=corpus, progress=False,
                  ray="local", ray_workers=2)
    assert rep.n_done == rep.n_images == rep.n_processed_now == 3 * LIMIT
    assert ray.is_initialized(), "a Ray instance the caller started is left running"
    assert_same_workspace(local_ws, tmp_path / "ws")


def test_corrupt_images_on_ray_are_reported_as_locally(ray_cluster, dev_data, corpus, tmp_path):
    from tests.test_prepare import _small_csv_dataset

    bad = _small_csv_dataset(dev_data, tmp_path / "data")
    reps = [prepare(tmp_path / "data", tmp_path / name, batch_size=4, corpus=corpus, progress=False, **kw)
            for name, kw in (("local", {}), ("ray", {"ray": "local", "ray_workers": 2}))]
    for rep in reps:
        assert sorted(i for i, _ in rep.corrupt) == sorted(bad) and rep.n_done == rep.n_images - 2
    assert reps[0].corrupt == reps[1].corrupt
    assert_same_workspace(tmp_path / "local", tmp_path / "ray")


def test_ray_prepare_resumes_after_kill_9(ray_cluster, dev_data, corpus, local_ws, tmp_path):
    """`inficond prepare --ray ADDRESS` killed mid-run; the rerun redoes only unfinished batches."""
    ws_dir = tmp_path / "ws"
    cmd = [sys.executable, "-m", "inficond.cli", "prepare", "--data", str(dev_data), "--out", str(ws_dir),
           "--limit", str(LIMIT), "--batch-size", "2", "--corpus", str(corpus), "--ray", ray_cluster,
           "--ray-workers", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db = ws_dir / "workspace.sqlite"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if db.exists():
            try:
                con = sqlite3.connect(db, timeout=1)
                done = con.execute("SELECT COUNT(*) FROM images WHERE status = 'done'").fetchone()[0]
                con.close()
            except sqlite3.OperationalError:
                done = 0
            if done >= 2:
                break
        time.sleep(0.1)
    assert proc.poll() is None, "prepare finished (or failed) before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    ws = Workspace(ws_dir)
    done_before = int((ws.status == "done").sum())
    assert 2 <= done_before < ws.n_images
    # finished batches are a prefix of the run, as in the local loop
    assert (np.flatnonzero(ws.status == "done") == np.arange(done_before)).all()

    rep = prepare(dev_data, ws_dir, limit=LIMIT, batch_size=2, corpus=corpus, progress=False, ray="local")
    assert rep.n_processed_now == rep.n_images - done_before
    assert rep.n_done == rep.n_images
    assert_same_workspace(local_ws, ws_dir)


def test_a_worker_with_another_encoder_refuses_to_start(ray_cluster, local_ws):
    """A node with another inficond version would write other bytes: its worker stops the run."""
    from inficond.encoders.base import create_encoder
    from inficond.prepare import StageSpec
    from inficond.prepare_ray import run_batches_on_ray
    from inficond.teachers import create_teacher

    ws = Workspace(local_ws)
    identity = {**create_encoder("conse-effnet").identity(), "version": -1}
    teacher = create_teacher("effnet-lite2", ws.class_names).identity()
    spec = StageSpec("conse-effnet", {}, "effnet-lite2", ws.class_names, str(local_ws),
                     np.asarray(ws.array("concept_text")), identity, teacher)
    written = []
    with pytest.raises(WorkspaceMismatchError, match="same inficond version"):
        run_batches_on_ray(spec, [np.arange(2)], ws.image_paths, ws.image_ids, lambda *a: written.append(a) or 2,
                           address="local", workers=1)
    assert written == []


def test_ray_workers_without_ray_is_refused(dev_data, tmp_path):
    with pytest.raises(DataError, match="--ray-workers needs --ray"):
        prepare(dev_data, tmp_path / "ws", limit=1, ray_workers=2, progress=False)
    assert not (tmp_path / "ws").exists()


def test_unreachable_cluster_says_how_to_start_one(dev_data, corpus, tmp_path):
    with pytest.raises(DataError, match="ray start --head"):
        prepare(dev_data, tmp_path / "ws", limit=1, corpus=corpus, progress=False, ray="127.0.0.1:1")
    assert not (tmp_path / "ws").exists()
