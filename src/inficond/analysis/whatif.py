"""What-if curves: how a class's metrics change when one concept's influence changes.

For a class with influences ``w = coef[k]`` (shape (C,)) and intercept ``b``, the student's
logit on standardised concepts ``Z`` is ``base = Z @ w + b``. Setting concept ``c``'s
influence to ``v`` while everything else stays fixed gives, exactly,

    logit(v) = base + (v - w[c]) * Z[:, c]  =  (Z @ w_without_c + b) + v * Z[:, c]

(computed the second way, so exact ties of the modified student stay ties) so each point of a curve is the true metric of that modified student (no refit, no
approximation). At ``v == w[c]`` the logits are bit-for-bit the unchanged student's.

**Default grid.** ``n_points`` evenly spaced values over ``[-span * M, +span * M]`` where
``M`` is the class's largest absolute influence (1.0 if all are zero) and ``span=1.5``: one
common scale for all concepts of the class, so curves are comparable side by side; it covers
removing the concept (0, in the grid for odd ``n_points`` unless the current value replaced
it), flipping its sign, and raising it half again above the class's strongest concept. The
grid point nearest the current value is replaced by the current value itself, so every curve
passes exactly through the current student and stays sorted.
"""

from __future__ import annotations

import numpy as np

from inficond.analysis.metrics import metrics_batch

__all__ = ["standardize", "influence_grid", "whatif_curves", "whatif_scores"]

# Max number of float64 logits materialised per chunk (32 MB); bounds memory when many
# concepts are asked for at once (e.g. suggestions over every concept).
_CHUNK = 4_000_000


def standardize(X, mean, scale) -> np.ndarray:
    """Standardised concepts ``Z = (X - mean) / scale`` as float64.

    Parameters
    ----------
    X : array-like of shape (n, C)
    mean, scale : array-like of shape (C,)

    Returns
    -------
    ndarray of shape (n, C)
    """
    return (np.asarray(X, dtype=np.float64) - np.asarray(mean, dtype=np.float64)) / np.asarray(
        scale, dtype=np.float64)


def influence_grid(coef_row, concepts, n_points: int = 21, span: float = 1.5) -> np.ndarray:
    """Default what-if grid for each selected concept (see the module docstring).

    Parameters
    ----------
    coef_row : array-like of shape (C,)
    concepts : array-like of int, shape (m,)
    n_points : int, default=21
    span : float, default=1.5
        Half-width of the range in units of the class's largest absolute influence.

    Returns
    -------
    ndarray of shape (m, n_points)
        Increasing values; row ``i`` contains ``coef_row[concepts[i]]`` exactly.
    """
    if n_points < 2:
        raise ValueError(f"n_points must be >= 2, got {n_points}")
    w = np.asarray(coef_row, dtype=np.float64).ravel()
    concepts = np.asarray(concepts, dtype=int).ravel()
    top = np.abs(w).max() if w.size else 0.0
    top = top if top > 0 else 1.0
    base = np.linspace(-span * top, span * top, n_points)
    grid = np.tile(base, (concepts.size, 1))
    cur = w[concepts]
    nearest = np.abs(base[None, :] - cur[:, None]).argmin(axis=1)
    grid[np.arange(concepts.size), nearest] = cur
    # A current value outside the range (only if span < 1) would break the ordering.
    grid.sort(axis=1)
    return grid


def _rest_and_columns(Z, w, intercept: float, concepts, block: int = 2048):
    """What every modified student of ``concepts`` builds on, in one pass over ``Z``'s rows.

    Returns ``rest`` (columns, n) and ``slot`` (m,): ``rest[slot[j]]`` is the logit without
    ``concepts[j]``; and ``zc`` (m, n), the concepts' columns. Off the current value, a
    logit is built as (logit without c) + v * Z[:, c], not as base + (v - w[c]) * Z[:, c]: the
    latter leaves rounding residue of w[c] * Z[:, c], which splits ties that the modified student
    really has (e.g. v = 0 on images that differ only in c) and so moves AP away from sklearn's.
    Every concept without weight has the same logit without it, the student's own, so one
    product column serves them all: 34 columns instead of the suggestions' 82 candidates at
    71,115 train images. The product runs over the student's non-zero concepts only (<= 100 of
    642): the same sums without their zero terms, rounded in another order, so these logits
    move by a few ulp (<= 1e-14) against the product over every concept; no AP, curve or
    suggestion changed on the development workspace or the synthetic 30k and 100k ones
    (benchmarks/bench_whatif_scale.py compares every AP), while the product and the gathers
    take half the time (one thread, 71,115 images). Row blocks of ``Z`` stay in cache between the
    two gathers and the product, which each read all of ``Z`` before.
    """
    n = Z.shape[0]
    nz = np.flatnonzero(w)
    weighted = w[concepts] != 0
    slot = np.cumsum(weighted) - 1  # each weighted concept's column
    n_w = int(weighted.sum())
    W_rest = np.repeat(w[nz, None], n_w + (n_w < weighted.size), axis=1)  # (nnz, columns); last: shared
    W_rest[np.searchsorted(nz, concepts[weighted]), np.arange(n_w)] = 0.0
    slot[~weighted] = n_w
    zc = np.empty((concepts.size, n))
    rest = np.zeros((W_rest.shape[1], n))
    for i in range(0, n, block):
        Zb = Z[i : i + block]
        zc[:, i : i + block] = Zb[:, concepts].T
        if nz.size:
            rest[:, i : i + block] = (Zb[:, nz] @ W_rest).T
    rest += float(intercept)
    return rest, slot, zc


def _scores(grid, zc, rest, slot, base, current) -> np.ndarray:
    """(m, P, n) logits from :func:`_rest_and_columns`' parts; bit-for-bit ``base`` at the current value."""
    m, P = grid.shape
    scores = np.empty((m, P, zc.shape[1]))
    for j in range(m):  # in place: the same two roundings as rest + v * Z[:, c], without temporaries
        np.multiply(grid[j][:, None], zc[j], out=scores[j])
        scores[j] += rest[slot[j]]
    scores[grid == current[:, None]] = base
    return scores


def whatif_scores(Z, coef_row, intercept: float, concepts, grid) -> np.ndarray:
    """Logits of the modified students, shape (m, P, n). See the module docstring."""
    Z = np.asarray(Z, dtype=np.float64)
    w = np.asarray(coef_row, dtype=np.float64).ravel()
    concepts = np.asarray(concepts, dtype=int).ravel()
    grid = np.asarray(grid, dtype=np.float64)
    base = Z @ w + float(intercept)
    rest, slot, zc = _rest_and_columns(Z, w, intercept, concepts)
    return _scores(grid, zc, rest, slot, base, w[concepts])


def whatif_curves(Z, coef_row, intercept: float, y_true, concepts, n_points: int = 21,
                  metrics=("ap", "f1", "precision", "recall", "accuracy"), grid=None,
                  teacher_pred=None, threshold: float = 0.0, span: float = 1.5) -> dict:
    """Exact metric curves for changing each selected concept's influence.

    Parameters
    ----------
    Z : array-like of shape (n, C)
        Standardised concepts of the evaluation instances (e.g. the validation split).
    coef_row : array-like of shape (C,)
        The class's influences.
    intercept : float
    y_true : array-like of shape (n,)
        0/1 ground truth of the class.
    concepts : array-like of int, shape (m,)
        Concepts to sweep.
    n_points : int, default=21
        Points per curve for the default grid.
    metrics : sequence of str, default=("ap", "f1", "precision", "recall", "accuracy")
    grid : None or array-like of shape (P,) or (m, P)
        Influence values to evaluate, used as given (a 1-D grid is shared by all concepts).
        None: :func:`influence_grid` with ``n_points`` and ``span``.
    teacher_pred : None or array-like of bool, shape (n,)
        When given, the same metrics are also computed against the teacher's predictions
        (fidelity curves) under ``values_vs_teacher``.
    threshold : float, default=0.0
        Logit threshold for the thresholded metrics.
    span : float, default=1.5

    Returns
    -------
    dict
        ``grid``: (m, P) influence values; ``values``: {metric: (m, P) float64}, AP is nan
        when ``y_true`` has no positive; ``current``: (m,) current influences;
        ``current_index``: (m,) int, position of the current value in each grid row (-1 if
        a given grid lacks it); ``base``: {metric: float or None}, the unchanged student;
        ``ap_defined``: bool; ``values_vs_teacher`` (only with ``teacher_pred``).
    """
    Z = np.asarray(Z, dtype=np.float64)
    w = np.asarray(coef_row, dtype=np.float64).ravel()
    concepts = np.asarray(concepts, dtype=int).ravel()
    n, C = Z.shape
    if w.size != C:
        raise ValueError(f"coef_row has {w.size} values but Z has {C} concepts")
    if concepts.size and (concepts.min() < 0 or concepts.max() >= C):
        raise ValueError(f"concept indices must be in [0, {C}); got {concepts.tolist()}")
    y = np.asarray(y_true).ravel()
    if y.size != n:
        raise ValueError(f"y_true has {y.size} values but Z has {n} rows")
    metrics = tuple(metrics)
    if grid is None:
        grid = influence_grid(w, concepts, n_points, span)
    else:
        grid = np.asarray(grid, dtype=np.float64)
        grid = np.broadcast_to(grid, (concepts.size, grid.shape[-1])).copy()
    m, P = grid.shape
    current = w[concepts]
    hit = grid == current[:, None]
    current_index = np.where(hit.any(axis=1), hit.argmax(axis=1), -1)

    targets = {"values": y}
    if teacher_pred is not None:
        targets["values_vs_teacher"] = np.asarray(teacher_pred).ravel()
    out = {"grid": grid, "current": current, "current_index": current_index}
    for key in targets:
        out[key] = {name: np.empty((m, P)) for name in metrics}
    base_scores = Z @ w + float(intercept)
    rest, slot, zc = _rest_and_columns(Z, w, intercept, concepts)  # once for every chunk
    step = max(1, _CHUNK // max(1, P * n))
    for lo in range(0, m, step):
        hi = min(m, lo + step)
        scores = _scores(grid[lo:hi], zc[lo:hi], rest, slot[lo:hi], base_scores, current[lo:hi]).reshape(-1, n)
        for key, target in targets.items():
            vals = metrics_batch(target, scores, metrics, threshold)
            for name in metrics:
                out[key][name][lo:hi] = vals[name].reshape(hi - lo, P)

    base = metrics_batch(y, base_scores[None, :], metrics, threshold)
    out["base"] = {k: (None if np.isnan(v[0]) else float(v[0])) for k, v in base.items()}
    out["ap_defined"] = bool(np.asarray(y, dtype=bool).any())
    return out

