"""What-if curves are exact, and suggestions agree with them."""

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, f1_score

from inficond.analysis import (
    class_metrics,
    influence_grid,
    standardize,
    suggest_moves,
    whatif_curves,
)


@pytest.fixture(scope="module")
def student():
    rng = np.random.default_rng(0)
    n, C = 150, 40
    X = rng.random((n, C))
    mean, scale = X.mean(axis=0), X.std(axis=0)
    Z = standardize(X, mean, scale)
    w = np.zeros(C)
    w[:8] = rng.normal(size=8)
    y = (Z[:, :8] @ rng.normal(size=8) + rng.normal(size=n) > 0.5).astype(np.uint8)
    return Z, w, -0.3, y


def test_grid_contains_current_value_and_is_sorted():
    w = np.array([0.2, -1.0, 0.0, 0.37])
    g = influence_grid(w, [0, 1, 2, 3], n_points=21)
    assert g.shape == (4, 21)
    assert np.all(np.diff(g, axis=1) >= 0)
    for i, c in enumerate([0, 1, 2, 3]):
        assert w[c] in g[i]
    assert g.min() == pytest.approx(-1.5) and g.max() == pytest.approx(1.5)


def test_curve_at_current_value_equals_unchanged_student(student):
    Z, w, b, y = student
    concepts = [0, 3, 7, 20]
    res = whatif_curves(Z, w, b, y, concepts)
    ref = class_metrics(y, Z @ w + b)
    assert res["grid"].shape == (4, 21) and res["values"]["ap"].shape == (4, 21)
    for i in range(4):
        j = res["current_index"][i]
        assert res["grid"][i, j] == w[concepts[i]]
        for m in ("ap", "f1", "precision", "recall", "accuracy"):
            # Same logits as the unchanged student, bit for bit -> the same value exactly.
            assert res["values"][m][i, j] == res["base"][m]
            assert res["base"][m] == pytest.approx(ref[m], abs=1e-12)


def test_curve_points_equal_sklearn_on_modified_student(student):
    Z, w, b, y = student
    res = whatif_curves(Z, w, b, y, [2, 5], grid=[-1.0, 0.0, 0.5, 2.0], teacher_pred=y == 1)
    assert res["current_index"].tolist() == [-1, -1]
    for i, c in enumerate([2, 5]):
        for j, v in enumerate(res["grid"][i]):
            w2 = w.copy()
            w2[c] = v
            logits = Z @ w2 + b
            assert res["values"]["ap"][i, j] == pytest.approx(
                average_precision_score(y, logits), abs=1e-12)
            assert res["values"]["f1"][i, j] == pytest.approx(f1_score(y, logits > 0), abs=1e-12)
    np.testing.assert_array_equal(res["values_vs_teacher"]["ap"], res["values"]["ap"])


def test_whatif_without_positives_flags_ap(student):
    Z, w, b, _ = student
    res = whatif_curves(Z, w, b, np.zeros(len(Z)), [0], metrics=("ap", "f1"))
    assert not res["ap_defined"] and res["base"]["ap"] is None
    assert np.isnan(res["values"]["ap"]).all() and (res["values"]["f1"] == 0).all()


def test_suggestions_are_consistent_with_whatif(student):
    Z, w, b, y = student
    cands = np.arange(12)
    up = w[cands] + 1.0
    down = w[cands] - 1.0
    up[3] = np.nan  # skipped move
    sug = suggest_moves(Z, w, b, y, cands, up, down, k=5)
    assert 0 < len(sug) <= 5
    gains = [s["gain"] for s in sug]
    assert gains == sorted(gains, reverse=True) and min(gains) > 0
    assert len({s["concept_idx"] for s in sug}) == len(sug)
    for s in sug:
        res = whatif_curves(Z, w, b, y, [s["concept_idx"]], grid=[s["value"]], metrics=("ap",))
        assert s["ap_after"] == res["values"]["ap"][0, 0]
        assert s["ap_before"] == res["base"]["ap"]
        if s["concept_idx"] == 3:
            assert s["direction"] == "down"
    # No other single move among the candidates beats the best suggestion.
    grid = np.stack([np.nan_to_num(up, nan=w[3]), down], axis=1)
    allv = whatif_curves(Z, w, b, y, cands, grid=grid, metrics=("ap",))["values"]["ap"]
    assert allv.max() - sug[0]["ap_before"] == pytest.approx(sug[0]["gain"])
    assert suggest_moves(Z, w, b, y, cands, None, None) == []


def test_chunked_evaluation_gives_the_same_curves(student, monkeypatch):
    import inficond.analysis.whatif as whatif

    Z, w, b, y = student
    full = whatif_curves(Z, w, b, y, [0, 1, 2, 3, 4])
    monkeypatch.setattr(whatif, "_CHUNK", 1)  # one concept per chunk
    chunked = whatif_curves(Z, w, b, y, [0, 1, 2, 3, 4])
    for m, v in full["values"].items():
        np.testing.assert_array_equal(chunked["values"][m], v)
    empty = whatif_curves(Z, w, b, y, [])
    assert empty["grid"].shape == (0, 21) and empty["values"]["ap"].shape == (0, 21)


def test_scores_equal_the_product_over_every_concept(student):
    """Weighted and unweighted concepts, products over the non-zero concepts only: the logits are
    those of one dense product per modified student up to rounding, and bit for bit the
    student's own at the current value."""
    from inficond.analysis.whatif import whatif_scores

    Z, w, b, y = student
    concepts = np.array([0, 3, 9, 20, 7, 39])  # weights on 0, 3, 7 only
    grid = influence_grid(w, concepts, 7)
    got = whatif_scores(Z, w, b, concepts, grid)
    for i, c in enumerate(concepts):
        for j, v in enumerate(grid[i]):
            w2 = w.copy()
            w2[c] = v
            np.testing.assert_allclose(got[i, j], Z @ w2 + b, rtol=0, atol=1e-12)
            if v == w[c]:
                assert np.array_equal(got[i, j], Z @ w + b)
    # a student without weights: every modified logit is the intercept plus v * Z[:, c]
    zero = whatif_scores(Z, np.zeros_like(w), b, concepts, grid)
    np.testing.assert_allclose(zero, b + grid[:, :, None] * Z[:, concepts].T[:, None, :], rtol=0, atol=1e-12)

