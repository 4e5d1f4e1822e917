"""COCO instances JSON: image-level multi-labels from ``annotations[].category_id``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from inficond.data.dataset import Dataset
from inficond.exceptions import DataError


def _split_from_name(name: str) -> str:
    """``instances_val2017.json`` -> ``val``; train when the name says nothing."""
    low = name.lower()
    for key, split in (("test", "test"), ("val", "val"), ("train", "train")):
        if key in low:
            return split
    return "train"


def find_coco_files(root: Path) -> list[tuple[Path, Path, str]]:
    """(annotation JSON, image folder, split) triples found under a COCO-style ``root``.

    Looks for ``root/annotations/instances_<name>.json`` with images in ``root/<name>/``,
    ``root/images/<name>/`` or ``root/images/``.
    """
    out = []
    for js in sorted((root / "annotations").glob("instances_*.json")):
        name = re.sub(r"^instances_", "", js.stem)
        for folder in (root / name, root / "images" / name, root / "images"):
            if folder.is_dir():
                out.append((js, folder, _split_from_name(name)))
                break
        else:
            raise DataError(f"{js}: image folder not found; expected {root / name}/ or {root / 'images'}/")
    return out


def _read_json(path: Path) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise DataError(f"malformed COCO JSON {path}: {e}") from None
    for key in ("images", "annotations", "categories"):
        if key not in data:
            raise DataError(f"{path} is not a COCO instances file: key {key!r} missing")
    return data


def load_coco(root: str | Path, image_dir: str | Path | None = None, split: str | None = None) -> Dataset:
    """Read COCO instances annotations as image-level multi-labels.

    Parameters
    ----------
    root : a COCO folder (``annotations/instances_*.json`` + image folders), or one instances JSON file.
    image_dir : with a single JSON file: the folder its ``images[].file_name`` are relative to
        (default: ``images/`` next to the JSON's folder, else the JSON's folder).
    split : with a single JSON file: the split of all its images (default from the file name).

    Returns
    -------
    Dataset with classes in ``categories`` id order and ids = ``file_name`` without extension.
    Images without annotations are kept as all-negative; missing files are listed in ``skipped``.
    """
    root = Path(root)
    if root.is_file():
        if image_dir is None:
            cands = [root.parent.parent / "images", root.parent / "images", root.parent]
            image_dir = next(c for c in cands if c.is_dir())
        parts = [(root, Path(image_dir), split or _split_from_name(root.stem))]
        base = root.parent
    else:
        parts = find_coco_files(root)
        base = root
        if not parts:
            raise DataError(f"{root}: no annotations/instances_*.json found")

    class_names: list[str] | None = None
    ids, paths, labels, splits, skipped = [], [], [], [], []
    for js, folder, sp in parts:
        data = _read_json(js)
        cats = sorted(data["categories"], key=lambda c: c["id"])
        names = [str(c["name"]) for c in cats]
        if class_names is None:
            class_names = names
        elif names != class_names:
            raise DataError(f"{js}: categories differ from the other annotation files")
        col = {c["id"]: j for j, c in enumerate(cats)}
        y = {}
        for im in data["images"]:
            y[im["id"]] = np.zeros(len(names), dtype=np.uint8)
        for ann in data["annotations"]:
            if ann["image_id"] not in y:
                raise DataError(f"{js}: annotation {ann.get('id')} refers to unknown image_id {ann['image_id']}")
            if ann["category_id"] not in col:
                raise DataError(f"{js}: annotation {ann.get('id')} has unknown category_id {ann['category_id']}")
            y[ann["image_id"]][col[ann["category_id"]]] = 1
        for im in data["images"]:
            fname = im["file_name"]
            image_id = Path(fname).with_suffix("").as_posix()
            path = folder / fname
            if not path.is_file():
                skipped.append((image_id, f"image file not found: {path}"))
                continue
            ids.append(image_id)
            paths.append(path)
            labels.append(y[im["id"]])
            splits.append(sp)
    labels_arr = np.asarray(labels, dtype=np.uint8).reshape(len(ids), len(class_names or []))
    return Dataset(root=base, image_ids=ids, paths=paths, class_names=class_names or [],
                   labels=labels_arr, splits=np.asarray(splits, dtype="<U5"), skipped=skipped)
