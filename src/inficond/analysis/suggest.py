"""Suggest which concepts to uptune or downtune, from exact what-if evaluation.

A tuning step moves a concept's influence to a bound (uptune: a lower bound above the
current value; downtune: an upper bound below it). The caller computes those target values
with the tuning policy and passes them in; here each candidate move is evaluated exactly on
the evaluation instances (see :mod:`inficond.analysis.whatif`) with every other influence
fixed. This is a one-concept-at-a-time estimate: refitting after a tuning step moves the
other influences too, so realised gains differ.

Suspected shortcuts (:func:`shortcut_suspects`): a teacher that learned a context ("grass
means dog") gives a concept credit beyond what the label explains. Such a concept need not
carry any student weight (the distillation spreads the shortcut over correlated concepts), so
the weight-based candidates above miss it. It is found instead from the teacher's logits and
the labels alone, as a partial correlation given the label; the caller then scores each
suspect by applying the erase-downvote (:func:`rank_erase_moves`).

One context shows as many words: on the development data a learned "grass" context raises the
partial correlation of badlands, ground, land, hill, lawn, grass and thirty more landscape words
almost equally (0.43-0.54), and erasing any one of them removes most of it, while erasing all of
them at once erases far too much. :func:`group_suspects` therefore folds suspects whose presences
go together into one suggestion: its first word is the vote, the rest say what it stands for.
"""

from __future__ import annotations

import numpy as np

from inficond.analysis.metrics import class_metrics
from inficond.analysis.whatif import whatif_curves

__all__ = ["suggest_moves", "shortcut_suspects", "group_suspects", "rank_erase_moves"]


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


_BLOCK = 4096  # rows per block where a whole (n, C) temporary would be too big at scale


def shortcut_suspects(Z, t, y, k: int = 5, min_corr: float = 0.0) -> list[dict]:
    """Concepts whose presence raises the teacher's logit beyond what the ground-truth label explains.

    The partial correlation of the logit ``t`` and each concept's presence given the label:
    both are centred within each label group (the residuals of a regression on the binary
    label, with an intercept), then correlated. A positive value means that among images
    with the same label, the teacher scores those showing the concept higher: the concept
    acts on the teacher for its own sake, which for a context word is a shortcut.

    Parameters
    ----------
    Z : array-like of shape (n, C)
        Concept presence of the training images (any per-column affine scaling).
    t : array-like of shape (n,)
        The teacher's logits for the class.
    y : array-like of shape (n,)
        Ground truth (nonzero = positive).
    k : int, default=5
        At most this many suspects.
    min_corr : float, default=0.0
        Only partial correlations above this.

    Returns
    -------
    list of dict
        ``concept_idx``, ``partial_corr``, sorted by ``partial_corr`` descending (ties to the
        lower index). Empty when the logit does not vary within the label groups.
    """
    Z = np.asarray(Z, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64).ravel()
    y = np.asarray(y).ravel() != 0
    if Z.ndim != 2 or Z.shape[0] != t.size or y.size != t.size:
        raise ValueError(f"Z {Z.shape}, t ({t.size},) and y ({y.size},) must have the same number of rows")
    # Z centred within each label group, one block of rows at a time: a centred copy of Z (and
    # the copies its boolean-mask updates made) was 1 GB of the server's peak at 100,000 images.
    n, C = Z.shape
    tr = t.copy()
    means = np.zeros((2, C))  # row 0: the positives' mean presence, row 1: the negatives'
    for j, g in enumerate((y, ~y)):
        if g.any():
            tr[g] -= tr[g].mean()
            for i in range(0, n, _BLOCK):
                means[j] += Z[i : i + _BLOCK][g[i : i + _BLOCK]].sum(axis=0)
            means[j] /= g.sum()
    zn2, num = np.zeros(C), np.zeros(C)
    for i in range(0, n, _BLOCK):
        Zb = Z[i : i + _BLOCK] - means[(~y[i : i + _BLOCK]).astype(int)]
        zn2 += np.einsum("ij,ij->j", Zb, Zb)
        num += Zb.T @ tr[i : i + _BLOCK]
    tn, zn = np.sqrt(tr @ tr), np.sqrt(zn2)
    if tn == 0:
        return []
    with np.errstate(invalid="ignore", divide="ignore"):
        pc = np.where(zn > 0, num / (zn * tn), 0.0)
    order = np.lexsort((np.arange(pc.size), -pc))
    order = order[pc[order] > min_corr][: int(k)]
    return [{"concept_idx": int(c), "partial_corr": float(pc[c])} for c in order]


def group_suspects(Z, suspects, min_corr: float = 0.5) -> list[dict]:
    """Fold suspects whose presences go together into one context each (greedy, in suspect order).

    Parameters
    ----------
    Z : array-like of shape (n, C)
        Concept presence of the images the suspects were found on.
    suspects : list of dict
        From :func:`shortcut_suspects`, best first.
    min_corr : float, default=0.5
        A suspect joins the first earlier group whose leading suspect's presence it correlates
        with (Pearson, over the rows of ``Z``) at least this much. 0.4 to 0.7 gave the same
        leading group in the shortcut benchmark.

    Returns
    -------
    list of dict
        One per group, in the order of their leading suspects: the leading suspect's dict with
        ``related`` added, the other members' concept indices in suspect order.
    """
    idx = [int(s["concept_idx"]) for s in suspects]
    if not idx:
        return []
    Z = np.asarray(Z, dtype=np.float64)[:, idx]
    Zc = Z - Z.mean(axis=0)
    norm = np.sqrt(np.einsum("ij,ij->j", Zc, Zc))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.nan_to_num((Zc.T @ Zc) / np.outer(norm, norm))  # a constant column correlates with nothing
    left, groups = list(range(len(idx))), []
    while left:
        lead = left[0]
        members = [j for j in left[1:] if corr[lead, j] >= min_corr]
        groups.append({**suspects[lead], "related": [idx[j] for j in members]})
        taken = set(members) | {lead}
        left = [j for j in left if j not in taken]
    return groups


def rank_erase_moves(suspects, scores_after, y_true, scores_before, metric: str = "ap",
                     min_gain: float = 1e-12) -> list[dict]:
    """Suspects ranked by the metric gain of actually applying their erase-downvote.

    Parameters
    ----------
    suspects : list of dict
        From :func:`shortcut_suspects`.
    scores_after : list of (array of shape (n,) or None)
        The class's student scores on the evaluation rows after each suspect's erase-downvote
        was applied and refitted; None skips that suspect (e.g. the vote conflicts).
    y_true, scores_before : array-like of shape (n,)
    metric : str, default="ap"
    min_gain : float

    Returns
    -------
    list of dict
        ``concept_idx``, ``direction`` ("down"), ``kind`` ("shortcut"), ``erase`` (True),
        ``partial_corr``, ``related`` (from :func:`group_suspects`; empty when not grouped),
        ``ap_before``, ``ap_after``, ``gain``; only positive gains, sorted
        by gain descending (ties to the lower concept index).
    """
    before = class_metrics(y_true, scores_before)[metric]
    if before is None or not np.isfinite(before):
        return []
    out = []
    for sus, s in zip(suspects, scores_after):
        if s is None:
            continue
        after = class_metrics(y_true, s)[metric]
        if after is None or not after - before > min_gain:
            continue
        out.append({"concept_idx": int(sus["concept_idx"]), "direction": "down", "kind": "shortcut", "erase": True,
                    "partial_corr": float(sus["partial_corr"]),
                    "related": [int(c) for c in sus.get("related", ())], "ap_before": float(before),
                    "ap_after": float(after), "gain": float(after - before)})
    out.sort(key=lambda m: (-m["gain"], m["concept_idx"]))
    return out
