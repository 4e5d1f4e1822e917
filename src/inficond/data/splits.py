"""Held-out splits carved deterministically from ``train``, and per-class support counts."""

from __future__ import annotations

import numpy as np

from inficond.data.dataset import SPLITS, Dataset
from inficond.exceptions import DataError


def iterative_stratification(labels: np.ndarray, fractions: list[float], seed: int = 0) -> np.ndarray:
    """Assign rows of a multi-label matrix to folds so each label's positives follow ``fractions``.

    Sechidis et al. (2011), "On the stratification of multi-label data": repeatedly take the label
    with the fewest positives still unassigned and deal its rows to the fold that most wants that
    label (ties: the fold that wants most rows overall, then at random).

    Parameters
    ----------
    labels : ndarray (n, n_labels) of 0/1
    fractions : list of floats summing to 1, one per fold
    seed : int; the same seed gives the same assignment

    Returns
    -------
    ndarray (n,) of int fold index.
    """
    Y = np.asarray(labels) > 0
    n = len(Y)
    fr = np.asarray(fractions, dtype=float)
    if np.any(fr < 0) or not np.isclose(fr.sum(), 1.0):
        raise DataError(f"fractions must be >= 0 and sum to 1; got {fractions}")
    rng = np.random.default_rng(seed)
    want_rows = fr * n
    want_label = np.outer(fr, Y.sum(0)).astype(float)  # (folds, labels)
    fold = np.full(n, -1)
    left = Y.copy()  # positives of still-unassigned rows

    def pick(cands: np.ndarray) -> int:
        best = cands[want_rows[cands] == want_rows[cands].max()]
        return int(rng.choice(best))

    while True:
        counts = left.sum(0)
        if not counts.any():
            break
        lab = int(np.flatnonzero(counts == counts[counts > 0].min())[0])  # rarest label first
        rows = np.flatnonzero(left[:, lab])
        for r in rows[rng.permutation(len(rows))]:
            w = want_label[:, lab]
            f = pick(np.flatnonzero(w == w.max()))
            fold[r] = f
            want_rows[f] -= 1
            want_label[f] -= Y[r]
            left[r] = False
    for r in rng.permutation(np.flatnonzero(fold < 0)):  # rows with no label at all
        f = pick(np.arange(len(fr)))
        fold[r] = f
        want_rows[f] -= 1
    return fold


def ensure_splits(ds: Dataset, test_fraction: float = 0.15, val_fraction: float | None = None,
                  seed: int = 0) -> Dataset:
    """Give ``ds`` a ``test`` (and if needed a ``val``) split carved from ``train``.

    Parameters
    ----------
    ds : Dataset
    test_fraction : share of the *train* images moved to ``test`` when there is no test split.
    val_fraction : share of the train images moved to ``val`` when there is no val split
        (default ``test_fraction``). A given val split is never changed.
    seed : the same seed gives the same split.

    Returns
    -------
    A new Dataset (``ds`` itself when nothing needs carving). Carving is stratified per class with
    :func:`iterative_stratification`, so rare classes still get positives in every split.
    """
    present = set(ds.splits.tolist())
    need = [s for s in ("val", "test") if s not in present]
    if not need:
        return ds
    train = ds.indices("train")
    if len(train) == 0:
        raise DataError(f"cannot carve {' and '.join(need)} splits: the dataset has no train images")
    val_fraction = test_fraction if val_fraction is None else val_fraction
    share = {"val": val_fraction, "test": test_fraction}
    fr = [share[s] for s in need]
    if not all(0 < f < 1 for f in fr) or sum(fr) >= 1:
        raise DataError(f"split fractions must be in (0, 1) and leave some train images; got {dict(zip(need, fr))}")
    fold = iterative_stratification(ds.labels[train], [1 - sum(fr), *fr], seed=seed)
    splits = ds.splits.copy()
    for j, s in enumerate(need, start=1):
        splits[train[fold == j]] = s
    return Dataset(root=ds.root, image_ids=list(ds.image_ids), paths=list(ds.paths), class_names=list(ds.class_names),
                   labels=ds.labels.copy(), splits=splits, skipped=list(ds.skipped))


def class_support(ds: Dataset, min_positives: int = 5) -> dict[str, dict]:
    """Positives per class and split, and whether the class is usable for mean metrics.

    Parameters
    ----------
    ds : Dataset
    min_positives : a class with fewer positives than this in ``val`` or ``test`` is excluded.

    Returns
    -------
    ``{class: {"train": int, "val": int, "test": int, "excluded": bool, "reason": str | None}}``
    in class order.
    """
    out = {}
    pos = {s: ds.labels[ds.indices(s)].sum(0) for s in SPLITS}
    for k, name in enumerate(ds.class_names):
        row = {s: int(pos[s][k]) for s in SPLITS}
        low = [f"{s} has {row[s]}" for s in ("val", "test") if row[s] < min_positives]
        row["excluded"] = bool(low)
        row["reason"] = f"fewer than {min_positives} positives ({', '.join(low)})" if low else None
        out[name] = row
    return out
