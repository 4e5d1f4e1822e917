"""The workspace store: durable writes, one transaction per logical change, one rule for word case."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import numpy as np
import pytest

from inficond.data.dataset import Dataset
from inficond.store.workspace import Workspace, atomic_save_npy, atomic_write_bytes


def _dataset(root: Path, skipped=None) -> Dataset:
    ids = [f"img{i}" for i in range(6)]
    return Dataset(
        root=root, image_ids=ids, paths=[root / f"{i}.jpg" for i in ids],
        splits=np.array(["train", "train", "val", "val", "test", "test"]), class_names=["cat", "dog"],
        labels=np.array([[1, 0], [0, 1], [1, 1], [0, 0], [1, 0], [0, 1]], np.uint8),
        skipped=[("gone", "missing file")] if skipped is None else skipped,
    )


class _FailingList(list):
    """A skipped-image list whose first read fails, like a kill right after the images commit."""

    def __init__(self, *a):
        super().__init__(*a)
        self.reads = 0

    def __iter__(self):
        self.reads += 1
        if self.reads == 1:
            raise KeyboardInterrupt("interrupted while writing the skipped list")
        return super().__iter__()


def test_data_root_and_skipped_commit_with_the_images(tmp_path):
    """Interrupted after the images went in, the rerun must still record data_root and skipped."""
    ws = Workspace(tmp_path / "ws", create=True)
    with pytest.raises(KeyboardInterrupt):
        ws.add_dataset(_dataset(tmp_path, _FailingList([("gone", "missing file")])))
    ws = Workspace(tmp_path / "ws")
    ws.add_dataset(_dataset(tmp_path))
    assert ws.n_images == 6
    assert ws.get_meta("data_root") == str(tmp_path.resolve())
    assert ws.get_meta("skipped") == [["gone", "missing file"]]


def test_sqlite_commits_are_durable(tmp_path):
    ws = Workspace(tmp_path / "ws", create=True)
    assert ws.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert ws.db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL: the WAL is fsynced per commit


@pytest.mark.parametrize("write", ["bytes", "npy"])
def test_atomic_writes_fsync_the_file_and_its_folder(tmp_path, monkeypatch, write):
    synced = []
    real_fsync = os.fsync

    def spy(fd):  # records what is synced, then really syncs it
        mode = os.fstat(fd).st_mode
        synced.append("dir" if stat.S_ISDIR(mode) else "file")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    target = tmp_path / "sub" / "x.bin"
    if write == "bytes":
        atomic_write_bytes(target, b"hello")
        assert target.read_bytes() == b"hello"
    else:
        atomic_save_npy(target, np.arange(5))
        np.testing.assert_array_equal(np.load(target), np.arange(5))
    assert synced == ["file", "dir"], "the data before the rename, the folder entry after it"
    assert not list(target.parent.glob("*.tmp"))


def test_word_case_is_one_rule(tmp_path):
    ws = Workspace(tmp_path / "ws", create=True)
    assert ws.add_concepts(["dog", "Traffic  Light"]) == [0, 1]
    # the Python check and SQLite agree: a word differing only in case is the same word
    assert ws.add_concepts(["DOG", "traffic light", "cat"]) == [2]
    assert ws.concept_words == ["dog", "Traffic  Light", "cat"]
    with pytest.raises(sqlite3.IntegrityError):
        ws.db.execute("INSERT INTO concepts(idx, word) VALUES (9, 'Cat')")
    assert ws.concept_index("Dog") == 0 and ws.concept_index("TRAFFIC LIGHT") == 1
    from inficond.store.workspace import concept_key

    assert concept_key("  Traffic   LIGHT ") == concept_key("traffic light")


def test_old_workspace_gets_the_case_rule(tmp_path):
    """A workspace whose table was made case-sensitive still refuses 'Dog' next to 'dog' once opened."""
    d = tmp_path / "ws"
    d.mkdir()
    con = sqlite3.connect(d / "workspace.sqlite")
    con.execute("CREATE TABLE concepts (idx INTEGER PRIMARY KEY, word TEXT NOT NULL UNIQUE, prompt TEXT, "
                "source TEXT NOT NULL DEFAULT 'default')")
    con.execute("INSERT INTO concepts(idx, word) VALUES (0, 'dog')")
    con.commit()
    con.close()
    ws = Workspace(d)
    with pytest.raises(sqlite3.IntegrityError):
        ws.db.execute("INSERT INTO concepts(idx, word) VALUES (1, 'Dog')")
    assert ws.add_concepts(["DOG", "cat"]) == [1]


def test_staged_arrays_are_renamed_on_open_after_a_kill(tmp_path):
    """Rows committed with staged arrays, killed before the renames: opening finishes them."""
    ws = Workspace(tmp_path / "ws", create=True)
    ws.save_array("concept_text", np.zeros((1, 3), np.float32))
    ws.add_concepts(["dog"])
    staged = ws.stage_array("concept_text", np.ones((2, 3), np.float32))
    # what add_concepts(..., staged_arrays=...) commits, without its renames (the kill)
    with ws.transaction():
        ws.db.execute("INSERT INTO concepts(idx, word) VALUES (1, 'cat')")
        ws.set_meta("pending_array_renames", {"concept_text": staged.name})
    assert np.asarray(ws.array("concept_text")).shape == (1, 3)
    ws2 = Workspace(tmp_path / "ws")
    assert np.asarray(ws2.array("concept_text")).shape == (2, 3) == (len(ws2.concept_words), 3)
    assert ws2.get_meta("pending_array_renames") is None and not staged.exists()


def test_provenance_writes_keep_the_cached_image_columns(tmp_path):
    """A tuning step writes only provenance rows: the labels, splits and status read from the
    image rows stay cached (rebuilding them cost 0.2-0.3 s per step at 100,000 images); any other
    transaction drops them."""
    ws = Workspace(tmp_path / "ws", create=True)
    ws.add_dataset(_dataset(tmp_path))
    labels, splits = ws.labels, ws.splits
    with ws.transaction(keeps_cache=True) as db:
        db.execute("INSERT INTO meta(key, value) VALUES ('x', '1')")
    assert ws.labels is labels and ws.splits is splits
    with ws.transaction() as db:
        db.execute("UPDATE images SET split = 'test' WHERE idx = 0")
    assert ws.labels is not labels and ws.splits[0] == "test"
