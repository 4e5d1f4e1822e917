"""Concept tuning: votes become bounds, bounds accumulate, the refit respects them."""

import numpy as np
import pytest

from inficond.exceptions import TuningError
from inficond.students import ConceptStudent, Instruction, apply_tuning, tune_bounds, tune_class
from inficond.students._solvers import synthetic_problem
from inficond.students.tuning import reference_influence

K_ = 1  # the tuned class


@pytest.fixture(scope="module")
def setup():
    X, T = synthetic_problem(n=400, n_concepts=50, n_classes=3, seed=4, n_factors=10)
    st = ConceptStudent(lam=0.01).fit(X, T)
    return X, T, st


def concepts(st):
    w = st.coef_[K_]
    pos = int(np.argmax(w))
    neg = int(np.argmin(w))
    zero = int(np.flatnonzero(w == 0)[0])
    return w, pos, neg, zero


def test_bounds_rule(setup):
    _, _, st = setup
    w, pos, neg, zero = concepts(st)
    ref = reference_influence(w)
    assert ref == pytest.approx(np.sort(np.abs(w))[::-1][:10].mean())
    ins = [Instruction(K_, pos, "up"), Instruction(K_, neg, "up"), Instruction(K_, zero, "down")]
    h = tune_bounds(w, ins, factor=0.5)
    assert h[(K_, pos)] == (pytest.approx(w[pos] + 0.5 * max(w[pos], ref)), np.inf)
    assert h[(K_, neg)][0] == pytest.approx(w[neg] + 0.5 * max(-w[neg], ref))
    assert h[(K_, neg)][0] > w[neg]  # towards zero
    assert h[(K_, zero)] == (-np.inf, pytest.approx(-0.5 * ref))  # a zero weight still gets a bound


def test_downtune_positive_and_uptune_zero_move_the_weights(setup):
    X, T, st = setup
    w, pos, _, zero = concepts(st)
    ref = reference_influence(w)
    row, b, h = tune_class(st, X, T, K_, [Instruction(K_, pos, "down"), Instruction(K_, zero, "up")], {})
    assert row[pos] <= w[pos] - 0.5 * max(w[pos], ref)
    assert row[zero] >= 0.5 * ref > 0
    assert np.isfinite(b)
    np.testing.assert_array_equal(st.coef_[K_], w)  # the student itself is not modified


def test_refit_is_the_bounded_optimum(setup):
    X, T, st = setup
    w, pos, neg, zero = concepts(st)
    ins = [Instruction(K_, pos, "down"), Instruction(K_, neg, "up")]
    new, h = apply_tuning(st, X, T, ins, {})
    # a full cold fit with the same bounds lands on the same weights
    cold = ConceptStudent(lam=0.01).fit(X, T, lower=new.lower_, upper=new.upper_)
    np.testing.assert_allclose(new.coef_[K_], cold.coef_[K_], atol=1e-6)
    assert np.all(new.kkt_violation(X, T)[K_] <= 1e-7)
    np.testing.assert_array_equal(np.delete(new.coef_, K_, 0), np.delete(st.coef_, K_, 0))


def test_history_is_kept_across_steps(setup):
    X, T, st = setup
    w, pos, neg, zero = concepts(st)
    s1, h1 = apply_tuning(st, X, T, [Instruction(K_, pos, "down")], {})
    s2, h2 = apply_tuning(s1, X, T, [Instruction(K_, zero, "up")], h1)
    assert (K_, pos) in h2 and h2[(K_, pos)] == h1[(K_, pos)]
    assert s2.coef_[K_, pos] <= h1[(K_, pos)][1]  # the first vote still holds
    assert s2.coef_[K_, zero] >= h2[(K_, zero)][0]
    # the same vote again tightens from the current weight
    s3, h3 = apply_tuning(s2, X, T, [Instruction(K_, pos, "down")], h2)
    assert h3[(K_, pos)][1] < h2[(K_, pos)][1]
    assert s3.coef_[K_, pos] <= h3[(K_, pos)][1]


def test_opposite_vote_conflicts_unless_replace(setup):
    X, T, st = setup
    w, pos, _, _ = concepts(st)
    _, h1 = apply_tuning(st, X, T, [Instruction(K_, pos, "down")], {})
    with pytest.raises(TuningError, match="downtuned before"):
        tune_bounds(w, [Instruction(K_, pos, "up")], h1)
    h2 = tune_bounds(w, [Instruction(K_, pos, "up")], h1, on_conflict="replace")
    assert h2[(K_, pos)][1] == np.inf and h2[(K_, pos)][0] > w[pos]
    with pytest.raises(TuningError, match="both up and down"):
        tune_class(st, X, T, K_, [Instruction(K_, pos, "up"), Instruction(K_, pos, "down")])


@pytest.mark.parametrize(
    "ins, match",
    [
        (Instruction(K_, 50, "up"), "concept index 50"),
        (Instruction(K_, -1, "up"), "concept index -1"),
        (Instruction(K_, 3, "sideways"), "direction 'sideways'"),
        (Instruction(0, 3, "up"), "is for class 0"),
    ],
)
def test_bad_instructions(setup, ins, match):
    X, T, st = setup
    with pytest.raises(TuningError, match=match):
        tune_class(st, X, T, K_, [ins])


def test_bad_class_and_empty(setup):
    X, T, st = setup
    with pytest.raises(TuningError, match="class index 7"):
        tune_class(st, X, T, 7, [Instruction(7, 0, "up")])
    with pytest.raises(TuningError, match="no tuning instructions"):
        tune_class(st, X, T, K_, [])


def test_tuning_a_student_widened_with_new_concepts(setup):
    """A student padded with zero influences for concepts added later can still be tuned."""
    X, T, st = setup
    import copy

    wide = copy.deepcopy(st)
    X2 = np.hstack([X, X[:, :2] * 0.5])
    wide.coef_ = np.hstack([st.coef_, np.zeros((3, 2))])
    wide.mean_ = np.concatenate([st.mean_, X2[:, 50:].mean(0)])
    wide.scale_ = np.concatenate([st.scale_, X2[:, 50:].std(0)])
    new, h = apply_tuning(wide, X2, T, [Instruction(K_, 51, "up")], {})
    assert new.lower_.shape == (3, 52) and new.coef_[K_, 51] >= h[(K_, 51)][0] > 0


# -- step options: erase, soft votes, label mixing ----------------------------------------------
from inficond.store.workspace import Workspace  # noqa: E402
from inficond.students import ProvenanceLog  # noqa: E402
from inficond.students._solvers import kkt_violation, smooth_loss_grad  # noqa: E402
from inficond.students.tuning import SOFT_DOWN, carry_step_params, erase_share  # noqa: E402
from scipy.special import expit  # noqa: E402


def test_erase_marginal_leaves_nothing_correlated_with_the_erased_concepts(setup):
    X, T, st = setup
    Z = st.transform(X)
    t = T[:, K_].astype(float)
    out = erase_share(Z, t, [3, 7], "marginal", ridge=0)
    Zc = Z[:, [3, 7]] - Z[:, [3, 7]].mean(0)
    np.testing.assert_allclose(Zc.T @ (out - out.mean()), 0, atol=1e-8 * len(t))
    assert out.mean() == pytest.approx(t.mean())
    assert np.abs(Zc.T @ (t - t.mean())).max() > 1  # there was something to erase


def test_erase_partial_removes_only_the_concept_own_share():
    rng = np.random.default_rng(0)
    Z = rng.standard_normal((2000, 6))
    Z[:, 1] += 0.8 * Z[:, 0]  # correlated with the erased concept
    t = 1.5 * Z[:, 0] + 2.0 * Z[:, 1] + 0.3
    part = erase_share(Z, t, [0], "partial", ridge=0)
    np.testing.assert_allclose(part, 2.0 * Z[:, 1] + 0.3 + 1.5 * Z[:, 0].mean(), atol=1e-8)
    marg = erase_share(Z, t, [0], "marginal", ridge=0)  # also takes concept 1's correlated part
    assert abs(np.corrcoef(marg, Z[:, 0])[0, 1]) < 1e-8
    with pytest.raises(TuningError, match="erase_how"):
        erase_share(Z, t, [0], "sideways")


def test_erase_undoes_a_synthetic_shortcut(setup):
    """Teacher logit + 2 std of concept c: a bound alone keeps the shortcut in the other weights;
    erasing c's share gets the clean student's weights back (close)."""
    X, T, st = setup
    Z = st.transform(X)
    w = st.coef_[K_]
    c = int(np.flatnonzero(w == 0)[0])  # a concept the clean student does not use
    Ts = T.astype(float).copy()
    Ts[:, K_] += 2 * T[:, K_].std() * Z[:, c]
    short = ConceptStudent(lam=0.01).fit(X, Ts)
    assert short.coef_[K_, c] > 0.5
    down = [Instruction(K_, c, "down")]
    bound_only, _ = apply_tuning(short, X, Ts, down, {}, factor=1.0)
    erased, _ = apply_tuning(short, X, Ts, down, {}, factor=1.0, erase=[(K_, c)])
    err_bound = np.abs(np.delete(bound_only.coef_[K_] - w, c)).sum()
    err_erase = np.abs(np.delete(erased.coef_[K_] - w, c)).sum()
    assert err_erase < 0.5 * err_bound
    assert erased.coef_[K_, c] <= erased.upper_[K_, c]  # the bound still holds


def test_soft_votes_change_the_penalty_not_the_bounds(setup):
    X, T, st = setup
    w, pos, _, zero = concepts(st)
    ins = [Instruction(K_, pos, "down"), Instruction(K_, zero, "up")]
    params = carry_step_params(None, ins, mode="soft")
    assert params == {"l1_scale": sorted([[K_, pos, SOFT_DOWN], [K_, zero, 0.0]])}
    new, h = apply_tuning(st, X, T, ins, {}, mode="soft", **params)
    # the only bounds: never against the vote, at the current weight
    assert h == {(K_, pos): (-np.inf, w[pos]), (K_, zero): (0.0, np.inf)}
    assert new.coef_[K_, zero] >= 0 and new.coef_[K_, pos] <= w[pos]
    assert abs(new.coef_[K_, pos]) < abs(w[pos])
    # the result is the optimum of the per-concept penalty: KKT with lam * multiplier
    Z = st.transform(X)
    _, G, gB, _ = smooth_loss_grad(Z, expit(T[:, [K_]]), new.coef_[[K_]], new.intercept_[[K_]])
    lam_c = np.full((1, Z.shape[1]), st.lam_[K_])
    lam_c[0, pos] *= SOFT_DOWN
    lam_c[0, zero] *= 1e-3
    wk, g = new.coef_[K_], G[0]
    viol = np.where(wk != 0, np.abs(g + lam_c[0] * np.sign(wk)), np.maximum(np.abs(g) - lam_c[0], 0))
    at_bound = (wk == new.lower_[K_]) | (wk == new.upper_[K_])
    assert viol[~at_bound].max() <= 1e-6 and abs(gB[0]) <= 1e-6


def test_label_weight_mixes_ground_truth_into_the_target(setup):
    X, T, st = setup
    w, pos, _, _ = concepts(st)
    rng = np.random.default_rng(1)
    Y = (rng.random(T.shape) < expit(T)).astype(np.uint8)
    ins = [Instruction(K_, pos, "up")]
    with pytest.raises(TuningError, match="pass labels"):
        apply_tuning(st, X, T, ins, {}, label_weight=0.3)
    with pytest.raises(TuningError, match="labels must have shape"):
        apply_tuning(st, X, T, ins, {}, labels=Y[:10], label_weight=0.3)
    with pytest.raises(TuningError, match="label_weight must be"):
        apply_tuning(st, X, T, ins, {}, labels=Y, label_weight=1.5)
    plain, _ = apply_tuning(st, X, T, ins, {})
    mixed, _ = apply_tuning(st, X, T, ins, {}, labels=Y, label_weight=0.3)
    assert not np.allclose(plain.coef_[K_], mixed.coef_[K_])
    Z = st.transform(X)
    P = 0.7 * expit(T[:, [K_]]) + 0.3 * Y[:, [K_]]
    _, G, _, _ = smooth_loss_grad(Z, P, mixed.coef_[[K_]], mixed.intercept_[[K_]])
    assert kkt_violation(mixed.coef_[[K_]], G, st.lam_[[K_]][:, None], mixed.lower_[[K_]], mixed.upper_[[K_]]).max() <= 1e-6


def test_carry_step_params_accumulates_erased_concepts():
    p1 = carry_step_params(None, [Instruction(1, 4, "down"), Instruction(1, 2, "up")], erase=True)
    assert p1 == {"erase": [[1, 4]]}
    p2 = carry_step_params(p1, [Instruction(0, 3, "down")], erase=True)
    assert p2 == {"erase": [[0, 3], [1, 4]]}
    assert carry_step_params(p2, [Instruction(0, 5, "down")], erase=False) == p2


def test_replay_repeats_the_step_options(setup, tmp_path):
    X, T, st = setup
    w, pos, _, zero = concepts(st)
    Y = (T > 0).astype(np.uint8)
    log = ProvenanceLog(Workspace(tmp_path / "ws", create=True))
    root = log.record_distill(st)
    i1 = [Instruction(K_, pos, "down")]
    p1 = {"factor": 0.5, **carry_step_params(None, i1, erase=True), "erase_how": "marginal", "label_weight": 0.2}
    s1, h1 = apply_tuning(st, X, T, i1, {}, labels=Y, **p1)
    a = log.record_step(root, s1, i1, h1, step_params=p1)
    i2 = [Instruction(K_, zero, "up")]
    p2 = {"mode": "soft", **carry_step_params(p1, i2, mode="soft")}
    s2, h2 = apply_tuning(s1, X, T, i2, h1, **p2)
    log.record_step(a, s2, i2, h2, step_params=p2)
    replayed = log.replay(log.steps(), (X, T, Y))
    np.testing.assert_allclose(replayed.coef_, s2.coef_, atol=1e-10, rtol=0)
    with pytest.raises(TuningError, match="unknown step_params"):
        log.record_step(a, s2, i2, h2, step_params={"strength": 1})


def test_an_adam_student_is_refitted_the_papers_way(setup):
    """The paper's recipe: a few warm-started Adam epochs (not the exact optimum), bounds clamped."""
    X, T, _ = setup
    st = ConceptStudent(lam=1e-4, solver="adam-paper").fit(X, T)
    pos = int(np.argmax(st.coef_[K_]))
    ins = [Instruction(K_, pos, "down")]
    a, h = apply_tuning(st, X, T, ins, {})
    b, _ = apply_tuning(st, X, T, ins, {})
    np.testing.assert_array_equal(a.coef_, b.coef_)  # seeded: replayable
    assert a.coef_[K_, pos] <= h[(K_, pos)][1]
    exact, _ = apply_tuning(ConceptStudent(lam=1e-4).fit(X, T), X, T, ins, {})
    assert np.abs(a.coef_[K_] - exact.coef_[K_]).max() > 1e-3


def test_session_records_the_options_and_reports_fidelity(workspace):
    """Through the engine facade: options land in the step params (replay repeats them), erased
    concepts carry over to later steps, and each step says how it moved the class from the teacher."""
    from inficond.session import Session

    s = Session(workspace)
    k = int(np.argmax(s.Y[s.rows("train")].sum(0)))  # the best-populated class
    coef = s.student.coef_[k]
    top = [int(c) for c in np.argsort(-np.abs(coef))[:3]]
    r1 = s.tune([{"class": k, "concept": top[0], "direction": "down"}], erase=True)
    fid = r1["fidelity"]
    assert fid["split"] == "val" and set(fid["before"]) == {"agreement", "kl"}
    assert fid["change"]["kl"] == pytest.approx(fid["after"]["kl"] - fid["before"]["kl"])
    assert fid["after"]["kl"] > fid["before"]["kl"]  # the exact student was the closest to the teacher
    assert isinstance(fid["costs_fidelity"], bool)
    assert r1["options"] == {"erase": [[k, top[0]]], "erase_how": "marginal"}
    r2 = s.tune([{"class": k, "concept": top[1], "direction": "up"}], mode="soft", label_weight=0.2)
    params = s.log.steps()[-1]["step_params"]
    assert params["erase"] == [[k, top[0]]]  # still erased
    assert params["mode"] == "soft" and params["l1_scale"] == [[k, top[1], 0.0]] and params["label_weight"] == 0.2
    assert r2["options"]["mode"] == "soft"
    replayed = s.log.replay(inputs=s.ws)
    np.testing.assert_allclose(replayed.coef_, s.student.coef_[:, : replayed.coef_.shape[1]], atol=1e-8)
    with pytest.raises(TuningError, match="mode must be"):
        s.tune([{"class": k, "concept": top[2], "direction": "up"}], mode="gentle")
    with pytest.raises(TuningError, match="label_weight"):
        s.tune([{"class": k, "concept": top[2], "direction": "up"}], label_weight=2)


def test_the_api_passes_the_options_and_returns_fidelity(workspace):
    from fastapi.testclient import TestClient

    from inficond.server import create_app
    from inficond.session import Session

    s = Session(workspace)
    client = TestClient(create_app(s), base_url="http://127.0.0.1")
    k = int(np.argmax(s.Y[s.rows("train")].sum(0)))
    c = int(np.argmax(np.abs(s.student.coef_[k])))
    r = client.post("/api/tune", json={"instructions": [{"class": k, "concept": c, "direction": "down"}], "erase": True})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["options"] == {"erase": [[k, c]], "erase_how": "marginal"}
    assert set(body["fidelity"]) == {"split", "before", "after", "change", "costs_fidelity"}
    assert s.log.steps()[-1]["step_params"]["erase"] == [[k, c]]
    bad = client.post("/api/tune", json={"instructions": [{"class": k, "concept": c, "direction": "up"}],
                                         "label_weight": 3})
    assert bad.status_code == 422 and "label_weight" in bad.text
