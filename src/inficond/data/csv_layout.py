"""CSV layout: ``images/`` + ``labels.csv`` with ``image``, optional ``split``, one 0/1 column per class."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from inficond.data.dataset import Dataset
from inficond.exceptions import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")

# accepted spellings of the three split names
SPLIT_ALIASES = {
    "train": "train", "training": "train",
    "val": "val", "valid": "val", "validation": "val", "dev": "val",
    "test": "test", "testing": "test", "heldout": "test",
}


def normalise_split(value: str, where: str) -> str:
    """Map a split spelling (``Validation``, ``dev``...) to ``train``/``val``/``test`` or raise DataError."""
    try:
        return SPLIT_ALIASES[value.strip().lower()]
    except KeyError:
        raise DataError(f"{where}: unknown split {value!r}; use train, val or test") from None


def index_image_folder(folder: Path) -> dict[str, str]:
    """Map file stem and file name -> file name for the image files directly in ``folder``.

    One directory listing instead of one ``stat`` per image (fast on network disks).
    """
    found: dict[str, str] = {}
    with os.scandir(folder) as it:
        for entry in it:
            if entry.is_file() and entry.name.lower().endswith(IMAGE_EXTENSIONS):
                found.setdefault(Path(entry.name).stem, entry.name)
                found[entry.name] = entry.name
    return found


def load_csv_layout(root: str | Path, labels_file: str = "labels.csv", image_dir: str = "images") -> Dataset:
    """Read a dataset stored as ``root/images/*`` + ``root/labels.csv``.

    Parameters
    ----------
    root : folder holding ``labels_file`` and ``image_dir``.
    labels_file : CSV with a header. Column ``image`` is the file name, with or without extension,
        relative to ``image_dir``; optional column ``split`` (train/val/test); every other column is a
        class with values 0/1.
    image_dir : folder of the images, relative to ``root``.

    Returns
    -------
    Dataset. Rows whose image file is missing are left out and listed in ``skipped``; a missing
    ``split`` column puts every image in ``train`` (see :func:`inficond.data.splits.ensure_splits`).
    """
    root = Path(root)
    csv_path = root / labels_file
    img_dir = root / image_dir
    if not csv_path.is_file():
        raise DataError(f"{csv_path} not found; the CSV layout needs {labels_file} next to {image_dir}/")
    if not img_dir.is_dir():
        raise DataError(f"{img_dir} not found; the CSV layout keeps the images in {image_dir}/ next to {labels_file}")
    with open(csv_path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        rows = [r for r in reader if any(c.strip() for c in r)]
    if not header or "image" not in header:
        raise DataError(f"{csv_path}: the header must have an 'image' column; got {header}")
    header = [h.strip() for h in header]
    i_img = header.index("image")
    i_split = header.index("split") if "split" in header else None
    class_cols = [i for i, h in enumerate(header) if i not in (i_img, i_split)]
    if not class_cols:
        raise DataError(f"{csv_path}: no class columns (one 0/1 column per class after image, split)")
    class_names = [header[i] for i in class_cols]

    files = index_image_folder(img_dir)
    ids, paths, labels, splits, skipped = [], [], [], [], []
    for line_no, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise DataError(f"{csv_path}:{line_no}: {len(row)} fields, header has {len(header)}")
        name = row[i_img].strip()
        try:
            y = [int(float(row[i])) for i in class_cols]
        except ValueError:
            raise DataError(f"{csv_path}:{line_no}: class values must be 0 or 1; got {[row[i] for i in class_cols]}") from None
        if any(v not in (0, 1) for v in y):
            raise DataError(f"{csv_path}:{line_no}: class values must be 0 or 1; got {y}")
        split = normalise_split(row[i_split], f"{csv_path}:{line_no}") if i_split is not None else "train"
        image_id = Path(name).stem if Path(name).suffix.lower() in IMAGE_EXTENSIONS else name
        fname = files.get(name) or files.get(image_id)
        if fname is None:
            skipped.append((image_id, f"image file not found in {img_dir}"))
            continue
        ids.append(image_id)
        paths.append(img_dir / fname)
        labels.append(y)
        splits.append(split)
    labels_arr = np.asarray(labels, dtype=np.uint8).reshape(len(ids), len(class_names))
    return Dataset(root=root, image_ids=ids, paths=paths, class_names=class_names,
                   labels=labels_arr, splits=np.asarray(splits, dtype="<U5"), skipped=skipped)
