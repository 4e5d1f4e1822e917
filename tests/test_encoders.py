"""Concept encoders: registry, conse-effnet on real photos, open_clip with a tiny random model."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from inficond.encoders.base import ConceptEncoder, RegionEmbeddings, create_encoder, list_encoders
from inficond.exceptions import UnknownNameError

from tests.conftest import DEV_DATA as VOC  # noqa: E402  ($INFICOND_DATA or ../shared/data/voc2012-subset)

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
needs_voc = pytest.mark.usefixtures("dev_data")  # fails, never skips, when the data is missing


def voc_images(pred, n):
    """First ``n`` VOC images whose label row satisfies ``pred``; (ids, PIL images)."""
    with open(VOC / "labels.csv") as f:
        rows = [r for r in csv.DictReader(f) if pred(r)][:n]
    return [r["image"] for r in rows], [Image.open(VOC / "images" / f"{r['image']}.jpg").convert("RGB") for r in rows]


def only(cls):
    return lambda r: r[cls] == "1" and sum(int(v) for k, v in r.items() if k not in ("image", "split")) == 1


# -- registry ---------------------------------------------------------------------------------
def test_registry_lists_both_and_rejects_unknown():
    names = list_encoders()
    assert {"conse-effnet", "open_clip"} <= set(names)
    with pytest.raises(UnknownNameError) as e:
        create_encoder("conse-efnet")
    assert "conse-effnet" in str(e.value)  # close match suggested
    with pytest.raises(UnknownNameError) as e:
        create_encoder("zzz")
    assert "open_clip" in str(e.value) and "conse-effnet" in str(e.value)


# -- conse-effnet -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def conse():
    return create_encoder("conse-effnet")


@pytest.fixture(scope="module")
def photos():
    if not (VOC / "labels.csv").exists():
        pytest.fail(f"dev data missing at {VOC}; set INFICOND_DATA")
    cat_ids, cats = voc_images(only("cat"), 3)
    dog_ids, dogs = voc_images(only("dog"), 3)
    return cats + dogs


@needs_voc
def test_conse_shapes_norms_boxes(conse, photos):
    assert isinstance(conse, ConceptEncoder)
    out = conse.encode_regions(photos)
    assert len(out) == len(photos)
    for r in out:
        assert isinstance(r, RegionEmbeddings)
        assert r.embeddings.shape == (conse.max_regions, conse.dim) == (145, 384)  # whole image + 12 x 12 windows
        assert r.embeddings.dtype == np.float32 and r.boxes.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(r.embeddings, axis=1), 1, atol=1e-5)
        assert r.boxes.shape == (145, 4) and r.boxes.min() >= 0 and r.boxes.max() <= 1
        assert (r.boxes[:, 2] > r.boxes[:, 0]).all() and (r.boxes[:, 3] > r.boxes[:, 1]).all()
        np.testing.assert_array_equal(r.boxes[0], [0, 0, 1, 1])  # region 0 = whole image


@needs_voc
def test_conse_deterministic_and_batch_independent(conse, photos):
    alone = conse.encode_regions(photos[2:3])[0].embeddings
    batched = conse.encode_regions(photos)[2].embeddings
    again = conse.encode_regions(photos)[2].embeddings
    np.testing.assert_allclose(alone, batched, atol=2e-4)
    np.testing.assert_array_equal(batched, again)
    t1 = conse.encode_text(["cat", "sofa", "grass"])
    t2 = conse.encode_text(["grass", "cat"])
    assert t1.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(t1, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(t1[0], t2[1], atol=1e-5)


@needs_voc
def test_conse_steps_compose_to_encode_regions_bit_for_bit(conse, photos):
    """prepare runs network_outputs and person_scores as separate tasks and embeds whole batches:
    any split gives encode_regions' bytes."""
    whole = conse.encode_regions(photos)
    parts = conse.embed(conse.network_outputs(photos), conse.person_scores(photos))
    halves = [e for half in (photos[:2], photos[2:])
              for e in conse.embed(conse.network_outputs(half), conse.person_scores(half))]
    assert len(whole) == len(parts) == len(halves) == len(photos)
    for a, b, c in zip(whole, parts, halves):
        np.testing.assert_array_equal(a.embeddings, b.embeddings)
        np.testing.assert_array_equal(a.embeddings, c.embeddings)
        np.testing.assert_array_equal(a.boxes, b.boxes)
    assert conse.person_scores(photos).shape == (len(photos), conse.max_regions)
    probs, idx = conse.network_outputs([])
    assert probs.shape == (0, conse.max_regions, conse.top_k) and conse.embed((probs, idx), conse.person_scores([])) == []


@needs_voc
def test_conse_network_thread_count_does_not_change_outputs(photos):
    from inficond.encoders.conse_effnet import ConseEffnetEncoder

    one, two = ConseEffnetEncoder(num_threads=1), ConseEffnetEncoder(num_threads=2)
    one.load_models()
    for a, b in zip(one.network_outputs(photos[:2]), two.network_outputs(photos[:2])):
        np.testing.assert_array_equal(a, b)


@needs_voc
def test_channels_last_pools_leave_face_detections_bit_identical():
    """FaceDetector runs MTCNN's max pools channels-last (faster); on VOC photos with people the
    boxes and probabilities equal those of facenet-pytorch's own layers."""
    from inficond.encoders.person import FaceDetector

    _, people = voc_images(lambda r: r["person"] == "1", 24)
    fast, plain = FaceDetector(), FaceDetector()
    for net in (plain._mtcnn.pnet, plain._mtcnn.rnet, plain._mtcnn.onet):
        for name, child in list(net.named_children()):
            if hasattr(child, "pool"):
                setattr(net, name, child.pool)  # facenet-pytorch's MaxPool2d back
    assert any(hasattr(c, "pool") for c in fast._mtcnn.pnet.children())
    a, b = fast.detect(people), plain.detect(people)
    assert sum(len(p) for _, p in a) >= 10, "the photos should show faces"
    for (ba, pa), (bb, pb) in zip(a, b):
        np.testing.assert_array_equal(ba, bb)
        np.testing.assert_array_equal(pa, pb)


@needs_voc
def test_conse_torch_backend_matches_onnx(conse, photos):
    from inficond.encoders.conse_effnet import ConseEffnetEncoder

    eager = ConseEffnetEncoder(backend="torch")
    assert eager.identity() == conse.identity()  # the backend does not change embeddings
    a = eager.encode_regions(photos[:1])[0].embeddings
    b = conse.encode_regions(photos[:1])[0].embeddings
    assert np.abs(a - b).max() < 1e-3


@needs_voc
def test_conse_semantics_cat_vs_dog(conse, photos):
    """Max-over-regions similarity ranks the right animal first on single-animal photos."""
    text = conse.encode_text(["cat", "dog"])
    scores = np.array([(r.embeddings @ text.T).max(0) for r in conse.encode_regions(photos)])
    truth = np.array([0, 0, 0, 1, 1, 1])
    assert (scores.argmax(1) == truth).mean() >= 5 / 6


@pytest.mark.parametrize("kw", [{}, {"window": 3}, {"window": 4, "stride": 2}, {"image_size": 320, "window": 2, "stride": 2}])
def test_conse_windows_cover_every_cell(kw):
    """Every cell of the feature map lies in some window (no part of the image is unseen but by region 0)."""
    from inficond.encoders.conse_effnet import ConseEffnetEncoder

    enc = ConseEffnetEncoder(person_cue=False, **kw)
    g = enc.grid
    covered = np.zeros((g, g), bool)
    for x0, y0, x1, y1 in enc.boxes[1:]:
        covered[round(y0 * g) : round(y1 * g), round(x0 * g) : round(x1 * g)] = True
    assert len(enc.boxes) == enc.max_regions
    assert covered.all(), kw


def test_conse_identity_and_params(conse):
    from inficond.encoders.conse_effnet import ConseEffnetEncoder

    ident = conse.identity()
    json.dumps(ident)
    for key in ("image_size", "window", "stride", "top_k", "temperature", "text_centre", "image_centre", "version"):
        assert key in ident
    other = ConseEffnetEncoder(image_size=320, window=2, stride=2)
    assert other.identity() != ident
    assert other.max_regions == 1 + 5 * 5 and other.boxes.shape == (26, 4)
    with pytest.raises(ValueError, match="multiple of 32"):
        ConseEffnetEncoder(image_size=300)
    with pytest.raises(ValueError, match="window"):
        ConseEffnetEncoder(window=20)
    with pytest.raises(ValueError, match="temperature"):
        ConseEffnetEncoder(temperature=0)
    assert ConseEffnetEncoder(temperature=1.0).identity() != ident
    with pytest.raises(TypeError):
        conse.encode_text("cat")


# -- person cue: MTCNN with or without torchvision ----------------------------------------------
# The default install has no torchvision; facenet-pytorch's MTCNN then runs the NMS of
# inficond.encoders.mtcnn_ops. These check that it detects exactly what torchvision's does.
def _random_boxes(gen, n):
    xy = _rand32(gen, n, 2) * 100
    return np.concatenate([xy, xy + _rand32(gen, n, 2) * 30 + 0.5], 1)


def _rand32(gen, *shape):
    return gen.random(shape).astype(np.float32)


def test_mtcnn_ops_nms_contract():
    import torch

    from inficond.encoders.mtcnn_ops import batched_nms, nms, to_tensor

    b = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 10.0]])
    s = torch.tensor([0.9, 0.8, 0.7, 0.95])
    assert nms(b, s, 0.5).tolist() == [3, 2]  # box 0 duplicates 3; box 1 overlaps 3 by IoU 0.68
    assert nms(b, s, 0.7).tolist() == [3, 1, 2]
    assert batched_nms(b, s, torch.tensor([0, 1, 1, 1]), 0.5).tolist() == [3, 0, 2]  # 0 alone in its class
    assert nms(torch.zeros((0, 4)), torch.zeros(0), 0.5).dtype == torch.int64
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        nms(torch.zeros((3, 5)), torch.zeros(3), 0.5)
    img = np.arange(24, dtype=np.uint8).reshape(2, 4, 3)
    t = to_tensor(img)
    assert t.shape == (3, 2, 4) and t.dtype == torch.float32 and float(t[2, 1, 3]) == pytest.approx(23 / 255)
    with pytest.raises(TypeError, match="numpy array"):
        to_tensor(Image.new("RGB", (4, 4)))


@pytest.mark.clip
def test_mtcnn_ops_nms_equals_torchvision_on_random_boxes():
    import torch
    from torchvision.ops import boxes as tvb

    from inficond.encoders.mtcnn_ops import batched_nms, nms

    gen = np.random.default_rng(0)
    for n in (1, 40, 400, 1200):  # 1200 boxes take torchvision's per-class route (> 4000 numbers)
        for ties in (False, True):
            b = torch.from_numpy(_random_boxes(gen, n))
            s = torch.from_numpy(_rand32(gen, n))
            if ties:
                s = (s * 10).round() / 10
            idx = torch.from_numpy(gen.integers(0, 3, n))
            for thr in (0.3, 0.5, 0.7):
                assert torch.equal(nms(b, s, thr), tvb.nms(b, s, thr)), (n, ties, thr)
                assert torch.equal(batched_nms(b, s, idx, thr), tvb.batched_nms(b, s, idx, thr)), (n, ties, thr)


_DETECT_WITHOUT_TORCHVISION = """
import json, sys
sys.modules["torchvision"] = None  # as if not installed: find_spec and import both say so
from PIL import Image
from inficond.encoders.mtcnn_ops import uses_torchvision
from inficond.encoders.person import FaceDetector
det = FaceDetector()
out = [(b.tolist(), p.tolist()) for b, p in det.detect([Image.open(f).convert("RGB") for f in sys.argv[1:]])]
print(json.dumps({"uses_torchvision": uses_torchvision(), "tv_imported": sys.modules.get("torchvision") is not None,
                  "faces": out}))
"""


@pytest.mark.clip
@needs_voc
def test_face_detections_without_torchvision_equal_torchvisions():
    """On VOC photos with and without people: the same boxes and probabilities, bit for bit."""
    import subprocess
    import sys

    from facenet_pytorch.models.utils import detect_face

    from inficond.encoders.mtcnn_ops import batched_nms, uses_torchvision
    from inficond.encoders.person import FaceDetector

    ids = voc_images(lambda r: r["person"] == "1", 10)[0] + voc_images(lambda r: r["person"] == "0", 4)[0]
    files = [str(VOC / "images" / f"{i}.jpg") for i in ids]
    ims = [Image.open(f).convert("RGB") for f in files]
    det = FaceDetector()
    assert uses_torchvision()
    ref = det.detect(ims)
    assert sum(len(p) for _, p in ref) >= 5, "too few faces to compare"
    mp = pytest.MonkeyPatch()
    with mp.context() as m:  # the same detector with our NMS swapped in
        m.setattr(detect_face, "batched_nms", batched_nms)
        assert not uses_torchvision()
        ours = det.detect(ims)
    for (rb, rp), (ob, op) in zip(ref, ours):
        np.testing.assert_array_equal(ob, rb)
        np.testing.assert_array_equal(op, rp)
    # A fresh interpreter where torchvision cannot be imported: the stand-in import path.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1] / "src"),
                                                        os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run([sys.executable, "-c", _DETECT_WITHOUT_TORCHVISION, *files[:6]], capture_output=True,
                         text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    got = json.loads(run.stdout.strip().splitlines()[-1])
    assert got["uses_torchvision"] is False and got["tv_imported"] is False
    for (rb, rp), (gb, gp) in zip(ref[:6], got["faces"]):
        np.testing.assert_array_equal(np.asarray(gb, np.float32).reshape(-1, 4), rb)
        np.testing.assert_array_equal(np.asarray(gp, np.float32), rp)


def test_face_detector_uses_torchvision_only_when_installed():
    import importlib.util
    import sys

    from inficond.encoders.mtcnn_ops import import_mtcnn, uses_torchvision

    import_mtcnn()
    installed = importlib.util.find_spec("torchvision") is not None
    assert uses_torchvision() == installed
    if not installed:  # the stand-in left no trace that transformers could mistake for torchvision
        assert not any(n == "torchvision" or n.startswith("torchvision.") for n in sys.modules)


# -- open_clip ---------------------------------------------------------------------------------
def test_open_clip_without_the_clip_extra_says_how_to_install():
    import importlib.util

    from inficond.exceptions import EncoderLoadError

    if importlib.util.find_spec("open_clip") is not None:
        pytest.skip("the clip extra is installed here; this checks the default install's message")
    with pytest.raises(EncoderLoadError, match=r"pip install 'inficond\[clip\]'"):
        create_encoder("open_clip", model_name="ViT-B-32")


@pytest.fixture(scope="module")
def tiny_clip():
    import open_clip
    import torch
    from open_clip.model import CLIPTextCfg, CLIPVisionCfg

    torch.manual_seed(0)
    return open_clip.model.CLIP(
        embed_dim=32,
        vision_cfg=CLIPVisionCfg(layers=2, width=64, head_width=32, patch_size=8, image_size=32),
        text_cfg=CLIPTextCfg(context_length=16, vocab_size=49408, width=32, heads=2, layers=2),
    )


def _rgb_images():
    rng = np.random.default_rng(0)
    ims = [Image.fromarray(rng.integers(0, 255, (40 + 8 * i, 60, 3), dtype=np.uint8)) for i in range(3)]
    ims.append(Image.new("L", (50, 30), 128))  # greyscale input is converted
    return ims


@pytest.mark.clip
@pytest.mark.parametrize("dense", ["maskclip", "tokens"])
def test_open_clip_tiny_pipeline(tiny_clip, dense):
    import torch

    enc = create_encoder("open_clip", model_name="tiny", model=tiny_clip, n_segments=5, dense=dense)
    assert isinstance(enc, ConceptEncoder)
    assert enc.dim == 32 and enc.grid_shape == (4, 4) and enc.max_regions == 6
    ims = _rgb_images()
    out = enc.encode_regions(ims)
    assert len(out) == len(ims)
    for r in out:
        assert r.embeddings.shape == (6, 32)
        np.testing.assert_allclose(np.linalg.norm(r.embeddings, axis=1), 1, atol=1e-5)
        assert r.grid.shape == (4, 4) and set(np.unique(r.grid)) == set(range(1, 6))
        for k in range(1, 6):  # a segment's box is the bounding box of its cells
            ys, xs = np.nonzero(r.grid == k)
            np.testing.assert_allclose(r.boxes[k], [xs.min() / 4, ys.min() / 4, (xs.max() + 1) / 4, (ys.max() + 1) / 4])
    # Region 0 is CLIP's own image embedding.
    with torch.no_grad():
        ref = torch.nn.functional.normalize(tiny_clip.encode_image(enc.pixels(ims)), dim=-1).numpy()
    np.testing.assert_allclose(np.stack([r.embeddings[0] for r in out]), ref, atol=1e-5)
    text = enc.encode_text(["cat", "dog", "a red sofa"])
    assert text.shape == (3, 32)
    np.testing.assert_allclose(np.linalg.norm(text, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(enc.encode_text(["dog"])[0], text[1], atol=1e-5)
    json.dumps(enc.identity())


@pytest.mark.clip
def test_open_clip_maskclip_matches_manual_value_path(tiny_clip):
    """The MaskCLIP dense path is the last block's value projection, ln_post, proj."""
    import torch
    import torch.nn.functional as F

    enc = create_encoder("open_clip", model_name="tiny", model=tiny_clip)
    ims = _rgb_images()[:2]
    _, dense = enc.dense_embeddings(ims)
    v = tiny_clip.visual
    with torch.no_grad():
        h = v._embeds(enc.pixels(ims))
        h = v.transformer.resblocks[0](h)
        last = v.transformer.resblocks[1]
        w = h.shape[-1]
        val = last.attn.out_proj(F.linear(last.ln_1(h), last.attn.in_proj_weight[2 * w :], last.attn.in_proj_bias[2 * w :]))
        ref = F.normalize(v.ln_post(val)[:, 1:] @ v.proj, dim=-1).numpy()
    np.testing.assert_allclose(dense, ref, atol=1e-5)


@pytest.mark.clip
def test_open_clip_identity_tracks_weights(tiny_clip):
    import copy

    import torch

    a = create_encoder("open_clip", model_name="tiny", model=tiny_clip)
    other = copy.deepcopy(tiny_clip)
    with torch.no_grad():
        other.visual.proj.add_(0.1)
    b = create_encoder("open_clip", model_name="tiny", model=other)
    c = create_encoder("open_clip", model_name="tiny", model=tiny_clip, n_segments=3)
    assert a.identity() != b.identity() and a.identity() != c.identity()
    assert a.identity() == create_encoder("open_clip", model_name="tiny", model=tiny_clip).identity()


@pytest.mark.clip
def test_open_clip_loading_errors(tmp_path):
    from inficond.exceptions import EncoderLoadError

    with pytest.raises(UnknownNameError, match="open_clip model"):
        create_encoder("open_clip", model_name="ViT-B-322")
    with pytest.raises(EncoderLoadError, match="does not exist"):
        create_encoder("open_clip", model_name="ViT-B-32", pretrained=str(tmp_path / "missing.pt"))
    with pytest.raises(UnknownNameError, match="pretrained tag"):
        create_encoder("open_clip", model_name="ViT-B-32", pretrained="no_such_tag")
    with pytest.raises(ValueError, match="dense"):
        create_encoder("open_clip", model_name="ViT-B-32", dense="nope")


@pytest.mark.parametrize("kw", [{}, {"window": 5, "text_anchor_weight": 0.5}, {"person_cue": False, "top_k": 10},
                                {"hypernym_depth": 0, "prompts": ("{}",), "person_weight": 0.3}])
def test_conse_rebuilds_from_its_identity(kw):
    """A workspace prepared with non-default settings gets words added with those settings."""
    from inficond.encoders.conse_effnet import ConseEffnetEncoder

    enc = ConseEffnetEncoder(**kw)
    again = ConseEffnetEncoder.from_identity(enc.identity())
    assert again.identity() == enc.identity()
    if kw:
        assert ConseEffnetEncoder().identity() != enc.identity()
    with pytest.raises(ValueError, match="not a conse-effnet identity"):
        ConseEffnetEncoder.from_identity({**enc.identity(), "name": "open_clip"})


def test_session_adds_words_with_the_workspace_encoder_settings(workspace):
    import json
    import sqlite3

    from inficond.encoders.conse_effnet import ConseEffnetEncoder
    from inficond.session import Session

    # the stored identity says text-side ConSE on (as if prepared with it): the session's encoder follows it
    ident = {**ConseEffnetEncoder(person_cue=True).identity(), "text_anchors": {"weight": 0.5, "temperature": 0.05}}
    with sqlite3.connect(workspace / "workspace.sqlite") as db:
        db.execute("UPDATE meta SET value = ? WHERE key = 'encoder'", (json.dumps(ident, sort_keys=True),))
    enc = Session(workspace)._text_encoder()
    assert enc.text_anchor_weight == 0.5 and enc.identity() == json.loads(json.dumps(ident))
