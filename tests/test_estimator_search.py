"""The sparsity search: its answer meets its stated precision, the knot prediction is first-order
accurate, and the worker threads change nothing."""

import numpy as np
import pytest
from scipy.special import expit

from inficond.students import ConceptStudent, lambda_for_sparsity
from inficond.students import _solvers as S
from inficond.students.estimator import _next_knot, _standardisation


@pytest.fixture(scope="module")
def data():
    X, T = S.synthetic_problem(n=400, n_concepts=60, n_classes=12, seed=3, n_factors=10)
    return X.astype(float), T.astype(float)


def counts(X, T, lam):
    return ConceptStudent(lam=lam, n_jobs=1).fit(X, T).n_nonzero_


@pytest.mark.parametrize("max_concepts", [6, 15])
def test_the_answer_is_the_smallest_lam_to_relative_eps(data, max_concepts):
    X, T = data
    eps = 1e-3
    lam = lambda_for_sparsity(X, T, max_concepts=max_concepts, eps=eps)
    assert np.all(counts(X, T, lam) <= max_concepts)
    # a step of eps lower breaks the limit in every class (none reached the path's end here)
    assert np.all(counts(X, T, lam / (1 + eps)) > max_concepts)


def test_a_coarser_eps_gives_a_lam_within_it(data):
    X, T = data
    fine = lambda_for_sparsity(X, T, max_concepts=10, eps=1e-4)
    coarse = lambda_for_sparsity(X, T, max_concepts=10, eps=3e-2)
    assert np.all(coarse >= fine * (1 - 1e-9)) and np.all(coarse <= fine * (1 + 3e-2) * (1 + 1e-4))


@pytest.mark.parametrize("k", [0, 2])
def test_the_knot_prediction_is_first_order_accurate(data, k):
    """From an exact fit a little above a knot, the predicted knot is far closer to the true one
    than the fit's own lam is. (A zeroth-order guess, the largest inactive gradient, is off by
    4-90% of the gap on these classes; the first-order one by under 0.3%.)"""
    X, T = data
    M = 10
    lam = lambda_for_sparsity(X, T[:, [k]], max_concepts=M, eps=1e-5)[0]  # the knot, to 1e-5
    mean, scale = _standardisation(X)
    Z = np.asfortranarray((X - mean) / scale)
    p = expit(T[:, k])
    for gap in (0.02, 0.005):
        st = ConceptStudent(lam=lam * (1 + gap), tol=1e-10, n_jobs=1).fit(X, T[:, [k]])
        assert st.n_nonzero_[0] <= M
        knot = _next_knot(Z, p, st.coef_[0], st.intercept_[0], lam * (1 + gap), M, np.zeros(0, int))
        assert abs(knot / lam - 1) < 0.01 * gap


def test_worker_threads_change_nothing():
    X, T = S.synthetic_problem(n=300, n_concepts=40, n_classes=24, seed=5, n_factors=8)  # two blocks
    X, T = X.astype(float), T.astype(float)
    a, sa = lambda_for_sparsity(X, T, max_concepts=8, n_jobs=1, return_student=True)
    b, sb = lambda_for_sparsity(X, T, max_concepts=8, n_jobs=2, return_student=True)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(sa.coef_, sb.coef_)
    fit1 = ConceptStudent(lam=a, n_jobs=1).fit(X, T)
    fit2 = ConceptStudent(lam=a, n_jobs=2).fit(X, T)
    np.testing.assert_array_equal(fit1.coef_, fit2.coef_)
    np.testing.assert_array_equal(fit1.coef_, sa.coef_)  # the search's student is the fit, to the bit
    np.testing.assert_array_equal(fit1.intercept_, sa.intercept_)


def test_bad_search_settings_raise(data):
    X, T = data
    with pytest.raises(ValueError, match="eps"):
        lambda_for_sparsity(X, T, eps=0)
    with pytest.raises(ValueError, match="n_jobs"):
        ConceptStudent(n_jobs=0).fit(X, T)
