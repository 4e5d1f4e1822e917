"""Solvers for the per-class L1-regularised soft-label logistic problem (private).

Every class ``k`` is an independent problem over its weights ``w = W[k]`` (length C) and its
intercept ``b = B[k]``::

    F_k(w, b) = mean_i [ softplus(z_i) - p_i * z_i ] + lam_k * ||w||_1,   z = Z @ w + b
    subject to lower[k] <= w <= upper[k]

where ``Z`` is the standardised concept matrix (n, C) and ``p = sigmoid(teacher logit)``.
``softplus(z) - p z`` is the binary cross entropy between ``p`` and ``sigmoid(z)`` (it is
smallest, equal to the entropy of ``p``, when the student matches the teacher). The intercept is
neither penalised nor bounded.

All solvers take and return ``W (K, C)``, ``B (K,)`` and work on all classes together where a
single matrix product can serve them all. They never return a weight outside its bounds and
return exact zeros (no thresholding afterwards is needed).

Solvers
-------
``cd``       proximal Newton with a working set; the quadratic sub-problem is solved by an
             active-set method (feature-sign search: exact linear solves on a sign pattern),
             with cyclic coordinate descent (exact one-dimensional steps: soft-threshold, then
             clip to the bounds) as the fallback. Default: the fastest to 1e-8 KKT accuracy
             for sparse students (see ``benchmarks/bench_distill.py``); classes with over 200
             concepts in the working set are handed to L-BFGS-B. Identical concept columns
             (aliases) get one weight, bounded by the intersection of their bounds.
``fista``    accelerated proximal gradient, per-class backtracking and adaptive restart.
``lbfgsb``   scipy's L-BFGS-B on split weights ``w = p - q`` (p, q >= 0, bounds native).
``adam-paper`` the original recipe (torch Adam, lr 0.2, batch 2,084, 10 epochs, L1 1e-4).
             It does not reach the optimum nor exact zeros; kept for comparison.

Optimality is measured by :func:`kkt_violation`: the amount by which the one-sided
directional derivatives of ``F`` violate the optimality conditions, per weight.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from scipy.special import expit


__all__ = [
    "SOLVERS",
    "SolverResult",
    "smooth_loss_grad",
    "objective",
    "kkt_violation",
    "lambda_max",
    "solve",
]


@dataclass
class SolverResult:
    """What a solver returns. ``n_iter`` and ``kkt`` are per class (K,)."""

    coef: np.ndarray
    intercept: np.ndarray
    n_iter: np.ndarray
    kkt: np.ndarray
    converged: np.ndarray


# -- shared pieces ---------------------------------------------------------------------------


def _softplus(z: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, z)


def _loss_from_logits(M: np.ndarray, P: np.ndarray) -> np.ndarray:
    """Mean BCE per class (K,) for logits ``M`` (n, K) and soft targets ``P`` (n, K)."""
    return (_softplus(M) - P * M).mean(axis=0)


def smooth_loss_grad(Z, P, W, B):
    """Smooth part of the objective and its gradient, all classes at once.

    Returns ``loss (K,), grad_W (K, C), grad_B (K,), M (n, K)`` where ``M`` are the logits.
    """
    M = Z @ W.T + B
    return (*_loss_grad_at_logits(Z, P, M), M)


def _loss_grad_at_logits(Z, P, M):
    """``loss (K,), grad_W (K, C), grad_B (K,)`` at the logits ``M`` (n, K)."""
    R = expit(M) - P
    return _loss_from_logits(M, P), (R.T @ Z) / Z.shape[0], R.mean(axis=0)


def objective(Z, P, W, B, lam) -> np.ndarray:
    """Full objective ``F_k`` per class (K,)."""
    M = Z @ W.T + B
    return _loss_from_logits(M, P) + np.asarray(lam) * np.abs(W).sum(axis=1)


def kkt_violation(W, G, lam, lower, upper) -> np.ndarray:
    """Per-weight violation (K, C) of the optimality conditions; 0 at the optimum.

    ``G`` is the gradient of the smooth part. With ``d+ = G + lam * (1 if w >= 0 else -1)`` (the
    derivative of F when w grows) and ``d- = G + lam * (1 if w > 0 else -1)`` (when w shrinks),
    a weight is optimal when it cannot grow with benefit (``w == upper`` or ``d+ >= 0``) and
    cannot shrink with benefit (``w == lower`` or ``d- <= 0``). This covers the usual cases:
    a free nonzero weight needs ``G = -lam * sign(w)``, a free zero weight ``|G| <= lam``, and a
    weight at an active bound needs the gradient to point out of the feasible interval.
    """
    lam = np.asarray(lam, dtype=float)
    if lam.ndim < 2:  # one per class; a (K, C) array gives one per weight
        lam = lam.reshape(-1, 1)
    d_plus = G + np.where(W >= 0, lam, -lam)
    d_minus = G + np.where(W > 0, lam, -lam)
    grow = np.where(W < upper, np.maximum(-d_plus, 0.0), 0.0)
    shrink = np.where(W > lower, np.maximum(d_minus, 0.0), 0.0)
    return np.maximum(grow, shrink)


def _intercept_at_zero(P: np.ndarray) -> np.ndarray:
    """Optimal intercept when all weights are zero: logit of the mean soft target."""
    m = np.clip(P.mean(axis=0), 1e-12, 1 - 1e-12)
    return np.log(m) - np.log1p(-m)


def lambda_max(Z, P) -> np.ndarray:
    """Smallest lam (K,) for which all weights are zero (unbounded problem)."""
    B = _intercept_at_zero(P)
    R = expit(np.zeros_like(P) + B) - P
    return np.abs(R.T @ Z).max(axis=1) / Z.shape[0]


def _prox(V, t_lam, lower, upper):
    """Exact prox of ``lam|w| + box``: soft-threshold then clip (the 1-D problem is convex)."""
    return np.clip(np.sign(V) * np.maximum(np.abs(V) - t_lam, 0.0), lower, upper) + 0.0  # no -0.0


def _project(W, lower, upper):
    return np.clip(W, lower, upper)


# -- proximal Newton + coordinate descent -------------------------------------------------------


def _duplicate_columns(Z) -> list[np.ndarray]:
    """Groups of bit-identical columns of ``Z`` (sorted indices, first = lowest), sizes >= 2.

    Aliases share an embedding ("plane" for "airplane"), so their standardised columns are
    identical. A random projection finds candidates in one product; exact equality decides.
    All-zero columns (concepts constant on these images) are left out: they do not touch the
    fit, so each one's weight is its own (0, or the bound nearest 0) and votes on two of them
    cannot conflict.
    """
    n, C = Z.shape
    h = np.random.default_rng(0).standard_normal(n) @ Z
    zero = [c for c in np.flatnonzero(h == 0) if not Z[:, c].any()]  # a zero column projects to exactly 0
    nonzero = np.setdiff1d(np.arange(C), zero)
    order = nonzero[np.argsort(h[nonzero], kind="stable")]
    hs = h[order]
    close = np.abs(np.diff(hs)) <= 1e-9 * (np.abs(hs[1:]) + 1.0)
    groups = []
    # runs of neighbours with (nearly) equal projections are the candidates
    ends = np.flatnonzero(np.diff(np.concatenate([[0], close.astype(np.int8), [0]])))
    for a, b in zip(ends[::2], ends[1::2]):
        cand = np.sort(order[a : b + 1])
        while cand.size > 1:
            same = np.array([np.array_equal(Z[:, cand[0]], Z[:, c]) for c in cand])
            if same.sum() > 1:
                groups.append(cand[same])
            cand = cand[~same]
    return groups


def _merge_duplicates(Z, W, lower, upper, groups=None):
    """Give each group of identical columns one weight, within the intersection of its bounds.

    Splitting a weight among identical columns changes neither the fit nor the L1 norm, so
    the optimum is not unique there and the split (and the number of non-zeros) would depend
    on the solver's path. The group's influence is the sum of its members' weights; in every
    class it goes on one member, the *representative*, and the others are pinned at 0
    (bounds 0, 0 in the copies returned). A solution of the pinned problem is optimal for the
    merged one, since the pinned members have the same gradient as the representative.

    Bounds (votes) on members bound the group's influence: it must lie in the intersection
    ``[max lower, min upper]`` of its members' bounds, else a vote on one alias would not bind
    its twin and a refit could move the weight onto the twin. The representative is the first
    member whose own bounds exclude 0 (a vote that moved the concept away from 0), else the
    first member, so every member's weight stays within its own bounds. Where the votes cannot
    hold on one number (the intersection is empty, or two members' bounds both exclude 0: an up
    and a down on twins, or a vote on each), the group is left unmerged in that class and every
    member keeps its own bounds: the votes were given per concept, and on few training images
    unrelated concepts can have identical columns by chance. Returns ``W, lower, upper``
    (copies where changed).
    """
    groups = _duplicate_columns(Z) if groups is None else groups
    if not groups:
        return W, lower, upper
    lower, upper = lower.copy(), upper.copy()
    for g in groups:
        lo_g, hi_g = lower[:, g], upper[:, g]  # (K, group size)
        L, U = lo_g.max(axis=1), hi_g.min(axis=1)
        excl = (lo_g > 0) | (hi_g < 0)  # a member whose own bounds exclude 0
        ks = np.flatnonzero(~((L > U) | (excl.sum(axis=1) > 1)))  # the classes where one number can hold them
        rep = g[np.argmax(excl[ks], axis=1)]  # the first excluding member, or g[0] where none excludes 0
        total = W[np.ix_(ks, g)].sum(axis=1)
        W[np.ix_(ks, g)] = 0.0
        W[ks, rep] = np.clip(total, L[ks], U[ks])
        lower[np.ix_(ks, g)] = upper[np.ix_(ks, g)] = 0.0
        lower[ks, rep], upper[ks, rep] = L[ks], U[ks]
    return W, lower, upper


def _cd_quadratic(H, g, w0, lam, lo, hi, n_sweeps, tol, n_active_sweeps=10, settled=None, x0=None):
    """Solve the proximal-Newton sub-problem for a batch of classes (hot loop, hand-written).

    Minimises ``g.d + d.H.d / 2 + lam * |w0 + d|_1`` subject to ``lo <= w0 + d <= hi`` for
    each class in the batch. Shapes: H (K, m, m), g/w0/lo/hi (K, m), lam (K, m) (0 for the
    intercept slot). Padding slots have ``lo == hi == w0`` and stay put. Vectorised over
    classes; the loop runs over coordinates because each step uses the previous ones.
    """
    K, m = g.shape
    if K == 1:
        one = None if settled is None else (lambda x1: settled(x1[None]))
        return _cd_quadratic_one(H[0], g[0], w0[0], lam[0], lo[0], hi[0], n_sweeps, tol, n_active_sweeps, one,
                                 None if x0 is None else x0[0])[None]
    # Coordinate-major contiguous copies (row j = what step j reads) and ufuncs writing into
    # preallocated vectors: numpy's per-call overhead dominates at these sizes (K ~ 20), and
    # this layout cut the loop's time by about a third against fancy-indexed column reads.
    diag = np.einsum("kii->ik", H).copy()
    diag[diag <= 0] = 1.0
    start = w0 if x0 is None else x0
    x = np.array(start.T, order="C")  # (m, K), always a copy: ascontiguousarray would alias w0 when m or K is 1
    g_a = np.ascontiguousarray(g.T) / diag  # gradient at w0 over the diagonal
    t_a = np.ascontiguousarray(lam.T) / diag  # soft-threshold per step
    neg_t = -t_a
    lo_t, hi_t = np.ascontiguousarray(lo.T), np.ascontiguousarray(hi.T)
    sq = np.sqrt(diag)
    Hc = np.ascontiguousarray(H.transpose(2, 1, 0)) / diag[None]  # Hc[j, i, k] = H[k, i, j] / diag[i, k]
    Hd = np.zeros((m, K)) if x0 is None else np.einsum("kij,kj->ik", H, x0 - w0) / diag
    # Hd = (H @ (x - w0)) / diag, kept up to date incrementally
    v, new, delta, tmp = np.empty(K), np.empty(K), np.empty(K), np.empty(K)
    mx, mn, sub = np.maximum, np.minimum, np.subtract
    every = range(m)

    def sweep(coords):
        max_step = np.zeros(K)
        for j in coords:
            xj = x[j]
            sub(xj, g_a[j], out=v)
            sub(v, Hd[j], out=v)
            mx(mn(v, t_a[j], out=tmp), neg_t[j], out=tmp)
            sub(v, tmp, out=new)  # soft-threshold: v - clip(v, -t, t)
            mx(new, lo_t[j], out=new)
            mn(new, hi_t[j], out=new)
            sub(new, xj, out=delta)
            if not delta.any():
                continue
            xj[:] = new
            np.add(Hd, Hc[j] * delta, out=Hd)
            np.abs(delta, out=tmp)
            np.multiply(tmp, sq[j], out=tmp)
            mx(max_step, tmp, out=max_step)
        return max_step.max()

    # glmnet's active-set cycling: a full sweep, then sweeps over the coordinates that are
    # nonzero in some class until they settle, then a full sweep to check that none other
    # wants to enter. Most coordinates stay at zero, and each step costs ~10 numpy calls.
    # ``settled`` (see _solve_quadratic) is asked after each full sweep and every third sweep
    # over the nonzeros, where it costs about one sweep.
    for _ in range(n_sweeps):
        if sweep(every) <= tol or (settled is not None and settled(x.T)):
            break
        act = np.flatnonzero((x != 0).any(axis=1))
        for i in range(n_active_sweeps):
            if sweep(act) <= tol:
                break
            if i % 3 == 2 and settled is not None and settled(x.T):
                return x.T + 0.0
    return x.T + 0.0  # a (K, m) copy; + 0.0 turns -0.0 into 0.0


def _cd_quadratic_one(H, g, w0, lam, lo, hi, n_sweeps, tol, n_active_sweeps=10, settled=None, x0=None):
    """:func:`_cd_quadratic` for a single class with Python scalars (hot loop, hand-written).

    A tuning step refits one class; numpy's per-call overhead on length-1 vectors made the
    vectorised loop ~10x slower than plain floats here.
    """
    m = g.size
    x = (w0 if x0 is None else x0).tolist()
    g_l, lam_l, lo_l, hi_l = g.tolist(), lam.tolist(), lo.tolist(), hi.tolist()
    diag = [a if a > 0 else 1.0 for a in np.diagonal(H).tolist()]
    Ht = np.ascontiguousarray(H.T)  # row j = column j of H
    Hd = np.zeros(m) if x0 is None else H @ (x0 - w0)

    def sweep(coords):
        max_step = 0.0
        for j in coords:
            a = diag[j]
            v = x[j] - (g_l[j] + Hd[j]) / a
            t = lam_l[j] / a
            new = v - t if v > t else (v + t if v < -t else 0.0)
            new = min(max(new, lo_l[j]), hi_l[j])
            delta = new - x[j]
            if delta != 0.0:
                x[j] = new
                np.add(Hd, delta * Ht[j], out=Hd)
                step = abs(delta) * a**0.5
                if step > max_step:
                    max_step = step
        return max_step

    every = range(m)
    for _ in range(n_sweeps):  # full sweeps, then sweeps over the nonzeros (as the batched loop)
        if sweep(every) <= tol or (settled is not None and settled(np.array(x))):
            break
        act = [j for j in every if x[j] != 0.0]
        for i in range(n_active_sweeps):
            if sweep(act) <= tol:
                break
            if i % 3 == 2 and settled is not None and settled(np.array(x)):
                return np.array(x)
    return np.array(x)


def _solve_quadratic(H, g, w0, lam, lo, hi, n_sweeps, tol, n_active_sweeps=10, fs_rounds=12):
    """The proximal-Newton sub-problem (as :func:`_cd_quadratic`), by an active-set method
    first and coordinate descent where that does not finish.

    Coordinate descent converges linearly, and driving it to the small inner tolerances of
    the last outer iterations took most of a fit's time (each step is ~10 numpy calls),
    while a linear solve on the right pattern (signs, zeros, weights at bounds) gives the
    exact minimiser. Warm-started fits change few weights, so :func:`_feature_sign` finds
    the pattern in a few batched solves. Classes it leaves unfinished go to coordinate
    descent from its point, which asks after its rounds whether the polish on its current
    pattern already solves the problem. "Solved" means the sub-problem's own optimality
    conditions hold to ``tol``, in the units of the outer KKT check (not scaled by H_jj: with a
    column scaled up, as soft votes do, a scaled test accepted the start point while the
    outer violation stayed put).
    """
    x, ok = _feature_sign(H, g, w0, lam, lo, hi, tol, fs_rounds)
    if ok.all():
        return x
    rest = np.flatnonzero(~ok)
    Hr, gr, wr, lr, lor, hir = H[rest], g[rest], w0[rest], lam[rest], lo[rest], hi[rest]
    out = {}

    def settled(xc):
        xp = _newton_polish(Hr, gr, wr, lr, lor, hir, xc)
        qg = gr + np.einsum("kij,kj->ki", Hr, xp - wr)
        if kkt_violation(xp, qg, lr, lor, hir).max() <= tol:
            out["x"] = xp
            return True
        return False

    xc = _cd_quadratic(Hr, gr, wr, lr, lor, hir, n_sweeps, tol, n_active_sweeps, settled, x0=x[rest])
    x[rest] = out["x"] if "x" in out else _newton_polish(Hr, gr, wr, lr, lor, hir, xc)
    return x


def _feature_sign(H, g, w0, lam, lo, hi, tol, max_rounds):
    """Active-set solver of the sub-problem (Lee et al.'s feature-sign search, with bounds).

    Keeps a set of free coordinates with fixed signs (the rest fixed at 0 or at a bound) and
    a feasible point. Each round solves the model on the free set exactly (one batched linear
    solve for all classes) and moves towards that solution up to the first weight that would
    change sign or leave its bounds; that weight is fixed there. Every move lowers the model
    (it is a convex quadratic on the segment), so it cannot cycle through moves. When the
    free set's optimum is reached, the worst violators among the fixed weights are freed
    (signs from their gradient). A freed weight that blocks the move at once is fixed again
    and not freed again in this call. Returns the point (K, m) and which classes are solved.
    """
    K, m = g.shape
    x = w0.copy()
    free = (x != 0) & (x > lo) & (x < hi)
    free[:, -1] = True  # the intercept
    sgn = np.sign(x)
    banned = np.zeros((K, m), dtype=bool)
    solved = np.zeros(K, dtype=bool)
    eye = np.eye(m)
    pen = lam > 0
    for _ in range(max_rounds):
        qg = g + np.einsum("kij,kj->ki", H, x - w0)
        V = kkt_violation(x, qg, lam, lo, hi)
        Vmax = V.max(axis=1)
        solved = Vmax <= tol
        if solved.all():
            break
        # the free set's own optimum not reached: solve on it; reached: free the worst violators
        at_face = np.where(free, V, 0.0).max(axis=1) <= tol
        add = ~free & ~banned & (V > tol) & (V >= 0.25 * Vmax[:, None]) & at_face[:, None] & ~solved[:, None]
        if not (add.any() or (~at_face & ~solved).any()):
            break  # nothing left to try: coordinate descent takes over
        new = add & (x == 0)
        sgn = np.where(new, -np.sign(qg), np.where(add, np.sign(x), sgn))
        free = free | add
        d = x - w0
        Hm = np.where(free[:, :, None] & free[:, None, :], H, 0.0) + np.where(free, 0.0, 1.0)[:, :, None] * eye
        rhs = np.where(free, -(g + lam * sgn + np.einsum("kij,kj->ki", H, np.where(free, 0.0, d))), 0.0)
        try:
            xn = np.where(free, w0 + np.linalg.solve(Hm, rhs[:, :, None])[:, :, 0], x)
        except np.linalg.LinAlgError:
            break
        xn = np.where(solved[:, None], x, xn)
        step = xn - x
        with np.errstate(divide="ignore", invalid="ignore"):
            t_zero = np.where(free & pen & (sgn * xn < 0), x / (x - xn), np.inf)
            t_hi = np.where(free & (xn > hi), (hi - x) / step, np.inf)
            t_lo = np.where(free & (xn < lo), (lo - x) / step, np.inf)
        t_j = np.minimum(t_zero, np.minimum(t_hi, t_lo))
        t = np.minimum(1.0, t_j.min(axis=1))
        if not np.isfinite(xn).all():
            break
        blocked = t <= 0.0
        # a just-freed weight that would move against its sign at once: fix it again
        drop = blocked[:, None] & free & (t_j <= 0.0) & (x == 0)
        free &= ~drop
        banned |= drop
        tt = np.where(blocked, 0.0, t)[:, None]
        hit = ~blocked[:, None] & (t_j <= tt * (1 + 1e-12)) & (t_j < np.inf)
        x = x + tt * step
        x = np.where(hit & (t_zero <= t_j), 0.0, x)
        x = np.where(hit & (t_hi <= t_j), hi, x)
        x = np.where(hit & (t_lo <= t_j), lo, x)
        x = np.clip(x, lo, hi) + 0.0
        free &= ~hit
        sgn = np.where(free, sgn, np.sign(x))
    return x, solved


def _newton_polish(H, g, w0, lam, lo, hi, x):
    """Exact minimiser of the sub-problem on the sign pattern found by coordinate descent.

    With the free coordinates ``F`` (nonzero and strictly inside their bounds, plus the
    intercept) and their signs fixed, the model is a quadratic whose minimiser solves
    ``H_FF d_F = -(g_F + lam s_F + H_FN d_N)``. Where the solution keeps every sign and bound
    it replaces the coordinate-descent point, which turns the outer loop's linear
    convergence into Newton's fast local convergence; elsewhere CD's point is kept.
    """
    K, m = g.shape
    free = (x != 0) & (x > lo) & (x < hi)
    free[:, -1] = True
    d = x - w0
    sgn = np.sign(x)
    eye = np.eye(m)
    Hm = np.where(free[:, :, None] & free[:, None, :], H, 0.0) + np.where(free, 0.0, 1.0)[:, :, None] * eye
    dN = np.where(free, 0.0, d)
    rhs = -(g + lam * sgn + np.einsum("kij,kj->ki", H, dN))
    rhs = np.where(free, rhs, 0.0)
    try:
        dF = np.linalg.solve(Hm, rhs[:, :, None])[:, :, 0]
    except np.linalg.LinAlgError:
        return x
    xn = np.where(free, w0 + dF, x)
    ok = np.all(~free | ((np.sign(xn) == sgn) | (lam == 0)) & (xn >= lo) & (xn <= hi), axis=1)
    ok &= np.isfinite(xn).all(axis=1)
    return np.where(ok[:, None], xn, x) + 0.0  # + 0.0 turns -0.0 into 0.0


# Working-set gathers of at least this size go into one reused buffer (see solve_cd)
GATHER_BUFFER_BYTES = 16 << 20


def solve_cd(Z, P, lam, lower, upper, W0, B0, *, max_iter=100, tol=1e-8, grow=20, sweeps=30, max_ws=200,
             active_sweeps=10, duplicates=None, grow_frac=0.3, inner_frac=1e-3, models=None, verbose=False):
    """Proximal Newton with working sets; sub-problems by :func:`_solve_quadratic`.

    Each outer iteration: one gradient for all classes (two matrix products), KKT check, then
    for the classes not yet converged a working set (current nonzeros, weights at a nonzero
    bound, and the ``max(grow, grow_frac * nnz)`` worst KKT violators), a Newton model
    restricted to it, solved to ``inner_frac`` times the current KKT violation, and a
    backtracking line search on the true objective. Converged classes drop out; the loop ends
    when every class has ``max KKT <= tol``. Working sets are capped at ``max_ws`` concepts; a
    class whose nonzeros alone fill that (a dense student, small lam) is finished by
    :func:`solve_lbfgsb` from the current point: there the Newton model's ``n * m^2`` cost
    loses to quasi-Newton steps (measured: lam 5e-4, ~220 concepts/class).

    Groups of identical columns (``duplicates``: from :func:`_duplicate_columns`, computed
    here when None) are merged by :func:`_merge_duplicates`, which makes the optimum, and so
    the number of non-zeros, independent of the path taken to it.

    ``models``: a dict to receive, per class (index into P's columns), its last Newton model
    ``(working set, H)`` with H over the working set and the intercept (last row and column),
    so that the sparsity search's path prediction need not build it again.

    ``grow_frac=0.3`` and ``inner_frac=1e-3`` were chosen on the development workspace's
    sparsity search, with the same lam, non-zeros and objective: smaller working sets (each
    Newton model costs ``n * m^2``), and sub-problems solved nearly exactly (the active-set
    step makes that cheap; at 0.1 each outer iteration cut the KKT violation only ~10-fold,
    and the search took 138 outer iterations instead of 89).
    """
    n, C = Z.shape
    K = P.shape[1]
    # Column gathers from a Fortran array are ~10x faster; the copy pays off only when many
    # classes gather. The one-class tuning refit gets Z column-major already (tune_class).
    Zf = Z if Z.flags.f_contiguous or K <= 2 else np.asfortranarray(Z)
    W = _project(W0.astype(float, copy=True), lower, upper)
    W, lower, upper = _merge_duplicates(Z, W, lower, upper, duplicates)
    B = B0.astype(float, copy=True)
    lam = np.broadcast_to(np.asarray(lam, dtype=float), (K,)).copy()
    n_iter = np.zeros(K, dtype=int)
    active = np.ones(K, dtype=bool)
    dense = np.zeros(K, dtype=bool)  # handed over to L-BFGS-B
    kkt = np.full(K, np.inf)
    inner_tol = 1e-3
    M = None
    moved = None  # the classes whose weights the last iteration changed
    buf = None  # the working-set gathers' buffer, when they are large (see below)
    for it in range(max_iter + 1):
        if M is None:
            f, G, gB, M = smooth_loss_grad(Z, P, W, B)
            V = kkt_violation(W, G, lam[:, None], lower, upper)
        elif moved.size:
            # only the classes that moved: the others' gradients stand (in a batch where most
            # classes have converged, the full product was mostly spent on them). The logits
            # were updated by the line search: one product fewer per iteration.
            f[moved], G[moved], gB[moved] = _loss_grad_at_logits(Z, P[:, moved], M[:, moved])
            V[moved] = kkt_violation(W[moved], G[moved], lam[moved, None], lower[moved], upper[moved])
        kkt = np.maximum(V.max(axis=1), np.abs(gB))
        active = (kkt > tol) & ~dense
        if verbose:
            print(f"[cd] it {it} max kkt {kkt.max():.3e} active {active.sum()}")
        if not active.any() or it == max_iter:
            break
        ks = np.flatnonzero(active)
        # working sets: nonzeros, weights pinned at a bound, and the worst violators
        sets = []
        big = np.zeros(ks.size, dtype=bool)
        for i, k in enumerate(ks):
            keep = (W[k] != 0) | ((lower[k] == W[k]) & np.isfinite(lower[k]) & (lower[k] != 0)) | (
                (upper[k] == W[k]) & np.isfinite(upper[k]) & (upper[k] != 0)
            )
            keep = np.flatnonzero(keep)
            viol = V[k].copy()
            viol[keep] = 0
            cand = np.flatnonzero(viol > tol)
            # grow by up to max(grow, nnz) violators, within max_ws; a class whose nonzeros
            # leave no room for even min(grow, violators) more is dense
            room = max_ws - keep.size
            big[i] = room < min(grow, cand.size)
            n_add = max(min(max(grow, int(grow_frac * keep.size)), room), 1)
            if cand.size > n_add:
                cand = cand[np.argpartition(-viol[cand], n_add - 1)[:n_add]]
            sets.append(np.union1d(keep, cand))
        # a dense student makes the Newton model cost n * m^2 per class: L-BFGS-B does those
        if big.any():
            dense[ks[big]] = True
            sets = [s_ for s_, b_ in zip(sets, big) if not b_]
            ks = ks[~big]
            if not ks.size:
                break
        m = max(s.size for s in sets) + 1  # + intercept slot (last)
        nk = ks.size
        Hs = np.zeros((nk, m, m))
        gs = np.zeros((nk, m))
        w0 = np.zeros((nk, m))
        lo = np.zeros((nk, m))
        hi = np.zeros((nk, m))
        lm = np.zeros((nk, m))
        S = expit(M[:, ks])
        S = S * (1.0 - S) / n
        rS = np.sqrt(S)
        if n * (m - 1) * 8 >= GATHER_BUFFER_BYTES and (buf is None or buf.shape[1] < m - 1):
            buf = None  # the old one goes before the new one is made
            buf = np.empty((n, m - 1), dtype=Zf.dtype, order="F")
        for i, (k, idx) in enumerate(zip(ks, sets)):
            q = idx.size
            if n * q * 8 >= GATHER_BUFFER_BYTES and buf is not None:
                # A gather this large gets fresh pages from the OS every time (malloc maps blocks
                # over its mmap threshold, 32 MiB at most, and unmaps them when freed): at 71,115
                # rows the page faults cost ~15 ms per Newton model. The reused buffer keeps its
                # pages; the column copies give the same values and layout, so the same H.
                Zs = buf[:, :q]
                for j, c in enumerate(idx):
                    Zs[:, j] = Zf[:, c]
            else:
                Zs = Zf[:, idx]  # scaled in place: one (n, q) copy fewer at the memory peak (59 MiB at 100k)
            Zs *= rS[:, i : i + 1]
            Hs[i, :q, :q] = Zs.T @ Zs  # numpy calls syrk for A.T @ A: half the flops of a product
            Hs[i, :q, m - 1] = Hs[i, m - 1, :q] = rS[:, i] @ Zs
            Hs[i, m - 1, m - 1] = S[:, i].sum()
            gs[i, :q] = G[k, idx]
            gs[i, m - 1] = gB[k]
            w0[i, :q] = W[k, idx]
            w0[i, m - 1] = B[k]
            lo[i, :q], hi[i, :q] = lower[k, idx], upper[k, idx]
            lo[i, m - 1], hi[i, m - 1] = -np.inf, np.inf
            lm[i, :q] = lam[k]
            # padding slots: lo == hi == 0 == w0 keeps them fixed
        # a tiny ridge keeps flat directions (duplicated concepts) from running away
        Hs[:, np.arange(m), np.arange(m)] += 1e-10
        if models is not None:
            for i, (k, idx) in enumerate(zip(ks, sets)):
                keep_ = np.append(np.arange(idx.size), m - 1)
                models[int(k)] = (idx, Hs[i][np.ix_(keep_, keep_)])
        inner_tol = max(min(inner_tol, inner_frac * float(kkt[ks].max())), 1e-12)
        x = _solve_quadratic(Hs, gs, w0, lm, lo, hi, sweeps, inner_tol, active_sweeps)
        D = x - w0
        # backtracking line search per class on the true objective (Tseng & Yun's rule)
        f0 = f[ks] + lam[ks] * np.abs(W[ks]).sum(axis=1)
        dl1 = lam[ks] * (np.abs(x[:, :-1]).sum(axis=1) - np.abs(w0[:, :-1]).sum(axis=1))
        delta = (gs * D).sum(axis=1) + dl1
        Dfull = np.zeros((nk, C))  # the step on all concepts: one product for all classes
        for i, idx in enumerate(sets):
            Dfull[i, idx] = D[i, : idx.size]
        Mdir = Z @ Dfull.T + D[:, m - 1]
        alpha = np.ones(nk)
        todo = np.ones(nk, dtype=bool)
        for _ in range(30):
            Mt = M[:, ks] + alpha * Mdir
            # every nonzero weight is in its working set, so the L1 norm lives there
            Wt_l1 = np.abs(w0[:, :-1] + alpha[:, None] * D[:, :-1]).sum(axis=1)
            ft = _loss_from_logits(Mt, P[:, ks]) + lam[ks] * Wt_l1
            ok = ft <= f0 + 1e-4 * alpha * np.minimum(delta, 0.0) + 1e-13 * np.abs(f0)
            todo &= ~ok
            if not todo.any():
                break
            alpha = np.where(todo, alpha * 0.5, alpha)
        for i, (k, idx) in enumerate(zip(ks, sets)):
            if todo[i]:
                continue  # no decrease found: keep the point (KKT check decides next round)
            W[k, idx] = np.clip(w0[i, : idx.size] + alpha[i] * D[i, : idx.size], lower[k, idx], upper[k, idx])
            B[k] = w0[i, m - 1] + alpha[i] * D[i, m - 1]
            n_iter[k] += 1
        M[:, ks[~todo]] = Mt[:, ~todo]  # the logits at the accepted points
        moved = ks[~todo]
    if dense.any():
        ks = np.flatnonzero(dense)
        r = solve_lbfgsb(Z, P[:, ks], lam[ks], lower[ks], upper[ks], W[ks], B[ks], tol=tol)
        W[ks], B[ks], kkt[ks] = r.coef, r.intercept, r.kkt
        n_iter[ks] += r.n_iter
    return SolverResult(W, B, n_iter, kkt, kkt <= tol)


# -- FISTA --------------------------------------------------------------------------------------


def solve_fista(Z, P, lam, lower, upper, W0, B0, *, max_iter=5000, tol=1e-8, verbose=False):
    """Accelerated proximal gradient (FISTA), all classes in one matrix product per step.

    Per-class step sizes by backtracking (allowed to grow again by 10% per step), and the
    function-value restart of O'Donoghue & Candes so ill-conditioned classes do not oscillate.
    Stops per class when the KKT violation at the iterate is ``<= tol``.
    """
    n, C = Z.shape
    K = P.shape[1]
    lam = np.broadcast_to(np.asarray(lam, dtype=float), (K,)).copy()
    W = _project(W0.astype(float, copy=True), lower, upper)
    B = B0.astype(float, copy=True)
    # Lipschitz bound of the smooth part: sigma' <= 1/4, plus the intercept column
    L = np.full(K, 0.25 * (np.linalg.norm(Z, 2) ** 2 / n + 1.0))
    L *= 0.05  # start optimistic; backtracking corrects it
    Y, c = W.copy(), B.copy()
    t = np.ones(K)
    Fw = objective(Z, P, W, B, lam)
    n_iter = np.zeros(K, dtype=int)
    kkt = np.full(K, np.inf)
    done = np.zeros(K, dtype=bool)
    for it in range(max_iter):
        fy, G, gb, _ = smooth_loss_grad(Z, P, Y, c)
        # backtracking on the classes whose quadratic upper bound fails
        while True:
            Wn = _prox(Y - G / L[:, None], (lam / L)[:, None], lower, upper)
            bn = c - gb / L
            Mn = Z @ Wn.T + bn
            fn = _loss_from_logits(Mn, P)
            dW, db = Wn - Y, bn - c
            quad = fy + (G * dW).sum(1) + gb * db + 0.5 * L * ((dW**2).sum(1) + db**2)
            bad = (fn > quad + 1e-12 * np.abs(quad)) & ~done
            if not bad.any():
                break
            L = np.where(bad, L * 2.0, L)
        Fn = fn + lam * np.abs(Wn).sum(1)
        upd = ~done
        restart = (Fn > Fw) & upd
        t_new = (1 + np.sqrt(1 + 4 * t**2)) / 2
        beta = np.where(restart, 0.0, (t - 1) / t_new)[:, None]
        Yn = Wn + beta * (Wn - W)
        Yn = np.where(restart[:, None], W, Yn)  # restart from the better point
        cn = np.where(restart, B, bn + beta[:, 0] * (bn - B))
        keep_new = upd & ~restart
        W = np.where(keep_new[:, None], Wn, W)
        B = np.where(keep_new, bn, B)
        Fw = np.where(keep_new, Fn, Fw)
        Y = np.where(upd[:, None], Yn, Y)
        c = np.where(upd, cn, c)
        t = np.where(restart, 1.0, np.where(upd, t_new, t))
        n_iter += upd
        L = np.where(upd, L * 0.9, L)
        if it % 10 == 9 or it == max_iter - 1:
            _, Gw, gbw, _ = smooth_loss_grad(Z, P, W, B)
            kkt = np.maximum(kkt_violation(W, Gw, lam[:, None], lower, upper).max(1), np.abs(gbw))
            done = kkt <= tol
            if verbose:
                print(f"[fista] it {it} max kkt {kkt.max():.3e} done {done.sum()}")
            if done.all():
                break
    return SolverResult(W, B, n_iter, kkt, kkt <= tol)


# -- L-BFGS-B -----------------------------------------------------------------------------------


def solve_lbfgsb(Z, P, lam, lower, upper, W0, B0, *, max_iter=15000, tol=1e-8, verbose=False):
    """scipy L-BFGS-B per class on ``w = p - q`` with ``p, q >= 0``; the bounds become boxes.

    ``lower <= 0 <= upper``: p in [0, upper], q in [0, -lower]; ``lower > 0``: q = 0 and
    p in [lower, upper]; ``upper < 0``: p = 0 and q in [-upper, -lower]. With lam > 0 at most
    one of p, q is nonzero at the optimum, so ``w`` is exact and inside its bounds.
    """
    from scipy.optimize import minimize

    n, C = Z.shape
    K = P.shape[1]
    lam = np.broadcast_to(np.asarray(lam, dtype=float), (K,)).copy()
    W = _project(W0.astype(float, copy=True), lower, upper)
    B = B0.astype(float, copy=True)
    n_iter = np.zeros(K, dtype=int)
    for k in range(K):
        lo, hi = lower[k], upper[k]
        p_lo, p_hi = np.maximum(lo, 0.0), np.maximum(hi, 0.0)
        q_lo, q_hi = np.maximum(-hi, 0.0), np.maximum(-lo, 0.0)
        bounds = [(a, None if np.isinf(b) else b) for a, b in zip(p_lo, p_hi)]
        bounds += [(a, None if np.isinf(b) else b) for a, b in zip(q_lo, q_hi)]
        bounds += [(None, None)]
        pk = k

        def fg(v):
            w = v[:C] - v[C : 2 * C]
            z = Z @ w + v[-1]
            r = expit(z) - P[:, pk]
            f = np.mean(_softplus(z) - P[:, pk] * z) + lam[pk] * (v[: 2 * C].sum())
            gw = Z.T @ r / n
            return f, np.concatenate([gw + lam[pk], -gw + lam[pk], [r.mean()]])

        v0 = np.concatenate([np.maximum(W[k], 0), np.maximum(-W[k], 0), [B[k]]])
        v0 = np.clip(v0, [b[0] if b[0] is not None else -np.inf for b in bounds],
                     [b[1] if b[1] is not None else np.inf for b in bounds])
        res = minimize(fg, v0, jac=True, method="L-BFGS-B", bounds=bounds,
                       options={"maxiter": max_iter, "ftol": 1e-15, "gtol": tol, "maxcor": 20})
        v = res.x
        p_, q_ = v[:C], v[C : 2 * C]
        # where both halves are positive the split is not at its optimum yet; cancel them
        W[k] = np.clip(p_ - q_, lo, hi)
        B[k] = v[-1]
        n_iter[k] = res.nit
    _, G, gB, _ = smooth_loss_grad(Z, P, W, B)
    kkt = np.maximum(kkt_violation(W, G, lam[:, None], lower, upper).max(1), np.abs(gB))
    return SolverResult(W, B, n_iter, kkt, kkt <= tol)


# -- the paper's recipe -------------------------------------------------------------------------


def solve_adam_paper(Z, P, lam, lower, upper, W0, B0, *, epochs=10, batch_size=2084, lr=0.2,
                     seed=0, n_threads=None, verbose=False, **_):
    """The paper's training recipe with torch: Adam (lr 0.2), mini-batches of 2,084, 10 epochs.

    The L1 term is ``lam * ||w||_1`` added to the mean BCE of every batch (the paper used
    lam = 1e-4). Bounds are kept by clamping after each step. It stops after the given epochs,
    so it neither reaches the optimum nor produces exact zeros; ``n_iter`` counts Adam steps.
    """
    import torch

    prev_threads = torch.get_num_threads()
    if n_threads:
        torch.set_num_threads(n_threads)
    try:
        return _adam(torch, Z, P, lam, lower, upper, W0, B0, epochs, batch_size, lr, seed)
    finally:
        torch.set_num_threads(prev_threads)


def _adam(torch, Z, P, lam, lower, upper, W0, B0, epochs, batch_size, lr, seed):
    n, C = Z.shape
    K = P.shape[1]
    lam_t = torch.as_tensor(np.broadcast_to(np.asarray(lam, float), (K,)).copy())
    g = torch.Generator().manual_seed(seed)
    Zt, Pt = torch.as_tensor(Z), torch.as_tensor(P)
    W = torch.tensor(np.clip(W0, lower, upper), requires_grad=True)
    B = torch.tensor(B0, dtype=torch.float64, requires_grad=True)
    lo_t, hi_t = torch.as_tensor(lower), torch.as_tensor(upper)
    opt = torch.optim.Adam([W, B], lr=lr)
    steps = 0
    for _ in range(epochs):
        perm = torch.randperm(n, generator=g)
        for s in range(0, n, batch_size):
            idx = perm[s : s + batch_size]
            logits = Zt[idx] @ W.T + B
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, Pt[idx], reduction="none").mean(0)
            loss = (loss + lam_t * W.abs().sum(1)).sum()  # sum over classes = independent problems
            opt.zero_grad()
            loss.backward()
            opt.step()
            with torch.no_grad():
                W.copy_(torch.maximum(torch.minimum(W, hi_t), lo_t))
            steps += 1
    Wn, Bn = W.detach().numpy().copy(), B.detach().numpy().copy()
    _, G, gB, _ = smooth_loss_grad(Z, P, Wn, Bn)
    kkt = np.maximum(kkt_violation(Wn, G, np.asarray(lam_t)[:, None], lower, upper).max(1), np.abs(gB))
    return SolverResult(Wn, Bn, np.full(K, steps), kkt, np.zeros(K, dtype=bool))


SOLVERS = {
    "cd": solve_cd,
    "fista": solve_fista,
    "lbfgsb": solve_lbfgsb,
    "adam-paper": solve_adam_paper,
}


def solve(name, Z, P, lam, lower, upper, W0, B0, **kw) -> SolverResult:
    """Dispatch to a solver by name (names in ``SOLVERS``)."""
    return SOLVERS[name](Z, P, lam, lower, upper, W0, B0, **kw)


# -- synthetic data for tests and benchmarks ----------------------------------------------------


def synthetic_problem(n=3131, n_concepts=600, n_classes=20, seed=0, n_factors=40):
    """Concept vectors and teacher logits shaped like a real workspace, for tests and benchmarks.

    ``X`` (n, n_concepts) float32 in [0, ~0.6]: max-cosine-like presences with a shared
    image-level component and low-rank correlations between concepts (as CLIP similarities
    have). ``T`` (n, n_classes) float32: each class is a sparse function of ~15 concepts plus
    a nonlinearity and noise, with an intercept that makes positives rare (5-15%).
    """
    rng = np.random.default_rng(seed)
    F = rng.standard_normal((n, n_factors))
    Gl = rng.standard_normal((n_factors, n_concepts)) * (rng.random(n_concepts) * 0.6 + 0.2)
    common = rng.normal(0, 1, (n, 1))
    raw = 0.22 + 0.03 * common + 0.012 * (F @ Gl) + 0.02 * rng.standard_normal((n, n_concepts))
    X = np.clip(raw, 0.0, 0.6).astype(np.float32)
    Xs = (X - X.mean(0)) / X.std(0)
    T = np.empty((n, n_classes))
    for k in range(n_classes):
        idx = rng.choice(n_concepts, 15, replace=False)
        w = rng.standard_normal(15) * 1.2
        s = Xs[:, idx] @ w
        T[:, k] = s + 0.3 * np.tanh(s) ** 2 + 0.8 * rng.standard_normal(n) - 3.0
    return X, T.astype(np.float32)
