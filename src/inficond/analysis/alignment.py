"""Where student and teacher agree or disagree, for the student performance view.

Instances of a class are split by their ground-truth label into the **positive** subset
(``y_true == 1``) and the **negative** subset (``y_true == 0``). Inside each subset every
instance falls in exactly one of four categories, from the correctness of the teacher and of
the student (a prediction is correct when it equals ``y_true``):

==========================  ================  ================
category                    teacher correct   student correct
==========================  ================  ================
``both_correct``            yes               yes
``only_teacher_correct``    yes               no   (student mispredicts: the case to fix)
``both_wrong``              no                no
``only_student_correct``    no                yes
==========================  ================  ================

Rates are shares of the subset (they sum to 1 in a non-empty subset, to 0 in an empty one);
``share`` is the subset's share of all instances (shows class imbalance).
"""

from __future__ import annotations

import numpy as np

__all__ = ["CATEGORIES", "alignment", "alignment_per_class", "alignment_change"]

#: The four categories, in display order.
CATEGORIES = ("both_correct", "only_teacher_correct", "both_wrong", "only_student_correct")


def as_bool(a, name):
    a = np.asarray(a)
    if a.dtype != bool:
        if not np.all((a == 0) | (a == 1)):
            raise ValueError(f"{name} must be bool or 0/1; pass logits through predictions()")
        a = a.astype(bool)
    return a


def alignment(y_true, teacher_pred, student_pred) -> dict:
    """Counts and rates of the four agreement categories among positives and negatives.

    Parameters
    ----------
    y_true : array-like of shape (n,)
        0/1 ground truth of one class.
    teacher_pred, student_pred : array-like of bool, shape (n,)
        Predictions (``logit > 0``, see :func:`inficond.analysis.metrics.predictions`).

    Returns
    -------
    dict
        ``{"pos": subset, "neg": subset, "n": n}`` where each subset is
        ``{"n": int, "share": float, "empty": bool, "counts": {category: int},
        "rates": {category: float}}`` with the categories of :data:`CATEGORIES`.
    """
    y = as_bool(y_true, "y_true").ravel()
    t = as_bool(teacher_pred, "teacher_pred").ravel()
    s = as_bool(student_pred, "student_pred").ravel()
    if not (y.shape == t.shape == s.shape):
        raise ValueError(
            f"y_true {y.shape}, teacher_pred {t.shape} and student_pred {s.shape} must match")
    n = y.size
    t_ok, s_ok = t == y, s == y
    cats = {
        "both_correct": t_ok & s_ok,
        "only_teacher_correct": t_ok & ~s_ok,
        "both_wrong": ~t_ok & ~s_ok,
        "only_student_correct": ~t_ok & s_ok,
    }
    out = {"n": int(n)}
    for name, subset in (("pos", y), ("neg", ~y)):
        m = int(subset.sum())
        counts = {c: int(np.count_nonzero(cats[c] & subset)) for c in CATEGORIES}
        out[name] = {
            "n": m,
            "share": m / n if n else 0.0,
            "empty": m == 0,
            "counts": counts,
            "rates": {c: counts[c] / m if m else 0.0 for c in CATEGORIES},
        }
    return out


def alignment_per_class(y_true, teacher_pred, student_pred) -> list[dict]:
    """:func:`alignment` for every class.

    Parameters
    ----------
    y_true, teacher_pred, student_pred : array-like of shape (n, K)

    Returns
    -------
    list of K dicts as :func:`alignment`
    """
    y, t, s = (np.asarray(a) for a in (y_true, teacher_pred, student_pred))
    if y.ndim != 2 or not (y.shape == t.shape == s.shape):
        raise ValueError(f"expected three (n, K) arrays; got {y.shape}, {t.shape}, {s.shape}")
    return [alignment(y[:, k], t[:, k], s[:, k]) for k in range(y.shape[1])]


def alignment_change(before: dict, after: dict) -> dict:
    """Change from one :func:`alignment` result to another (``after - before``).

    Used to show what a tuning step did, e.g. ``only_teacher_correct`` among positives going
    from 12 to 7 gives ``-5``.

    Parameters
    ----------
    before, after : dict
        Results of :func:`alignment` on the same instances.

    Returns
    -------
    dict
        ``{"pos": {"counts": {category: int}, "rates": {category: float}},
        "neg": {...}}`` of differences.
    """
    if before["n"] != after["n"] or any(
            before[s]["n"] != after[s]["n"] for s in ("pos", "neg")):
        raise ValueError("alignment_change needs results on the same instances "
                         f"(before n={before['n']}, after n={after['n']})")
    return {
        s: {
            "counts": {c: after[s]["counts"][c] - before[s]["counts"][c] for c in CATEGORIES},
            "rates": {c: after[s]["rates"][c] - before[s]["rates"][c] for c in CATEGORIES},
        }
        for s in ("pos", "neg")
    }
