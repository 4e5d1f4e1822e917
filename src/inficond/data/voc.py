"""PASCAL VOC layout: ``JPEGImages/``, ``Annotations/*.xml``, ``ImageSets/Main/{train,val,test}.txt``."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from inficond.data.csv_layout import index_image_folder
from inficond.data.dataset import SPLITS, Dataset
from inficond.exceptions import DataError

VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)


def find_voc_root(path: str | Path) -> Path | None:
    """The folder holding ``Annotations/`` and ``JPEGImages/``: ``path`` itself or ``path/VOCdevkit/VOC*``."""
    path = Path(path)
    for cand in [path, *sorted(path.glob("VOC*")), *sorted(path.glob("VOCdevkit/VOC*"))]:
        if (cand / "Annotations").is_dir() and (cand / "JPEGImages").is_dir():
            return cand
    return None


def read_voc_objects(xml_path: Path, use_difficult: bool = True) -> tuple[list[str], str | None]:
    """Object class names in one annotation file (and its ``<filename>``, if any)."""
    try:
        tree = ET.parse(xml_path)
    except ET.ParseError as e:
        raise DataError(f"malformed VOC annotation {xml_path}: {e}") from None
    names = []
    for obj in tree.getroot().iter("object"):
        name = (obj.findtext("name") or "").strip()
        if not name:
            raise DataError(f"{xml_path}: an <object> has no <name>")
        if not use_difficult and (obj.findtext("difficult") or "0").strip() == "1":
            continue
        names.append(name)
    return names, tree.getroot().findtext("filename")


def load_voc(root: str | Path, use_difficult: bool = True, class_names: list[str] | None = None) -> Dataset:
    """Read a PASCAL VOC tree as image-level multi-labels.

    Parameters
    ----------
    root : the ``VOC2012`` folder (or a folder above it holding ``VOCdevkit/VOC*``).
    use_difficult : count objects marked ``<difficult>1</difficult>`` as positives.
    class_names : class order; default the 20 VOC classes when every object name is one of them,
        else the sorted set of names found.

    Returns
    -------
    Dataset whose splits come from ``ImageSets/Main/{train,val,test}.txt`` (``trainval.txt`` counts as
    train when there is neither train.txt nor val.txt; all images are ``train`` when no list exists). Images without a JPEG file or without an annotation file are
    listed in ``skipped``.
    """
    base = find_voc_root(root)
    if base is None:
        raise DataError(f"{root} is not a PASCAL VOC folder: expected Annotations/ and JPEGImages/ in it "
                        "(or in VOCdevkit/VOC*/ below it)")
    sets_dir = base / "ImageSets" / "Main"
    split_of: dict[str, str] = {}
    files_of = {s: sets_dir / f"{s}.txt" for s in SPLITS}
    if not files_of["train"].is_file() and not files_of["val"].is_file():
        files_of["train"] = sets_dir / "trainval.txt"  # some releases ship only trainval (+ test)
    for split, f in files_of.items():
        if not f.is_file():
            continue
        for line in f.read_text().split("\n"):
            tok = line.split()
            if not tok:
                continue
            prev = split_of.setdefault(tok[0], split)
            if prev != split:
                raise DataError(f"image {tok[0]} is in both ImageSets/Main/{prev}.txt and {split}.txt")
    if not split_of:  # no split files: every annotated image is training data
        split_of = {p.stem: "train" for p in sorted((base / "Annotations").glob("*.xml"))}
    if not split_of:
        raise DataError(f"{base}: no images listed in ImageSets/Main/*.txt and no Annotations/*.xml")

    files = index_image_folder(base / "JPEGImages")
    ids, paths, objects, splits, skipped = [], [], [], [], []
    for image_id, split in split_of.items():
        xml_path = base / "Annotations" / f"{image_id}.xml"
        if not xml_path.is_file():
            skipped.append((image_id, f"annotation file not found: {xml_path}"))
            continue
        names, filename = read_voc_objects(xml_path, use_difficult)
        fname = files.get(image_id) or (files.get(filename) if filename else None)
        if fname is None:
            skipped.append((image_id, f"image file not found in {base / 'JPEGImages'}"))
            continue
        ids.append(image_id)
        paths.append(base / "JPEGImages" / fname)
        objects.append(set(names))
        splits.append(split)

    found = set().union(*objects) if objects else set()
    if class_names is None:
        class_names = list(VOC_CLASSES) if found <= set(VOC_CLASSES) else sorted(found)
    unknown = found - set(class_names)
    if unknown:
        raise DataError(f"{base}: object names {sorted(unknown)} are not in class_names")
    col = {c: j for j, c in enumerate(class_names)}
    labels = np.zeros((len(ids), len(class_names)), dtype=np.uint8)
    for i, names in enumerate(objects):
        labels[i, [col[n] for n in names]] = 1
    return Dataset(root=base, image_ids=ids, paths=paths, class_names=list(class_names),
                   labels=labels, splits=np.asarray(splits, dtype="<U5"), skipped=skipped)
