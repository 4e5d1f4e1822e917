"""Suggest which concepts to uptune or downtune, from exact what-if evaluation.

A tuning step moves a concept's influence to a bound (uptune: a lower bound above the
current value; downtune: an upper bound below it). The caller computes those target values
with the tuning policy and passes them in; here each candidate move is evaluated exactly on
the evaluation instances (see :mod:`inficond.analysis.whatif`) with every other influence
fixed. This is a one-concept-at-a-time estimate: refitting after a tuning step moves the
other influences too, so realised gains differ.
"""

from __future__ import annotations

import numpy as np

from inficond.analysis.whatif import whatif_curves

__all__ = ["suggest_moves"]


def suggest_moves(Z, coef_row, intercept: float, y_true, candidates, up_values=None,
                  down_values=None, k: int = 5, metric: str = "ap",
                  threshold: float = 0.0, min_gain: float = 1e-12) -> list[dict]:
    """The concepts whose up or down move raises the metric (default: AP) most.

    Parameters
    ----------
    Z : array-like of shape (n, C)
        Standardised concepts of the evaluation instances.
    coef_row : array-like of shape (C,)
    intercept : float
    y_true : array-like of shape (n,)
    candidates : array-like of int, shape (m,)
        Concept indices to consider.
    up_values, down_values : None or array-like of shape (m,)
        Influence each candidate would get from an uptune / downtune step. None skips that
        direction; a nan entry skips that one move.
    k : int, default=5
        At most this many suggestions.
    metric : str, default="ap"
        Any metric of :func:`inficond.analysis.metrics.metrics_batch`.
    threshold : float, default=0.0
    min_gain : float, default=1e-12
        Gains at or below this (rounding noise) are not suggestions.

    Returns
    -------
    list of dict
        ``concept_idx``, ``direction`` ("up" or "down"), ``value`` (target influence),
        ``ap_before``, ``ap_after``, ``gain`` (metric after - before; the keys keep the
        ``ap_`` names whatever ``metric`` is), sorted by gain descending (ties to the lower
        concept index); one entry per concept (its better direction); only positive gains.
        Empty when the metric is undefined (AP for a class with no positive instance).
    """
    candidates = np.asarray(candidates, dtype=int).ravel()
    m = candidates.size
    cols, names = [], []
    for name, vals in (("up", up_values), ("down", down_values)):
        if vals is None:
            continue
        vals = np.asarray(vals, dtype=np.float64).ravel()
        if vals.size != m:
            raise ValueError(f"{name}_values has {vals.size} values for {m} candidates")
        cols.append(vals)
        names.append(name)
    if not cols or m == 0:
        return []
    grid = np.stack(cols, axis=1)  # (m, n_directions)
    res = whatif_curves(Z, coef_row, intercept, y_true, candidates, metrics=(metric,),
                        grid=np.nan_to_num(grid), threshold=threshold)
    before = res["base"][metric]
    if before is None:
        return []
    after = res["values"][metric]
    gain = np.where(np.isnan(grid), -np.inf, after - before)
    best = gain.argmax(axis=1)
    best_gain = gain[np.arange(m), best]
    keep = np.flatnonzero(best_gain > min_gain)
    keep = keep[np.lexsort((candidates[keep], -best_gain[keep]))][:k]
    return [
        {
            "concept_idx": int(candidates[i]),
            "direction": names[best[i]],
            "value": float(grid[i, best[i]]),
            "ap_before": float(before),
            "ap_after": float(after[i, best[i]]),
            "gain": float(best_gain[i]),
        }
        for i in keep
    ]
