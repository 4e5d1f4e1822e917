"""Fixtures and tiny-dataset writers for the data and teacher tests (import them explicitly)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
VOC_SUBSET = Path(os.environ.get("INFICOND_DATA", REPO / ".." / "shared" / "data" / "voc2012-subset"))


@pytest.fixture(scope="session")
def voc_subset() -> Path:
    """The development data (CSV layout); env INFICOND_DATA overrides its location."""
    if not (VOC_SUBSET / "labels.csv").is_file():
        pytest.fail(f"development data not found at {VOC_SUBSET}; set INFICOND_DATA")
    return VOC_SUBSET


def write_jpeg(path: Path, seed: int = 0, size: tuple[int, int] = (48, 32)) -> Path:
    """A real small JPEG with random colour blocks (different per seed)."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, size=(4, 6, 3), dtype=np.uint8)
    img = Image.fromarray(blocks).resize(size, Image.Resampling.NEAREST)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, quality=90)
    return path


def write_voc_tree(root: Path, objects: dict[str, list[str]], sets: dict[str, list[str]],
                   missing_jpeg: tuple[str, ...] = ()) -> Path:
    """A minimal PASCAL VOC tree: ``objects`` maps image id -> object names."""
    for k, (image_id, names) in enumerate(objects.items()):
        if image_id not in missing_jpeg:
            write_jpeg(root / "JPEGImages" / f"{image_id}.jpg", seed=k)
        objs = "".join(f"<object><name>{n}</name><difficult>0</difficult></object>" for n in names)
        (root / "Annotations").mkdir(parents=True, exist_ok=True)
        (root / "Annotations" / f"{image_id}.xml").write_text(
            f"<annotation><filename>{image_id}.jpg</filename>{objs}</annotation>")
    (root / "ImageSets" / "Main").mkdir(parents=True, exist_ok=True)
    for split, ids in sets.items():
        (root / "ImageSets" / "Main" / f"{split}.txt").write_text("\n".join(ids) + "\n")
    return root


def write_coco_tree(root: Path, split_images: dict[str, dict[str, list[int]]], categories: dict[int, str],
                    missing: tuple[str, ...] = ()) -> Path:
    """A minimal COCO tree: ``split_images[name][file_name] = category ids``; images in ``root/<name>/``."""
    img_id = 1
    for name, images in split_images.items():
        imgs, anns = [], []
        for k, (fname, cats) in enumerate(images.items()):
            if fname not in missing:
                write_jpeg(root / name / fname, seed=img_id)
            imgs.append({"id": img_id, "file_name": fname, "width": 48, "height": 32})
            for c in cats:
                anns.append({"id": len(anns) + 1, "image_id": img_id, "category_id": c, "bbox": [0, 0, 5, 5]})
            img_id += 1
        (root / "annotations").mkdir(parents=True, exist_ok=True)
        cats = [{"id": i, "name": n, "supercategory": "x"} for i, n in categories.items()]
        (root / "annotations" / f"instances_{name}.json").write_text(
            json.dumps({"images": imgs, "annotations": anns, "categories": cats}))
    return root


def plant_shortcut(path: Path, cls: str = "dog", word: str = "grass", strength: float = 2.0):
    """Give the workspace at ``path`` a teacher that learned "``word`` means ``cls``" and distil it.

    The teacher's logit for ``cls`` plus ``strength`` std of ``word``'s standardised presence (2:
    issue 8's synthetic case). Returns the Session.
    """
    from inficond.session import Session
    from inficond.store.workspace import Workspace

    s = Session(path)
    k, g, tr = s.class_idx(cls), s.concept_idx(word), s.rows("train")
    x = s.X[:, g].astype(np.float64)
    z = (x - x[tr].mean()) / x[tr].std()
    T = np.asarray(s.T, dtype=np.float64).copy()
    T[:, k] += strength * T[tr, k].std() * z
    Workspace(path).save_array("teacher_logits", T.astype(np.float32))
    s = Session(path)
    s.distill(max_concepts=20)
    return s

