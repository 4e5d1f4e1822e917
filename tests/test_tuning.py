"""Concept tuning: votes become bounds, bounds accumulate, the refit respects them."""

import numpy as np
import pytest

from inficond.exceptions import TuningError
from inficond.students import ConceptStudent, Instruction, apply_tuning, tune_bounds, tune_class
from inficond.students._solvers import synthetic_problem
from inficond.students.tuning import reference_influence

K_ = 1  # the tuned class


@pytest.fixture(scope="module")
def setup():
    X, T = synthetic_problem(n=400, n_concepts=50, n_classes=3, seed=4, n_factors=10)
    st = ConceptStudent(lam=0.01).fit(X, T)
    return X, T, st


def concepts(st):
    w = st.coef_[K_]
    pos = int(np.argmax(w))
    neg = int(np.argmin(w))
    zero = int(np.flatnonzero(w == 0)[0])
    return w, pos, neg, zero


def test_bounds_rule(setup):
    _, _, st = setup
    w, pos, neg, zero = concepts(st)
    ref = reference_influence(w)
    assert ref == pytest.approx(np.sort(np.abs(w))[::-1][:10].mean())
    ins = [Instruction(K_, pos, "up"), Instruction(K_, neg, "up"), Instruction(K_, zero, "down")]
    h = tune_bounds(w, ins, factor=0.5)
    assert h[(K_, pos)] == (pytest.approx(w[pos] + 0.5 * max(w[pos], ref)), np.inf)
    assert h[(K_, neg)][0] == pytest.approx(w[neg] + 0.5 * max(-w[neg], ref))
    assert h[(K_, neg)][0] > w[neg]  # towards zero
    assert h[(K_, zero)] == (-np.inf, pytest.approx(-0.5 * ref))  # a zero weight still gets a bound


def test_downtune_positive_and_uptune_zero_move_the_weights(setup):
    X, T, st = setup
    w, pos, _, zero = concepts(st)
    ref = reference_influence(w)
    row, b, h = tune_class(st, X, T, K_, [Instruction(K_, pos, "down"), Instruction(K_, zero, "up")], {})
    assert row[pos] <= w[pos] - 0.5 * max(w[pos], ref)
    assert row[zero] >= 0.5 * ref > 0
    assert np.isfinite(b)
    np.testing.assert_array_equal(st.coef_[K_], w)  # the student itself is not modified


def test_refit_is_the_bounded_optimum(setup):
    X, T, st = setup
    w, pos, neg, zero = concepts(st)
    ins = [Instruction(K_, pos, "down"), Instruction(K_, neg, "up")]
    new, h = apply_tuning(st, X, T, ins, {})
    # a full cold fit with the same bounds lands on the same weights
    cold = ConceptStudent(lam=0.01).fit(X, T, lower=new.lower_, upper=new.upper_)
    np.testing.assert_allclose(new.coef_[K_], cold.coef_[K_], atol=1e-6)
    assert np.all(new.kkt_violation(X, T)[K_] <= 1e-7)
    np.testing.assert_array_equal(np.delete(new.coef_, K_, 0), np.delete(st.coef_, K_, 0))


def test_history_is_kept_across_steps(setup):
    X, T, st = setup
    w, pos, neg, zero = concepts(st)
    s1, h1 = apply_tuning(st, X, T, [Instruction(K_, pos, "down")], {})
    s2, h2 = apply_tuning(s1, X, T, [Instruction(K_, zero, "up")], h1)
    assert (K_, pos) in h2 and h2[(K_, pos)] == h1[(K_, pos)]
    assert s2.coef_[K_, pos] <= h1[(K_, pos)][1]  # the first vote still holds
    assert s2.coef_[K_, zero] >= h2[(K_, zero)][0]
    # the same vote again tightens from the current weight
    s3, h3 = apply_tuning(s2, X, T, [Instruction(K_, pos, "down")], h2)
    assert h3[(K_, pos)][1] < h2[(K_, pos)][1]
    assert s3.coef_[K_, pos] <= h3[(K_, pos)][1]


def test_opposite_vote_conflicts_unless_replace(setup):
    X, T, st = setup
    w, pos, _, _ = concepts(st)
    _, h1 = apply_tuning(st, X, T, [Instruction(K_, pos, "down")], {})
    with pytest.raises(TuningError, match="downtuned before"):
        tune_bounds(w, [Instruction(K_, pos, "up")], h1)
    h2 = tune_bounds(w, [Instruction(K_, pos, "up")], h1, on_conflict="replace")
    assert h2[(K_, pos)][1] == np.inf and h2[(K_, pos)][0] > w[pos]
    with pytest.raises(TuningError, match="both up and down"):
        tune_class(st, X, T, K_, [Instruction(K_, pos, "up"), Instruction(K_, pos, "down")])


@pytest.mark.parametrize(
    "ins, match",
    [
        (Instruction(K_, 50, "up"), "concept index 50"),
        (Instruction(K_, -1, "up"), "concept index -1"),
        (Instruction(K_, 3, "sideways"), "direction 'sideways'"),
        (Instruction(0, 3, "up"), "is for class 0"),
    ],
)
def test_bad_instructions(setup, ins, match):
    X, T, st = setup
    with pytest.raises(TuningError, match=match):
        tune_class(st, X, T, K_, [ins])


def test_bad_class_and_empty(setup):
    X, T, st = setup
    with pytest.raises(TuningError, match="class index 7"):
        tune_class(st, X, T, 7, [Instruction(7, 0, "up")])
    with pytest.raises(TuningError, match="no tuning instructions"):
        tune_class(st, X, T, K_, [])


def test_tuning_a_student_widened_with_new_concepts(setup):
    """A student padded with zero influences for concepts added later can still be tuned."""
    X, T, st = setup
    import copy

    wide = copy.deepcopy(st)
    X2 = np.hstack([X, X[:, :2] * 0.5])
    wide.coef_ = np.hstack([st.coef_, np.zeros((3, 2))])
    wide.mean_ = np.concatenate([st.mean_, X2[:, 50:].mean(0)])
    wide.scale_ = np.concatenate([st.scale_, X2[:, 50:].std(0)])
    new, h = apply_tuning(wide, X2, T, [Instruction(K_, 51, "up")], {})
    assert new.lower_.shape == (3, 52) and new.coef_[K_, 51] >= h[(K_, 51)][0] > 0
