"""ConceptStudent: fitting, prediction, lambda selection and input validation."""

import numpy as np
import pytest
from scipy.special import expit

from inficond.exceptions import DataError, TeacherOutputError, UnknownNameError
from inficond.students import ConceptStudent, lambda_for_sparsity
from inficond.students._solvers import synthetic_problem


@pytest.fixture(scope="module")
def data():
    return synthetic_problem(n=400, n_concepts=50, n_classes=4, seed=2, n_factors=10)


@pytest.fixture(scope="module")
def fitted(data):
    X, T = data
    return ConceptStudent(lam=0.01).fit(X, T)


def test_fit_learns_shapes_and_standardisation(data, fitted):
    X, T = data
    st = fitted
    assert st.coef_.shape == (4, 50) and st.intercept_.shape == (4,)
    np.testing.assert_allclose(st.mean_, X.astype(float).mean(0))
    np.testing.assert_allclose(st.scale_, X.astype(float).std(0))
    np.testing.assert_array_equal(st.n_nonzero_, np.count_nonzero(st.coef_, axis=1))
    assert st.converged_.all() and st.kkt_.max() <= 1e-8
    assert np.all(st.kkt_violation(X, T) <= 1e-8)


def test_decision_function_is_the_documented_formula(data, fitted):
    X, _ = data
    st = fitted
    manual = ((X.astype(float) - st.mean_) / st.scale_) @ st.coef_.T + st.intercept_
    np.testing.assert_allclose(st.decision_function(X), manual, atol=1e-12)
    np.testing.assert_allclose(st.predict_proba(X), expit(manual), atol=1e-12)
    np.testing.assert_array_equal(st.predict(X), (manual > 0).astype(np.uint8))


def test_objective_is_bce_plus_l1(data, fitted):
    X, T = data
    st = fitted
    z, p = st.decision_function(X), expit(T.astype(float))
    bce = -(p * np.log(expit(z)) + (1 - p) * np.log(expit(-z))).mean(0)
    np.testing.assert_allclose(st.objective(X, T), bce + 0.01 * np.abs(st.coef_).sum(1), rtol=1e-10)


def test_constant_concept_gets_scale_one_and_zero_weight(data):
    X, T = data
    X = X.copy()
    X[:, 7] = 0.3
    st = ConceptStudent(lam=0.01).fit(X, T)
    assert st.scale_[7] == 1.0 and not st.coef_[:, 7].any()
    assert np.isfinite(st.decision_function(X)).all()


def test_sparsity_grows_with_lambda(data):
    X, T = data
    counts = [ConceptStudent(lam=lam).fit(X, T).n_nonzero_ for lam in (0.001, 0.005, 0.02, 0.08)]
    for a, b in zip(counts, counts[1:]):
        assert np.all(b <= a)
    assert counts[0].sum() > counts[-1].sum()


def test_per_class_lambda(data):
    X, T = data
    lam = np.array([0.001, 0.01, 0.05, 0.2])
    st = ConceptStudent(lam=lam).fit(X, T)
    np.testing.assert_array_equal(st.lam_, lam)
    for k in range(4):
        one = ConceptStudent(lam=lam[k]).fit(X, T)
        np.testing.assert_allclose(st.coef_[k], one.coef_[k], atol=1e-7)


def test_warm_start_and_class_refit_give_the_same_optimum(data, fitted):
    X, T = data
    st = ConceptStudent(lam=0.03).fit(X, T)
    st.set_params(lam=0.01, warm_start=True).fit(X, T)
    np.testing.assert_allclose(st.coef_, fitted.coef_, atol=1e-7)
    lower = np.full((4, 50), -np.inf)
    lower[2, 0] = 0.5
    before = st.coef_.copy()
    st.fit(X, T, lower=lower, classes=[2])
    np.testing.assert_array_equal(st.coef_[[0, 1, 3]], before[[0, 1, 3]])
    assert st.coef_[2, 0] >= 0.5 and st.lower_[2, 0] == 0.5


@pytest.mark.parametrize("max_concepts", [5, 12])
def test_lambda_for_sparsity_hits_the_target(data, max_concepts):
    X, T = data
    lam = lambda_for_sparsity(X, T, max_concepts=max_concepts)
    nnz = ConceptStudent(lam=lam).fit(X, T).n_nonzero_
    assert np.all(nnz <= max_concepts)
    assert np.all(nnz >= max_concepts - 2)  # as many as allowed, up to ties on the path
    shared = lambda_for_sparsity(X, T, max_concepts=max_concepts, per_class=False)
    assert isinstance(shared, float)
    nnz_shared = ConceptStudent(lam=shared).fit(X, T).n_nonzero_
    assert nnz_shared.max() <= max_concepts and nnz_shared.max() >= max_concepts - 2


def test_adam_paper_solver_runs(data, fitted):
    X, T = data
    st = ConceptStudent(lam=0.01, solver="adam-paper", max_iter=3).fit(X, T)
    assert st.n_nonzero_.sum() > fitted.n_nonzero_.sum()
    assert np.all(st.objective(X, T) >= fitted.objective(X, T))


def test_bad_inputs_raise_clear_errors(data, fitted):
    X, T = data
    Xn = X.copy()
    Xn[3, 2] = np.nan
    with pytest.raises(DataError, match="NaN"):
        ConceptStudent().fit(Xn, T)
    Tn = T.copy()
    Tn[5, 1] = np.inf
    with pytest.raises(TeacherOutputError, match="first bad rows: \\[5\\]"):
        ConceptStudent().fit(X, Tn)
    with pytest.raises(TeacherOutputError, match="shape"):
        ConceptStudent().fit(X, T[:-1])
    with pytest.raises(DataError, match="shape"):
        ConceptStudent().fit(X[0], T)
    with pytest.raises(DataError, match="lower bounds must have shape"):
        ConceptStudent().fit(X, T, lower=np.zeros((2, 2)))
    with pytest.raises(DataError, match="empty bounds"):
        ConceptStudent().fit(X, T, lower=np.ones((4, 50)), upper=np.zeros((4, 50)))
    with pytest.raises(UnknownNameError, match="did you mean: fista"):
        ConceptStudent(solver="fistaa").fit(X, T)
    with pytest.raises(DataError, match="lam"):
        ConceptStudent(lam=-1).fit(X, T)
    with pytest.raises(DataError, match="not fitted"):
        ConceptStudent().decision_function(X)
    with pytest.raises(DataError, match="concepts"):
        fitted.decision_function(X[:, :10])
    with pytest.raises(DataError, match="classes"):
        ConceptStudent().fit(X, T, classes=[9])


def test_constant_teacher_class_gets_an_intercept_only_student(data):
    X, T = data
    T = T.copy()
    T[:, 1] = -8.5  # a teacher that never changes its mind about class 1
    lam = lambda_for_sparsity(X, T, max_concepts=5)
    assert lam[1] == 1e-10 and np.all(lam[[0, 2, 3]] > 1e-6)
    st = ConceptStudent(lam=lam).fit(X, T)
    assert st.n_nonzero_[1] == 0
    np.testing.assert_allclose(st.decision_function(X)[:, 1], -8.5, atol=1e-6)


@pytest.mark.parametrize("per_class", [True, False])
def test_sparsity_search_returns_the_fit_that_fit_would_do(data, per_class):
    X, T = data
    lam, st = lambda_for_sparsity(X, T, max_concepts=8, per_class=per_class, return_student=True)
    ref = ConceptStudent(lam=lam).fit(X, T)
    drop_lam = lambda p: {k: v for k, v in p.items() if k != "lam"}  # noqa: E731
    assert drop_lam(st.get_params()) == drop_lam(ref.get_params())
    np.testing.assert_array_equal(st.lam_, ref.lam_)
    np.testing.assert_allclose(st.objective(X, T), ref.objective(X, T), rtol=0, atol=1e-10)
    np.testing.assert_array_equal(st.coef_ != 0, ref.coef_ != 0)
    np.testing.assert_allclose(st.coef_, ref.coef_, atol=1e-6)
    np.testing.assert_allclose(st.mean_, ref.mean_)
    assert np.all(st.n_nonzero_ <= 8) and st.converged_.all()
    assert st.kkt_violation(X, T).max() <= 1e-8


def test_sparsity_search_counts_aliases_once(data):
    """A concept repeated under a second name (an alias: the same vector) is one concept: the
    search's count and the fit's non-zeros do not depend on which copy the path put weight on."""
    X, T = data
    Xd = np.column_stack([X, X[:, :5]])  # concepts 50..54 repeat 0..4
    lam, st = lambda_for_sparsity(Xd, T, max_concepts=8, return_student=True)
    assert np.all(st.coef_[:, 50:] == 0) and np.all(st.n_nonzero_ <= 8)
    lam_plain = lambda_for_sparsity(X, T, max_concepts=8)
    np.testing.assert_allclose(lam, lam_plain, rtol=1e-12)  # the same search as without the copies
    ref = ConceptStudent(lam=lam).fit(Xd, T)
    np.testing.assert_array_equal(st.coef_, ref.coef_)
