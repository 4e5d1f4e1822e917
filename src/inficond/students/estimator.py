"""The concept student: one sparse linear model per class over standardised concept vectors."""

from __future__ import annotations

import copy
from numbers import Integral, Real

import numpy as np
from scipy.special import expit

from inficond.exceptions import DataError, UnknownNameError
from inficond.students import _solvers
from inficond.teachers.base import check_logits

__all__ = ["ConceptStudent", "lambda_for_sparsity", "SOLVER_NAMES"]

SOLVER_NAMES = tuple(_solvers.SOLVERS)

# Defaults of max_iter per solver: outer Newton iterations, FISTA steps, L-BFGS-B iterations,
# Adam epochs (the paper's 10).
_DEFAULT_MAX_ITER = {"cd": 100, "fista": 5000, "lbfgsb": 15000, "adam-paper": 10}


def _blas_threads(n):
    """Limit BLAS threads while solving: on a shared 2-core machine one thread was 2-5x faster
    for these small products (OpenBLAS threads spin while waiting for a busy core)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=n, user_api="blas")


class ConceptStudent:
    """Per-class sparse linear students distilled from a teacher's logits.

    For every class ``k`` the student's logit is ``z = ((x - mean_) / scale_) @ coef_[k] +
    intercept_[k]`` and it is fitted by minimising, over the training images,

        mean_i BCE(sigmoid(z_i), sigmoid(t_ik)) + lam_k * ||coef_[k]||_1

    with ``t`` the teacher's logits, optionally subject to ``lower <= coef_ <= upper``. The
    intercept is not penalised. ``coef_[k, c]`` is the *influence* of concept ``c`` on class
    ``k``: the change of the logit per standard deviation of the concept's presence.

    Parameters
    ----------
    lam : float or array-like of shape (n_classes,), default 1e-3
        L1 strength (units: BCE per unit of influence). One value for all classes or one per
        class (see :func:`lambda_for_sparsity`).
    solver : {"cd", "fista", "lbfgsb", "adam-paper"}, default "cd"
        "cd" (proximal Newton with coordinate descent; the fastest exact solver when students
        are sparse, tens to ~100 concepts per class), "fista", "lbfgsb" (also exact; L-BFGS-B
        is the better choice for dense students, lam below ~5e-4), or "adam-paper" (the paper's
        recipe: Adam lr 0.2, batch 2,084, 10 epochs; not exact and not sparse).
    max_iter : int, optional
        Iteration cap; its unit depends on the solver (Newton steps, gradient steps, L-BFGS-B
        iterations, Adam epochs). Default per solver: 100, 5000, 15000, 10.
    tol : float, default 1e-8
        Stop when every weight's KKT violation (see ``_solvers.kkt_violation``; units of the
        gradient of the mean BCE) is at most ``tol``. Not used by "adam-paper".
    warm_start : bool, default False
        Start from the previous ``coef_``/``intercept_`` when refitting the same shapes.
    n_threads : int, default 1
        BLAS threads during ``fit`` (of each worker).
    n_jobs : int, optional
        Worker threads of the "cd" solver when it fits all classes: they run in fixed blocks of
        20 classes, so the weights do not depend on ``n_jobs`` (default: the CPU count, at most
        one per block).
    random_state : int, default 0
        Seed of the mini-batch order of "adam-paper" (the other solvers are deterministic).

    Attributes
    ----------
    coef_ : ndarray of shape (n_classes, n_concepts)
        Influences (weights on standardised concepts); exact zeros for unused concepts.
    intercept_ : ndarray of shape (n_classes,)
    mean_, scale_ : ndarray of shape (n_concepts,)
        Training mean and standard deviation of each concept (scale 1 for a constant one).
    lam_ : ndarray of shape (n_classes,)
    lower_, upper_ : ndarray of shape (n_classes, n_concepts)
        Bounds used in the last fit (``-inf``/``inf`` where none).
    n_iter_ : ndarray of shape (n_classes,)
    n_nonzero_ : ndarray of shape (n_classes,)
    kkt_ : ndarray of shape (n_classes,)
        Largest KKT violation per class after fitting.
    converged_ : ndarray of shape (n_classes,) of bool
    """

    def __init__(self, lam=1e-3, solver="cd", max_iter=None, tol=1e-8, warm_start=False, n_threads=1,
                 random_state=0, n_jobs=None):
        self.lam = lam
        self.solver = solver
        self.max_iter = max_iter
        self.tol = tol
        self.warm_start = warm_start
        self.n_threads = n_threads
        self.random_state = random_state
        self.n_jobs = n_jobs

    # -- parameters ------------------------------------------------------------------------
    def get_params(self, deep=True) -> dict:
        return {k: getattr(self, k) for k in ("lam", "solver", "max_iter", "tol", "warm_start", "n_threads",
                                                "random_state", "n_jobs")}

    def set_params(self, **params) -> "ConceptStudent":
        for k, v in params.items():
            if k not in self.get_params():
                raise ValueError(f"unknown parameter {k!r}; known: {', '.join(self.get_params())}")
            setattr(self, k, v)
        return self

    def _check_params(self, n_classes):
        if self.solver not in _solvers.SOLVERS:
            raise UnknownNameError("solver", self.solver, SOLVER_NAMES)
        lam = np.asarray(self.lam, dtype=float)
        if lam.ndim == 0:
            lam = np.full(n_classes, float(lam))
        if lam.shape != (n_classes,) or not np.all(np.isfinite(lam)) or np.any(lam < 0):
            raise DataError(f"lam must be a finite number >= 0 or an array of {n_classes} of them, got {self.lam!r}")
        if self.max_iter is not None and (not isinstance(self.max_iter, Integral) or self.max_iter < 1):
            raise DataError(f"max_iter must be a positive integer or None, got {self.max_iter!r}")
        if not isinstance(self.tol, Real) or not self.tol > 0:
            raise DataError(f"tol must be a positive number, got {self.tol!r}")
        return lam

    # -- fitting -----------------------------------------------------------------------------
    def fit(self, X, teacher_logits, lower=None, upper=None, classes=None) -> "ConceptStudent":
        """Fit the students.

        Parameters
        ----------
        X : array-like of shape (n_images, n_concepts)
            Concept presences (cosine similarities clipped at 0, about 0 to 0.6).
        teacher_logits : array-like of shape (n_images, n_classes)
        lower, upper : array-like of shape (n_classes, n_concepts), optional
            Bounds on ``coef_`` (``-inf``/``inf`` = none); see :mod:`inficond.students.tuning`.
        classes : sequence of int, optional
            Refit only these classes (by column index) and keep the others' weights from the
            previous fit, which must have the same shapes. Used by concept tuning.

        Returns
        -------
        self
        """
        X = _check_X(X)
        T = _check_logits(teacher_logits, X.shape[0])
        n, C = X.shape
        K = T.shape[1]
        lam = self._check_params(K)
        lower, upper = _check_bounds(lower, upper, K, C)
        fitted = hasattr(self, "coef_") and self.coef_.shape == (K, C)
        if classes is not None:
            classes = _check_classes(classes, K)
            if not fitted:
                raise DataError("fit(classes=...) refits some classes of a fitted student; fit all classes first")

        if classes is None:
            mean, scale = _standardisation(X)
        else:  # the other classes' weights refer to the fitted standardisation: keep it
            mean, scale = self.mean_, self.scale_
        Z = (X - mean) / scale
        if self.solver == "cd":
            # the layout lambda_for_sparsity solves on, so that its last fit is this fit to the bit
            Z = np.asfortranarray(Z)
        P = expit(T)

        if (self.warm_start or classes is not None) and fitted:
            W0, B0 = self.coef_.copy(), self.intercept_.copy()
        else:
            W0 = np.zeros((K, C))
            B0 = _solvers._intercept_at_zero(P)
        ks = np.arange(K) if classes is None else classes
        kw = {} if self.solver == "adam-paper" else {"tol": self.tol}
        if self.solver == "adam-paper":
            kw["epochs"] = self.max_iter or _DEFAULT_MAX_ITER["adam-paper"]
            kw["seed"] = self.random_state
            kw["n_threads"] = self.n_threads
        else:
            kw["max_iter"] = self.max_iter or _DEFAULT_MAX_ITER[self.solver]
        if self.solver == "cd" and classes is None:
            # in the blocks lambda_for_sparsity fits, so that its closing fit is this fit to the bit
            blocks = _class_blocks(K)
            jobs = _n_jobs(self.n_jobs, len(blocks))

            def one(b):
                return _solvers.solve(self.solver, Z, P[:, b], lam[b], lower[b], upper[b], W0[b], B0[b], **kw)

            with _blas_threads(self.n_threads):
                parts = _map_blocks(one, blocks, jobs)
            res = _solvers.SolverResult(*(np.concatenate([getattr(r, f) for r in parts]) for f in
                                          ("coef", "intercept", "n_iter", "kkt", "converged")))
        else:
            with _blas_threads(self.n_threads):
                res = _solvers.solve(self.solver, Z, P[:, ks], lam[ks], lower[ks], upper[ks], W0[ks], B0[ks], **kw)

        if classes is None:
            return self._set_fitted(res, mean, scale, lam, lower, upper)
        else:
            self.coef_ = self.coef_.copy()
            self.intercept_ = self.intercept_.copy()
            self.n_iter_, self.kkt_, self.converged_ = self.n_iter_.copy(), self.kkt_.copy(), self.converged_.copy()
            self.coef_[ks], self.intercept_[ks] = res.coef, res.intercept
            self.n_iter_[ks], self.kkt_[ks], self.converged_[ks] = res.n_iter, res.kkt, res.converged
            lower_all, upper_all = self.lower_.copy(), self.upper_.copy()
            lower_all[ks], upper_all[ks] = lower[ks], upper[ks]
            lower, upper = lower_all, upper_all
            lam_all = self.lam_.copy()
            lam_all[ks] = lam[ks]
            lam = lam_all
        self.mean_, self.scale_ = mean, scale
        self.lam_ = lam
        self.lower_, self.upper_ = lower, upper
        self.n_nonzero_ = np.count_nonzero(self.coef_, axis=1)
        return self

    def _set_fitted(self, res, mean, scale, lam, lower, upper) -> "ConceptStudent":
        """Fitted state of all classes from a solver result (shared by ``fit`` and the sparsity search)."""
        self.coef_, self.intercept_ = res.coef, res.intercept
        self.n_iter_, self.kkt_, self.converged_ = res.n_iter, res.kkt, res.converged
        self.mean_, self.scale_ = mean, scale
        self.lam_ = lam
        self.lower_, self.upper_ = lower, upper
        self.n_nonzero_ = np.count_nonzero(self.coef_, axis=1)
        return self

    # -- prediction --------------------------------------------------------------------------
    def _check_fitted(self):
        if not hasattr(self, "coef_"):
            raise DataError("this ConceptStudent is not fitted yet; call fit(X, teacher_logits) first")

    def transform(self, X, order="C") -> np.ndarray:
        """Standardised concepts ``(X - mean_) / scale_``, shape (n_images, n_concepts).

        ``order="F"`` returns a Fortran-ordered array (what the "cd" solver gathers columns from).
        """
        self._check_fitted()
        X = _check_X(X)
        if X.shape[1] != self.coef_.shape[1]:
            raise DataError(f"X has {X.shape[1]} concepts; this student was fitted on {self.coef_.shape[1]}")
        Z = np.empty(X.shape, order=order)
        np.subtract(X, self.mean_, out=Z)
        Z /= self.scale_
        return Z

    def decision_function(self, X) -> np.ndarray:
        """Student logits, ndarray of shape (n_images, n_classes)."""
        return self.transform(X) @ self.coef_.T + self.intercept_

    def predict_proba(self, X) -> np.ndarray:
        """Per-class probabilities sigmoid(logit), shape (n_images, n_classes)."""
        return expit(self.decision_function(X))

    def predict(self, X) -> np.ndarray:
        """Multi-label predictions (logit > 0), uint8 of shape (n_images, n_classes)."""
        return (self.decision_function(X) > 0).astype(np.uint8)

    def objective(self, X, teacher_logits) -> np.ndarray:
        """The fitted objective per class, shape (n_classes,): mean BCE + lam * ||coef||_1."""
        Z = self.transform(X)
        T = _check_logits(teacher_logits, Z.shape[0], self.coef_.shape[0])
        return _solvers.objective(Z, expit(T), self.coef_, self.intercept_, self.lam_)

    def kkt_violation(self, X, teacher_logits) -> np.ndarray:
        """Per-weight KKT violation (n_classes, n_concepts) of the current weights; 0 = optimal."""
        Z = self.transform(X)
        T = _check_logits(teacher_logits, Z.shape[0], self.coef_.shape[0])
        _, G, _, _ = _solvers.smooth_loss_grad(Z, expit(T), self.coef_, self.intercept_)
        self._pad_bounds()
        lower, upper = self.lower_, self.upper_
        if self.solver == "cd":  # aliases as that solver sees them: one weight within their bounds' intersection
            _, lower, upper = _solvers._merge_duplicates(Z, self.coef_.copy(), lower, upper)
        return _solvers.kkt_violation(self.coef_, G, self.lam_[:, None], lower, upper)

    def _pad_bounds(self):
        """Make ``lower_``/``upper_`` match ``coef_`` (no bounds for concepts added after the fit)."""
        K, C = self.coef_.shape
        for name, fill in (("lower_", -np.inf), ("upper_", np.inf)):
            b = getattr(self, name, None)
            if b is None or b.shape != (K, C):
                new = np.full((K, C), fill)
                if b is not None and b.ndim == 2:
                    k, c = min(K, b.shape[0]), min(C, b.shape[1])
                    new[:k, :c] = b[:k, :c]
                setattr(self, name, new)

    def with_class_weights(self, class_idx, coef_row, intercept, lower_row=None, upper_row=None):
        """A copy with class ``class_idx``'s weights (and optionally bounds) replaced."""
        self._check_fitted()
        new = copy.deepcopy(self)
        new._pad_bounds()
        new.coef_[class_idx] = coef_row
        new.intercept_[class_idx] = intercept
        if lower_row is not None:
            new.lower_[class_idx] = lower_row
        if upper_row is not None:
            new.upper_[class_idx] = upper_row
        new.n_nonzero_ = np.count_nonzero(new.coef_, axis=1)
        return new


# -- validation helpers ------------------------------------------------------------------------


def _standardisation(X):
    mean = X.mean(axis=0)
    scale = X.std(axis=0)
    scale[scale < 1e-12 * np.maximum(1.0, np.abs(mean))] = 1.0  # a constant concept keeps scale 1
    return mean, scale


def _check_X(X) -> np.ndarray:
    try:
        X = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise DataError(f"concept vectors must be numeric: {e}") from None
    if X.ndim != 2 or X.shape[0] < 1 or X.shape[1] < 1:
        raise DataError(f"concept vectors must have shape (n_images, n_concepts), got {X.shape}")
    bad = ~np.isfinite(X)
    if bad.any():
        rows = np.unique(np.nonzero(bad)[0])[:5].tolist()
        raise DataError(f"concept vectors contain {int(bad.sum())} NaN/inf values (first bad rows: {rows})")
    return X


def _check_logits(T, n, n_classes=None) -> np.ndarray:
    # float64: the solvers' KKT checks need the logits exactly as given
    return check_logits(T, n, n_classes, source="teacher", dtype=np.float64)


def _check_bounds(lower, upper, K, C):
    out = []
    for name, b, fill in (("lower", lower, -np.inf), ("upper", upper, np.inf)):
        if b is None:
            out.append(np.full((K, C), fill))
            continue
        b = np.asarray(b, dtype=np.float64)
        if b.shape != (K, C):
            raise DataError(f"{name} bounds must have shape ({K}, {C}) = (classes, concepts), got {b.shape}")
        if np.isnan(b).any():
            raise DataError(f"{name} bounds contain NaN; use -inf/inf for 'no bound'")
        out.append(b.copy())
    lower, upper = out
    if np.any(lower > upper):
        k, c = np.argwhere(lower > upper)[0]
        raise DataError(f"empty bounds: lower[{k}, {c}] = {lower[k, c]} > upper[{k}, {c}] = {upper[k, c]}")
    if np.any(lower == np.inf) or np.any(upper == -np.inf):
        raise DataError("lower bounds cannot be +inf and upper bounds cannot be -inf")
    return lower, upper


def _check_classes(classes, K) -> np.ndarray:
    ks = np.atleast_1d(np.asarray(classes))
    if ks.dtype.kind not in "iu" or ks.ndim != 1 or ks.size == 0 or np.any(ks < 0) or np.any(ks >= K):
        raise DataError(f"classes must be column indices in [0, {K}), got {classes!r}")
    return np.unique(ks)


# -- choosing lambda -------------------------------------------------------------------------


# The search's settings, chosen on the development workspace's train split (BENCHMARKS.md,
# "The whole `inficond distill` command"): the path may jump this many grid steps towards a
# predicted knot, and predictions start once a class has this share of its concepts (before,
# the first-order prediction is poor and its Hessian not worth its cost).
_MAX_JUMP = 2
_PREDICT_FROM = 0.5
_REUSE_MODEL = True
# Classes per batched solve in the search and in ConceptStudent.fit("cd"): the unit of parallel
# work. A class's weights depend (to ~1e-6, within the KKT tolerance) on which classes share its
# batch, so the blocks are fixed by the class count alone and results never depend on n_jobs.
# 20, not 10: on the development workspace (20 classes) two blocks of 10 on 2 threads took more
# wall time than one block on one thread (under load; the sub-problems' small numpy calls hold
# the GIL), and each block pays its own per-iteration costs (30k images: 18.2 s CPU vs 16.2 s).
_BLOCK = 20


def _class_blocks(K):
    return [np.arange(i, min(i + _BLOCK, K)) for i in range(0, K, _BLOCK)]


def _n_jobs(n_jobs, n_blocks):
    import os

    if n_jobs is None:
        n_jobs = os.cpu_count() or 1
    if not isinstance(n_jobs, Integral) or n_jobs < 1:
        raise DataError(f"n_jobs must be a positive integer or None, got {n_jobs!r}")
    return min(int(n_jobs), n_blocks)


def _map_blocks(fn, blocks, n_jobs):
    """``[fn(block) for block in blocks]``, on ``n_jobs`` threads. Threads, not processes: the
    hot parts (BLAS products, LAPACK solves, ufuncs on whole arrays) release the GIL, nothing is
    copied, and a server's threads are not forked."""
    if n_jobs == 1:
        return [fn(b) for b in blocks]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(n_jobs) as ex:
        return list(ex.map(fn, blocks))


def _next_knot(Z, p, w, b, lam, max_concepts, pinned, model=None):
    """First-order prediction of the lam (below ``lam``) where the count first exceeds ``max_concepts``.

    At an exact solution ``(w, b)`` with nonzeros ``A`` the path is smooth until the next event:
    ``d(w_A, b)/d lam = -H^-1 (sign(w_A), 0)`` (``H`` the Hessian of the smooth part on ``A`` and
    the intercept), so every zero weight's gradient and every nonzero weight move linearly in lam
    to first order. A zero weight enters where ``|g_j| = lam``, a nonzero one leaves where it
    reaches 0; the events in order give the predicted count. Returns the predicted lam of the
    event that takes the count past ``max_concepts``, or None (no such event predicted). Costs
    one Hessian on ``A`` (a Newton model) and one gradient: less than a fit. ``model``, the fit's
    last Newton model ``(working set, H)`` (see ``solve_cd(models=...)``), saves the Hessian: it
    was built one step before the fit's end, which is close enough for a prediction.
    """
    n = Z.shape[0]
    A = np.flatnonzero(w)
    Za = np.empty((n, A.size + 1))
    Za[:, :-1] = Z[:, A]
    Za[:, -1] = 1.0
    sig = expit(Za[:, :-1] @ w[A] + b)
    S = sig * (1.0 - sig) / n
    if model is not None and np.isin(A, model[0]).all():
        pos = np.append(np.searchsorted(model[0], A), model[0].size)
        H = model[1][np.ix_(pos, pos)]
    else:
        Zs = Za * np.sqrt(S)[:, None]
        H = Zs.T @ Zs
        H[np.diag_indices_from(H)] += 1e-10
    try:
        d = -np.linalg.solve(H, np.append(np.sign(w[A]), 0.0))
    except np.linalg.LinAlgError:
        return None
    G = ((sig - p) / n) @ Z
    dG = (S * (Za @ d)) @ Z
    free = np.ones(w.size, dtype=bool)
    free[A] = False
    free[pinned] = False  # alias copies move with their group's first member
    with np.errstate(divide="ignore", invalid="ignore"):
        # a zero weight enters when G_j + dG_j t = +-(lam + t), t = new lam - lam < 0
        t_pos = (lam - G) / (dG - 1.0)
        t_neg = (-lam - G) / (dG + 1.0)
        t_in = np.maximum(np.where(t_pos < 0, t_pos, -np.inf), np.where(t_neg < 0, t_neg, -np.inf))
        t_out = -w[A] / d[:-1]
    t_in = t_in[free & (t_in > -lam)]
    t_out = t_out[(t_out < 0) & (t_out > -lam)]
    t = np.concatenate([t_in, t_out])
    if not t.size:
        return None
    order = np.argsort(-t, kind="stable")
    count = A.size + np.cumsum(np.concatenate([np.ones(t_in.size), -np.ones(t_out.size)])[order])
    past = np.flatnonzero(count > max_concepts)
    return float(lam + t[order][past[0]]) if past.size else None


def lambda_for_sparsity(X, teacher_logits, max_concepts=30, per_class=True, n_grid=10, ratio=1e-3,
                        eps=1e-3, max_refine=20, tol=1e-8, path_tol=1e-8, n_threads=1, n_jobs=None,
                        return_student=False):
    """The L1 strength that gives each student at most ``max_concepts`` concepts.

    The smallest lam with ``n_nonzero <= max_concepts``, to relative precision ``eps``: for each
    class a lam ``good`` whose fit has at most ``max_concepts`` non-zeros while the fit at
    ``good / (1 + eps)`` has more (or ``good`` is the path's end, ``ratio * lam_max``).
    The path starts at ``lam_max`` (the smallest lam for which all weights are zero, from the
    gradient at zero with the best intercept) and goes down a geometric grid of ``n_grid``
    steps to ``ratio * lam_max``, each fit warm-started from the last one under the limit.
    From a fit with at least half the allowed concepts, the first-order path
    (:func:`_next_knot`) predicts the knot where the count passes the limit, and the next fit
    is just above it (at most two grid steps down). Once a fit breaks the limit, the knot is
    refined in the bracket the same way, with a fit at ``good / (1 + eps)`` to close it
    (geometric bisection after two predictions in a row that did not halve the bracket).
    Finally a cold fit (as ``ConceptStudent.fit`` does) checks each class; where nearly
    collinear concepts let it pick up a few more, lam is raised by 2% steps until it fits.
    Concepts with identical vectors (aliases such as "plane" for "airplane") count once: the
    "cd" solver gives such a group one weight, so that the count does not depend on the
    solver's path. The classes are searched in fixed blocks (``_BLOCK``) on ``n_jobs`` threads;
    the answer does not depend on ``n_jobs``.

    Parameters
    ----------
    X : array-like of shape (n_images, n_concepts)
    teacher_logits : array-like of shape (n_images, n_classes)
    max_concepts : int, default 30
    per_class : bool, default True
        True: one lam per class, shape (n_classes,). False: one shared float, the largest of
        the per-class values, so that every class keeps at most ``max_concepts``.
    n_grid, ratio : the path's grid (geometric, ``lam_max`` to ``ratio * lam_max``).
    eps : float, default 1e-3
        Relative precision of lam (the geometric bisection this replaced reached about 1.8e-3,
        and stopped early at any lam with exactly ``max_concepts``).
    max_refine : int, default 20
        Cap on the fits per class after the grid's.
    tol, path_tol : float, default 1e-8
        KKT tolerances of the fits in the bracket and of the path's fits. Near the chosen lam
        a weight sits right at the L1 threshold, so these fits must be as accurate as the final
        fit (the estimator's default tol) to give the same count.
    n_threads : int, default 1
        BLAS threads of each worker.
    n_jobs : int, optional
        Worker threads over the blocks of classes (default: the CPU count, at most one per block).
    return_student : bool, default False
        Also return the student of that final cold fit, a fitted ``ConceptStudent(lam=lam,
        tol=tol, n_threads=n_threads, n_jobs=n_jobs)``: the same fit ``ConceptStudent.fit``
        would do, so a caller that distils right after the search need not repeat it. With
        ``per_class=False`` the student is fitted at the shared lam.

    Returns
    -------
    lam : ndarray of shape (n_classes,) or float
    student : ConceptStudent
        Only with ``return_student=True``.
    """
    X = _check_X(X)
    T = _check_logits(teacher_logits, X.shape[0])
    if not isinstance(max_concepts, Integral) or max_concepts < 1:
        raise DataError(f"max_concepts must be a positive integer, got {max_concepts!r}")
    if not isinstance(eps, Real) or not 0 < eps < 1:
        raise DataError(f"eps must be a number in (0, 1), got {eps!r}")
    K, C = T.shape[1], X.shape[1]
    blocks = _class_blocks(K)
    jobs = _n_jobs(n_jobs, len(blocks))
    mean, scale = _standardisation(X)
    Z = np.asfortranarray((X - mean) / scale)  # the solver gathers columns: convert once, not per fit
    P = expit(T)
    lmax = _solvers.lambda_max(Z, P) * (1 + 1e-9)
    dup = _solvers._duplicate_columns(Z)  # once, not in each fit
    pinned = np.concatenate([g[1:] for g in dup]).astype(int) if dup else np.zeros(0, int)
    B_zero = _solvers._intercept_at_zero(P)  # of all classes at once, as ConceptStudent.fit computes it

    def search(ks):
        return _search_block(Z, P[:, ks], lmax[ks], B_zero[ks], dup, pinned, max_concepts, n_grid, ratio, eps,
                             max_refine, tol, path_tol)

    with _blas_threads(n_threads):
        parts = _map_blocks(search, blocks, jobs)
    good = np.concatenate([g for g, _ in parts])
    final = _solvers.SolverResult(*(np.concatenate([getattr(r, f) for _, r in parts]) for f in
                                    ("coef", "intercept", "n_iter", "kkt", "converged")))
    lam = good if per_class else float(good.max())
    if not return_student:
        return lam
    student = ConceptStudent(lam=lam, tol=tol, n_threads=n_threads, n_jobs=n_jobs)
    if per_class:  # the last cold fits are the fit at these lams: keep them
        student._set_fitted(final, mean, scale, good.copy(), np.full((K, C), -np.inf), np.full((K, C), np.inf))
    else:
        student.fit(X, T)
    return lam, student


def _search_block(Z, P, lmax, B_zero, dup, pinned, max_concepts, n_grid, ratio, eps, max_refine, tol, path_tol):
    """:func:`lambda_for_sparsity` for one block of classes: ``(lam, result of the closing cold fit)``."""
    K, C = P.shape[1], Z.shape[1]
    lo, hi = np.full((K, C), -np.inf), np.full((K, C), np.inf)
    W = np.zeros((K, C))
    B = B_zero.copy()
    good = lmax.copy()  # lam known to satisfy the limit; W, B hold its fit
    bad = np.zeros(K)  # lam known to break it (0 = none found yet)
    # a teacher that is (nearly) constant on a class gives lam_max ~ 0: its student is the
    # intercept alone for any lam, so report a small finite lam instead of following the path
    done = lmax < 1e-10
    good[done] = 1e-10
    step = ratio ** (1.0 / n_grid)
    floor = lmax * ratio  # the path's end: a class still under the limit there keeps it
    slow = np.zeros(K, dtype=int)  # predictions in a row that did not halve the bracket
    models = {}  # class -> the last Newton model of its good fit
    # The path and the knot in one loop, all open classes of the block in one batched fit per round.
    for _ in range(n_grid + max_refine):
        ks = np.flatnonzero(~done & ((bad == 0) & (good > floor * (1 + 1e-12))
                                     | (bad > 0) & (good > bad * (1 + eps) * (1 + 1e-12))))
        if not ks.size:
            break
        cand = np.empty(ks.size)
        for i, k in enumerate(ks):
            g, b_ = good[k], bad[k]
            far = b_ == 0 and np.count_nonzero(W[k]) < _PREDICT_FROM * max_concepts
            knot = None if far or slow[k] >= 2 else _next_knot(Z, P[:, k], W[k], B[k], g, max_concepts, pinned,
                                                               models.get(k) if _REUSE_MODEL else None)
            if b_ == 0:  # on the path: the next grid point, or just above a knot predicted before it
                c = max(g * step, floor[k])
                if knot is not None and knot < g:
                    c = min(max(knot * (1 + eps / 2), g * step**_MAX_JUMP, floor[k]), g / (1 + eps))
            else:  # in the bracket: just above the predicted knot, the other side once within eps of it
                c = np.sqrt(g * b_) if knot is None or not b_ < knot < g else knot * (1 + eps / 2)
                c = min(max(c, b_ * (1 + eps)), g / (1 + eps))
            cand[i] = c
        fit_models = {}
        r = _solvers.solve_cd(Z, P[:, ks], cand, lo[ks], hi[ks], W[ks], B[ks],
                              tol=tol if (bad[ks] > 0).any() else path_tol, duplicates=dup, models=fit_models)
        ok = np.count_nonzero(r.coef, axis=1) <= max_concepts
        for i in np.flatnonzero(ok):  # the good fits' models, for the next prediction
            models.pop(ks[i], None)
            if i in fit_models:
                models[ks[i]] = fit_models[i]
        width = np.log(good[ks] / np.where(bad[ks] > 0, bad[ks], floor[ks]))
        W[ks[ok]], B[ks[ok]] = r.coef[ok], r.intercept[ok]
        good[ks[ok]] = cand[ok]
        bad[ks[~ok]] = cand[~ok]
        halved = np.log(good[ks] / np.where(bad[ks] > 0, bad[ks], floor[ks])) <= 0.5 * width * (1 + 1e-9)
        slow[ks] = np.where(halved | (bad[ks] == 0), 0, slow[ks] + 1)
    # Where the L1 optimum is ill-conditioned or not unique (more concepts than images, nearly
    # collinear concepts), the path's warm-started solution can differ from a cold fit at the
    # same lam, in weights (measured: 5e-7 on a 48-image workspace, beyond what a replay must
    # reproduce) and in the count. So the student is the cold fit that ConceptStudent.fit does
    # (the same block, the same call), and lam is raised a little where that fit exceeds the
    # limit (then the whole block is refitted, so that the fit stays the one of the block).
    for _ in range(10):
        final = _solvers.solve_cd(Z, P, good, lo, hi, np.zeros((K, C)), B_zero, tol=tol,
                                  max_iter=_DEFAULT_MAX_ITER["cd"], duplicates=dup)
        over = np.count_nonzero(final.coef, axis=1) > max_concepts
        if not over.any():
            break
        good[over] *= 1.02
    return good, final
