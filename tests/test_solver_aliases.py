"""Aliases (concepts with identical vectors, e.g. "plane" = "airplane") have one influence: a vote
on any of them bounds it, through the tuning path, and the refit cannot move it onto a twin."""

import numpy as np
import pytest

from inficond.students import ConceptStudent, Instruction, apply_tuning
from inficond.students._solvers import synthetic_problem
from inficond.students.tuning import bounds_from_history

K_ = 1  # the tuned class


@pytest.fixture(scope="module")
def setup():
    X, T = synthetic_problem(n=400, n_concepts=50, n_classes=3, seed=4, n_factors=10)
    base = ConceptStudent(lam=0.01).fit(X, T)
    rep = int(np.argmax(base.coef_[K_]))  # a concept with a large positive influence on the class
    Xa = np.column_stack([X, X[:, rep]])  # column 50 is its alias
    st = ConceptStudent(lam=0.01).fit(Xa, T)
    return X, Xa, T, st, rep, 50


def single_column_refit(X, T, st, new, rep, twin):
    """The same votes on the problem without the twin, with the intersected bound on the original."""
    lo = np.delete(new.lower_, twin, axis=1)
    hi = np.delete(new.upper_, twin, axis=1)
    lo[:, rep] = np.maximum(new.lower_[:, rep], new.lower_[:, twin])
    hi[:, rep] = np.minimum(new.upper_[:, rep], new.upper_[:, twin])
    return ConceptStudent(lam=0.01, tol=1e-10).fit(X, T, lower=lo, upper=hi)


def test_the_alias_starts_with_one_weight(setup):
    _, _, _, st, rep, twin = setup
    assert st.coef_[K_, rep] > 0 and np.all(st.coef_[:, twin] == 0)


@pytest.mark.parametrize("voted", ["rep", "twin"])
def test_a_downvote_on_either_alias_bounds_their_joint_influence(setup, voted):
    X, Xa, T, st, rep, twin = setup
    c = rep if voted == "rep" else twin
    new, h = apply_tuning(st, Xa, T, [Instruction(K_, c, "down")], {})
    upper = h[(K_, c)][1]
    joint = new.coef_[K_, rep] + new.coef_[K_, twin]
    assert joint <= upper + 1e-12  # the weight did not escape onto the unvoted twin
    assert joint < st.coef_[K_, rep]
    # all of it sits on one member, within that member's own bound
    assert (new.coef_[K_, rep] == 0) or (new.coef_[K_, twin] == 0)
    assert np.all(new.coef_ <= new.upper_) and np.all(new.coef_ >= new.lower_)
    # the refit is the optimum of the problem with one column and the vote on it
    one = single_column_refit(X, T, st, new, rep, twin)
    np.testing.assert_allclose(joint, one.coef_[K_, rep], atol=1e-6)
    np.testing.assert_allclose(np.delete(new.coef_[K_], [rep, twin]), np.delete(one.coef_[K_], rep), atol=1e-6)
    # and optimal as the estimator measures it (aliases merged as the solver merges them)
    assert new.kkt_violation(Xa, T)[K_].max() <= 1e-7


def test_an_upvote_on_the_twin_moves_the_influence_onto_it(setup):
    X, Xa, T, st, rep, twin = setup
    new, h = apply_tuning(st, Xa, T, [Instruction(K_, twin, "up")], {})
    lower = h[(K_, twin)][0]
    assert lower > 0
    assert new.coef_[K_, twin] >= lower and new.coef_[K_, rep] == 0  # within each member's own bounds
    one = single_column_refit(X, T, st, new, rep, twin)
    np.testing.assert_allclose(new.coef_[K_, twin], one.coef_[K_, rep], atol=1e-6)


@pytest.mark.parametrize("second", ["down", "up"])
def test_votes_that_cannot_hold_on_one_influence_bind_each_alias_on_its_own(setup, second):
    """An up on one twin and a down on the other (bounds that do not intersect), or a vote on
    each (both exclude 0): no single influence can honour both, so in that class the twins are
    left unmerged and each keeps its own vote's bound; the refit is still optimal."""
    _, Xa, T, st, rep, twin = setup
    new, h = apply_tuning(st, Xa, T, [Instruction(K_, rep, "up")], {})
    new2, h2 = apply_tuning(new, Xa, T, [Instruction(K_, twin, second)], h)
    assert new2.coef_[K_, rep] >= h2[(K_, rep)][0] > 0
    if second == "down":
        assert new2.coef_[K_, twin] <= h2[(K_, twin)][1] < 0
    else:
        assert new2.coef_[K_, twin] >= h2[(K_, twin)][0] > 0
    assert np.all(new2.coef_ <= new2.upper_) and np.all(new2.coef_ >= new2.lower_)
    assert new2.kkt_violation(Xa, T)[K_].max() <= 1e-7


def test_other_classes_keep_one_weight_on_the_first_member(setup):
    _, Xa, T, st, rep, twin = setup
    new, h = apply_tuning(st, Xa, T, [Instruction(K_, twin, "up")], {})
    lo, hi = bounds_from_history(h, 3, Xa.shape[1])
    refit = ConceptStudent(lam=0.01).fit(Xa, T, lower=lo, upper=hi)
    others = [k for k in range(3) if k != K_]
    assert np.all(refit.coef_[others, twin] == 0)
    np.testing.assert_allclose(refit.coef_[others], st.coef_[others], atol=1e-7)


def test_constant_concepts_are_not_aliases_and_take_their_own_votes(setup):
    """Two concepts absent from every image (presence clipped at 0: all-zero columns) touch no logit:
    an upvote on one and a downvote on the other do not conflict, each weight sits at its
    bound, and the rest of the class is the fit without them."""
    X, _, T, _, _, _ = setup
    Xc = np.column_stack([X, np.zeros(len(X)), np.zeros(len(X))])  # columns 50 and 51
    st = ConceptStudent(lam=0.01).fit(Xc, T)
    assert np.all(st.coef_[:, 50:] == 0)
    new, h = apply_tuning(st, Xc, T, [Instruction(K_, 50, "up"), Instruction(K_, 51, "down")], {})
    assert new.coef_[K_, 50] == h[(K_, 50)][0] > 0
    assert new.coef_[K_, 51] == h[(K_, 51)][1] < 0
    np.testing.assert_allclose(new.coef_[K_, :50], st.coef_[K_, :50], atol=1e-6)
