"""The tuning refit on a column-major Z, and the server's warm-up of the first step.

The session keeps Z of train column-major (the refit's Newton models gather its columns); the
refit makes any Z column-major first, so the server's step and ``ProvenanceLog.replay`` (Z from
X) stay the same student bit for bit. ``Session.warm_up`` builds the first step's arrays ahead
of it (the server runs it on a thread when it starts) and must not change any result.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from fastapi.testclient import TestClient

from inficond.server.app import create_app
from inficond.session import Session, _standardize_rows
from inficond.students import ConceptStudent, Instruction, apply_tuning
from inficond.students._solvers import synthetic_problem


def _vote(s: Session):
    k = int(np.argmax((s.student.coef_ != 0).sum(1)))
    return k, int(np.argmax(np.abs(s.student.coef_[k])))


@pytest.mark.parametrize("options", [{}, {"erase": [(1, 3)], "erase_how": "partial"}])
def test_refit_is_the_same_from_a_row_or_column_major_z(options):
    X, T = synthetic_problem(n=500, n_concepts=60, n_classes=3, seed=7, n_factors=10)
    st = ConceptStudent(lam=0.01).fit(X, T)
    votes = [Instruction(1, int(np.argmax(np.abs(st.coef_[1]))), "down")]
    Z = st.transform(X)
    assert Z.flags.c_contiguous
    a, _ = apply_tuning(st, None, T, votes, Z=Z, **options)
    b, _ = apply_tuning(st, None, T, votes, Z=np.asfortranarray(Z), **options)
    c, _ = apply_tuning(st, X, T, votes, **options)  # replay's way: Z from X
    for other in (b, c):
        assert np.array_equal(a.coef_, other.coef_) and np.array_equal(a.intercept_, other.intercept_)
    assert not np.array_equal(a.coef_, st.coef_)


def test_column_major_standardisation_has_the_same_values():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((3000, 17)).astype(np.float32)
    rows = np.sort(rng.choice(3000, 2500, replace=False))
    mean, scale = X.mean(0).astype(float), X.std(0).astype(float) + 0.1
    C = _standardize_rows(X, rows, mean, scale, block=512)
    F = _standardize_rows(X, rows, mean, scale, order="F")
    assert C.flags.c_contiguous and F.flags.f_contiguous
    assert np.array_equal(C, F) and np.array_equal(C, (X[rows] - mean) / scale)


def test_session_keeps_z_of_train_column_major_and_the_step_equals_replay(workspace):
    s = Session(workspace)
    assert s._Z("train").flags.f_contiguous and s._Z("val").flags.c_contiguous
    k, c = _vote(s)
    s.tune([{"class": k, "concept": c, "direction": "up"}])
    replayed = s.log.replay(inputs=s.ws)
    assert np.array_equal(replayed.coef_, s.student.coef_)
    assert np.array_equal(replayed.intercept_, s.student.intercept_)


def test_warm_up_builds_the_first_steps_arrays_and_changes_no_result(workspace, tmp_path):
    import shutil

    other = tmp_path / "other"
    shutil.copytree(workspace, other)
    cold, warm = Session(workspace), Session(other)
    took = warm.warm_up()
    assert set(took) == {"z_s", "solver_s"} and all(v >= 0 for v in took.values())
    assert set(warm._z_cache) == {"train"} and "train" in warm._z_dups
    z_train = warm._Z("train")
    k, c = _vote(cold)
    a = cold.tune([{"class": k, "concept": c, "direction": "up"}])
    b = warm.tune([{"class": k, "concept": c, "direction": "up"}])
    assert warm._Z("train") is z_train  # the step used the warmed Z, not a new one
    assert np.array_equal(cold.student.coef_, warm.student.coef_)
    assert a["val"] == b["val"] and a["fidelity"] == b["fidelity"]


def test_server_start_runs_the_warm_up_on_a_thread(workspace):
    s = Session(workspace)
    with TestClient(create_app(s), base_url="http://127.0.0.1") as client:  # runs the lifespan
        assert client.get("/api/summary").status_code == 200
        deadline = time.monotonic() + 60
        while "train" not in s._z_dups and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "train" in s._z_dups and s._Z("train").flags.f_contiguous
    off = Session(workspace)
    with TestClient(create_app(off, warm_up=False), base_url="http://127.0.0.1") as client:
        assert client.get("/api/summary").status_code == 200
        time.sleep(0.5)
        assert "train" not in off._z_cache


@pytest.mark.parametrize("n_classes,dtype", [(1, np.float64), (3, np.float64), (1, np.float32)])
def test_large_gathers_through_the_reused_buffer_give_the_same_solution(monkeypatch, n_classes, dtype):
    """solve_cd copies big working sets into one kept buffer (fresh pages cost ~15 ms per model
    at 71k rows); forced here on a small problem, it must give the same weights bit for bit."""
    from inficond.students import _solvers

    X, T = synthetic_problem(n=600, n_concepts=50, n_classes=n_classes, seed=3, n_factors=8)
    Z = np.asfortranarray((X - X.mean(0)) / X.std(0), dtype=dtype)  # the refit gets float64
    P = 1 / (1 + np.exp(-T.astype(np.float64)))
    lo, hi = np.full((n_classes, 50), -np.inf), np.full((n_classes, 50), np.inf)
    args = (Z, P, 0.005, lo, hi, np.zeros((n_classes, 50)), np.zeros(n_classes))
    plain = _solvers.solve_cd(*args)
    monkeypatch.setattr(_solvers, "GATHER_BUFFER_BYTES", 0)
    buffered = _solvers.solve_cd(*args)
    assert np.array_equal(plain.coef, buffered.coef) and np.array_equal(plain.intercept, buffered.intercept)
    assert (plain.coef != 0).sum() > 5 and plain.converged.all()
