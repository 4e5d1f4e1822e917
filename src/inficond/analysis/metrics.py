"""Per-class metrics of teachers and students, and student-teacher fidelity.

Conventions (shared by the whole ``analysis`` package):

- Scores are **logits**. A prediction is positive when ``logit > threshold`` with
  ``threshold=0.0``, i.e. probability 0.5, for teacher and student alike.
- Average precision (AP) is rank-based, so logits and probabilities give the same AP.
- ``y_true`` is multi-hot ``(n, K)`` (or one column ``(n,)``) of 0/1 values.
- Precision, recall and F1 use ``zero_division=0`` (a class never predicted positive has
  precision 0, not a warning).
- AP is undefined for a class with no positive instance. Dict results report it as ``None``
  and array results as ``nan``; such classes are left out of every mean AP and listed in
  ``ap_undefined``.

:func:`class_metrics` is one row of the ``*_batch`` functions: hand-vectorised metrics for many
score vectors at once (what-if curves need hundreds per request). The tests check all of them
against :mod:`sklearn.metrics`, which the server does not import (it took 1.1 s of a 2 s start).
"""

from __future__ import annotations

import numpy as np

from inficond.exceptions import UnknownNameError

__all__ = [
    "THRESHOLD_METRICS",
    "METRICS",
    "predictions",
    "class_metrics",
    "all_class_metrics",
    "fidelity",
    "average_precision_batch",
    "threshold_metrics_batch",
    "metrics_batch",
]

#: Metrics computed from thresholded predictions.
THRESHOLD_METRICS = ("precision", "recall", "f1", "accuracy")
#: Every metric name the batch functions know.
METRICS = ("ap",) + THRESHOLD_METRICS


def predictions(logits, threshold: float = 0.0) -> np.ndarray:
    """Positive predictions: ``logits > threshold`` (0.0 = probability 0.5).

    Parameters
    ----------
    logits : array-like of any shape
    threshold : float, default=0.0
        On the logit scale.

    Returns
    -------
    ndarray of bool, same shape as ``logits``
    """
    return np.asarray(logits) > threshold


def _as_labels(y_true) -> np.ndarray:
    y = np.asarray(y_true)
    if y.dtype != bool:
        if not np.all((y == 0) | (y == 1)):
            raise ValueError("y_true must hold only 0/1 (or bool) values")
        y = y.astype(bool)
    return y


def class_metrics(y_true, scores, threshold: float = 0.0) -> dict:
    """Metrics of one class, equal to :mod:`sklearn.metrics` (``zero_division=0``).

    Parameters
    ----------
    y_true : array-like of shape (n,)
        0/1 ground truth for the class.
    scores : array-like of shape (n,)
        Logits for the class.
    threshold : float, default=0.0
        Logit threshold for precision/recall/F1/accuracy.

    Returns
    -------
    dict
        ``ap`` (float, or None when the class has no positive instance), ``precision``,
        ``recall``, ``f1``, ``accuracy`` (floats in [0, 1]), ``n_pos`` and ``n`` (ints).
    """
    y = _as_labels(y_true).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"y_true has shape {y.shape} but scores has shape {s.shape}")
    if y.size == 0:
        raise ValueError("class_metrics needs at least one instance")
    vals = metrics_batch(y, s[None], METRICS, threshold)
    ap = float(vals["ap"][0])
    return {
        "ap": None if np.isnan(ap) else ap,  # sklearn would warn and return 0.0, pulling means down
        **{m: float(vals[m][0]) for m in THRESHOLD_METRICS},
        "n_pos": int(y.sum()),
        "n": int(y.size),
    }


def _excluded_mask(excluded, K: int) -> np.ndarray:
    mask = np.zeros(K, dtype=bool)
    if excluded is None:
        return mask
    ex = np.asarray(excluded)
    if ex.dtype == bool:
        if ex.shape != (K,):
            raise ValueError(f"a boolean `excluded` must have shape ({K},), got {ex.shape}")
        return ex.copy()
    ex = ex.astype(int).ravel()
    if ex.size and (ex.min() < 0 or ex.max() >= K):
        raise ValueError(f"excluded class indices must be in [0, {K}), got {ex.tolist()}")
    mask[ex] = True
    return mask


def all_class_metrics(y_true, logits, excluded=None, threshold: float = 0.0) -> dict:
    """Metrics of every class and their means (mean AP = mAP).

    Parameters
    ----------
    y_true : array-like of shape (n, K)
        Multi-hot ground truth.
    logits : array-like of shape (n, K)
    excluded : None, sequence of int, or bool array of shape (K,)
        Classes left out of the means (still reported per class).
    threshold : float, default=0.0

    Returns
    -------
    dict
        ``per_class``: list of K dicts as :func:`class_metrics` plus ``class_idx`` and
        ``excluded``; ``mean``: dict of ``ap`` (mAP over non-excluded classes with a defined
        AP, None if there are none), ``precision``, ``recall``, ``f1``, ``accuracy`` (means over
        non-excluded classes); ``n_classes`` averaged; ``ap_undefined``: class indices with no
        positive instance; ``excluded``: excluded class indices.
    """
    y = _as_labels(y_true)
    s = np.asarray(logits, dtype=np.float64)
    if y.ndim != 2 or y.shape != s.shape:
        raise ValueError(f"y_true and logits must both be (n, K); got {y.shape} and {s.shape}")
    n, K = y.shape
    ex = _excluded_mask(excluded, K)
    # One vectorised pass over all classes (checked equal to sklearn in the tests).
    vals = metrics_batch(y.T, s.T, METRICS, threshold)
    n_pos = y.sum(axis=0)
    per_class = []
    for k in range(K):
        ap = vals["ap"][k]
        per_class.append({
            "class_idx": k,
            "ap": None if np.isnan(ap) else float(ap),
            **{m: float(vals[m][k]) for m in THRESHOLD_METRICS},
            "n_pos": int(n_pos[k]),
            "n": int(n),
            "excluded": bool(ex[k]),
        })
    keep = ~ex
    ap_ok = keep & ~np.isnan(vals["ap"])
    mean = {"ap": float(vals["ap"][ap_ok].mean()) if ap_ok.any() else None}
    for m in THRESHOLD_METRICS:
        mean[m] = float(vals[m][keep].mean()) if keep.any() else None
    return {
        "per_class": per_class,
        "mean": mean,
        "n_classes": int(keep.sum()),
        "ap_undefined": np.flatnonzero(n_pos == 0).tolist(),
        "excluded": np.flatnonzero(ex).tolist(),
    }


def fidelity(teacher_logits, student_logits, threshold: float = 0.0) -> dict:
    """How closely the student mimics the teacher.

    Parameters
    ----------
    teacher_logits, student_logits : array-like of shape (n, K) or (n,)
        A 1-D input is one class.
    threshold : float, default=0.0

    Returns
    -------
    dict
        ``agreement``: share of (instance, class) pairs where both predict the same;
        ``per_class_agreement``: list of K shares; ``ap_vs_teacher``: list of K APs of the
        student logits against the teacher's predictions (None where the teacher predicts
        no positive); ``mean_ap_vs_teacher``: their mean over defined classes (or None).
    """
    t = np.asarray(teacher_logits, dtype=np.float64)
    s = np.asarray(student_logits, dtype=np.float64)
    if t.shape != s.shape:
        raise ValueError(f"teacher_logits {t.shape} and student_logits {s.shape} differ in shape")
    if t.ndim == 1:
        t, s = t[:, None], s[:, None]
    tp, sp = t > threshold, s > threshold
    agree = (tp == sp).mean(axis=0)
    ap = average_precision_batch(tp.T, s.T)
    ok = ~np.isnan(ap)
    return {
        "agreement": float((tp == sp).mean()),
        "per_class_agreement": [float(a) for a in agree],
        "ap_vs_teacher": [None if np.isnan(a) else float(a) for a in ap],
        "mean_ap_vs_teacher": float(ap[ok].mean()) if ok.any() else None,
    }


# --------------------------------------------------------------------------------------
# Vectorised metrics over many score vectors (rows).


def average_precision_batch(y_true, scores) -> np.ndarray:
    """Average precision of each row of ``scores``, as sklearn's ``average_precision_score``.

    Hand-written because what-if curves need AP for hundreds of score vectors per request,
    and one sklearn call per vector (~1 ms of input validation each) is far too slow.
    Same definition as sklearn, ties included: instances are sorted by decreasing score,
    tied scores form one threshold, and
    ``AP = sum over thresholds of (R_t - R_{t-1}) * P_t``, which equals the mean, over
    positive instances, of the precision at the end of the instance's tie group.

    Parameters
    ----------
    y_true : array-like of shape (n,) or (B, n)
        0/1 labels, shared by all rows or one row of labels per score row.
    scores : array-like of shape (B, n) or (n,)

    Returns
    -------
    ndarray of shape (B,) (or a 0-d array for 1-D scores)
        float64 AP per row; ``nan`` for rows whose labels have no positive.
    """
    s = np.asarray(scores, dtype=np.float64)
    one = s.ndim == 1
    s = np.atleast_2d(s)
    B, n = s.shape
    y = _as_labels(y_true)
    if y.ndim != 1:
        y = np.broadcast_to(y, (B, n))
    elif y.size != n:
        raise ValueError(f"y_true has {y.size} labels but scores have {n} per row")
    if n == 0:
        return np.full(B, np.nan)[0 if one else slice(None)]
    # Without an argsort: a positive's precision at the end of its tie group is
    # (positives scored >= it) / (images scored >= it), two counts that binary searches in the
    # sorted row and in the row's sorted positives give, ties included. np.sort (SIMD) is ~2x
    # faster than np.argsort and the label gathers, cumsum and tie passes of the sort-based
    # formula go: 2.7x less time for 120 rows x 71,115 images, the suggestions' size at 100k
    # (benchmarks/bench_whatif_scale.py times the views' what-if, old code against new). Each
    # precision is put where the sort-based formula had it
    # (its position in decreasing score order) and the row summed the same way, so a tie-free
    # row gives the same AP bit for bit (tests/test_metrics.py); in a tie group the positions
    # of its positives were the unstable sort's choice before too.
    srt = np.sort(s, axis=1)
    terms = np.zeros((B, n))
    n_pos = np.empty(B)
    for i in range(B):
        p = np.sort(s[i][y if y.ndim == 1 else y[i]])
        n_pos[i] = p.size
        if not p.size:
            continue
        first = np.searchsorted(p, p, "left")  # index of each positive's tie group among the positives
        n_ge = n - np.searchsorted(srt[i], p, "left")  # images scored >= it: its group end, + 1
        tp_ge = p.size - first
        # positives of one tie group take distinct slots at its end (the group holds them all)
        terms[i, n_ge - 1 - (np.arange(p.size) - first)] = tp_ge / n_ge
    with np.errstate(invalid="ignore", divide="ignore"):
        ap = terms.sum(axis=1) / n_pos
    ap[n_pos == 0] = np.nan
    return ap[0] if one else ap


def threshold_metrics_batch(y_true, scores, threshold: float = 0.0,
                            metrics=THRESHOLD_METRICS) -> dict:
    """Precision, recall, F1 and accuracy of each row of ``scores`` (``zero_division=0``).

    Parameters
    ----------
    y_true : array-like of shape (n,) or (B, n)
    scores : array-like of shape (B, n)
        Logits.
    threshold : float, default=0.0
    metrics : sequence of str, default=("precision", "recall", "f1", "accuracy")

    Returns
    -------
    dict of str -> ndarray of shape (B,)
    """
    s = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    B, n = s.shape
    y = np.broadcast_to(_as_labels(y_true), (B, n))
    pred = s > threshold
    tp = np.count_nonzero(pred & y, axis=1).astype(np.float64)
    fp = np.count_nonzero(pred & ~y, axis=1).astype(np.float64)
    fn = np.count_nonzero(~pred & y, axis=1).astype(np.float64)

    def _ratio(num, den):
        return np.divide(num, den, out=np.zeros_like(num), where=den > 0)

    out = {}
    for m in metrics:
        if m == "precision":
            out[m] = _ratio(tp, tp + fp)
        elif m == "recall":
            out[m] = _ratio(tp, tp + fn)
        elif m == "f1":
            out[m] = _ratio(2 * tp, 2 * tp + fp + fn)
        elif m == "accuracy":
            out[m] = (n - fp - fn) / n
        else:
            _unknown_metric(m)
    return out


def metrics_batch(y_true, scores, metrics=METRICS, threshold: float = 0.0) -> dict:
    """Any of ``ap``, ``precision``, ``recall``, ``f1``, ``accuracy`` for each score row.

    Parameters
    ----------
    y_true : array-like of shape (n,) or (B, n)
    scores : array-like of shape (B, n)
    metrics : sequence of str, default=METRICS
    threshold : float, default=0.0

    Returns
    -------
    dict of str -> ndarray of shape (B,) (``ap`` is nan where a row has no positive label)
    """
    metrics = tuple(metrics)
    for m in metrics:
        if m not in METRICS:
            _unknown_metric(m)
    out = {}
    if "ap" in metrics:
        out["ap"] = np.atleast_1d(average_precision_batch(y_true, np.atleast_2d(scores)))
    rest = [m for m in metrics if m != "ap"]
    if rest:
        out.update(threshold_metrics_batch(y_true, scores, threshold, rest))
    return {m: out[m] for m in metrics}


def _unknown_metric(name):
    raise UnknownNameError("metric", name, METRICS)
