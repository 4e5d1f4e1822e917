"""Block-wise computations that keep the server's memory peak down at scale give the same answers.

benchmarks/bench_memory.py measures the memory; these check the values against the direct,
whole-array formulas on more rows than one block.
"""

from __future__ import annotations

import numpy as np
import pytest

from inficond.analysis import suggest
from inficond.analysis.suggest import shortcut_suspects
from inficond.session import _standardize_rows


def _partial_corr_direct(Z, t, y):
    tr, Zr = t.astype(float).copy(), Z.astype(float).copy()
    for g in (y, ~y):
        if g.any():
            tr[g] -= tr[g].mean()
            Zr[g] -= Zr[g].mean(axis=0)
    return (Zr.T @ tr) / (np.linalg.norm(Zr, axis=0) * np.linalg.norm(tr))


@pytest.mark.parametrize("positives", [0.2, 0.0])
def test_shortcut_suspects_over_many_blocks_is_the_direct_partial_correlation(positives):
    rng = np.random.default_rng(5)
    n = 3 * suggest._BLOCK + 17
    Z = rng.normal(size=(n, 12))
    y = rng.random(n) < positives
    t = Z[:, 4] * 0.8 + 2.0 * y + rng.normal(size=n)
    want = _partial_corr_direct(Z, t, y)
    got = shortcut_suspects(Z, t, y, k=12, min_corr=-1.0)
    assert [d["concept_idx"] for d in got] == np.argsort(-want, kind="stable").tolist()
    np.testing.assert_allclose([d["partial_corr"] for d in got], np.sort(want)[::-1], rtol=0, atol=1e-12)
    assert got[0]["concept_idx"] == 4


def test_standardize_rows_in_blocks_equals_the_whole_formula():
    rng = np.random.default_rng(6)
    X = rng.random((1000, 7)).astype(np.float32)
    rows = np.sort(rng.choice(1000, 613, replace=False))
    mean, scale = X[rows].mean(0).astype(float), X[rows].std(0).astype(float)
    Z = _standardize_rows(X, rows, mean, scale, block=100)
    assert Z.dtype == np.float64 and Z.flags.c_contiguous
    assert np.array_equal(Z, (X[rows] - mean) / scale)  # the same values, bit for bit
    assert _standardize_rows(X, rows[:0], mean, scale).shape == (0, 7)


def test_float32_rows_index_like_the_float32_copy(tmp_path):
    from inficond.store.workspace import Float32Rows

    rng = np.random.default_rng(7)
    path = tmp_path / "a.npy"
    np.save(path, rng.normal(size=(50, 6)).astype(np.float16))
    mm = np.load(path, mmap_mode="r")
    X, F = np.asarray(mm, dtype=np.float32), Float32Rows(mm)
    rows = np.array([3, 1, 40, 40])
    for idx in (rows, (rows, 2), (slice(None), [0, 5]), 7, (7, 1)):
        got = F[idx]
        assert np.asarray(got).dtype == np.float32 and np.array_equal(got, X[idx])
    assert F.shape == X.shape and len(F) == 50 and np.array_equal(np.asarray(F), X)
