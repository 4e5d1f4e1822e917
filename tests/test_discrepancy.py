"""Presence discrepancy matches a plain loop; rankings sort by magnitude."""

import numpy as np
import pytest

from inficond.analysis import (
    concept_class_influence,
    presence_discrepancy,
    rank_concepts,
    top_images,
)
from inficond.exceptions import UnknownNameError


def test_discrepancy_matches_naive_loop():
    rng = np.random.default_rng(0)
    X = rng.random((120, 7)).astype(np.float16)
    y = rng.integers(0, 2, 120)
    s = rng.integers(0, 2, 120).astype(bool)
    res = presence_discrepancy(X, y, s)
    for sub, key in ((1, "dp"), (0, "dn")):
        for c in range(7):
            mis = [float(X[i, c]) for i in range(120) if y[i] == sub and s[i] != y[i]]
            ali = [float(X[i, c]) for i in range(120) if y[i] == sub and s[i] == y[i]]
            assert res[key][c] == pytest.approx(np.mean(mis) - np.mean(ali), abs=1e-12)
    c = res["counts"]
    assert c["pos_aligned"] + c["pos_misaligned"] == (y == 1).sum()
    assert res["p_defined"] and res["n_defined"]


def test_discrepancy_against_teacher_and_empty_subset():
    X = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    y = np.array([1, 1, 0])
    teacher = np.array([True, False, False])
    student = np.array([True, True, False])
    res = presence_discrepancy(X, y, student, reference_pred=teacher)
    np.testing.assert_allclose(res["dp"], [-1.0, 1.0])  # row 1 misaligned with the teacher
    assert not res["n_defined"] and np.all(res["dn"] == 0)  # no misaligned negative


def test_rank_concepts_by_influence_and_discrepancy():
    w = np.array([0.0, -3.0, 1.0, 2.0, -1.0])
    dp = np.array([0.9, 0.1, -0.5, 0.0, 0.2])
    top = rank_concepts(w, dp=dp, k=3)
    assert [r["concept_idx"] for r in top] == [1, 3, 2]  # |w| desc, tie 2 vs 4 -> lower idx
    assert top[0]["influence"] == -3.0 and top[0]["rank"] == 1
    assert top[0]["discrepancy_p"] == 0.1 and top[0]["discrepancy_n"] is None
    assert len(rank_concepts(w, k=None)) == 4  # zero influence left out
    by_p = rank_concepts(w, dp=dp, by="discrepancy_p", k=None)
    assert [r["concept_idx"] for r in by_p] == [0, 2, 4, 1, 3]
    sub = rank_concepts(w, dp=dp, by="discrepancy_p", candidates=[1, 2, 3])
    assert [r["concept_idx"] for r in sub] == [2, 1, 3]
    with pytest.raises(ValueError, match="dn"):
        rank_concepts(w, by="discrepancy_n")
    with pytest.raises(UnknownNameError):
        rank_concepts(w, by="weight")


def test_top_images_and_class_influence():
    v = np.array([0.2, 0.9, 0.9, np.nan, 0.5])
    assert top_images(v, k=3).tolist() == [1, 2, 4]
    assert top_images(v, k=12, mask=[1, 0, 1, 1, 1]).tolist() == [2, 4, 0]
    coef = np.array([[0.1, 0.0], [-0.5, 1.0], [0.0, 2.0], [0.3, 0.0]])
    assert concept_class_influence(coef, 0) == [
        {"class_idx": 1, "influence": -0.5}, {"class_idx": 3, "influence": 0.3},
        {"class_idx": 0, "influence": 0.1}]
    assert [d["class_idx"] for d in concept_class_influence(coef, 1, k=1)] == [2]
