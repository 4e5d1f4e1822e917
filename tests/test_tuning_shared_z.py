"""A tuning refit that reads the caller's standardised concepts ``Z`` instead of copying ``X``.

The session keeps Z of the train split; passing it saves a float32 and a float64 copy of the
train rows per refit (benchmarks/bench_memory.py). The result must be the same step, bit for bit.
"""

from __future__ import annotations

import numpy as np
import pytest

from inficond.exceptions import DataError
from inficond.session import Session
from inficond.students import ConceptStudent, Instruction, apply_tuning
from inficond.students._solvers import synthetic_problem


@pytest.fixture(scope="module")
def fitted():
    X, T = synthetic_problem(n=400, n_concepts=50, n_classes=3, seed=4, n_factors=10)
    return X, T, ConceptStudent(lam=0.01).fit(X, T)


@pytest.mark.parametrize("options", ["bound", "soft", "erase"])
def test_refit_from_z_equals_refit_from_x(fitted, options):
    X, T, st = fitted
    top, zero = int(np.argmax(st.coef_[1])), int(np.flatnonzero(st.coef_[1] == 0)[0])
    votes = [Instruction(1, top, "down"), Instruction(2, 5, "up")]
    if options == "soft":  # a soft up-vote: no bound, the concept's L1 penalty nearly lifted
        votes, options = [Instruction(1, zero, "up")], {"mode": "soft", "l1_scale": [(1, zero, 0.0)]}
    else:
        options = {"erase": [(1, 3)], "erase_how": "partial"} if options == "erase" else {}
    a, hist_a = apply_tuning(st, X, T, votes, **options)
    Z = st.transform(X)
    before = Z.copy()
    b, hist_b = apply_tuning(st, None, T, votes, Z=Z, **options)
    assert np.array_equal(a.coef_, b.coef_) and np.array_equal(a.intercept_, b.intercept_)
    assert hist_a == hist_b
    assert not np.array_equal(a.coef_, st.coef_)  # the step did move weights
    assert np.array_equal(Z, before) and Z.flags.writeable  # the caller's Z untouched, still its own


def test_refit_refuses_a_z_of_another_shape_or_type(fitted):
    X, T, st = fitted
    vote = [Instruction(1, 0, "up")]
    with pytest.raises(DataError, match="Z must be float64"):
        apply_tuning(st, None, T, vote, Z=st.transform(X)[:, :10])
    with pytest.raises(DataError, match="Z must be float64"):
        apply_tuning(st, None, T, vote, Z=st.transform(X).astype(np.float32))


def test_session_tune_is_the_step_refit_from_x(workspace):
    s = Session(workspace)
    train = s.rows("train")
    k = int(np.argmax((s.student.coef_ != 0).sum(1)))
    c = int(np.argmax(np.abs(s.student.coef_[k])))
    student, history = s.student, s.history
    want, _ = apply_tuning(student, s.X[train], s.T[train], [Instruction(k, c, "down")], history)
    s.tune([{"class": k, "concept": c, "direction": "down"}])
    assert np.array_equal(s.student.coef_, want.coef_) and np.array_equal(s.student.intercept_, want.intercept_)


def test_session_tune_and_shortcut_scoring_read_no_rows_of_x_once_z_is_kept(workspace):
    """The refit must take the kept Z: a copy of X[train] per refit was +0.5 GB of peak at 100k."""
    from inficond.store.workspace import Float32Rows

    class CountingRows(Float32Rows):  # the real rows, counted
        reads = 0

        def __getitem__(self, idx):
            CountingRows.reads += 1
            return super().__getitem__(idx)

    s = Session(workspace)
    for split in ("train", "val", "test"):
        s._Z(split)  # kept from here on (the views build them)
    s.__dict__["X"] = CountingRows(s.ws.array("concept_vectors"))
    k = int(np.argmax((s.student.coef_ != 0).sum(1)))
    c = int(np.argmax(np.abs(s.student.coef_[k])))
    s.tune([{"class": k, "concept": c, "direction": "down"}])
    s._suggest_shortcuts(k, 3, "val")
    assert CountingRows.reads == 0
