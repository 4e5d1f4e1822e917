"""Concept tuning: users' up/down votes become bounds on influences, then the class is refitted.

Rule (``f`` = ``factor``, default 0.5; ``w`` = the concept's current influence on the class;
``ref`` = mean |w| of the class's 10 largest influences, or ``min_ref`` if the class has none)::

    up:    lower = w + f * max(|w|, ref)        (w never goes below this again)
    down:  upper = w - f * max(|w|, ref)        (w never goes above this again)

So a large positive weight that is uptuned must grow by at least ``f`` of itself (``w (1+f)``);
a downtuned one must shrink to ``w (1-f)`` (``f >= 1`` forces it to zero or below). An
uptuned negative weight must move towards zero (``w (1-f)``), a downtuned one away from it.
A weight at or near zero moves by ``f * ref``: up makes the concept count *for* the class by
at least half a typical top influence, down makes it count *against* it. The bound is a hard
constraint in the refit; the other weights re-balance around it, which is what makes a vote
change the student (a plain nudge of one weight would be undone by the next fit).

History. Bounds of a class accumulate over steps in ``history``, a dict
``{(class_idx, concept_idx): (lower, upper)}`` (``-inf``/``inf`` = none). A repeated vote in
the same direction only tightens (``max`` of lower bounds, ``min`` of upper bounds, computed
from the weight at that time). A vote opposite to an earlier one on the same concept is a
conflict: with ``on_conflict="error"`` (default) it raises :class:`TuningError` (undo or
revert the earlier step instead); with ``on_conflict="replace"`` the earlier opposite bound is
dropped and the new one set, explicitly. Opposite votes in one batch always raise.

Options of a step (all recorded in the provenance ``step_params``, so replay repeats them):

- ``mode="soft"``: votes change the concept's L1 penalty instead of moving a bound (up: no
  penalty, down: ``SOFT_DOWN`` times the class's lam); the only bound is at the current weight,
  so the weight never moves against the vote. Implemented by rescaling the concept's column,
  which leaves the solvers untouched. Measured weaker than bounds (BENCHMARKS.md).
- ``erase``: (class, concept) pairs whose *linear share* is regressed out of the teacher's
  logits before the refit (:func:`erase_share`). A bound alone keeps the target, so the refit
  moves what the teacher owes to a downvoted context onto correlated concepts; erasing takes it
  out of the target itself. Cumulative: the caller passes every pair erased so far.
- ``label_weight`` (with ``labels``): the refit's target becomes ``(1 - a) sigmoid(t) + a y``,
  the Hinton-style mix of the teacher's soft labels with ground truth. Off (0) by default.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from numbers import Integral

import numpy as np
from scipy.special import expit

from inficond.exceptions import DataError, TuningError
from inficond.students import _solvers
from inficond.students.estimator import ConceptStudent, _blas_threads, _check_logits

__all__ = ["Instruction", "tune_bounds", "tune_class", "apply_tuning", "bounds_from_history", "erase_share",
           "carry_step_params", "DIRECTIONS", "STEP_PARAMS"]

DIRECTIONS = ("up", "down")
MODES = ("bound", "soft")
ERASE_HOW = ("marginal", "partial")
ADAM_TUNE_EPOCHS = 5  # an "adam-paper" student is refitted the paper's way: fewer epochs than its training
SOFT_DOWN = 10.0  # a soft downvote multiplies the concept's L1 penalty by this
# every keyword of apply_tuning that a provenance step may record (replay passes them back)
STEP_PARAMS = ("factor", "on_conflict", "max_iter", "tol", "mode", "erase", "erase_how", "l1_scale",
               "label_weight")


@dataclass(frozen=True)
class Instruction:
    """One vote: make concept ``concept_idx`` count more ("up") or less ("down") for a class."""

    class_idx: int
    concept_idx: int
    direction: str

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Instruction":
        return cls(int(d["class_idx"]), int(d["concept_idx"]), str(d["direction"]))


def _validate(instructions, class_idx, n_classes, n_concepts) -> list[Instruction]:
    if not isinstance(class_idx, Integral) or not 0 <= class_idx < n_classes:
        raise TuningError(f"class index {class_idx!r} is out of range; use 0..{n_classes - 1}")
    out = []
    seen: dict[int, str] = {}
    for ins in instructions:
        if not isinstance(ins, Instruction):
            raise TuningError(f"expected Instruction(class_idx, concept_idx, direction), got {ins!r}")
        if ins.class_idx != class_idx:
            raise TuningError(f"instruction {ins} is for class {ins.class_idx}, but this step tunes class {class_idx}")
        if not isinstance(ins.concept_idx, Integral) or not 0 <= ins.concept_idx < n_concepts:
            raise TuningError(f"concept index {ins.concept_idx!r} is out of range; use 0..{n_concepts - 1}")
        if ins.direction not in DIRECTIONS:
            raise TuningError(f"direction {ins.direction!r} is unknown; use 'up' or 'down'")
        prev = seen.get(ins.concept_idx)
        if prev is not None and prev != ins.direction:
            raise TuningError(f"concept {ins.concept_idx} is voted both up and down in one step; keep one")
        if prev is None:
            seen[ins.concept_idx] = ins.direction
            out.append(ins)
    if not out:
        raise TuningError("no tuning instructions given")
    return out


def reference_influence(coef_row, top=10, min_ref=0.1) -> float:
    """``ref``: mean |w| of the ``top`` largest influences (``min_ref`` when all are zero)."""
    a = np.sort(np.abs(np.asarray(coef_row, dtype=float)))[::-1][:top]
    a = a[a > 0]
    return float(a.mean()) if a.size else float(min_ref)


def tune_bounds(coef_row, instructions, history=None, factor=0.5, on_conflict="error", top=10, min_ref=0.1):
    """New bounds history after applying ``instructions`` to one class (no refit).

    Parameters
    ----------
    coef_row : ndarray of shape (n_concepts,)
        The class's current influences.
    instructions : list of Instruction
        All for the same class (validated by :func:`tune_class`).
    history : dict, optional
        ``{(class_idx, concept_idx): (lower, upper)}`` from earlier steps; not modified.
    factor, on_conflict, top, min_ref : see the module docstring.

    Returns
    -------
    dict, the new history (a copy).
    """
    if not factor >= 0:  # 0: the bound sits at the current weight (soft votes)
        raise TuningError(f"factor must be >= 0, got {factor!r}")
    if on_conflict not in ("error", "replace"):
        raise TuningError(f"on_conflict must be 'error' or 'replace', got {on_conflict!r}")
    history = dict(history or {})
    ref = reference_influence(coef_row, top, min_ref)
    for ins in instructions:
        key = (int(ins.class_idx), int(ins.concept_idx))
        w = float(coef_row[ins.concept_idx])
        step = factor * max(abs(w), ref)
        lo, hi = history.get(key, (-np.inf, np.inf))
        if ins.direction == "up":
            if hi < np.inf:
                if on_conflict == "error":
                    raise TuningError(
                        f"concept {key[1]} of class {key[0]} was downtuned before (upper bound {hi:.4g}); "
                        "undo/revert that step, or pass on_conflict='replace' to drop it"
                    )
                hi = np.inf
            lo = max(lo, w + step)
        else:
            if lo > -np.inf:
                if on_conflict == "error":
                    raise TuningError(
                        f"concept {key[1]} of class {key[0]} was uptuned before (lower bound {lo:.4g}); "
                        "undo/revert that step, or pass on_conflict='replace' to drop it"
                    )
                lo = -np.inf
            hi = min(hi, w - step)
        history[key] = (float(lo), float(hi))
    return history


def bounds_from_history(history, n_classes, n_concepts):
    """``lower, upper`` arrays of shape (n_classes, n_concepts) from a bounds history."""
    lower = np.full((n_classes, n_concepts), -np.inf)
    upper = np.full((n_classes, n_concepts), np.inf)
    for (k, c), (lo, hi) in (history or {}).items():
        lower[k, c], upper[k, c] = lo, hi
    return lower, upper


def erase_share(Z, t, cols, how="marginal", ridge=1e-3):
    """The logits ``t`` minus what they owe linearly to the concepts ``cols``.

    Parameters
    ----------
    Z : ndarray of shape (n, C)
        Standardised concepts (zero mean per column on these rows).
    t : ndarray of shape (n,)
        One class's teacher logits.
    cols : sequence of int
    how : {"marginal", "partial"}
        "marginal": least squares of ``t`` on the columns ``cols`` alone (with an intercept),
        then their fitted part is removed: everything linearly predictable from those concepts
        goes, including what correlated concepts carry of them. "partial": the coefficients of
        ``cols`` in a (ridge-stabilised) regression on *all* concepts, i.e. only their unique
        share holding the others fixed.
    ridge : float
        Ridge strength relative to ``n`` for the regressions (keeps collinear columns stable).

    Returns
    -------
    ndarray of shape (n,): the erased logits; their mean is unchanged.
    """
    cols = np.asarray(sorted({int(c) for c in cols}), dtype=int)
    t = np.asarray(t, dtype=float)
    if cols.size == 0:
        return t.copy()
    if how not in ERASE_HOW:
        raise TuningError(f"erase_how must be one of {ERASE_HOW}, got {how!r}")
    A = Z if how == "partial" else Z[:, cols]
    Ac = A - A.mean(0)
    tc = t - t.mean()
    n = A.shape[0]
    G = Ac.T @ Ac + ridge * n * np.eye(A.shape[1])
    beta = np.linalg.solve(G, Ac.T @ tc)
    if how == "partial":
        beta, Ac = beta[cols], Ac[:, cols]
    return t - Ac @ beta


def _pairs_for(pairs, k) -> list[int]:
    return sorted({int(c) for kk, c, *_ in (pairs or ()) if int(kk) == k})


def _check_step_options(mode, erase_how, label_weight, labels, n, K):
    if mode not in MODES:
        raise TuningError(f"mode must be one of {MODES}, got {mode!r}")
    if erase_how not in ERASE_HOW:
        raise TuningError(f"erase_how must be one of {ERASE_HOW}, got {erase_how!r}")
    if not isinstance(label_weight, (int, float)) or not 0 <= label_weight <= 1:
        raise TuningError(f"label_weight must be a number in [0, 1], got {label_weight!r}")
    if label_weight > 0:
        if labels is None:
            raise TuningError("label_weight > 0 mixes ground truth into the target: pass labels (n_images, n_classes)")
        y = np.asarray(labels)
        if y.shape != (n, K):
            raise TuningError(f"labels must have shape ({n}, {K}) = (images, classes), got {y.shape}")


def carry_step_params(previous: dict | None, instructions, mode="bound", erase=False) -> dict:
    """Cumulative ``erase`` and ``l1_scale`` for the next step, from the previous step's params.

    ``erase=True`` erases every concept downvoted in this step (besides those erased before);
    ``mode="soft"`` turns this step's votes into L1 multipliers (up 0, down ``SOFT_DOWN``; a
    later vote on the same concept replaces the earlier multiplier).
    """
    previous = previous or {}
    erased = {(int(k), int(c)) for k, c in previous.get("erase", ())}
    scale = {(int(k), int(c)): float(m) for k, c, m in previous.get("l1_scale", ())}
    for ins in instructions:
        key = (int(ins.class_idx), int(ins.concept_idx))
        if erase and ins.direction == "down":
            erased.add(key)
        if mode == "soft":
            scale[key] = 0.0 if ins.direction == "up" else SOFT_DOWN
    out = {}
    if erased:
        out["erase"] = [list(p) for p in sorted(erased)]
    if scale:
        out["l1_scale"] = [[k, c, m] for (k, c), m in sorted(scale.items())]
    return out


def tune_class(student: ConceptStudent, X, T, class_idx, instructions, history=None, factor=0.5,
               on_conflict="error", max_iter=None, tol=None, mode="bound", erase=(), erase_how="marginal",
               l1_scale=(), labels=None, label_weight=0.0, Z=None, duplicates=None):
    """Apply votes to one class and refit it, warm-started, within all its bounds so far.

    Parameters
    ----------
    student : ConceptStudent
        Fitted; not modified.
    X : array-like of shape (n_images, n_concepts)
        The training concept vectors the student was fitted on.
    T : array-like of shape (n_images, n_classes)
        Teacher logits for the same images.
    class_idx : int
    instructions : list of Instruction
    history : dict, optional
        Earlier bounds, ``{(class_idx, concept_idx): (lower, upper)}``.
    factor, on_conflict : see the module docstring.
    max_iter, tol : optional
        Refit limits; default the student's (the refit runs to convergence: one class takes
        tens of milliseconds).
    mode : {"bound", "soft"}
        "soft": the votes set no bound; ``l1_scale`` carries their penalty multipliers.
    erase : sequence of (class_idx, concept_idx)
        Concepts whose linear share is removed from this class's target (:func:`erase_share`).
    erase_how : {"marginal", "partial"}
    l1_scale : sequence of (class_idx, concept_idx, multiplier)
        Per-concept multipliers of this class's L1 strength (default 1).
    labels : array-like of shape (n_images, n_classes), optional
        Ground truth of the training images; needed when ``label_weight > 0``.
    label_weight : float in [0, 1]
        Weight of the ground truth in the target (0 = the teacher alone).
    Z : ndarray of shape (n_images, n_concepts), optional
        ``student.transform(X)``, when the caller already holds it (the session keeps it):
        then ``X`` is not read and may be None. Saves a float32 copy and a float64 copy of the
        training rows per refit (0.5 GB at 100,000 images); only read, never written.
    duplicates : list of ndarray, optional
        The groups of identical columns of ``Z`` (``_solvers._duplicate_columns(Z)``), when the
        caller keeps them with ``Z``; the "cd" refit otherwise finds them again each time (a
        pass over ``Z``: 50 ms at 71,115 train images). Same groups, same refit.

    Returns
    -------
    coef_row : ndarray of shape (n_concepts,)
    intercept : float
    history : dict
        The new history (all classes), to pass to the next step.
    """
    student._check_fitted()
    K, C = student.coef_.shape
    instructions = _validate(list(instructions), class_idx, K, C)
    if mode not in MODES:
        raise TuningError(f"mode must be one of {MODES}, got {mode!r}")
    if mode == "soft":
        # the vote's strength lives in l1_scale; its only bound is "never against the vote" at the
        # current weight (measured: without it a soft uptune of "wheel" for bicycle went negative)
        new_history = tune_bounds(student.coef_[class_idx], instructions, history, 0.0, on_conflict)
    else:
        new_history = tune_bounds(student.coef_[class_idx], instructions, history, factor, on_conflict)
    k = int(class_idx)
    lower = np.full((1, C), -np.inf)
    upper = np.full((1, C), np.inf)
    for (kk, c), (lo, hi) in new_history.items():
        if kk == k:
            lower[0, c], upper[0, c] = lo, hi
    if np.any(lower > upper):
        c = int(np.argmax(lower > upper))
        raise TuningError(f"bounds of concept {c} of class {k} became empty ({lower[0, c]:.4g} > {upper[0, c]:.4g})")
    # The refit works on a column-major (Fortran) Z, whoever calls: each Newton model gathers its
    # working set's columns, from a row-major Z a pass over all of it (~150 ms at 71k train rows,
    # 10x less column-major). BLAS sums the products in another order by layout, so the server's
    # step (the session keeps Z of train column-major) and replay (Z from X here) must share one.
    if Z is None:
        Z = np.asfortranarray(student.transform(X))
    else:
        Z = np.asarray(Z)
        if Z.ndim != 2 or Z.shape[1] != C or Z.dtype != np.float64:
            raise DataError(f"Z must be float64 of shape (n_images, {C}), got {Z.dtype} {Z.shape}")
        Z = np.asfortranarray(Z).view()  # no copy when the caller keeps it column-major
        Z.flags.writeable = False  # the caller's array: an in-place write here must fail, not corrupt it
    T = _check_logits(T, Z.shape[0], K)
    _check_step_options(mode, erase_how, label_weight, labels, Z.shape[0], K)
    t = T[:, k]
    gone = _pairs_for(erase, k)
    if gone:
        t = erase_share(Z, t, gone, erase_how)
    P = expit(t)
    if label_weight > 0:
        P = (1 - label_weight) * P + label_weight * np.asarray(labels, dtype=float)[:, k]
    # Per-concept L1: penalty lam*s_c*|w_c| equals lam*|v_c| with v_c = s_c*w_c on column z_c/s_c.
    # A multiplier of 0 (no penalty) becomes 1e-3 so the rescaled column stays well conditioned.
    s_c = np.ones(C)
    for kk, c, m in (l1_scale or ()):
        if int(kk) == k:
            if not m >= 0:
                raise TuningError(f"l1_scale multipliers must be >= 0, got {m!r} for concept {c}")
            s_c[int(c)] = max(float(m), 1e-3)
    w0 = student.coef_[k : k + 1] * s_c
    lo_s, hi_s = lower * s_c, upper * s_c
    Zs = Z / s_c if np.any(s_c != 1) else Z
    solver = student.solver
    if solver == "adam-paper":
        # the paper's fine-tuning: Adam warm-started from the current weights for a few epochs
        kw = {"epochs": max_iter or ADAM_TUNE_EPOCHS, "seed": student.random_state, "n_threads": student.n_threads}
    else:
        kw = {"tol": tol or student.tol}
        if solver == "cd" and duplicates is not None and Zs is Z:  # rescaled columns: found again
            kw["duplicates"] = duplicates
        if max_iter:
            kw["max_iter"] = max_iter
        elif student.max_iter:
            kw["max_iter"] = student.max_iter
    with _blas_threads(student.n_threads):
        res = _solvers.solve(solver, Zs, P[:, None], student.lam_[k : k + 1], lo_s, hi_s,
                             w0, student.intercept_[k : k + 1], **kw)
    return res.coef[0] / s_c, float(res.intercept[0]), new_history


def apply_tuning(student: ConceptStudent, X, T, instructions, history=None, factor=0.5, on_conflict="error",
                 max_iter=None, tol=None, mode="bound", erase=(), erase_how="marginal", l1_scale=(), labels=None,
                 label_weight=0.0, Z=None, duplicates=None):
    """One tuning step over any number of classes: :func:`tune_class` per class, in order of
    first appearance, each refit seeing the previous ones' results. The options are
    :func:`tune_class`'s (``Z``: the standardised ``X``, shared by every class's refit, since a
    step keeps the student's standardisation; ``duplicates``: its identical columns); ``erase``
    and ``l1_scale`` are cumulative (see
    :func:`carry_step_params`).

    Returns ``(new_student, new_history)``; ``student`` is not modified. This is the step that
    :meth:`ProvenanceLog.replay` repeats, so callers that record steps should use it.
    """
    instructions = list(instructions)
    if not instructions:
        raise TuningError("no tuning instructions given")
    order: list[int] = []
    for ins in instructions:
        if not isinstance(ins, Instruction):
            raise TuningError(f"expected Instruction(class_idx, concept_idx, direction), got {ins!r}")
        if ins.class_idx not in order:
            order.append(ins.class_idx)
    history = dict(history or {})
    C = student.coef_.shape[1]
    for k in order:
        ins_k = [i for i in instructions if i.class_idx == k]
        coef_row, b, history = tune_class(student, X, T, k, ins_k, history, factor, on_conflict, max_iter, tol,
                                          mode=mode, erase=erase, erase_how=erase_how, l1_scale=l1_scale,
                                          labels=labels, label_weight=label_weight, Z=Z,
                                          duplicates=duplicates if Z is not None else None)
        lower, upper = bounds_from_history({kc: v for kc, v in history.items() if kc[0] == k}, k + 1, C)
        student = student.with_class_weights(k, coef_row, b, lower[k], upper[k])
    return student, history
