"""The synthetic-scale workspace (benchmarks/synthetic_workspace.py) behind benchmarks/bench_scale.py."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from synthetic_workspace import build_synthetic, split_counts, synthetic_info  # noqa: E402

from inficond.session import Session  # noqa: E402
from inficond.store.workspace import Workspace  # noqa: E402


@pytest.fixture(scope="module")
def synthetic(prepared_workspace, tmp_path_factory) -> Path:
    return build_synthetic(prepared_workspace, tmp_path_factory.mktemp("scale") / "syn300", 300, noise=0.05, seed=0)


def test_split_counts_keep_proportions_and_total():
    splits = np.array(["train"] * 71 + ["val"] * 16 + ["test"] * 13)
    assert split_counts(splits, 1000) == {"train": 710, "val": 160, "test": 130}
    got = split_counts(splits, 7)
    assert sum(got.values()) == 7 and got["train"] == 5


def test_synthetic_workspace_opens_flagged_and_keeps_splits(prepared_workspace, synthetic):
    src = Workspace(prepared_workspace)
    info = synthetic_info(synthetic)
    assert info is not None and info["n_images"] == 300 and "SYNTHETIC" in info["note"]
    assert synthetic_info(prepared_workspace) is None  # the real one is not flagged

    s = Session(synthetic)
    assert s.X.shape == (300, len(src.concept_words)) and s.T.shape == (300, len(src.class_names))
    assert s.ws.class_names == src.class_names and s.ws.concept_words == src.concept_words
    assert all(i.startswith("syn") for i in s.ws.image_ids)
    for split in ("train", "val", "test"):
        real = len(src.split_indices(split)) / len((src.status == "done").nonzero()[0])
        assert abs(len(s.rows(split)) / 300 - real) <= 1 / 300 + 1e-12, split
    # every synthetic row is a real row of its split plus small noise, with the real labels
    X0 = np.asarray(src.array("concept_vectors"), np.float32)
    sd = X0.std(0)
    for i in (0, 150, 299):
        d = np.abs(X0 - s.X[i]).max(1)
        j = int(np.argmin(d))
        assert np.all(np.abs(X0[j] - s.X[i]) <= 0.05 * sd * 6 + 1e-3)
        assert s.ws.splits[i] == src.splits[j] and (s.Y[i] == src.labels[j]).all()


def test_synthetic_workspace_distils_and_serves_views(synthetic, tmp_path):
    import shutil

    ws = shutil.copytree(synthetic, tmp_path / "ws")
    s = Session(ws)
    out = s.distill(max_concepts=10)
    assert out["mean_nonzero"] <= 10
    k = int(np.argmax([c["n_pos"] for c in s.performance("val")["classes"]]))
    top = s.class_concepts(k, k=5)["concepts"]
    detail = s.concept_detail(top[0]["concept_idx"], cls=k)
    assert detail["images"] and all(0 <= im["image_idx"] < 300 for im in detail["images"])
    assert all(0 <= p["image_idx"] < 300 for p in detail["patches"])


def test_build_refuses_an_existing_folder_and_bad_sizes(prepared_workspace, synthetic, tmp_path):
    with pytest.raises(FileExistsError):
        build_synthetic(prepared_workspace, synthetic, 300)
    with pytest.raises(ValueError, match="too small"):
        build_synthetic(prepared_workspace, tmp_path / "tiny", 2)
    with pytest.raises(ValueError, match="noise"):
        build_synthetic(prepared_workspace, tmp_path / "nan", 300, noise=float("nan"))
