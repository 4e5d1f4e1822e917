"""Precomputed teacher logits read from a file, keyed by image id (no images needed)."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

from inficond.exceptions import TeacherOutputError
from inficond.teachers.base import check_logits
from inficond.teachers.torch_teacher import file_sha1

FORMATS = (".csv", ".npz", ".npy")


class LogitsFileTeacher:
    """Teacher logits from ``.csv``, ``.npz`` or ``.npy``.

    Parameters
    ----------
    path : the file.
        - ``.csv``: header ``image`` + one column per class (any order; extra columns are ignored and
          listed in ``ignored_columns_``).
        - ``.npz``: arrays ``image_ids`` (n,), ``logits`` (n, K) and optionally ``class_names`` (K,),
          which then decides the column order; without it the columns are in ``class_names`` order.
        - ``.npy``: one (n, K) array whose rows are in *dataset order*; pass ``image_ids`` (the
          dataset's ids, in that order) so rows can be matched, and columns are in ``class_names`` order.
    class_names : list of str, length K; the classes the logits must cover.
    image_ids : list of str, only for ``.npy``.

    Attributes
    ----------
    table_ : ndarray (n, K) float32, the validated logits, columns in ``class_names`` order.
    row_of_ : dict image id -> row of ``table_``.

    Raises
    ------
    TeacherOutputError
        Unreadable file, missing classes, NaN/inf, wrong shape, duplicate ids.
    """

    needs_images = False

    def __init__(self, path: str | Path, class_names: list[str], image_ids: list[str] | None = None):
        self.path = Path(path)
        self.class_names = list(class_names)
        self.ignored_columns_: list[str] = []
        if not self.path.is_file():
            raise TeacherOutputError(f"teacher logits file not found: {self.path}; pass file:PATH with an existing "
                                     f"{'/'.join(FORMATS)} file")
        suffix = self.path.suffix.lower()
        if suffix == ".csv":
            ids, table = self._read_csv()
        elif suffix == ".npz":
            ids, table = self._read_npz()
        elif suffix == ".npy":
            ids, table = self._read_npy(image_ids)
        else:
            raise TeacherOutputError(f"unsupported teacher logits file {self.path.name}; use one of {FORMATS}")
        if len(set(ids)) != len(ids):
            dup = sorted(i for i, c in Counter(ids).items() if c > 1)[:5]
            raise TeacherOutputError(f"{self.path.name}: duplicate image ids {dup}")
        self.table_ = check_logits(table, len(ids), len(self.class_names), source=f"logits file {self.path.name}")
        self.row_of_ = {i: r for r, i in enumerate(ids)}
        self.sha1_ = file_sha1(self.path)

    # -- readers ----------------------------------------------------------------------------
    def _columns(self, names: list[str]) -> list[int]:
        """Positions in ``names`` of each wanted class; error listing what is missing or extra."""
        missing = [c for c in self.class_names if c not in names]
        if missing:
            raise TeacherOutputError(f"{self.path.name}: no logits for class(es) {missing[:10]}"
                                     f"{' ...' if len(missing) > 10 else ''}; it has {names[:10]}")
        self.ignored_columns_ = [c for c in names if c not in self.class_names]
        return [names.index(c) for c in self.class_names]

    def _read_csv(self) -> tuple[list[str], np.ndarray]:
        with open(self.path, newline="", encoding="utf-8-sig") as f:
            rows = [r for r in csv.reader(f) if r]
        if not rows or "image" not in rows[0]:
            raise TeacherOutputError(f"{self.path.name}: the header must have an 'image' column")
        header = [h.strip() for h in rows[0]]
        i_img = header.index("image")
        others = [h for j, h in enumerate(header) if j != i_img]
        cols = [j if j < i_img else j + 1 for j in self._columns(others)]
        ids, table = [], []
        for line_no, r in enumerate(rows[1:], start=2):
            if len(r) != len(header):
                raise TeacherOutputError(f"{self.path.name}:{line_no}: {len(r)} fields, header has {len(header)}")
            ids.append(r[i_img].strip())
            try:
                table.append([float(r[j]) for j in cols])
            except ValueError:
                raise TeacherOutputError(f"{self.path.name}:{line_no}: non-numeric logit in {r}") from None
        return ids, np.asarray(table, dtype=np.float64).reshape(len(ids), len(cols))

    def _read_npz(self) -> tuple[list[str], np.ndarray]:
        try:
            z = np.load(self.path, allow_pickle=False)
        except (ValueError, OSError) as e:
            raise TeacherOutputError(f"cannot read {self.path.name} as .npz: {e}") from None
        for key in ("image_ids", "logits"):
            if key not in z:
                raise TeacherOutputError(f"{self.path.name}: array {key!r} missing (has {list(z.keys())})")
        ids = [str(i) for i in z["image_ids"].tolist()]
        table = np.asarray(z["logits"])
        if table.ndim != 2 or len(table) != len(ids):
            raise TeacherOutputError(f"{self.path.name}: logits shape {table.shape} does not match "
                                     f"{len(ids)} image_ids x {len(self.class_names)} classes")
        if "class_names" in z:
            names = [str(c) for c in z["class_names"].tolist()]
            if len(names) != table.shape[1]:
                raise TeacherOutputError(f"{self.path.name}: {len(names)} class_names for {table.shape[1]} logit columns")
            table = table[:, self._columns(names)]
        return ids, table

    def _read_npy(self, image_ids: list[str] | None) -> tuple[list[str], np.ndarray]:
        if image_ids is None:
            raise TeacherOutputError(f"{self.path.name}: a .npy logits file has rows in dataset order; "
                                     "pass image_ids (the dataset's ids in order), or use .npz/.csv with ids")
        try:
            table = np.load(self.path, allow_pickle=False)
        except (ValueError, OSError) as e:
            raise TeacherOutputError(f"cannot read {self.path.name} as .npy: {e}") from None
        if table.ndim != 2 or len(table) != len(image_ids):
            raise TeacherOutputError(f"{self.path.name}: array shape {table.shape}; expected "
                                     f"({len(image_ids)}, {len(self.class_names)}) = (dataset images, classes)")
        return [str(i) for i in image_ids], table

    # -- Teacher protocol ---------------------------------------------------------------------
    def identity(self) -> dict:
        return {"kind": "file", "path": str(self.path.resolve()), "sha1": self.sha1_, "class_names": self.class_names}

    def logits(self, image_ids: list[str], images: list[Image.Image] | None = None) -> np.ndarray:
        """(len(image_ids), K) float32 rows for ``image_ids``; ``images`` is ignored."""
        missing = [i for i in image_ids if i not in self.row_of_]
        if missing:
            raise TeacherOutputError(f"{self.path.name} has no logits for {len(missing)} image id(s), e.g. "
                                     f"{missing[:5]}; the file must cover every image of the dataset")
        rows = np.fromiter((self.row_of_[i] for i in image_ids), dtype=np.int64, count=len(image_ids))
        return check_logits(self.table_[rows], len(image_ids), len(self.class_names), source=f"logits file {self.path.name}")
