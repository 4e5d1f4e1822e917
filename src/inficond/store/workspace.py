"""A workspace: one folder with a SQLite database and memory-mapped arrays.

Layout::

    WS/workspace.sqlite     images, splits, classes, concepts, identities, provenance
    WS/arrays/<name>.npy    per-image and per-concept arrays (opened with mmap_mode)
    WS/patches/*.jpg        concept patch crops for the interface
    WS/teacher/             the default teacher's trained head, reused by later runs

Rows of per-image arrays follow ``images.idx``; columns of ``concept_vectors`` follow
``concepts.idx``; columns of ``labels``/``teacher_logits`` follow ``classes.idx``.
Whole-array writes go to a temporary file that is then renamed, so a killed process leaves
either the old or the new array, never half of one.

Durability (see docs/ARCHITECTURE.md, "Crashes and power loss"): SQLite runs in WAL mode with
``synchronous=FULL``, so a returned commit survives power loss; file writes fsync the file
before the rename and the folder after it. A change that spans SQLite and array files (adding
concepts) stages the new arrays, commits the rows together with a note naming the staged
files, then renames them; opening a workspace finishes any renames a kill interrupted.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from inficond.data.dataset import Dataset
from inficond.exceptions import UnknownNameError, WorkspaceError, WorkspaceMismatchError

FORMAT_VERSION = 1
DB_NAME = "workspace.sqlite"


#: meta key of the staged array renames of a committed concept addition (see ``add_concepts``).
PENDING_ARRAYS_KEY = "pending_array_renames"
#: meta key of concepts added whose patches are not built yet (see ``concepts.mapping``).
PENDING_PATCHES_KEY = "pending_patches"


def fsync_dir(path: Path) -> None:
    """Make a rename or a new file in folder ``path`` durable (the entry lives in the folder)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _atomic_write(path: Path, write) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())  # the data is on disk before the name points at it
    os.replace(tmp, path)
    fsync_dir(path.parent)  # ... and the new name survives power loss


def atomic_save_npy(path: Path, array: np.ndarray) -> None:
    """Write ``array`` to ``path`` as .npy through a temporary file, fsync and a rename."""
    _atomic_write(path, lambda f: np.save(f, np.ascontiguousarray(array), allow_pickle=False))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file, fsync and a rename (old or new, never half)."""
    _atomic_write(path, lambda f: f.write(data))


def concept_key(word: str) -> str:
    """The one identity rule for concept words: spaces collapsed, case folded ('Dog' is 'dog')."""
    return " ".join(str(word).split()).casefold()


class Float32Rows:
    """Read access to a memory-mapped array (``concept_vectors`` is float16 on disk) that gives
    float32 copies of what is indexed: ``rows[idx]`` equals ``np.asarray(array, np.float32)[idx]``
    bit for bit (float16 to float32 is exact) without a float32 copy of the whole array in memory
    (245 MiB at 100,000 images x 642 concepts). The mapped pages stay in the page cache, shared
    and reclaimable.

    Parameters
    ----------
    array : ndarray or memmap of shape (n, ...)
    """

    def __init__(self, array: np.ndarray):
        self.array = array

    @property
    def shape(self) -> tuple[int, ...]:
        return self.array.shape

    @property
    def ndim(self) -> int:
        return self.array.ndim

    dtype = np.dtype(np.float32)

    def __len__(self) -> int:
        return len(self.array)

    def __getitem__(self, idx) -> np.ndarray:
        return np.asarray(self.array[idx], dtype=np.float32)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        return np.asarray(self.array, dtype=dtype or np.float32)


class Workspace:
    """Open (or create) the workspace in ``path``.

    Parameters
    ----------
    path : str or Path
        Workspace folder.
    create : bool, default False
        Create the folder and schema when missing. Without it a missing workspace is an error.
    """

    def __init__(self, path: str | Path, create: bool = False):
        self.path = Path(path)
        db = self.path / DB_NAME
        if not db.exists() and not create:
            raise WorkspaceError(
                f"no workspace at {self.path} (missing {DB_NAME}); build one with "
                f"`inficond prepare --data DATA --out {self.path}`"
            )
        (self.path / "arrays").mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self.db = sqlite3.connect(db, check_same_thread=False, isolation_level=None, timeout=30)
        self.db.execute("PRAGMA journal_mode=WAL")
        # FULL: every commit fsyncs the WAL, so a finished tuning step or batch survives power
        # loss (NORMAL only guarantees that after a checkpoint).
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("PRAGMA foreign_keys=ON")
        self._cache: dict[str, Any] = {}
        try:
            self.db.executescript(resources.files("inficond.store").joinpath("schema.sql").read_text())
        except sqlite3.IntegrityError as e:  # an older workspace holding 'Dog' and 'dog'
            raise WorkspaceError(f"workspace {self.path} has concept words that differ only in case ({e}); "
                                 "rename or remove one of each pair") from None
        version = self.get_meta("format_version")
        if version is None:
            self.set_meta("format_version", FORMAT_VERSION)
        elif version != FORMAT_VERSION:
            raise WorkspaceError(f"workspace format {version} is not supported (expected {FORMAT_VERSION})")
        self.finish_array_renames()

    # -- transactions and metadata -------------------------------------------------
    @contextmanager
    def transaction(self, keeps_cache: bool = False) -> Iterator[sqlite3.Connection]:
        """All statements inside commit together or not at all.

        ``keeps_cache=True``: the statements write no images, classes or concepts rows (the
        provenance log's), so the columns cached from them (labels, splits, status, ids, words)
        stay valid. Rebuilding those after every tuning step cost 0.2-0.3 s of the next views'
        first calls at 100,000 images (bench_scale.py).
        """
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")
        if not keeps_cache:
            self._cache.clear()

    def get_meta(self, key: str, default: Any = None) -> Any:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    def set_meta(self, key: str, value: Any) -> None:
        with self._lock:
            self.db.execute(
                "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, json.dumps(value, sort_keys=True)),
            )

    def check_identity(self, key: str, value: Any) -> None:
        """Store ``value`` under ``key`` the first time; refuse a different value later."""
        stored = self.get_meta(key)
        normal = json.loads(json.dumps(value, sort_keys=True))
        if stored is None:
            self.set_meta(key, normal)
        elif stored != normal:
            raise WorkspaceMismatchError(
                f"workspace {self.path} was built with {key}={json.dumps(stored, sort_keys=True)}, "
                f"not {json.dumps(normal, sort_keys=True)}; use a new --out folder to change it"
            )

    # -- images, classes, concepts -------------------------------------------------
    def add_dataset(self, ds: Dataset) -> None:
        """Record the dataset's classes and images (status pending). Idempotent for the same data."""
        self.check_identity("classes", list(ds.class_names))
        self.check_identity("image_ids", _digest(ds.image_ids))
        if self.n_images:
            return
        with self.transaction() as db:
            db.executemany("INSERT INTO classes(idx, name) VALUES (?, ?)", enumerate(ds.class_names))
            db.executemany(
                "INSERT INTO images(idx, image_id, path, split, labels) VALUES (?, ?, ?, ?, ?)",
                (
                    (i, iid, str(p), str(s), "".join(map(str, lab.tolist())))
                    for i, (iid, p, s, lab) in enumerate(zip(ds.image_ids, ds.paths, ds.splits, ds.labels))
                ),
            )
            # In the same transaction: a resumed run skips this method once images exist.
            self.set_meta("data_root", str(Path(ds.root).resolve()))
            self.set_meta("skipped", [list(s) for s in ds.skipped])

    def _cached(self, key: str, build):
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]

    @property
    def n_images(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM images").fetchone()[0]

    @property
    def class_names(self) -> list[str]:
        return self._cached("classes", lambda: [r[0] for r in self.db.execute("SELECT name FROM classes ORDER BY idx")])

    @property
    def image_ids(self) -> list[str]:
        return self._cached("image_ids", lambda: [r[0] for r in self.db.execute("SELECT image_id FROM images ORDER BY idx")])

    @property
    def image_paths(self) -> list[Path]:
        return self._cached("paths", lambda: [Path(r[0]) for r in self.db.execute("SELECT path FROM images ORDER BY idx")])

    @property
    def splits(self) -> np.ndarray:
        return self._cached(
            "splits", lambda: np.array([r[0] for r in self.db.execute("SELECT split FROM images ORDER BY idx")], dtype="<U5")
        )

    @property
    def status(self) -> np.ndarray:
        return self._cached(
            "status", lambda: np.array([r[0] for r in self.db.execute("SELECT status FROM images ORDER BY idx")], dtype="<U7")
        )

    @property
    def labels(self) -> np.ndarray:
        """Ground truth, ndarray of shape (n_images, n_classes), uint8."""

        def build():
            rows = [r[0] for r in self.db.execute("SELECT labels FROM images ORDER BY idx")]
            if not rows:
                return np.zeros((0, len(self.class_names)), np.uint8)
            return (np.frombuffer("".join(rows).encode(), dtype=np.uint8) - ord("0")).reshape(len(rows), -1)

        return self._cached("labels", build)

    def split_indices(self, split: str) -> np.ndarray:
        """Rows of usable (status ``done``) images of ``split``."""
        return np.flatnonzero((self.splits == split) & (self.status == "done"))

    def pending_indices(self) -> np.ndarray:
        return np.flatnonzero(self.status == "pending")

    def mark_images(self, idx, status: str, error: str | None = None) -> None:
        with self.transaction() as db:
            db.executemany(
                "UPDATE images SET status = ?, error = ? WHERE idx = ?", ((status, error, int(i)) for i in idx)
            )

    def class_index(self, name: str | int) -> int:
        names = self.class_names
        if isinstance(name, (int, np.integer)) and 0 <= int(name) < len(names):
            return int(name)
        if name in names:
            return names.index(name)
        raise UnknownNameError("class", name, names)

    @property
    def concept_words(self) -> list[str]:
        return self._cached("concepts", lambda: [r[0] for r in self.db.execute("SELECT word FROM concepts ORDER BY idx")])

    def concept_index(self, word: str | int) -> int:
        words = self.concept_words
        if isinstance(word, (int, np.integer)) and 0 <= int(word) < len(words):
            return int(word)
        try:
            return self._cached("concept_pos", lambda: {concept_key(w): i for i, w in enumerate(self.concept_words)})[
                concept_key(word)]
        except (KeyError, TypeError):
            raise UnknownNameError("concept", word, words) from None

    def add_concepts(self, words: list[str], prompts: list[str | None] | None = None, source: str = "default",
                     staged_arrays: dict[str, Path] | None = None, patches_per_concept: int | None = None) -> list[int]:
        """Append concepts not yet present (by :func:`concept_key`); returns the new column indices (in order).

        ``staged_arrays`` maps array names to complete, fsynced files that replace those arrays:
        they are recorded in the same transaction as the rows and renamed after the commit
        (by :meth:`finish_array_renames`, again on the next open when a kill came between).
        ``patches_per_concept`` records the new concepts as owing patches, in the same
        transaction, so an interrupted patch build is finished later.
        """
        prompts = prompts or [None] * len(words)
        have = {concept_key(w) for w in self.concept_words}
        start = len(self.concept_words)
        new = []
        with self.transaction() as db:
            for w, p in zip(words, prompts):
                if concept_key(w) in have:
                    continue
                have.add(concept_key(w))
                db.execute(
                    "INSERT INTO concepts(idx, word, prompt, source) VALUES (?, ?, ?, ?)", (start + len(new), w, p, source)
                )
                new.append(start + len(new))
            if staged_arrays and new:
                self.set_meta(PENDING_ARRAYS_KEY, {k: Path(v).name for k, v in staged_arrays.items()})
            if patches_per_concept and new:
                owed = self.get_meta(PENDING_PATCHES_KEY) or {"concepts": [], "per_concept": patches_per_concept}
                owed["concepts"] = sorted(set(owed["concepts"]) | set(new))
                self.set_meta(PENDING_PATCHES_KEY, owed)
        if staged_arrays and new:
            self.finish_array_renames()
        return new

    def stage_array(self, name: str, array: np.ndarray) -> Path:
        """Write ``array`` durably next to ``arrays/<name>.npy`` without replacing it yet."""
        p = self.array_path(name).with_name(f"{name}.staged.npy")
        atomic_save_npy(p, array)
        return p

    def finish_array_renames(self) -> None:
        """Complete the array renames of a committed concept addition (roll forward after a kill)."""
        pending = self.get_meta(PENDING_ARRAYS_KEY)
        if not pending:
            return
        with self._lock:
            for name, staged in pending.items():
                src = self.path / "arrays" / staged
                if src.exists():  # absent: renamed already, before the kill
                    os.replace(src, self.array_path(name))
            fsync_dir(self.path / "arrays")
            self.db.execute("DELETE FROM meta WHERE key = ?", (PENDING_ARRAYS_KEY,))
        self._cache.clear()

    # -- arrays --------------------------------------------------------------------
    def array_path(self, name: str) -> Path:
        return self.path / "arrays" / f"{name}.npy"

    def has_array(self, name: str) -> bool:
        return self.array_path(name).exists()

    def array(self, name: str, mode: str = "r") -> np.ndarray:
        """Open ``arrays/<name>.npy`` memory-mapped (``mode`` 'r' or 'r+')."""
        p = self.array_path(name)
        if not p.exists():
            raise WorkspaceError(f"workspace {self.path} has no array {name!r} yet; run `inficond prepare` first")
        return np.load(p, mmap_mode=mode)

    def open_array(self, name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
        """Open a writable memory-mapped array for incremental filling, creating it zeroed if missing.

        Used by ``prepare`` so finished rows survive a kill: rows are flushed before the images
        are marked done in SQLite.
        """
        p = self.array_path(name)
        if p.exists():
            arr = np.load(p, mmap_mode="r+")
            if arr.shape == tuple(shape) and arr.dtype == np.dtype(dtype):
                return arr
            raise WorkspaceMismatchError(
                f"array {name} in {self.path} has shape {arr.shape} {arr.dtype}, expected {tuple(shape)} {np.dtype(dtype)}"
            )
        tmp = p.with_name(p.name + ".tmp")
        np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=tuple(shape)).flush()
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, p)
        fsync_dir(p.parent)
        return np.load(p, mmap_mode="r+")

    def save_array(self, name: str, array: np.ndarray) -> None:
        atomic_save_npy(self.array_path(name), array)


def _digest(items: list[str]) -> str:
    import hashlib

    h = hashlib.sha256()
    for s in items:
        h.update(s.encode())
        h.update(b"\0")
    return h.hexdigest()[:16]
