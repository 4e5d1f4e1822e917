"""The exact solvers reach the optimum of the bounded L1 soft-label problem."""

import numpy as np
import pytest
from scipy.special import expit

from inficond.students import _solvers as S

SOLVERS = ["cd", "fista", "lbfgsb"]
TOL = {"cd": 1e-9, "fista": 1e-7, "lbfgsb": 1e-8}  # FISTA is slow to the last digits; L-BFGS-B stalls near 1e-9


def problem(n=300, C=40, K=3, seed=0):
    X, T = S.synthetic_problem(n=n, n_concepts=C, n_classes=K, seed=seed, n_factors=8)
    X = X.astype(float)
    Z = (X - X.mean(0)) / X.std(0)
    return Z, expit(T.astype(float))


def no_bounds(K, C):
    return np.full((K, C), -np.inf), np.full((K, C), np.inf)


def some_bounds(W, seed=1):
    """Bounds that cut through the unbounded optimum: some exclude 0, some pin weights."""
    rng = np.random.default_rng(seed)
    K, C = W.shape
    lo, hi = no_bounds(K, C)
    big = np.argsort(-np.abs(W), axis=1)[:, :3]
    for k in range(K):
        c0, c1, c2 = big[k]
        hi[k, c0] = W[k, c0] * 0.5 if W[k, c0] > 0 else hi[k, c0]  # cap a positive weight
        lo[k, c0] = W[k, c0] * 0.5 if W[k, c0] < 0 else lo[k, c0]
        lo[k, c1], hi[k, c1] = -np.inf, -0.05  # force negative
        zero = np.flatnonzero(W[k] == 0)
        c3 = rng.choice(zero)
        lo[k, c3] = 0.2  # force a zero weight positive
        lo[k, c2] = hi[k, c2] = 0.1 if W[k, c2] else lo[k, c2]  # pinned
    return lo, hi


def assert_kkt(Z, P, res, lam, lo, hi, atol=1e-6):
    """Optimality checked case by case (independent of kkt_violation)."""
    W, B = res.coef, res.intercept
    _, G, gB, _ = S.smooth_loss_grad(Z, P, W, B)
    assert np.all(np.abs(gB) <= atol)
    at_lo = W == lo
    at_hi = W == hi
    free = ~at_lo & ~at_hi
    nz = free & (W != 0)
    np.testing.assert_allclose(G[nz], (-lam * np.sign(W))[nz], atol=atol)
    zero = free & (W == 0)
    assert np.all(np.abs(G[zero]) <= lam + atol)
    # at a lower bound the weight must not want to grow: right derivative >= 0
    d_plus = G + np.where(W >= 0, lam, -lam)
    d_minus = G + np.where(W > 0, lam, -lam)
    assert np.all(d_plus[at_lo & ~at_hi] >= -atol)
    assert np.all(d_minus[at_hi & ~at_lo] <= atol)


@pytest.mark.parametrize("name", SOLVERS)
def test_unbounded_optimum_satisfies_kkt(name):
    Z, P = problem()
    K, C = P.shape[1], Z.shape[1]
    lam = 0.01
    r = S.solve(name, Z, P, lam, *no_bounds(K, C), np.zeros((K, C)), np.zeros(K), tol=TOL[name])
    assert r.converged.all()
    assert_kkt(Z, P, r, lam, *no_bounds(K, C))
    assert 0 < np.count_nonzero(r.coef) < K * C  # true zeros, but not all


@pytest.mark.parametrize("name", SOLVERS)
def test_bounded_optimum_satisfies_kkt_and_bounds(name):
    Z, P = problem(seed=3)
    K, C = P.shape[1], Z.shape[1]
    lam = 0.01
    free = S.solve("cd", Z, P, lam, *no_bounds(K, C), np.zeros((K, C)), np.zeros(K))
    lo, hi = some_bounds(free.coef)
    r = S.solve(name, Z, P, lam, lo, hi, np.zeros((K, C)), np.zeros(K), tol=TOL[name])
    assert np.all(r.coef >= lo) and np.all(r.coef <= hi)  # exact, no tolerance
    assert np.any(r.coef == hi) and np.any(r.coef == lo)  # some bounds are active
    assert_kkt(Z, P, r, lam, lo, hi)


def test_solvers_agree_on_objective():
    Z, P = problem(seed=5)
    K, C = P.shape[1], Z.shape[1]
    lam = np.array([0.02, 0.005, 0.01])
    F = {
        n: S.objective(Z, P, *(lambda r: (r.coef, r.intercept))(
            S.solve(n, Z, P, lam, *no_bounds(K, C), np.zeros((K, C)), np.zeros(K), tol=TOL[n] / 10)), lam)
        for n in SOLVERS
    }
    for n in SOLVERS:
        np.testing.assert_allclose(F[n], F["cd"], atol=1e-9)


def test_warm_start_reaches_cold_optimum():
    Z, P = problem(seed=7)
    K, C = P.shape[1], Z.shape[1]
    cold = S.solve_cd(Z, P, 0.01, *no_bounds(K, C), np.zeros((K, C)), np.zeros(K), tol=1e-10)
    warm_from = S.solve_cd(Z, P, 0.03, *no_bounds(K, C), np.zeros((K, C)), np.zeros(K))
    warm = S.solve_cd(Z, P, 0.01, *no_bounds(K, C), warm_from.coef, warm_from.intercept, tol=1e-10)
    np.testing.assert_allclose(warm.coef, cold.coef, atol=1e-7)
    np.testing.assert_array_equal(warm.coef == 0, cold.coef == 0)


def test_lambda_max_gives_all_zero():
    Z, P = problem()
    K, C = P.shape[1], Z.shape[1]
    lmax = S.lambda_max(Z, P)
    r = S.solve_cd(Z, P, lmax * 1.001, *no_bounds(K, C), np.zeros((K, C)), np.zeros(K))
    assert not r.coef.any()
    r = S.solve_cd(Z, P, lmax * 0.95, *no_bounds(K, C), np.zeros((K, C)), np.zeros(K))
    assert np.all(np.count_nonzero(r.coef, axis=1) >= 1)


def test_kkt_violation_cases():
    lam = np.array([1.0])
    lo, hi = np.array([[-np.inf, -np.inf, 0.5, -np.inf]]), np.array([[np.inf, np.inf, np.inf, 0.0]])
    W = np.array([[2.0, 0.0, 0.5, 0.0]])
    G = np.array([[-1.0, 0.7, 3.0, -5.0]])  # optimal: free(-lam), |g|<=lam, at lo pushing up, at hi=0 pulling up
    np.testing.assert_allclose(S.kkt_violation(W, G, lam, lo, hi), 0)
    G2 = np.array([[-0.5, 1.5, -3.0, 5.0]])
    np.testing.assert_allclose(S.kkt_violation(W, G2, lam, lo, hi), [[0.5, 0.5, 2.0, 4.0]])


def test_hard_labels_match_sklearn_l1_logistic():
    sklearn = pytest.importorskip("sklearn.linear_model")
    Z, P = problem(n=250, C=15, K=1, seed=11)
    y = (P[:, 0] > 0.5).astype(int)
    Ph = np.where(y[:, None] == 1, expit(40.0), expit(-40.0))  # hard labels through finite logits
    lam = 0.02
    r = S.solve_cd(Z, Ph, lam, *no_bounds(1, 15), np.zeros((1, 15)), np.zeros(1), tol=1e-11)
    # sklearn minimises C * sum(loss) + ||w||_1, i.e. our objective times n * C with C = 1/(lam n)
    clf = sklearn.LogisticRegression(l1_ratio=1.0, C=1 / (lam * len(y)), solver="saga", tol=1e-12,
                                     max_iter=100000).fit(Z, y)
    np.testing.assert_allclose(r.coef[0], clf.coef_[0], atol=1e-4)
    np.testing.assert_allclose(r.intercept[0], clf.intercept_[0], atol=1e-4)


def test_adam_paper_is_not_sparse_nor_optimal():
    Z, P = problem()
    K, C = P.shape[1], Z.shape[1]
    a = S.solve("adam-paper", Z, P, 0.01, *no_bounds(K, C), np.zeros((K, C)), np.zeros(K), epochs=5,
                batch_size=128)
    e = S.solve_cd(Z, P, 0.01, *no_bounds(K, C), np.zeros((K, C)), np.zeros(K))
    assert np.count_nonzero(a.coef) > np.count_nonzero(e.coef)
    assert np.all(S.objective(Z, P, a.coef, a.intercept, 0.01) > S.objective(Z, P, e.coef, e.intercept, 0.01))


def test_cd_hands_dense_classes_to_lbfgsb_and_still_converges():
    Z, P = problem(seed=9)
    K, C = P.shape[1], Z.shape[1]
    lam = np.array([0.001, 0.05, 0.002])  # classes 0 and 2 dense, 1 sparse
    ref = S.solve_cd(Z, P, lam, *no_bounds(K, C), np.zeros((K, C)), np.zeros(K), tol=1e-9)
    small = S.solve_cd(Z, P, lam, *no_bounds(K, C), np.zeros((K, C)), np.zeros(K), tol=1e-8, max_ws=15)
    assert small.kkt.max() <= 1e-8
    np.testing.assert_allclose(S.objective(Z, P, small.coef, small.intercept, lam),
                               S.objective(Z, P, ref.coef, ref.intercept, lam), atol=1e-10)


def test_batched_cd_subproblem_matches_the_single_class_loop_and_is_optimal():
    """The batched coordinate loop (rewritten for speed) solves the same bounded L1 quadratic as the
    scalar one, class by class, and its answer meets the sub-problem's optimality conditions."""
    rng = np.random.default_rng(3)
    K, m, n = 4, 12, 60
    A = rng.standard_normal((K, n, m))
    H = np.einsum("kni,knj->kij", A, A) / n + 1e-3 * np.eye(m)
    g = rng.standard_normal((K, m)) * 0.5
    w0 = np.where(rng.random((K, m)) < 0.5, 0.0, rng.standard_normal((K, m)))
    lam = np.full((K, m), 0.2)
    lam[:, -1] = 0.0  # the intercept slot is not penalised
    lo, hi = np.full((K, m), -np.inf), np.full((K, m), np.inf)
    lo[0, 1], hi[1, 2], lo[2, 3], hi[2, 3] = 0.3, -0.1, 0.05, 0.05  # a floor, a ceiling, a pinned weight
    w0 = np.clip(w0, lo, hi)
    lo[3, 4] = hi[3, 4] = w0[3, 4]  # a padding-like slot: must stay put
    x = S._cd_quadratic(H, g, w0, lam, lo, hi, n_sweeps=2000, tol=1e-15)
    for k in range(K):
        xk = S._cd_quadratic_one(H[k], g[k], w0[k], lam[k], lo[k], hi[k], 2000, 1e-15)
        np.testing.assert_allclose(x[k], xk, atol=1e-10)
    assert x[3, 4] == w0[3, 4] and np.all(x >= lo) and np.all(x <= hi)
    q = g + np.einsum("kij,kj->ki", H, x - w0)  # gradient of the quadratic model at x
    viol = S.kkt_violation(x[:, :-1], q[:, :-1], np.full(K, 0.2), lo[:, :-1], hi[:, :-1])
    assert viol.max() < 1e-9 and np.abs(q[:, -1]).max() < 1e-9
    assert np.count_nonzero(x[:, :-1] == 0) > 0  # the L1 term is active somewhere


def test_batched_quadratic_step_leaves_its_start_point_alone():
    """A one-concept working set: the start point must not be changed in place (a view of it was
    once updated, so the outer loop compared the new point with itself and stopped at zero)."""
    from inficond.students._solvers import _cd_quadratic

    rng = np.random.default_rng(0)
    K, m = 3, 1
    A = rng.standard_normal((K, m, m))
    H = A @ A.transpose(0, 2, 1) + 0.1
    g = rng.standard_normal((K, m))
    w0 = np.zeros((K, m))
    lo, hi = np.full((K, m), -np.inf), np.full((K, m), np.inf)
    x = _cd_quadratic(H, g, w0, np.full((K, m), 1e-3), lo, hi, 50, 1e-12)
    assert np.all(w0 == 0.0) and np.any(x != 0.0)


def test_cd_meets_kkt_on_two_class_problems_with_bounds():
    """The kind of problem the property test (tests/test_properties.py) once found failing: two
    classes, few concepts, box bounds; 300 seeded draws, each checked against the KKT conditions."""
    from scipy.special import expit

    from inficond.students._solvers import kkt_violation, smooth_loss_grad, solve

    for seed in range(300, 600):
        rng = np.random.default_rng(seed)
        n, C, K = int(rng.integers(8, 41)), int(rng.integers(1, 7)), 2
        Z = rng.standard_normal((n, C))
        P = expit(Z @ rng.standard_normal((C, K)) * rng.uniform(0.1, 3) + rng.normal(0, 0.5, (n, K)))
        lam = rng.uniform(1e-3, 0.2, K)
        lower = np.where(rng.random((K, C)) < 0.3, -rng.uniform(0, 0.5, (K, C)), -np.inf)
        upper = np.where(rng.random((K, C)) < 0.3, rng.uniform(0, 0.5, (K, C)), np.inf)
        r = solve("cd", Z, P, lam, lower, upper, np.zeros((K, C)), np.zeros(K), tol=1e-9)
        _, G, gB, _ = smooth_loss_grad(Z, P, r.coef, r.intercept)
        assert np.abs(gB).max() < 1e-6, seed
        assert kkt_violation(r.coef, G, lam, lower, upper).max() < 1e-6, seed


def _random_subproblems(seed, K=5, m=15, n=40):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((K, n, m))
    H = np.einsum("kni,knj->kij", A, A) / n + 1e-3 * np.eye(m)
    g = rng.standard_normal((K, m)) * 0.5
    w0 = np.where(rng.random((K, m)) < 0.5, 0.0, rng.standard_normal((K, m)))
    lam = np.full((K, m), 0.2)
    lam[:, -1] = 0.0
    lo = np.where(rng.random((K, m)) < 0.2, -rng.uniform(0, 0.5, (K, m)), -np.inf)
    hi = np.where(rng.random((K, m)) < 0.2, rng.uniform(0, 0.5, (K, m)), np.inf)
    lo[:, -1], hi[:, -1] = -np.inf, np.inf
    return H, g, np.clip(w0, lo, hi), lam, lo, hi


@pytest.mark.parametrize("seed", range(8))
def test_active_set_subproblem_solver_is_exact_and_matches_coordinate_descent(seed):
    """The feature-sign step (with CD as its fallback) solves the bounded L1 quadratic: its answer
    meets the model's optimality conditions and equals long coordinate descent's."""
    H, g, w0, lam, lo, hi = _random_subproblems(seed)
    x = S._solve_quadratic(H, g, w0, lam, lo, hi, n_sweeps=30, tol=1e-12)
    assert np.all(x >= lo) and np.all(x <= hi)
    q = g + np.einsum("kij,kj->ki", H, x - w0)
    assert S.kkt_violation(x, q, lam, lo, hi).max() < 1e-10
    ref = S._cd_quadratic(H, g, w0, lam, lo, hi, n_sweeps=5000, tol=1e-15)
    np.testing.assert_allclose(x, ref, atol=1e-8)
    # the active-set part alone finishes these (warm) problems in its rounds, most of the time
    _, solved = S._feature_sign(H, g, w0, lam, lo, hi, 1e-12, 40)
    assert solved.sum() >= 3


def test_duplicate_columns_are_found_exactly():
    rng = np.random.default_rng(0)
    Z = rng.standard_normal((50, 9))
    Z[:, 7] = Z[:, 2]
    Z[:, 5] = Z[:, 2]
    Z[:, 8] = Z[:, 1] + 1e-12  # nearly, not exactly, equal: kept apart
    assert [g.tolist() for g in S._duplicate_columns(Z)] == [[2, 5, 7]]
    assert S._duplicate_columns(np.asfortranarray(Z[:, :5])) == []


def test_identical_columns_get_one_weight_whatever_the_start():
    """Aliases ('plane' for 'airplane') have identical columns: any split of the weight is optimal,
    so the count of non-zeros once depended on the solver's path. The weight goes to the first."""
    Z, P = problem(n=300, C=20, K=3, seed=4)
    K, lam = 3, np.full(3, 0.003)
    lo, hi = no_bounds(K, 20)
    plain = S.solve_cd(Z, P, lam, lo, hi, np.zeros((K, 20)), np.zeros(K), tol=1e-10)
    c = int(np.argmax(np.count_nonzero(plain.coef, axis=0)))  # a concept the classes use
    assert np.all(plain.coef[:, c] != 0)
    Z = np.column_stack([Z, Z[:, c], Z[:, c]])  # columns 20 and 21 repeat it
    C = Z.shape[1]
    lo, hi = no_bounds(K, C)
    cold = S.solve_cd(Z, P, lam, lo, hi, np.zeros((K, C)), np.zeros(K), tol=1e-10)
    W0 = np.zeros((K, C))
    W0[:, 21] = 0.5  # a start with the weight on the last copy
    warm = S.solve_cd(Z, P, lam, lo, hi, W0, np.zeros(K), tol=1e-10)
    for r in (cold, warm):
        assert np.all(r.coef[:, 20:] == 0) and np.all(r.coef[:, c] != 0)
        np.testing.assert_allclose(r.coef[:, :20], plain.coef, atol=1e-7)  # the same student
        assert_kkt(Z, P, r, lam[:, None], lo, hi, atol=1e-8)  # optimal for the original, unpinned problem
    np.testing.assert_array_equal(cold.coef != 0, warm.coef != 0)
    np.testing.assert_allclose(cold.coef, warm.coef, atol=1e-7)
    # a bound on one copy bounds the group's one influence (the intersection of the copies' bounds),
    # and it goes on the copy whose bound excludes 0; the other classes are untouched
    w = plain.coef[0, c]
    hi2 = hi.copy()
    hi2[0, 21] = -abs(w) if w > 0 else w / 2  # binding either way, and excluding 0
    r = S.solve_cd(Z, P, lam, lo, hi2, np.zeros((K, C)), np.zeros(K), tol=1e-10)
    assert r.coef[0, 21] <= hi2[0, 21] and r.coef[0, c] == 0 and r.coef[0, 20] == 0
    assert r.kkt.max() <= 1e-10  # optimal for the merged problem
    assert np.all(r.coef[1:, 20:] == 0)
    np.testing.assert_allclose(r.coef[1:], cold.coef[1:], atol=1e-12)
