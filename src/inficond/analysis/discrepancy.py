"""Concept rankings for the student knowledge and concept detail views.

**Presence discrepancy.** For one class, instances are split by ground truth into the
positive subset P (``y_true == 1``) and the negative subset N (``y_true == 0``). Inside each
subset an instance is *aligned* when the student's prediction equals the reference (by
default the ground truth, i.e. the student is correct; pass ``reference_pred`` = teacher
predictions to measure agreement with the teacher instead) and *misaligned* otherwise.
For each concept ``c``::

    dp[c] = mean(X[misaligned & P, c]) - mean(X[aligned & P, c])
    dn[c] = mean(X[misaligned & N, c]) - mean(X[aligned & N, c])

in the units of ``X`` (raw concept vectors: cosine similarity; standardised ``Z``: standard
deviations). A positive value means the concept is more present where the student goes
wrong. When the aligned or the misaligned part of a subset is empty the discrepancy is
undefined: it is returned as zeros and flagged (``p_defined`` / ``n_defined`` False).

**Rankings** sort by absolute value, largest first, and keep the sign for display; ties go
to the lower concept index.
"""

from __future__ import annotations

import numpy as np

from inficond.analysis.alignment import as_bool
from inficond.exceptions import UnknownNameError

__all__ = [
    "RANKINGS",
    "presence_discrepancy",
    "rank_concepts",
    "top_images",
    "concept_class_influence",
]

#: Names accepted by :func:`rank_concepts`'s ``by``.
RANKINGS = ("influence", "discrepancy_p", "discrepancy_n")


def _bool(a, name):
    return as_bool(a, name).ravel()


def presence_discrepancy(X, y_true, student_pred, reference_pred=None) -> dict:
    """Presence discrepancy of every concept among positives (dp) and negatives (dn).

    Parameters
    ----------
    X : array-like of shape (n, C)
        Concept presence per instance (raw concept vectors, or standardised).
    y_true : array-like of shape (n,)
        0/1 ground truth of the class; defines the positive and negative subsets.
    student_pred : array-like of bool, shape (n,)
        Student predictions (``logit > 0``).
    reference_pred : None or array-like of bool, shape (n,)
        What the student should agree with. None (default): ``y_true``.

    Returns
    -------
    dict
        ``dp``, ``dn``: float64 arrays of shape (C,); ``p_defined``, ``n_defined``: bool;
        ``counts``: ``{"pos_aligned", "pos_misaligned", "neg_aligned", "neg_misaligned"}``.
    """
    X = np.asarray(X)
    y = _bool(y_true, "y_true")
    s = _bool(student_pred, "student_pred")
    ref = y if reference_pred is None else _bool(reference_pred, "reference_pred")
    if X.ndim != 2 or not (X.shape[0] == y.size == s.size == ref.size):
        raise ValueError(f"X must be (n, C) with n = len(y_true); got X {X.shape}, "
                         f"y_true {y.shape}, student_pred {s.shape}, reference {ref.shape}")
    aligned = s == ref
    # Four masks -> one (4, n) @ (n, C) product gives all the subset sums at once.
    masks = np.stack([y & aligned, y & ~aligned, ~y & aligned, ~y & ~aligned])
    counts = masks.sum(axis=1)
    sums = masks.astype(np.float64) @ X.astype(np.float64, copy=False)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums / counts[:, None]
    out = {"counts": dict(zip(("pos_aligned", "pos_misaligned", "neg_aligned",
                                "neg_misaligned"), map(int, counts)))}
    for key, a, m in (("p", 0, 1), ("n", 2, 3)):
        ok = bool(counts[a] and counts[m])
        out[f"d{key}"] = means[m] - means[a] if ok else np.zeros(X.shape[1])
        out[f"{key}_defined"] = ok
    return out


def _order_by_abs(values, idx):
    # Largest |value| first; ties to the lower concept index.
    return idx[np.lexsort((idx, -np.abs(values[idx])))]


def rank_concepts(coef_row, dp=None, dn=None, by: str = "influence", k: int | None = 10,
                  candidates=None) -> list[dict]:
    """Rank a class's concepts by influence or by presence discrepancy.

    Parameters
    ----------
    coef_row : array-like of shape (C,)
        The class's influences (``coef[k]``, weights on standardised concepts).
    dp, dn : None or array-like of shape (C,)
        Presence discrepancies from :func:`presence_discrepancy`; needed for the
        corresponding ranking, reported when given.
    by : {"influence", "discrepancy_p", "discrepancy_n"}, default="influence"
        Sort key; always by absolute value, descending. ``influence`` ranks only concepts
        with a non-zero influence (a sparse student ignores the others).
    k : int or None, default=10
        How many to return; None for all.
    candidates : None or array-like of int
        Restrict the ranking to these concept indices (e.g. the top influential ones, to
        re-sort what the view shows). None: all concepts.

    Returns
    -------
    list of dict
        ``rank`` (1-based), ``concept_idx``, ``influence``, ``discrepancy_p`` and
        ``discrepancy_n`` (None when not given), best first.
    """
    w = np.asarray(coef_row, dtype=np.float64).ravel()
    C = w.size
    arrays = {"influence": w}
    for name, d in (("discrepancy_p", dp), ("discrepancy_n", dn)):
        if d is not None:
            d = np.asarray(d, dtype=np.float64).ravel()
            if d.size != C:
                raise ValueError(f"{name} has {d.size} values but coef_row has {C}")
        arrays[name] = d
    if by not in RANKINGS:
        raise UnknownNameError("ranking", by, RANKINGS)
    if arrays[by] is None:
        raise ValueError(f"ranking by {by!r} needs the {'dp' if by.endswith('p') else 'dn'} "
                         "argument (from presence_discrepancy)")
    idx = np.arange(C) if candidates is None else np.unique(np.asarray(candidates, dtype=int))
    if idx.size and (idx.min() < 0 or idx.max() >= C):
        raise ValueError(f"candidates must be concept indices in [0, {C})")
    if by == "influence":
        idx = idx[w[idx] != 0]
    order = _order_by_abs(arrays[by], idx)
    if k is not None:
        order = order[:k]
    dp_, dn_ = arrays["discrepancy_p"], arrays["discrepancy_n"]
    return [
        {
            "rank": r + 1,
            "concept_idx": int(c),
            "influence": float(w[c]),
            "discrepancy_p": None if dp_ is None else float(dp_[c]),
            "discrepancy_n": None if dn_ is None else float(dn_[c]),
        }
        for r, c in enumerate(order)
    ]


def top_images(values, k: int = 12, mask=None) -> np.ndarray:
    """Indices of the instances where a concept is most present.

    Parameters
    ----------
    values : array-like of shape (n,)
        One concept's presence per instance (a column of the concept vectors).
    k : int, default=12
    mask : None or array-like of bool, shape (n,)
        Only consider these instances (e.g. one split, or one class's positives).

    Returns
    -------
    ndarray of int64, shape (min(k, n_considered),)
        Highest value first; ties to the lower index; NaN values are skipped.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    ok = ~np.isnan(v)
    if mask is not None:
        m = _bool(mask, "mask")
        if m.size != v.size:
            raise ValueError(f"mask has {m.size} values but values has {v.size}")
        ok &= m
    idx = np.flatnonzero(ok)
    return idx[np.lexsort((idx, -v[idx]))][:k].astype(np.int64)


def concept_class_influence(coef, c: int, k: int | None = 5) -> list[dict]:
    """The classes on which concept ``c`` has the most influence.

    Parameters
    ----------
    coef : array-like of shape (K, C)
    c : int
        Concept index.
    k : int or None, default=5

    Returns
    -------
    list of dict
        ``class_idx`` and ``influence`` (signed), by |influence| descending; classes where
        the concept has zero influence are left out.
    """
    W = np.asarray(coef, dtype=np.float64)
    if W.ndim != 2 or not 0 <= c < W.shape[1]:
        raise ValueError(f"need coef of shape (K, C) and 0 <= c < C; got {W.shape} and c={c}")
    col = W[:, c]
    order = _order_by_abs(col, np.flatnonzero(col != 0))
    if k is not None:
        order = order[:k]
    return [{"class_idx": int(j), "influence": float(col[j])} for j in order]
