"""Metrics match scikit-learn, including the hand-vectorised AP with ties."""

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    f1_score,
    precision_score,
    recall_score,
)

from inficond.analysis import (
    all_class_metrics,
    average_precision_batch,
    class_metrics,
    fidelity,
    metrics_batch,
    predictions,
)
from inficond.exceptions import UnknownNameError


def _sk(y, s, thr=0.0):
    p = s > thr
    return {
        "ap": average_precision_score(y, s),
        "precision": precision_score(y, p, zero_division=0),
        "recall": recall_score(y, p, zero_division=0),
        "f1": f1_score(y, p, zero_division=0),
        "accuracy": accuracy_score(y, p),
    }


def test_predictions_are_logit_above_zero():
    assert predictions([-1.0, 0.0, 0.5]).tolist() == [False, False, True]


def test_class_metrics_equal_sklearn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    s = rng.normal(size=200) + y
    got = class_metrics(y, s)
    for k, v in _sk(y, s).items():
        assert got[k] == pytest.approx(v, abs=1e-12)
    assert got["n_pos"] == y.sum() and got["n"] == 200


def test_class_metrics_without_positives_reports_ap_none():
    got = class_metrics(np.zeros(10, int), np.linspace(-1, 1, 10))
    assert got["ap"] is None and got["n_pos"] == 0
    assert got["precision"] == 0.0 and got["recall"] == 0.0 and got["f1"] == 0.0


@pytest.mark.parametrize("levels", [3, 10, None])
def test_average_precision_batch_equals_sklearn_with_ties(levels):
    rng = np.random.default_rng(1)
    for _ in range(30):
        n = int(rng.integers(1, 80))
        y = rng.integers(0, 2, n)
        y[rng.integers(n)] = 1  # at least one positive
        S = rng.normal(size=(5, n)) if levels is None else rng.integers(0, levels, (5, n)) * 0.5
        got = average_precision_batch(y, S)
        want = [average_precision_score(y, s) for s in S]
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_average_precision_batch_mixes_tied_and_tie_free_rows():
    """Rows with ties take the tie-group pass, the others the plain one: one batch, both kinds."""
    rng = np.random.default_rng(7)
    for trial in range(40):
        n = int(rng.integers(2, 120))
        S = rng.normal(size=(6, n))
        S[1] = np.round(S[1])  # many ties
        S[3, : n // 2] = 0.0  # a tied block (a concept absent from half the images)
        S[4] = 1.0  # all tied
        per_row = trial % 2 == 1
        y = rng.integers(0, 2, (6, n) if per_row else n)
        y[..., int(rng.integers(n))] = 1
        got = average_precision_batch(y, S)
        want = [average_precision_score(y[i] if per_row else y, S[i]) for i in range(6)]
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
        # a row's AP does not depend on the rows batched with it
        for i in range(6):
            assert got[i] == average_precision_batch(y[i] if per_row else y, S[i:i + 1])[0]


def test_average_precision_batch_rejects_labels_of_another_length():
    with pytest.raises(ValueError, match="3 labels"):
        average_precision_batch([1, 0, 1], [[0.1, 0.2]])


def test_average_precision_batch_edge_cases():
    assert np.isnan(average_precision_batch([0, 0, 0], [[0.1, 0.2, 0.3]])[0])
    assert average_precision_batch([1, 1], [[0.0, 0.0]])[0] == 1.0
    assert average_precision_batch([1], [0.3]) == 1.0  # 1-D scores -> scalar
    # All scores tied: AP is the positive rate.
    assert average_precision_batch([1, 0, 0, 1], [[2.0] * 4])[0] == pytest.approx(0.5)
    # Per-row labels.
    y = np.array([[1, 0, 0], [0, 0, 1]])
    s = np.array([[3.0, 2.0, 1.0], [3.0, 2.0, 1.0]])
    np.testing.assert_allclose(average_precision_batch(y, s), [1.0, 1 / 3])


def test_metrics_batch_equals_sklearn_and_rejects_unknown_names():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 60)
    S = rng.integers(-2, 3, (4, 60)).astype(float)  # ties and exact zeros at the threshold
    got = metrics_batch(y, S)
    for i, s in enumerate(S):
        for k, v in _sk(y, s).items():
            assert got[k][i] == pytest.approx(v, abs=1e-12)
    with pytest.raises(UnknownNameError, match="did you mean: f1"):
        metrics_batch(y, S, metrics=("f11",))


def test_all_class_metrics_means_and_exclusions():
    rng = np.random.default_rng(3)
    Y = rng.integers(0, 2, (50, 4)).astype(np.uint8)
    Y[:, 2] = 0  # no positives: AP undefined
    L = rng.normal(size=(50, 4)) + Y
    res = all_class_metrics(Y, L, excluded=[3])
    assert res["ap_undefined"] == [2] and res["excluded"] == [3] and res["n_classes"] == 3
    per = res["per_class"]
    for k in range(4):
        ref = class_metrics(Y[:, k], L[:, k])
        for m in ("ap", "precision", "recall", "f1", "accuracy"):
            assert per[k][m] == pytest.approx(ref[m], abs=1e-12)
    assert per[2]["ap"] is None
    assert res["mean"]["ap"] == pytest.approx((per[0]["ap"] + per[1]["ap"]) / 2)
    assert res["mean"]["f1"] == pytest.approx(np.mean([per[k]["f1"] for k in range(3)]))


def test_fidelity_agreement_and_ap_vs_teacher():
    rng = np.random.default_rng(4)
    T = rng.normal(size=(40, 3))
    S = T + rng.normal(scale=0.5, size=(40, 3))
    T[:, 1] = -1.0  # teacher never predicts class 1
    res = fidelity(T, S)
    assert res["agreement"] == pytest.approx(((T > 0) == (S > 0)).mean())
    assert res["ap_vs_teacher"][1] is None
    assert res["ap_vs_teacher"][0] == pytest.approx(average_precision_score(T[:, 0] > 0, S[:, 0]))
    assert fidelity(T[:, 0], T[:, 0])["agreement"] == 1.0


def _ap_by_argsort(y, s):
    """The sort-based formula average_precision_batch used before: precision at each position of
    the decreasing order, summed over the positives' positions (tie-free rows)."""
    order = np.argsort(-s, kind="stable")
    ys = np.asarray(y, bool)[order]
    precision = np.cumsum(ys, dtype=np.float64) / np.arange(1, s.size + 1)
    return np.where(ys, precision, 0.0).sum() / ys.sum()


def test_average_precision_batch_is_the_sort_based_formula_bit_for_bit_without_ties():
    """The binary-search AP puts each positive's precision where the sorted row had it, so a
    tie-free row gives the same float, not just one within rounding (views compared old vs new)."""
    rng = np.random.default_rng(3)
    for _ in range(40):
        n = int(rng.integers(2, 3000))
        y = rng.random(n) < rng.uniform(0.02, 0.6)
        y[int(rng.integers(n))] = True
        S = rng.normal(size=(4, n))
        got = average_precision_batch(y, S)
        for i in range(4):
            assert got[i] == _ap_by_argsort(y, S[i])
        Y = rng.random((4, n)) < 0.3
        Y[:, 0] = True
        got = average_precision_batch(Y, S)
        for i in range(4):
            assert got[i] == _ap_by_argsort(Y[i], S[i])
