"""Dataset loaders (CSV, PASCAL VOC, COCO) and splits; every loader returns a :class:`Dataset`."""

from __future__ import annotations

import os
from pathlib import Path

from inficond.data.coco import load_coco
from inficond.data.csv_layout import load_csv_layout
from inficond.data.dataset import SPLITS, Dataset
from inficond.data.images import load_image
from inficond.data.splits import class_support, ensure_splits, iterative_stratification
from inficond.data.voc import find_voc_root, load_voc
from inficond.exceptions import DataError, UnknownNameError

__all__ = [
    "Dataset", "SPLITS", "LAYOUTS", "load_dataset", "detect_layout", "class_support", "ensure_splits",
    "iterative_stratification", "load_csv_layout", "load_voc", "load_coco", "load_image",
]

LAYOUTS = ("auto", "csv", "voc", "coco")
DATA_ENV = "INFICOND_DATA"


def detect_layout(path: str | Path) -> str:
    """``csv``, ``voc`` or ``coco`` for a dataset folder (or a labels CSV / instances JSON file)."""
    p = Path(path)
    if p.is_file():
        if p.suffix.lower() == ".csv":
            return "csv"
        if p.suffix.lower() == ".json":
            return "coco"
    elif (p / "labels.csv").is_file():
        return "csv"
    elif find_voc_root(p) is not None:
        return "voc"
    elif any((p / "annotations").glob("instances_*.json")):
        return "coco"
    raise DataError(
        f"cannot tell the dataset layout of {p}: expected labels.csv + images/ (csv), "
        "Annotations/ + JPEGImages/ (voc) or annotations/instances_*.json (coco); pass layout= explicitly"
    )


def load_dataset(path: str | Path | None = None, layout: str = "auto", test_fraction: float = 0.15,
                 seed: int = 0, val_fraction: float | None = None) -> Dataset:
    """Load a dataset and make sure it has ``train``, ``val`` and ``test`` splits.

    Parameters
    ----------
    path : dataset folder (or ``labels.csv`` / COCO instances JSON); default env ``INFICOND_DATA``.
    layout : ``auto`` (detect), ``csv``, ``voc`` or ``coco``.
    test_fraction : share of train images carved into ``test`` when the data has no test split.
    seed : seed of that carving (same seed, same split).
    val_fraction : share carved into ``val`` when there is no val split (default ``test_fraction``).

    Returns
    -------
    Dataset; unreadable entries are in ``ds.skipped``.
    """
    if path is None or str(path) == "":
        path = os.environ.get(DATA_ENV) or None
    if path is None:
        raise DataError(f"no dataset given: pass --data PATH or set the environment variable {DATA_ENV}")
    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(f"dataset path {p} does not exist: pass --data PATH or set {DATA_ENV} to a dataset folder")
    if layout not in LAYOUTS:
        raise UnknownNameError("dataset layout", layout, LAYOUTS)
    if layout == "auto":
        layout = detect_layout(p)
    if layout == "csv":
        ds = load_csv_layout(p.parent, labels_file=p.name) if p.is_file() else load_csv_layout(p)
    elif layout == "voc":
        ds = load_voc(p)
    else:
        ds = load_coco(p)
    if len(ds) == 0:
        reasons = "; ".join(f"{i}: {r}" for i, r in ds.skipped[:3])
        raise DataError(f"no usable images in {p} ({len(ds.skipped)} skipped{': ' + reasons if reasons else ''})")
    return ensure_splits(ds, test_fraction=test_fraction, val_fraction=val_fraction, seed=seed)
