"""Deterministic, stratified held-out splits."""

from __future__ import annotations

import numpy as np
import pytest

from _data_fixtures import voc_subset  # noqa: F401
from inficond.data import Dataset, ensure_splits, iterative_stratification, load_dataset
from inficond.exceptions import DataError


def _multilabel(n=600, seed=0):
    rng = np.random.default_rng(seed)
    rates = np.array([0.5, 0.3, 0.1, 0.03, 0.01])  # common to very rare labels
    return (rng.random((n, len(rates))) < rates).astype(np.uint8)


def test_iterative_stratification_balances_every_label():
    Y = _multilabel()
    fold = iterative_stratification(Y, [0.7, 0.15, 0.15], seed=0)
    assert set(fold.tolist()) == {0, 1, 2}
    sizes = np.bincount(fold, minlength=3) / len(Y)
    assert np.allclose(sizes, [0.7, 0.15, 0.15], atol=0.02)
    for lab in range(Y.shape[1]):
        pos = Y[:, lab].sum()
        got = np.bincount(fold[Y[:, lab] == 1], minlength=3)
        # each fold gets its share of every label's positives (within one or two images)
        assert np.all(np.abs(got - np.array([0.7, 0.15, 0.15]) * pos) <= 1.5), (lab, got, pos)


def test_stratification_beats_random_for_rare_labels():
    Y = _multilabel(seed=1)
    fold = iterative_stratification(Y, [0.8, 0.2], seed=0)
    rare = Y[:, 4] == 1  # about 6 positives
    assert np.bincount(fold[rare], minlength=2)[1] >= 1


def test_same_seed_same_split_other_seed_other_split():
    Y = _multilabel()
    a = iterative_stratification(Y, [0.7, 0.3], seed=5)
    assert np.array_equal(a, iterative_stratification(Y, [0.7, 0.3], seed=5))
    assert not np.array_equal(a, iterative_stratification(Y, [0.7, 0.3], seed=6))


def _ds(splits, Y):
    n = len(Y)
    return Dataset(root=".", image_ids=[f"i{k}" for k in range(n)], paths=[f"i{k}.jpg" for k in range(n)],
                   class_names=[f"c{j}" for j in range(Y.shape[1])], labels=Y, splits=np.array(splits))


def test_ensure_splits_keeps_given_val_and_carves_test_from_train():
    Y = _multilabel(400)
    splits = ["val"] * 50 + ["train"] * 350
    out = ensure_splits(_ds(splits, Y), test_fraction=0.2, seed=0)
    assert (out.splits[:50] == "val").all(), "val stays as given"
    assert len(out.indices("test")) == pytest.approx(70, abs=2)
    assert set(out.splits[50:].tolist()) == {"train", "test"}
    full = _ds(["train"] * 200 + ["val"] * 100 + ["test"] * 100, Y)
    assert ensure_splits(full) is full, "nothing to carve"


def test_ensure_splits_errors():
    Y = _multilabel(20)
    with pytest.raises(DataError, match="no train images"):
        ensure_splits(_ds(["val"] * 20, Y))
    with pytest.raises(DataError, match="fractions"):
        ensure_splits(_ds(["train"] * 20, Y), test_fraction=0.6)


def test_dev_data_split_is_stable_and_stratified(voc_subset):
    a, b = load_dataset(voc_subset, seed=0), load_dataset(voc_subset, seed=0)
    assert np.array_equal(a.splits, b.splits)
    assert not np.array_equal(a.splits, load_dataset(voc_subset, seed=1).splits)
    tr = (a.splits == "train") | (a.splits == "test")  # the original train part
    share = a.labels[a.splits == "test"].sum(0) / np.maximum(a.labels[tr].sum(0), 1)
    common = a.labels[tr].sum(0) >= 40
    assert np.all(np.abs(share[common] - 0.15) < 0.02), share[common]
