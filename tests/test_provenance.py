"""Provenance in a real workspace: record, undo, revert, branches, replay, atomicity."""

import numpy as np
import pytest

from inficond.exceptions import TuningError
from inficond.store.workspace import Workspace
from inficond.students import ConceptStudent, Instruction, ProvenanceLog, apply_tuning
from inficond.students._solvers import synthetic_problem


@pytest.fixture(scope="module")
def data():
    X, T = synthetic_problem(n=300, n_concepts=40, n_classes=3, seed=6, n_factors=8)
    return X, T


@pytest.fixture
def session(tmp_path, data):
    X, T = data
    ws = Workspace(tmp_path / "ws", create=True)
    log = ProvenanceLog(ws)
    st = ConceptStudent(lam=np.array([0.01, 0.02, 0.015])).fit(X, T)
    root = log.record_distill(st, {"chosen_by": "test"})
    return ws, log, st, root


def step(log, st, history, parent, ins, X, T):
    new, h = apply_tuning(st, X, T, ins, history, factor=0.4)
    sid = log.record_step(parent, new, ins, h, {"val": 0.5}, {"val": 0.6}, 12.5, {"factor": 0.4})
    return new, h, sid


def test_record_and_load_are_exact(session, data):
    X, T = data
    ws, log, st, root = session
    assert log.head() == root
    loaded, hist = log.load_state(root)
    np.testing.assert_array_equal(loaded.coef_, st.coef_)
    np.testing.assert_array_equal(loaded.intercept_, st.intercept_)
    np.testing.assert_array_equal(loaded.decision_function(X), st.decision_function(X))
    assert hist == {}
    new, h, sid = step(log, st, {}, root, [Instruction(0, 3, "up")], X, T)
    loaded, hist = log.load_state()
    np.testing.assert_array_equal(loaded.coef_, new.coef_)
    assert hist == h and loaded.lower_[0, 3] == h[(0, 3)][0]
    s = log.steps()
    assert [x["kind"] for x in s] == ["distill", "tune"]
    assert s[1]["instructions"] == [{"class_idx": 0, "concept_idx": 3, "direction": "up"}]
    assert s[1]["metrics_after"] == {"val": 0.6} and s[1]["duration_ms"] == 12.5


def test_undo_revert_and_branches(session, data):
    X, T = data
    ws, log, st, root = session
    s1, h1, a = step(log, st, {}, root, [Instruction(1, 2, "down")], X, T)
    s2, h2, b = step(log, s1, h1, a, [Instruction(1, 5, "up")], X, T)
    assert log.undo() == a and log.head() == a
    assert log.undo() == root
    with pytest.raises(TuningError, match="nothing to undo"):
        log.undo()
    assert log.revert(b) == b
    assert [x["id"] for x in log.steps()] == [root, a, b]
    # a new step from `a` makes a second branch; b stays
    log.revert(a)
    s3, h3, c = step(log, s1, h1, a, [Instruction(2, 0, "up")], X, T)
    states = log.all_states()
    assert {x["id"] for x in states} == {root, a, b, c}
    assert {x["id"]: x["parent_id"] for x in states}[c] == a
    assert [x["id"] for x in states if x["is_head"]] == [c]
    assert [x["id"] for x in log.steps(branch=b)] == [root, a, b]
    with pytest.raises(TuningError, match="no student state 99"):
        log.revert(99)


def test_replay_reproduces_the_weights(session, data):
    X, T = data
    ws, log, st, root = session
    s1, h1, a = step(log, st, {}, root, [Instruction(1, 2, "down"), Instruction(0, 1, "up")], X, T)
    s2, h2, b = step(log, s1, h1, a, [Instruction(1, 5, "up")], X, T)
    replayed = log.replay(log.steps(), (X, T))
    np.testing.assert_allclose(replayed.coef_, s2.coef_, atol=1e-12, rtol=0)
    np.testing.assert_allclose(replayed.intercept_, s2.intercept_, atol=1e-12, rtol=0)
    with pytest.raises(TuningError, match="starts with a distillation"):
        log.replay(log.steps()[1:], (X, T))


def test_persists_across_reopen(session, data, tmp_path):
    X, T = data
    ws, log, st, root = session
    _, _, a = step(log, st, {}, root, [Instruction(0, 0, "down")], X, T)
    ws.db.close()
    log2 = ProvenanceLog(Workspace(tmp_path / "ws"))
    assert log2.head() == a and len(log2.all_states()) == 2


def test_a_failed_write_leaves_no_half_step(session, data, monkeypatch):
    X, T = data
    ws, log, st, root = session
    new, h = apply_tuning(st, X, T, [Instruction(0, 0, "up")], {})

    def boom(*a, **k):
        raise RuntimeError("killed")

    monkeypatch.setattr(ws, "set_meta", boom)  # fails after the rows were inserted
    with pytest.raises(RuntimeError):
        log.record_step(root, new, [Instruction(0, 0, "up")], h)
    monkeypatch.undo()
    assert len(log.all_states()) == 1 and log.head() == root
    assert ws.db.execute("SELECT COUNT(*) FROM tuning_steps").fetchone()[0] == 0


def test_bad_step_params_and_parent(session, data):
    X, T = data
    ws, log, st, root = session
    with pytest.raises(TuningError, match="unknown step_params"):
        log.record_step(root, st, [Instruction(0, 0, "up")], {}, step_params={"lr": 1})
    with pytest.raises(TuningError, match="no student state"):
        log.record_step(42, st, [Instruction(0, 0, "up")], {})


def test_replay_from_workspace_arrays(session, data):
    X, T = data
    ws, log, st, root = session
    n = X.shape[0]
    # a workspace whose train split is exactly (X, T), plus a few val images that must be ignored
    Xall = np.vstack([X, np.zeros((5, X.shape[1]), np.float32)])
    Tall = np.vstack([T, np.zeros((5, T.shape[1]), np.float32)])
    with ws.transaction() as db:
        db.executemany(
            "INSERT INTO images(idx, image_id, path, split, labels, status) VALUES (?, ?, ?, ?, ?, 'done')",
            [(i, f"im{i}", f"im{i}.jpg", "train" if i < n else "val", "000") for i in range(n + 5)],
        )
    ws.save_array("concept_vectors", Xall.astype(np.float32))
    ws.save_array("teacher_logits", Tall.astype(np.float32))
    s1, h1, a = step(log, st, {}, root, [Instruction(2, 4, "down")], X, T)
    replayed = log.replay(inputs=ws)
    np.testing.assert_allclose(replayed.coef_, s1.coef_, atol=1e-12, rtol=0)


def test_replay_spans_added_concepts(tmp_path, data):
    """Distilled on 30 concepts, tuned, 10 concepts added (add-concepts), tuned on a new one:
    replay on today's 40-column inputs must give the recorded state, not a refit on all 40."""
    X, T = data
    ws = Workspace(tmp_path / "ws", create=True)
    log = ProvenanceLog(ws)
    lam = np.array([0.01, 0.02, 0.015])
    st = ConceptStudent(lam=lam).fit(X[:, :30], T)
    root = log.record_distill(st)
    s1, h1, a = step(log, st, {}, root, [Instruction(1, 2, "down")], X[:, :30], T)
    # what the session does when concepts were added: new columns at influence 0, standardised
    # with their train mean and standard deviation (float64)
    wide = ConceptStudent(**s1.get_params())
    for attr in ("intercept_", "lam_", "n_nonzero_", "n_iter_", "kkt_", "converged_", "lower_", "upper_"):
        if hasattr(s1, attr):
            setattr(wide, attr, getattr(s1, attr))
    new = X[:, 30:].astype(np.float64)
    wide.coef_ = np.hstack([s1.coef_, np.zeros((3, 10))])
    wide.mean_ = np.concatenate([s1.mean_, new.mean(0)])
    wide.scale_ = np.concatenate([s1.scale_, np.where(new.std(0) > 0, new.std(0), 1.0)])
    wide.lower_ = np.pad(s1.lower_, ((0, 0), (0, 10)), constant_values=-np.inf)
    wide.upper_ = np.pad(s1.upper_, ((0, 0), (0, 10)), constant_values=np.inf)
    s2, h2, b = step(log, wide, h1, a, [Instruction(0, 35, "up"), Instruction(0, 3, "down")], X, T)
    assert s2.coef_[0, 35] > 0
    replayed = log.replay(inputs=(X, T))
    assert replayed.coef_.shape == (3, 40)
    np.testing.assert_allclose(replayed.coef_, s2.coef_, atol=1e-10, rtol=0)
    np.testing.assert_allclose(replayed.intercept_, s2.intercept_, atol=1e-10, rtol=0)
    # a path that stops before the addition replays on the old columns only
    mid = log.replay(log.steps(a), (X, T))
    assert mid.coef_.shape == (3, 30)
    np.testing.assert_allclose(mid.coef_, s1.coef_, atol=1e-10, rtol=0)
