"""Property-based tests (hypothesis): the solvers, the tuning rule and the what-if curves on
random small problems, each checked against an independent statement of what must hold."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.special import expit
from sklearn.metrics import accuracy_score, average_precision_score, f1_score, precision_score, recall_score

from inficond.analysis.whatif import whatif_curves
from inficond.students import ConceptStudent, Instruction, apply_tuning
from inficond.students._solvers import SOLVERS, objective, solve
from inficond.students.tuning import reference_influence, tune_bounds

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def problems(draw, max_n=40, max_c=6, max_k=2):
    """A random L1 logistic problem with soft targets and random box bounds (0 always feasible)."""
    seed = draw(st.integers(0, 2**32 - 1))
    n, C, K = draw(st.integers(8, max_n)), draw(st.integers(1, max_c)), draw(st.integers(1, max_k))
    rng = np.random.default_rng(seed)
    Z = rng.standard_normal((n, C))
    P = expit(Z @ rng.standard_normal((C, K)) * draw(st.floats(0.1, 3.0)) + rng.normal(0, 0.5, (n, K)))
    lam = rng.uniform(1e-3, 0.2, K)
    lower = np.where(rng.random((K, C)) < 0.3, -rng.uniform(0, 0.5, (K, C)), -np.inf)
    upper = np.where(rng.random((K, C)) < 0.3, rng.uniform(0, 0.5, (K, C)), np.inf)
    return Z, P, lam, lower, upper


def kkt_residual(Z, P, W, B, lam, lower, upper) -> float:
    """The optimality conditions written out independently of the solver module."""
    n = Z.shape[0]
    R = expit(Z @ W.T + B) - P
    G, gB = R.T @ Z / n, R.mean(0)
    worst = float(np.abs(gB).max())
    for k in range(W.shape[0]):
        for c in range(W.shape[1]):
            w, g, lo, hi, l1 = W[k, c], G[k, c], lower[k, c], upper[k, c], lam[k]
            # the subgradient of g*w + l1*|w| must not allow a feasible descent direction
            right = g + (l1 if w >= 0 else -l1)  # slope when w grows
            left = g + (l1 if w > 0 else -l1)  # slope when w shrinks
            if w < hi:
                worst = max(worst, -right)
            if w > lo:
                worst = max(worst, left)
    return worst


@pytest.mark.parametrize("solver", ["cd", "fista", "lbfgsb"])
@SETTINGS
@given(prob=problems())
def test_solver_meets_kkt_and_bounds(solver, prob):
    Z, P, lam, lower, upper = prob
    K, C = lower.shape
    res = solve(solver, Z, P, lam, lower, upper, np.zeros((K, C)), np.zeros(K), tol=1e-9)
    W, B = res.coef, res.intercept
    assert np.all(W >= lower) and np.all(W <= upper), "a bound was broken"
    assert kkt_residual(Z, P, W, B, lam, lower, upper) < 1e-6
    # the optimum of a convex problem: no feasible nearby point is better
    rng = np.random.default_rng(0)
    f = objective(Z, P, W, B, lam)
    for _ in range(5):
        W2 = np.clip(W + rng.normal(0, 1e-3, W.shape), lower, upper)
        assert np.all(objective(Z, P, W2, B + rng.normal(0, 1e-3, K), lam) >= f - 1e-12)


def test_solvers_listed():
    assert {"cd", "fista", "lbfgsb"} <= set(SOLVERS)


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), factor=st.floats(0.05, 2.0),
       votes=st.lists(st.tuples(st.integers(0, 7), st.sampled_from(["up", "down"])), min_size=1, max_size=4,
                      unique_by=lambda v: v[0]))
def test_tuning_rule_moves_each_bound_by_factor_times_influence(seed, factor, votes):
    """up: lower = max(old lower, w + factor * max(|w|, ref)); down: the mirror; nothing else changes."""
    rng = np.random.default_rng(seed)
    coef = rng.normal(0, 1, 8) * (rng.random(8) < 0.6)
    old = {(0, 7): (-math.inf, 0.25)}  # an earlier downtune of concept 7
    ins = [Instruction(0, c, d) for c, d in votes]
    ups_on_7 = any(c == 7 and d == "up" for c, d in votes)
    new = tune_bounds(coef, ins, old, factor=factor, on_conflict="replace")
    ref = reference_influence(coef)
    for c, d in votes:
        step = factor * max(abs(coef[c]), ref)
        lo, hi = new[(0, c)]
        prev_lo, prev_hi = old.get((0, c), (-math.inf, math.inf))
        if d == "up":
            assert lo == pytest.approx(max(prev_lo, coef[c] + step)) and lo > coef[c]
            assert hi == math.inf  # 'replace' drops a conflicting earlier downtune
        else:
            assert hi == pytest.approx(min(prev_hi, coef[c] - step)) and hi < coef[c]
            assert lo == prev_lo
    untouched = set(old) - {(0, c) for c, _ in votes}
    assert all(new[key] == old[key] for key in untouched)
    if not ups_on_7 and all(c != 7 for c, _ in votes):
        assert new[(0, 7)] == old[(0, 7)]


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), concept=st.integers(0, 5), direction=st.sampled_from(["up", "down"]))
def test_tuning_step_honours_its_bound_and_leaves_other_classes(seed, concept, direction):
    rng = np.random.default_rng(seed)
    X = rng.random((60, 6))
    T = X @ rng.normal(0, 3, (6, 2)) + rng.normal(0, 0.3, (60, 2))
    st0 = ConceptStudent(lam=0.01).fit(X, T)
    new, history = apply_tuning(st0, X, T, [Instruction(1, concept, direction)], {}, factor=0.5)
    lo, hi = history[(1, concept)]
    w_new = new.coef_[1, concept]
    assert lo - 1e-12 <= w_new <= hi + 1e-12
    if direction == "up":
        assert w_new > st0.coef_[1, concept]
    else:
        assert w_new < st0.coef_[1, concept]
    np.testing.assert_array_equal(new.coef_[0], st0.coef_[0])
    assert new.intercept_[0] == st0.intercept_[0]


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(5, 40), ties=st.booleans(),
       grid=st.lists(st.floats(-3, 3, allow_nan=False), min_size=1, max_size=5))
def test_whatif_equals_sklearn(seed, n, ties, grid):
    rng = np.random.default_rng(seed)
    Z = rng.standard_normal((n, 4))
    if ties:  # coarse values: many tied scores, where AP implementations differ most
        Z = np.round(Z)
    w, b = rng.normal(0, 1, 4), float(rng.normal())
    y = (rng.random(n) < 0.4).astype(int)
    y[0] = 1  # at least one positive: AP is defined
    res = whatif_curves(Z, w, b, y, [1, 3], grid=grid)
    for i, c in enumerate([1, 3]):
        for j, v in enumerate(res["grid"][i]):
            w2 = w.copy()
            w2[c] = v
            s = Z @ w2 + b
            pred = s > 0
            want = {
                "ap": average_precision_score(y, s),
                "f1": f1_score(y, pred, zero_division=0),
                "precision": precision_score(y, pred, zero_division=0),
                "recall": recall_score(y, pred, zero_division=0),
                "accuracy": accuracy_score(y, pred),
            }
            for m, value in want.items():
                assert res["values"][m][i, j] == pytest.approx(value, abs=1e-9), (m, i, j)
