"""Dataset loaders on the real development data and on tiny VOC/COCO/CSV trees written here."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from _data_fixtures import voc_subset, write_coco_tree, write_jpeg, write_voc_tree  # noqa: F401
from inficond.data import Dataset, class_support, detect_layout, load_coco, load_csv_layout, load_dataset, load_voc
from inficond.data.images import load_image
from inficond.exceptions import CorruptImageError, DataError, UnknownNameError


# -- CSV layout ---------------------------------------------------------------------------------
def _labels_csv(root):
    """The development data's own counts, read from its labels.csv (the data grows; never hard-code)."""
    import csv

    with open(root / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    classes = [c for c in rows[0] if c not in ("image", "split")]
    return rows, classes


def test_dev_data_loads_with_all_splits(voc_subset):
    rows, classes = _labels_csv(voc_subset)
    n_val = sum(r["split"] == "val" for r in rows)
    n_train = len(rows) - n_val
    ds = load_dataset(voc_subset)
    assert isinstance(ds, Dataset) and len(ds) == len(rows) and ds.skipped == []
    assert ds.class_names == classes and ds.class_names[0] == "aeroplane" and ds.class_names[-1] == "tvmonitor"
    assert ds.labels.dtype == np.uint8 and ds.labels.shape == (len(rows), len(classes))
    # val is kept as given (the official val images); test is carved from train (15 %)
    assert len(ds.indices("val")) == n_val
    assert len(ds.indices("test")) == pytest.approx(0.15 * n_train, abs=3)
    assert len(ds.indices("train")) + len(ds.indices("test")) == n_train
    assert ds.paths[0].is_file() and ds.paths[0].suffix == ".jpg"
    n_dog_train = sum(int(r["dog"]) for r in rows if r["split"] != "val")
    assert ds.labels[ds.indices("train"), ds.class_names.index("dog")].sum() == pytest.approx(0.85 * n_dog_train, rel=0.05)


def test_csv_layout_skips_missing_files_and_keeps_the_rest(tmp_path):
    for name in ("a", "b.png", "c"):
        write_jpeg(tmp_path / "images" / (name if "." in name else f"{name}.jpg"))
    (tmp_path / "labels.csv").write_text(
        "image,split,cat,dog\na,train,1,0\nb.png,Validation,0,1\nc.jpg,test,1,1\ngone,train,0,0\n")
    ds = load_csv_layout(tmp_path)
    assert ds.image_ids == ["a", "b", "c"]
    assert ds.splits.tolist() == ["train", "val", "test"]
    assert ds.labels.tolist() == [[1, 0], [0, 1], [1, 1]]
    assert ds.paths[1].name == "b.png"
    assert ds.skipped == [("gone", f"image file not found in {tmp_path / 'images'}")]


def test_csv_layout_rejects_bad_values(tmp_path):
    write_jpeg(tmp_path / "images" / "a.jpg")
    (tmp_path / "labels.csv").write_text("image,split,cat\na,train,2\n")
    with pytest.raises(DataError, match="0 or 1"):
        load_csv_layout(tmp_path)
    (tmp_path / "labels.csv").write_text("image,split,cat\na,holdout,1\n")
    with pytest.raises(DataError, match="unknown split 'holdout'"):
        load_csv_layout(tmp_path)


# -- PASCAL VOC ---------------------------------------------------------------------------------
def test_voc_layout(tmp_path):
    objects = {"2008_000001": ["dog", "person", "dog"], "2008_000002": ["cat"], "2008_000003": [],
               "2008_000004": ["sheep"], "2008_000005": ["cow"]}
    root = write_voc_tree(tmp_path / "VOCdevkit" / "VOC2012", objects,
                          {"train": ["2008_000001", "2008_000002", "2008_000005"], "val": ["2008_000003", "2008_000004"]},
                          missing_jpeg=("2008_000005",))
    assert detect_layout(tmp_path) == "voc"
    ds = load_voc(tmp_path)  # finds VOCdevkit/VOC2012 below the given folder
    assert ds.root == root
    assert ds.class_names[:3] == ["aeroplane", "bicycle", "bird"] and len(ds.class_names) == 20
    assert ds.image_ids == ["2008_000001", "2008_000002", "2008_000003", "2008_000004"]
    assert ds.splits.tolist() == ["train", "train", "val", "val"]
    on = {i: sorted(np.array(ds.class_names)[ds.labels[k] == 1]) for k, i in enumerate(ds.image_ids)}
    assert on == {"2008_000001": ["dog", "person"], "2008_000002": ["cat"], "2008_000003": [], "2008_000004": ["sheep"]}
    assert [s[0] for s in ds.skipped] == ["2008_000005"]


def test_voc_custom_classes_and_leakage(tmp_path):
    write_voc_tree(tmp_path, {"x1": ["widget"], "x2": ["gadget", "widget"]}, {"train": ["x1", "x2"], "val": ["x2"]})
    with pytest.raises(DataError, match="both"):
        load_voc(tmp_path)
    (tmp_path / "ImageSets" / "Main" / "val.txt").write_text("")
    ds = load_voc(tmp_path)
    assert ds.class_names == ["gadget", "widget"] and ds.labels.tolist() == [[0, 1], [1, 1]]
    for f in ("train", "val"):
        (tmp_path / "ImageSets" / "Main" / f"{f}.txt").unlink()
    (tmp_path / "ImageSets" / "Main" / "trainval.txt").write_text("x1\n")
    (tmp_path / "ImageSets" / "Main" / "test.txt").write_text("x2\n")
    assert load_voc(tmp_path).splits.tolist() == ["train", "test"]


# -- COCO ---------------------------------------------------------------------------------------
def test_coco_layout(tmp_path):
    cats = {1: "person", 3: "car", 18: "dog"}
    write_coco_tree(tmp_path, {
        "train2017": {"000001.jpg": [1, 1, 18], "000002.jpg": [3], "000003.jpg": [], "000004.jpg": [18]},
        "val2017": {"000010.jpg": [1, 3], "000011.jpg": [18]},
    }, cats, missing=("000004.jpg",))
    assert detect_layout(tmp_path) == "coco"
    ds = load_coco(tmp_path)
    assert ds.class_names == ["person", "car", "dog"]
    assert ds.image_ids == ["000001", "000002", "000003", "000010", "000011"]
    assert ds.splits.tolist() == ["train", "train", "train", "val", "val"]
    assert ds.labels.tolist() == [[1, 0, 1], [0, 1, 0], [0, 0, 0], [1, 1, 0], [0, 0, 1]]
    assert ds.skipped[0][0] == "000004"
    # a single instances file with an explicit image folder
    one = load_coco(tmp_path / "annotations" / "instances_val2017.json", image_dir=tmp_path / "val2017")
    assert one.image_ids == ["000010", "000011"] and set(one.splits) == {"val"}


# -- load_dataset -------------------------------------------------------------------------------
def test_load_dataset_errors(tmp_path, monkeypatch):
    monkeypatch.delenv("INFICOND_DATA", raising=False)
    with pytest.raises(DataError, match="--data PATH.*INFICOND_DATA"):
        load_dataset(None)
    with pytest.raises(DataError, match="does not exist.*--data PATH"):
        load_dataset(tmp_path / "nope")
    with pytest.raises(DataError, match="cannot tell the dataset layout"):
        load_dataset(tmp_path)
    with pytest.raises(UnknownNameError, match="did you mean: coco"):
        load_dataset(tmp_path, layout="cocoo")


def test_load_dataset_carves_val_and_test_when_missing(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    lines = ["image,a,b,c"]
    for i in range(60):
        write_jpeg(tmp_path / "images" / f"im{i}.jpg", seed=i, size=(16, 16))
        lines.append(f"im{i}," + ",".join(map(str, rng.integers(0, 2, 3))))
    (tmp_path / "labels.csv").write_text("\n".join(lines) + "\n")
    monkeypatch.setenv("INFICOND_DATA", str(tmp_path))
    ds = load_dataset(None, test_fraction=0.2, seed=3)
    sizes = {s: len(ds.indices(s)) for s in ("train", "val", "test")}
    assert sum(sizes.values()) == 60
    assert sizes["train"] == pytest.approx(36, abs=2) and sizes["val"] == pytest.approx(12, abs=2)
    assert (load_dataset(tmp_path, test_fraction=0.2, seed=3).splits == ds.splits).all()


def test_class_support_excludes_thin_classes(voc_subset):
    rows, classes = _labels_csv(voc_subset)
    ds = load_dataset(voc_subset)
    sup = class_support(ds, min_positives=5)
    assert list(sup) == ds.class_names
    for c in classes:
        assert sup[c]["val"] == sum(int(r[c]) for r in rows if r["split"] == "val")
        assert sup[c]["train"] + sup[c]["test"] == sum(int(r[c]) for r in rows if r["split"] != "val")
    assert sup["dog"]["excluded"] is False and sup["dog"]["reason"] is None
    assert all(v["excluded"] == (v["val"] < 5 or v["test"] < 5) for v in sup.values())
    # a thin class is excluded with its reason: at a high bar every class is thin somewhere
    strict = class_support(ds, min_positives=10_000)
    assert all(v["excluded"] for v in strict.values())
    assert "val has" in strict["aeroplane"]["reason"] and str(sup["aeroplane"]["val"]) in strict["aeroplane"]["reason"]


# -- images -------------------------------------------------------------------------------------
def test_load_image_and_draft(tmp_path, voc_subset):
    p = sorted((voc_subset / "images").glob("*.jpg"))[0]
    full = load_image(p)
    assert full.mode == "RGB" and max(full.size) <= 384
    small = load_image(p, max_side=100)
    assert max(small.size) == 100 and small.mode == "RGB"
    gray = tmp_path / "g.png"
    Image.new("L", (10, 20), 128).save(gray)
    assert load_image(gray).mode == "RGB"


def test_corrupt_images_raise_naming_the_file(tmp_path, voc_subset):
    good = sorted((voc_subset / "images").glob("*.jpg"))[0].read_bytes()
    trunc = tmp_path / "truncated.jpg"
    trunc.write_bytes(good[: len(good) // 2])
    text = tmp_path / "notes.jpg"
    text.write_text("this is not an image")
    for bad in (trunc, text, tmp_path / "missing.jpg"):
        with pytest.raises(CorruptImageError, match=bad.name):
            load_image(bad)
