"""Every teacher kind with real models and real files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.exceptions import NotFittedError
from sklearn.metrics import average_precision_score

from _data_fixtures import voc_subset  # noqa: F401
from inficond.data import load_dataset
from inficond.data.images import load_image
from inficond.exceptions import DataError, TeacherOutputError, UnknownNameError
from inficond.teachers import (EffNetTeacher, LogitsFileTeacher, OnnxTeacher, Teacher, TorchTeacher, check_logits,
                               create_teacher)

# legacy ONNX exporter and TorchScript are deprecated upstream but are what users hand us
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")

CLASSES = ["cat", "dog", "horse"]
IDS = ["a", "b", "c", "d"]
TABLE = np.array([[0.5, -1, 2], [1, 2, 3], [-3, 0, 0.25], [4, -4, 1]], dtype=np.float32)


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)  # the test box is shared; keep each test to one core
    yield
    torch.set_num_threads(old)


def _images(n=5, size=(40, 30)):
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)) for _ in range(n)]


class TinyNet(torch.nn.Module):
    def __init__(self, k=3):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 4, 3, stride=4)
        self.fc = torch.nn.Linear(4, k)

    def forward(self, x):
        return self.fc(self.conv(x).relu().mean(dim=(2, 3)))


# -- logits files -------------------------------------------------------------------------------
def test_logits_file_csv_npz_npy_agree(tmp_path):
    csv_path = tmp_path / "t.csv"
    order = [2, 0, 1]  # columns in another order than the classes, plus an extra column
    lines = ["image," + ",".join(CLASSES[j] for j in order) + ",extra"]
    lines += [f"{i}," + ",".join(repr(float(TABLE[r, j])) for j in order) + ",9" for r, i in enumerate(IDS)]
    csv_path.write_text("\n".join(lines) + "\n")
    np.savez(tmp_path / "t.npz", image_ids=np.array(IDS), logits=TABLE[:, order], class_names=np.array(CLASSES)[order])
    np.save(tmp_path / "t.npy", TABLE)
    teachers = [LogitsFileTeacher(csv_path, CLASSES), LogitsFileTeacher(tmp_path / "t.npz", CLASSES),
                LogitsFileTeacher(tmp_path / "t.npy", CLASSES, image_ids=IDS)]
    for t in teachers:
        assert isinstance(t, Teacher) and t.needs_images is False
        out = t.logits(["d", "a"], None)
        assert out.dtype == np.float32 and np.array_equal(out, TABLE[[3, 0]])
        assert t.identity()["kind"] == "file" and len(t.identity()["sha1"]) == 40
    assert teachers[0].ignored_columns_ == ["extra"]


def test_logits_file_rejects_bad_input(tmp_path):
    np.savez(tmp_path / "ok.npz", image_ids=np.array(IDS), logits=TABLE)
    t = LogitsFileTeacher(tmp_path / "ok.npz", CLASSES)
    with pytest.raises(TeacherOutputError, match=r"no logits for 1 image id.*'zz'"):
        t.logits(["a", "zz"], None)
    bad = TABLE.copy()
    bad[1, 2] = np.nan
    bad[3, 0] = np.inf
    np.savez(tmp_path / "nan.npz", image_ids=np.array(IDS), logits=bad)
    with pytest.raises(TeacherOutputError, match=r"2 NaN/inf.*rows: \[1, 3\]"):
        LogitsFileTeacher(tmp_path / "nan.npz", CLASSES)
    np.savez(tmp_path / "cls.npz", image_ids=np.array(IDS), logits=TABLE, class_names=np.array(["cat", "dog", "cow"]))
    with pytest.raises(TeacherOutputError, match=r"no logits for class\(es\) \['horse'\]"):
        LogitsFileTeacher(tmp_path / "cls.npz", CLASSES)
    np.savez(tmp_path / "shape.npz", image_ids=np.array(IDS), logits=TABLE[:, :2])
    with pytest.raises(TeacherOutputError, match=r"shape \(4, 2\); expected \(4, 3\)"):
        LogitsFileTeacher(tmp_path / "shape.npz", CLASSES)
    np.save(tmp_path / "t.npy", TABLE)
    with pytest.raises(TeacherOutputError, match="pass image_ids"):
        LogitsFileTeacher(tmp_path / "t.npy", CLASSES)
    with pytest.raises(TeacherOutputError, match=r"\(3, 3\)"):
        LogitsFileTeacher(tmp_path / "t.npy", CLASSES, image_ids=IDS[:3])
    (tmp_path / "dup.csv").write_text("image,cat,dog,horse\na,1,2,3\na,1,2,3\n")
    with pytest.raises(TeacherOutputError, match=r"duplicate image ids \['a'\]"):
        LogitsFileTeacher(tmp_path / "dup.csv", CLASSES)
    (tmp_path / "txt.csv").write_text("image,cat,dog,horse\na,1,x,3\n")
    with pytest.raises(TeacherOutputError, match="non-numeric"):
        LogitsFileTeacher(tmp_path / "txt.csv", CLASSES)
    with pytest.raises(TeacherOutputError, match="not found"):
        LogitsFileTeacher(tmp_path / "none.npz", CLASSES)


def test_check_logits_shapes():
    assert check_logits(np.zeros(3), 3, 1).shape == (3, 1)
    with pytest.raises(TeacherOutputError, match="non-numeric"):
        check_logits([["a"]], 1, 1)


# -- torch and ONNX -----------------------------------------------------------------------------
def test_torch_teacher_module_and_callable():
    imgs = _images()
    net = TinyNet()
    t = TorchTeacher(net, batch_size=2, n_classes=3)
    out = t.logits(IDS + ["e"], imgs)
    assert out.shape == (5, 3) and out.dtype == np.float32
    x = torch.from_numpy(np.stack([(np.asarray(im.resize((224, 224), Image.Resampling.BILINEAR), np.float32) / 255 - 0.5)
                                   / 0.5 for im in imgs]).transpose(0, 3, 1, 2).copy())
    with torch.no_grad():
        assert np.allclose(out, net(x).numpy(), atol=1e-5)
    # a plain callable and a custom preprocess
    f = TorchTeacher(lambda x: x.mean(dim=(2, 3)), preprocess=lambda im: np.ones((3, 8, 8), np.float32))
    assert np.array_equal(f.logits(["a", "b"], imgs[:2]), np.ones((2, 3), np.float32))
    assert f.n_classes == 3


def test_torch_teacher_rejects_bad_outputs():
    imgs = _images(2)
    with pytest.raises(TeacherOutputError, match=r"shape \(2, 3\); expected \(2, 4\)"):
        TorchTeacher(TinyNet(3), n_classes=4).logits(["a", "b"], imgs)
    with pytest.raises(TeacherOutputError, match="NaN/inf"):
        TorchTeacher(lambda x: torch.full((len(x), 2), float("nan"))).logits(["a", "b"], imgs)
    with pytest.raises(TeacherOutputError, match=r"shape \(2,\)"):
        TorchTeacher(lambda x: x.sum(dim=(1, 2, 3))).logits(["a", "b"], imgs)
    with pytest.raises(TeacherOutputError, match="returned tuple"):
        TorchTeacher(lambda x: (x,)).logits(["a", "b"], imgs)
    with pytest.raises(DataError, match="one decoded image per id"):
        TorchTeacher(TinyNet()).logits(["a", "b"], None)


def _export_onnx(net, path, size=64, dynamic=True):
    torch.onnx.export(net, torch.zeros(2 if dynamic else 1, 3, size, size), str(path), dynamo=False,
                      input_names=["x"], output_names=["logits"],
                      dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}} if dynamic else None)
    return path


def test_onnx_teacher_matches_torch(tmp_path):
    imgs = _images(5)
    net = TinyNet()
    t = OnnxTeacher(_export_onnx(net, tmp_path / "m.onnx"), batch_size=2, n_classes=3)
    assert t.image_size == 64  # taken from the model's fixed input size
    ref = TorchTeacher(net, image_size=64).logits(IDS + ["e"], imgs)
    assert np.allclose(t.logits(IDS + ["e"], imgs), ref, atol=1e-5)
    assert t.identity()["kind"] == "onnx"
    # a model exported with a fixed batch of 1 still serves any number of images
    fixed = OnnxTeacher(_export_onnx(net, tmp_path / "b1.onnx", dynamic=False))
    assert fixed.batch_size == 1 and np.allclose(fixed.logits(IDS + ["e"], imgs), ref, atol=1e-5)
    with pytest.raises(TeacherOutputError, match=r"expected \(2, 5\)"):
        OnnxTeacher(tmp_path / "m.onnx", n_classes=5).logits(["a", "b"], imgs[:2])
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(DataError, match="cannot load ONNX model"):
        OnnxTeacher(tmp_path / "junk.onnx")


def test_create_teacher_every_kind(tmp_path):
    imgs = _images(3)
    net = TinyNet()
    torch.jit.script(net).save(str(tmp_path / "m.pt"))
    _export_onnx(net, tmp_path / "m.onnx", size=224)
    np.savez(tmp_path / "l.npz", image_ids=np.array(IDS), logits=TABLE)
    ref = TorchTeacher(net).logits(IDS[:3], imgs)
    ts = create_teacher(f"torch:{tmp_path / 'm.pt'}", CLASSES)
    assert isinstance(ts, TorchTeacher) and np.allclose(ts.logits(IDS[:3], imgs), ref, atol=1e-5)
    assert ts.identity()["sha1"] and ts.identity()["path"].endswith("m.pt")
    to = create_teacher(f"onnx:{tmp_path / 'm.onnx'}", CLASSES)
    assert isinstance(to, OnnxTeacher) and np.allclose(to.logits(IDS[:3], imgs), ref, atol=1e-5)
    tf = create_teacher(f"file:{tmp_path / 'l.npz'}", CLASSES, workspace=tmp_path)
    assert np.array_equal(tf.logits(IDS, None), TABLE)
    te = create_teacher("effnet-lite2", CLASSES)
    from inficond.teachers.effnet import DEFAULT_C, DEFAULT_IMAGE_SIZE

    assert isinstance(te, EffNetTeacher) and (te.image_size, te.C) == (DEFAULT_IMAGE_SIZE, DEFAULT_C)
    assert not te.is_fitted
    for bad in ("resnet50", "effnet-lite9", "file:", "http:x"):
        with pytest.raises(UnknownNameError, match="unknown teacher") as e:
            create_teacher(bad, CLASSES)
        assert "effnet-lite2" in e.value.known and "onnx:PATH" in e.value.known
    with pytest.raises(DataError, match="not a TorchScript file"):
        create_teacher(f"torch:{tmp_path / 'l.npz'}", CLASSES)


# -- EfficientNet-Lite2 default teacher ---------------------------------------------------------
def test_effnet_teacher_fit_save_load_round_trip(voc_subset, tmp_path):
    ds = load_dataset(voc_subset)
    names = ["cat", "dog", "person", "aeroplane"]  # aeroplane has no positive: constant logit
    cols = [ds.class_names.index(c) for c in names]
    tr, va = ds.indices("train")[:40], ds.indices("val")[:8]
    t = EffNetTeacher(names, batch_size=16)
    feats = t.features([load_image(ds.paths[i]) for i in tr])
    assert feats.shape == (40, t.n_features) and feats.dtype == np.float32 and np.isfinite(feats).all()
    t.fit(feats, ds.labels[tr][:, cols])
    assert t.constant_classes_ == ["aeroplane"] and t.coef_.shape == (4, 1280)
    train_logits = t.logits_from_features(feats)
    for j in range(3):  # the head ranks its own training images almost perfectly
        assert average_precision_score(ds.labels[tr, cols[j]], train_logits[:, j]) > 0.95
    assert (train_logits[:, 3] < 0).all()
    # the onnxruntime backbone (default) gives the torch backbone's features
    ref = EffNetTeacher(names, backend="torch").features([load_image(ds.paths[i]) for i in tr[:3]])
    assert np.allclose(feats[:3], ref, atol=1e-4)

    val_imgs = [load_image(ds.paths[i]) for i in va]
    val_ids = [ds.image_ids[i] for i in va]
    out = t.logits(val_ids, val_imgs)
    assert out.shape == (8, 4) and out.dtype == np.float32
    t.save(tmp_path / "teacher")
    back = EffNetTeacher.load(tmp_path / "teacher")
    assert back.identity() == t.identity() and back.head_sha1() == t.head_sha1()
    back._net = t.net  # same frozen backbone; skip loading the weights twice
    assert np.array_equal(back.logits(val_ids, val_imgs), out)
    # create_teacher reuses a head saved in the workspace
    again = create_teacher("effnet-lite2", names, workspace=tmp_path)
    assert again.is_fitted and again.head_sha1() == t.head_sha1()
    assert not create_teacher("effnet-lite2", ["cat"], workspace=tmp_path).is_fitted, "other classes: refit"


def test_effnet_teacher_threads_and_batch_size_do_not_change_features(voc_subset):
    """prepare runs the teacher on one thread, one image per pass, beside the encoder: the features
    must not depend on either."""
    ds = load_dataset(voc_subset)
    imgs = [load_image(ds.paths[i]) for i in ds.indices("val")[:3]]
    one = EffNetTeacher(CLASSES, n_threads=1, batch_size=1)
    one.load_models()
    assert one._session is not None  # loaded before the first batch
    np.testing.assert_array_equal(one.features(imgs), EffNetTeacher(CLASSES, n_threads=2, batch_size=8).features(imgs))


def test_effnet_teacher_errors(tmp_path):
    t = EffNetTeacher(CLASSES)
    with pytest.raises(NotFittedError, match="not fitted"):
        t.logits_from_features(np.zeros((1, 1280)))
    with pytest.raises(DataError, match="labels"):
        t.fit(np.zeros((4, 1280)), np.zeros((4, 2)))
    with pytest.raises(DataError, match="no saved EffNet teacher"):
        EffNetTeacher.load(tmp_path)
    with pytest.raises(UnknownNameError):
        EffNetTeacher(CLASSES, model_name="efficientnet-b0")


def _fitted_head(seed=0) -> EffNetTeacher:
    """An EffNet teacher whose head is fitted on random 1280-d features (no backbone needed)."""
    rng = np.random.default_rng(seed)
    feats = rng.random((24, 1280)).astype(np.float32)
    labels = (rng.random((24, len(CLASSES))) < 0.5).astype(np.uint8)
    return EffNetTeacher(CLASSES).fit(feats, labels)


def test_saved_teacher_head_is_checked_on_load(tmp_path):
    t = _fitted_head()
    d = t.save(tmp_path / "teacher")
    assert EffNetTeacher.load(d).head_sha1() == t.head_sha1()
    # a head that does not match teacher.json's digest is refused with a clear error
    with np.load(d / "head.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["coef"] = arrays["coef"] + 1e-3
    np.savez(d / "head.npz", **arrays)
    with pytest.raises(DataError, match="damaged: head.npz has digest"):
        EffNetTeacher.load(d)
    # a truncated head or teacher.json is a clear error too, not a zipfile/JSON traceback
    t.save(d)
    data = (d / "head.npz").read_bytes()
    (d / "head.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="damaged"):
        EffNetTeacher.load(d)
    t.save(d)
    text = (d / "teacher.json").read_text()
    (d / "teacher.json").write_text(text[: len(text) // 2])
    with pytest.raises(DataError, match="damaged"):
        EffNetTeacher.load(d)


class _Stop(BaseException):
    pass


@pytest.mark.parametrize("cut", [0, 1])
def test_teacher_save_interrupted_leaves_no_mismatched_pair(tmp_path, monkeypatch, cut):
    """Stopped at either rename of a second save, the folder holds the old pair or no teacher.json
    (so prepare refits), never a teacher.json that does not match its head."""
    import os

    old, new = _fitted_head(0), _fitted_head(1)
    d = old.save(tmp_path / "teacher")
    real = os.replace
    calls = {"n": 0}

    def stop(src, dst):
        if calls["n"] == cut:
            raise _Stop()
        calls["n"] += 1
        return real(src, dst)

    monkeypatch.setattr(os, "replace", stop)
    with pytest.raises(_Stop):
        new.save(d)
    monkeypatch.setattr(os, "replace", real)
    if (d / "teacher.json").exists():
        assert EffNetTeacher.load(d).head_sha1() in (old.head_sha1(), new.head_sha1())
    else:
        assert not create_teacher("effnet-lite2", CLASSES, workspace=tmp_path).is_fitted


def test_default_teacher_settings_are_the_train_cv_choice():
    """The defaults are what benchmarks/bench_teacher.py chose by CV on train, never by val or test."""
    import json
    from pathlib import Path

    from inficond.teachers.effnet import DEFAULT_C, DEFAULT_IMAGE_SIZE

    res = json.loads((Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "teacher.json").read_text())
    assert res["chosen"]["by"] == "train 3-fold CV mAP"
    best = max(res["grid"], key=lambda g: g["train_cv_map"])
    assert (best["image_size"], best["C"]) == (res["chosen"]["image_size"], res["chosen"]["C"])
    assert len({g["image_size"] for g in res["grid"]}) >= 2 and len({g["C"] for g in res["grid"]}) >= 3
    t = EffNetTeacher(CLASSES)
    assert (t.image_size, t.C) == (DEFAULT_IMAGE_SIZE, DEFAULT_C) == (best["image_size"], best["C"])


def test_teacher_json_records_how_the_settings_were_chosen(tmp_path):
    import json

    from inficond.teachers.effnet import SELECTION

    rng = np.random.default_rng(0)
    X, Y = rng.random((30, 1280)), rng.integers(0, 2, (30, 3))
    EffNetTeacher(CLASSES).fit(X, Y).save(tmp_path / "a")
    assert json.loads((tmp_path / "a" / "teacher.json").read_text())["settings_chosen_by"] == SELECTION
    EffNetTeacher(CLASSES, C=0.5).fit(X, Y).save(tmp_path / "b")
    assert json.loads((tmp_path / "b" / "teacher.json").read_text())["settings_chosen_by"] == "the caller"
