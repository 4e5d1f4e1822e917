"""Concept corpus, mapping, extension, segments and patches on a small real workspace."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from inficond.concepts import (
    ConceptWord, build_patches, default_corpus, extend_concepts, load_corpus, map_concepts, read_patches,
    read_segments, segment_regions, write_segments,
)
from inficond.encoders.base import RegionEmbeddings
from inficond.exceptions import DataError, WorkspaceError, WorkspaceMismatchError

from tests.conftest import DEV_DATA as VOC  # noqa: E402  ($INFICOND_DATA or ../shared/data/voc2012-subset)

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CORPORA = DATA / "corpora"


# -- corpus ----------------------------------------------------------------------------------
# Every concept word the paper's usage scenarios name (tv monitor / television both).
SCENARIO_WORDS = [
    "tv monitor", "television", "crt screen", "screen", "bookcase", "mezzanine", "blinds", "niche", "decoration",
    "bicycle", "wheel", "shop", "steering wheel", "inflatable bounce game", "machinery", "runway", "trailer", "meat",
    "sofa", "armchair", "trousers", "notebook", "pillow", "dog", "fur", "grass", "terraces", "apron", "cushion",
    "television stand",
]
# The only default words that are not Broden labels: respellings of Broden's PASCAL-style or
# singular forms, and VOC class names Broden spells otherwise.
RESPELLED = {"tv monitor": "tvmonitor", "potted plant": "pottedplant", "trousers": "trouser"}
ADDED = {"aeroplane", "dining table"}


def _broden_labels(dev_data: Path) -> set[str]:
    path = dev_data.parent / "corpora" / "broden_labels_clean.txt"
    if not path.is_file():
        pytest.fail(f"Broden label list not found at {path} (next to the development data)")
    return {" ".join(line.split()) for line in path.read_text().splitlines() if line.strip()}


def test_default_corpus_size_unique_and_prompts():
    words = default_corpus()
    assert 584 <= len(words) <= 700
    keys = [w.word.lower() for w in words]
    assert len(set(keys)) == len(keys)
    assert len({k.replace(" ", "") for k in keys}) == len(keys)  # no 'fire place' next to 'fireplace'
    assert all(w.word == w.word.strip() and w.word for w in words)
    with_prompt = {w.word: w.prompt for w in words if w.prompt}
    assert with_prompt["mouse"] == "computer mouse" and all(w.text == w.prompt for w in words if w.prompt)


def test_default_corpus_holds_the_scenario_words_and_voc_classes(dev_data):
    keys = {w.word for w in default_corpus()}
    assert [w for w in SCENARIO_WORDS if w not in keys] == []
    joined = {k.replace(" ", "") for k in keys}
    classes = (dev_data / "labels.csv").read_text().splitlines()[0].split(",")[2:]
    assert len(classes) == 20 and [c for c in classes if c not in joined] == []


def test_default_corpus_is_brodens_objects_and_parts(dev_data):
    broden = _broden_labels(dev_data)
    words = [w.word for w in default_corpus()]
    outside = [w for w in words if w not in broden and RESPELLED.get(w) not in broden and w not in ADDED]
    assert outside == []
    assert ADDED <= set(words) and not ADDED & broden
    # scenes, textures and colours of Broden are left out
    for other in ("brewery-outdoor", "bedroom", "kitchen", "flecked", "striped", "red-c", "granite", "painted"):
        assert other in broden and other not in words


def test_default_corpus_file_is_a_fresh_build_of_the_script(dev_data, tmp_path):
    """The packaged file is what scripts/build_default_corpus.py writes from Broden's list."""
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    src = dev_data.parent / "corpora" / "broden_labels_clean.txt"
    _broden_labels(dev_data)
    out = tmp_path / "corpus.txt"
    r = subprocess.run([sys.executable, str(repo / "scripts" / "build_default_corpus.py"), str(src), "--out", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    packaged = repo / "src" / "inficond" / "concepts" / "default_corpus.txt"
    assert out.read_text() == packaged.read_text()
    assert load_corpus(out) == default_corpus()


def test_build_default_corpus_refuses_a_missing_or_different_broden_file(tmp_path):
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[1] / "scripts" / "build_default_corpus.py"
    r = subprocess.run([sys.executable, str(script), str(tmp_path / "nope.txt"), "--out", str(tmp_path / "o.txt")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "not found" in r.stderr
    other = tmp_path / "other.txt"
    other.write_text("cat\ndog\n")  # a list without Broden's scenes: the scene list names labels it lacks
    r = subprocess.run([sys.executable, str(script), str(other), "--out", str(tmp_path / "o.txt")],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "not in the Broden file" in (r.stderr + r.stdout)
    assert not (tmp_path / "o.txt").exists()


def test_default_corpus_covers_pascal_context():
    ours = {w.word.replace(" ", "").replace("-", "").lower() for w in default_corpus()}
    pc59 = json.loads((CORPORA / "pc59.json").read_text())
    coverage = np.mean([p.lower() in ours for p in pc59])
    assert coverage >= 0.8, coverage


def test_load_txt_with_comments_prompts_and_duplicates(tmp_path):
    p = tmp_path / "mine.txt"
    p.write_text("# my words\n\ncat\nstriped fur\ta cat with striped fur\n  Cat \nwhite  snow\n\n# end\n")
    words, report = load_corpus(p, return_report=True)
    assert words == [ConceptWord("cat"), ConceptWord("striped fur", "a cat with striped fur"), ConceptWord("white snow")]
    assert report.n_read == 4 and report.duplicates == [(5, "Cat")]
    assert "1 duplicates" in str(report) and "'Cat'" in str(report)
    assert load_corpus(p) == words


def test_load_json_strings_and_objects(tmp_path):
    a = tmp_path / "a.json"
    a.write_text(json.dumps(["cat", "dog", "cat"]))
    assert [w.word for w in load_corpus(a)] == ["cat", "dog"]
    b = tmp_path / "b.json"
    b.write_text(json.dumps([{"word": "fur", "prompt": "animal fur"}, {"word": "sky"}, "grass"]))
    assert load_corpus(b) == [ConceptWord("fur", "animal fur"), ConceptWord("sky"), ConceptWord("grass")]


@pytest.mark.parametrize(
    "name, content, match",
    [
        ("empty.txt", "", "no concepts"),
        ("comments.txt", "# only\n\n", "no concepts"),
        ("tab.txt", "\tprompt only\n", "empty word"),
        ("bad.json", "[\"cat\", ", "not valid JSON"),
        ("dict.json", "{\"cat\": 1}", "expected a JSON list"),
        ("num.json", "[\"cat\", 3]", "entry 1"),
        ("noword.json", "[{\"prompt\": \"x\"}]", "entry 0"),
        ("blank.json", "[\"  \"]", "empty word"),
        ("words.csv", "cat\n", "unknown format"),
    ],
)
def test_load_bad_files(tmp_path, name, content, match):
    p = tmp_path / name
    p.write_text(content)
    with pytest.raises(DataError, match=match):
        load_corpus(p)


def test_load_missing_file(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_corpus(tmp_path / "nope.txt")


# -- mapping ---------------------------------------------------------------------------------
def naive_map(regions, counts, text):
    n, C = len(regions), len(text)
    vec, am = np.zeros((n, C), np.float32), np.zeros((n, C), np.int16)
    for i in range(n):
        for c in range(C):
            if counts[i] == 0:
                continue
            s = [float(np.dot(regions[i, r].astype(np.float32), text[c])) for r in range(counts[i])]
            am[i, c] = int(np.argmax(s))
            vec[i, c] = max(0.0, max(s))
    return vec, am


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_map_concepts_matches_naive_loop(dtype):
    rng = np.random.default_rng(1)
    n, R, D, C = 13, 9, 16, 7
    reg = rng.normal(size=(n, R, D))
    reg /= np.linalg.norm(reg, axis=-1, keepdims=True)
    reg = reg.astype(dtype)
    counts = rng.integers(1, R + 1, n).astype(np.int16)
    counts[3] = 0  # an image not encoded yet
    reg[0, counts[0]:] = 5.0  # padding must be ignored even when it would win
    text = rng.normal(size=(C, D)).astype(np.float32)
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    want_v, want_a = naive_map(reg, counts, text)
    for chunk in (1, 3 * R * D * 4, 1 << 26):  # one image, three images, everything per chunk
        v, a = map_concepts(reg, counts, text, chunk_bytes=chunk)
        assert v.dtype == np.float32 and a.dtype == np.int16 and v.shape == a.shape == (n, C)
        np.testing.assert_allclose(v, want_v, atol=1e-5)
        np.testing.assert_array_equal(a, want_a)
    assert (v >= 0).all() and (v[3] == 0).all()


def test_map_concepts_shape_errors():
    with pytest.raises(ValueError, match="shapes"):
        map_concepts(np.zeros((2, 3, 4)), np.ones(2), np.zeros((5, 6)))


# -- a small real workspace ------------------------------------------------------------------
class SpyEncoder:
    """Wraps a real encoder and counts calls (no behaviour changed)."""

    def __init__(self, inner):
        self.inner, self.calls = inner, {"encode_regions": 0, "encode_text": []}
        self.name, self.dim, self.max_regions = inner.name, inner.dim, inner.max_regions

    def identity(self):
        return self.inner.identity()

    def encode_text(self, words):
        self.calls["encode_text"].append(list(words))
        return self.inner.encode_text(words)

    def encode_regions(self, images):
        self.calls["encode_regions"] += 1
        return self.inner.encode_regions(images)


N_IMAGES = 10
BASE_WORDS = ["cat", "dog", "grass", "sofa", "person", "fur", "sky", "wood"]


@pytest.fixture(scope="module")
def encoder():
    from inficond.encoders.base import create_encoder

    return create_encoder("conse-effnet")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, encoder):
    """A workspace of the first VOC images, filled the way prepare fills it."""
    if not (VOC / "labels.csv").exists():
        pytest.fail(f"dev data missing at {VOC}; set INFICOND_DATA")
    from inficond.data.dataset import Dataset
    from inficond.store.workspace import Workspace

    with open(VOC / "labels.csv") as f:
        reader = csv.DictReader(f)
        classes = [c for c in reader.fieldnames if c not in ("image", "split")]
        rows = [next(reader) for _ in range(N_IMAGES)]
    ds = Dataset(
        root=VOC, image_ids=[r["image"] for r in rows], paths=[VOC / "images" / f"{r['image']}.jpg" for r in rows],
        class_names=classes, labels=np.array([[int(r[c]) for c in classes] for r in rows]),
        splits=np.array(["train"] * (N_IMAGES - 3) + ["val"] * 3),
    )
    ws = Workspace(tmp_path_factory.mktemp("ws"), create=True)
    ws.add_dataset(ds)
    ws.check_identity("encoder", encoder.identity())
    R, D = encoder.max_regions, encoder.dim
    regions = np.zeros((N_IMAGES, R, D), np.float16)
    boxes = np.zeros((N_IMAGES, R, 4), np.float32)
    counts = np.zeros(N_IMAGES, np.int16)
    done = list(range(N_IMAGES - 1))  # the last image stays pending
    out = encoder.encode_regions([Image.open(ds.paths[i]).convert("RGB") for i in done])
    for i, r in zip(done, out):
        k = len(r.embeddings)
        regions[i, :k], boxes[i, :k], counts[i] = r.embeddings, r.boxes, k
    ws.save_array("regions", regions)
    ws.save_array("region_boxes", boxes)
    ws.save_array("region_counts", counts)
    text = encoder.encode_text(BASE_WORDS)
    vec, am = map_concepts(regions, counts, text)
    ws.save_array("concept_text", text)
    ws.save_array("concept_vectors", vec.astype(np.float16))
    ws.save_array("concept_argmax", am)
    ws.add_concepts(BASE_WORDS)
    ws.mark_images(done, "done")
    ws.encoded = out  # RegionEmbeddings of the done images, for the segment tests
    return ws


def test_workspace_concepts_are_sensible(workspace):
    vec = np.asarray(workspace.array("concept_vectors"), np.float32)
    assert vec.shape == (N_IMAGES, len(BASE_WORDS)) and (vec[-1] == 0).all()
    labels = workspace.labels
    cat, dog = workspace.class_index("cat"), workspace.class_index("dog")
    both = [i for i in range(N_IMAGES - 1) if labels[i, cat] != labels[i, dog]]
    right = [(vec[i, 0] > vec[i, 1]) == bool(labels[i, cat]) for i in both]
    assert np.mean(right) >= 0.6  # cat column beats dog column on cat photos and vice versa


def test_extend_concepts_reuses_regions_and_matches_scratch(workspace, encoder):
    before = {n: np.array(workspace.array(n)) for n in ("regions", "region_boxes", "region_counts")}
    spy = SpyEncoder(encoder)
    added = extend_concepts(workspace, spy, ["striped", "Cat", "horse", "striped"], prompts=["striped fur", None, None, None])
    assert added == [len(BASE_WORDS), len(BASE_WORDS) + 1]  # 'Cat' exists, 'striped' repeated
    assert spy.calls["encode_regions"] == 0 and spy.calls["encode_text"] == [["striped fur", "horse"]]
    for name, arr in before.items():
        np.testing.assert_array_equal(np.array(workspace.array(name)), arr)
    words = workspace.concept_words
    assert words[-2:] == ["striped", "horse"]
    text = np.asarray(workspace.array("concept_text"))
    vec = np.asarray(workspace.array("concept_vectors"))
    am = np.asarray(workspace.array("concept_argmax"))
    assert text.shape == (10, 384) and vec.shape == am.shape == (N_IMAGES, 10)
    assert vec.dtype == np.float16 and am.dtype == np.int16
    scratch_text = encoder.encode_text(BASE_WORDS + ["striped fur", "horse"])
    sv, sa = map_concepts(before["regions"], before["region_counts"], scratch_text)
    np.testing.assert_allclose(text, scratch_text, atol=1e-5)
    np.testing.assert_allclose(vec.astype(np.float32), sv, atol=2e-3)
    np.testing.assert_array_equal(am, sa)
    assert workspace.db.execute("SELECT prompt, source FROM concepts WHERE word='striped'").fetchone() == ("striped fur", "user")
    assert len(read_patches(workspace, added[0])) > 0  # patches of the new concepts were built
    assert extend_concepts(workspace, spy, ["horse", "HORSE"]) == []


def test_extend_concepts_refuses_other_encoder(workspace):
    from inficond.encoders.conse_effnet import ConseEffnetEncoder

    n = len(workspace.concept_words)
    with pytest.raises(WorkspaceMismatchError, match="prepared with encoder"):
        extend_concepts(workspace, ConseEffnetEncoder(window=2), ["tree"])
    assert len(workspace.concept_words) == n


def test_extend_concepts_needs_prepared_workspace(tmp_path, encoder):
    from inficond.store.workspace import Workspace

    with pytest.raises(WorkspaceError, match="prepare"):
        extend_concepts(Workspace(tmp_path, create=True), encoder, ["tree"])


class SimulatedKill(BaseException):
    """Raised in place of one file rename: the process stops there, as under kill -9."""


def test_extend_concepts_every_interruption_leaves_a_consistent_workspace(workspace, encoder, tmp_path, monkeypatch):
    """Stop extend_concepts at each of its renames in turn: reopening always gives arrays as wide as
    the word list, with either none or all of the new words, and a rerun ends as an uninterrupted run."""
    import shutil

    from inficond.store.workspace import Workspace

    words = ["zebra stripes", "Sky", "traffic cone"]  # 'Sky' is 'sky': one case rule
    clean = tmp_path / "clean"
    shutil.copytree(workspace.path, clean)
    want_idx = extend_concepts(Workspace(clean), encoder, words)
    want = Workspace(clean)
    n0 = len(workspace.concept_words)
    assert want.concept_words[n0:] == ["zebra stripes", "traffic cone"] and len(want_idx) == 2

    real_replace = os.replace
    k = 0
    while True:
        d = tmp_path / f"cut{k}"
        shutil.copytree(workspace.path, d)
        calls = {"n": 0}

        def cut(src, dst, _k=k):
            if calls["n"] == _k:
                raise SimulatedKill(f"stopped at rename {_k}: {src}")
            calls["n"] += 1
            return real_replace(src, dst)

        monkeypatch.setattr(os, "replace", cut)
        try:
            extend_concepts(Workspace(d), encoder, words)
            finished = True
        except SimulatedKill:
            finished = False
        monkeypatch.setattr(os, "replace", real_replace)
        ws = Workspace(d)  # opening finishes committed renames
        c = len(ws.concept_words)
        assert c in (n0, n0 + 2), f"cut {k}: {c} words"
        assert np.asarray(ws.array("concept_text")).shape[0] == c, f"cut {k}: concept_text rows != words"
        assert ws.array("concept_vectors").shape[1] == ws.array("concept_argmax").shape[1] == c, f"cut {k}"
        extend_concepts(ws, encoder, words)  # the user's rerun
        ws = Workspace(d)
        assert ws.concept_words == want.concept_words
        for name in ("concept_text", "concept_vectors", "concept_argmax"):
            np.testing.assert_array_equal(np.asarray(ws.array(name)), np.asarray(want.array(name)), err_msg=f"cut {k}")
        q = "SELECT concept_idx, rank, image_idx, region FROM patches ORDER BY concept_idx, rank"
        assert ws.db.execute(q).fetchall() == want.db.execute(q).fetchall(), f"cut {k}: patches differ"
        if finished:
            break
        k += 1
    assert k >= 6, "every staged array, rename and patch file was a cut point"


# -- segments --------------------------------------------------------------------------------
def test_segment_regions_partition_and_concepts(workspace):
    text = np.asarray(workspace.array("concept_text"))
    r = workspace.encoded[0]
    segs = segment_regions(r, text, n_segments=5)
    assert 1 <= len(segs) <= 5
    members = np.sort(np.concatenate([s.members for s in segs]))
    np.testing.assert_array_equal(members, np.arange(1, len(r.embeddings)))  # all windows, not the whole image
    for s in segs:
        b = r.boxes[s.members]
        assert s.box[0] <= b[:, 0].min() + 1e-6 and s.box[2] >= b[:, 2].max() - 1e-6
        assert 0 <= s.concept < len(text)
        sims = text @ s.embedding
        assert s.similarity == pytest.approx(sims.max(), abs=1e-5) and s.concept == int(sims.argmax())
    again = segment_regions(r, text, n_segments=5)
    assert [list(s.members) for s in again] == [list(s.members) for s in segs]  # deterministic
    write_segments(workspace, 0, segs)
    write_segments(workspace, 0, segs)  # rewriting replaces
    rows = read_segments(workspace, 0)
    assert [row["segment"] for row in rows] == list(range(len(segs)))
    assert rows[0]["word"] == workspace.concept_words[segs[0].concept]


def test_segment_regions_on_grid_regions():
    rng = np.random.default_rng(0)
    g = 6
    ys, xs = np.mgrid[0:g, 0:g]
    boxes = np.stack([xs.ravel() / g, ys.ravel() / g, (xs.ravel() + 1) / g, (ys.ravel() + 1) / g], 1).astype(np.float32)
    left = xs.ravel() < 3  # two halves with different embeddings
    emb = np.where(left[:, None], [1.0, 0, 0, 0], [0, 1.0, 0, 0]) + 0.05 * rng.normal(size=(g * g, 4))
    emb = (emb / np.linalg.norm(emb, axis=1, keepdims=True)).astype(np.float32)
    text = np.eye(4, dtype=np.float32)
    segs = segment_regions(RegionEmbeddings(boxes, emb), text, n_segments=2)
    assert len(segs) == 2
    assert {s.concept for s in segs} == {0, 1}
    for s in segs:
        assert len(set(left[s.members])) == 1


# -- patches ---------------------------------------------------------------------------------
def test_build_patches_writes_files_and_is_idempotent(workspace):
    n = build_patches(workspace, concept_idx=[0, 1], per_concept=3, size=64)
    rows = workspace.db.execute("SELECT concept_idx, rank, image_idx, region, file FROM patches WHERE concept_idx IN (0, 1)").fetchall()
    assert n == len(rows) and 0 < n <= 6
    vec = np.asarray(workspace.array("concept_vectors"), np.float32)
    am = np.asarray(workspace.array("concept_argmax"))
    for c, rank, i, region, f in rows:
        assert workspace.status[i] == "done" and region == am[i, c]
        with Image.open(workspace.path / f) as im:
            assert im.format == "JPEG" and max(im.size) == 64
    p0 = read_patches(workspace, 0)
    assert [p["rank"] for p in p0] == list(range(len(p0)))
    sims = [p["similarity"] for p in p0]
    assert sims == sorted(sims, reverse=True)
    assert p0[0]["image_idx"] == int(np.argmax(vec[:-1, 0]))
    assert build_patches(workspace, concept_idx=[0, 1], per_concept=3, size=64) == n
    assert workspace.db.execute("SELECT COUNT(*) FROM patches WHERE concept_idx IN (0, 1)").fetchone()[0] == n
    build_patches(workspace, concept_idx=[0], per_concept=1, size=64)  # fewer ranks: stale rows and files go
    assert len(read_patches(workspace, 0)) == 1
    assert sorted(p.name for p in (workspace.path / "patches").glob("c00000_r*.jpg")) == ["c00000_r00.jpg"]
    with pytest.raises(IndexError):
        build_patches(workspace, concept_idx=[99])


def test_build_patches_on_threads_writes_what_one_thread_writes(workspace, monkeypatch):
    import inficond.concepts.patches as patches_mod

    built = {}
    for threads in (1, 3):
        monkeypatch.setattr(patches_mod, "_threads", lambda t=threads: t)
        build_patches(workspace, per_concept=4, size=48)
        rows = workspace.db.execute("SELECT * FROM patches ORDER BY concept_idx, rank").fetchall()
        files = {f: (workspace.path / f).read_bytes() for *_, f in rows}
        built[threads] = (rows, files)
    assert built[1][0] and built[1] == built[3]
