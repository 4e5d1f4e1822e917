"""Per-state caches of the session's views: kept while the student stays, dropped when it moves."""

from __future__ import annotations

import numpy as np

from inficond.session import Session


def _weakest(s: Session) -> int:
    classes = [c for c in s.performance("val")["classes"] if not c["excluded"] and c["n_pos"] > 0]
    return min(classes, key=lambda c: c["student"]["ap"] if c["student"]["ap"] is not None else 1)["class_idx"]


def test_class_concepts_and_suggestions_follow_the_student_state(workspace):
    s = Session(workspace)
    k = _weakest(s)
    first = s.class_concepts(k, k=5)
    sugg = s.suggest(k, k=3)
    # a caller changing what it got does not change the next answer
    first["concepts"].clear()
    sugg.append({"junk": True})
    again = s.class_concepts(k, k=5)
    assert len(again["concepts"]) == 5 and s.suggest(k, k=3) == sugg[:-1]
    assert s.class_concepts(k, k=3)["k"] == 3  # other arguments are other entries

    top = again["concepts"][0]
    s.tune([{"class": k, "concept": top["concept_idx"], "direction": "down"}])
    after = s.class_concepts(k, k=5)
    moved = next(c for c in after["concepts"] + [None] if c is None or c["concept_idx"] == top["concept_idx"])
    assert moved is None or moved["influence"] < top["influence"]
    assert moved is None or moved["vote"] == "down"
    # the same numbers as a fresh session on the new state
    fresh = Session(workspace)
    assert after == fresh.class_concepts(k, k=5)
    assert s.suggest(k, k=3) == fresh.suggest(k, k=3)

    s.undo()
    back = s.class_concepts(k, k=5)
    assert back == again and all(c["vote"] is None for c in back["concepts"])


def test_scores_of_a_tuned_student_match_a_direct_computation(workspace):
    s = Session(workspace)
    k = _weakest(s)
    c = s.class_concepts(k, k=1)["concepts"][0]["concept_idx"]
    s.tune([{"class": k, "concept": c, "direction": "up"}])
    st = s.student
    for split in ("val", "test"):
        rows = s.rows(split)
        direct = ((s.X[rows] - st.mean_) / st.scale_) @ st.coef_[k] + st.intercept_[k]
        np.testing.assert_array_equal(s._class_scores(k, split, st), direct)
        # the head's scores come from one matrix product over all classes: equal to rounding
        np.testing.assert_allclose(s._class_scores(k, split), direct, rtol=1e-12, atol=1e-12)


def test_class_views_are_kept_across_another_class_step_and_an_undo(workspace):
    s = Session(workspace)
    perf = [c for c in s.performance("val")["classes"] if not c["excluded"] and c["n_pos"] > 0]
    a, b = perf[0]["class_idx"], perf[1]["class_idx"]
    before_a = s.class_concepts(a, k=5)
    before_b, sugg_b = s.class_concepts(b, k=5), s.suggest(b, k=3, shortcuts=0)
    kept = len(s._class_views)
    s.tune([{"class": a, "concept": before_a["concepts"][0]["concept_idx"], "direction": "up"}])
    # class b's student did not change: its answers come from memory and equal a fresh session's
    assert s.class_concepts(b, k=5) == before_b and s.suggest(b, k=3, shortcuts=0) == sugg_b
    assert len(s._class_views) == kept
    fresh = Session(workspace)
    assert fresh.class_concepts(b, k=5) == before_b and fresh.suggest(b, k=3, shortcuts=0) == sugg_b
    tuned = s.class_concepts(a, k=5)
    assert tuned != before_a and tuned == fresh.class_concepts(a, k=5)
    s.undo()
    assert s.class_concepts(a, k=5) == before_a  # the old state's answer again


def test_suggestions_while_another_thread_tunes_match_one_state(workspace):
    """Suggestions score outside the session lock: each answer still belongs to one student state."""
    import threading

    s = Session(workspace)
    k = _weakest(s)
    c = s.class_concepts(k, k=1)["concepts"][0]["concept_idx"]
    want_before = Session(workspace).suggest(k, k=3, shortcuts=0)
    got, errors = [], []

    def ask():
        try:
            for _ in range(3):
                got.append(s.suggest(k, k=3, shortcuts=0))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    t = threading.Thread(target=ask)
    t.start()
    s.tune([{"class": k, "concept": c, "direction": "up"}])
    t.join()
    assert not errors
    want_after = Session(workspace).suggest(k, k=3, shortcuts=0)
    assert all(g in (want_before, want_after) for g in got)
    assert s.suggest(k, k=3, shortcuts=0) == want_after


def test_performance_after_steps_and_undo_equals_a_fresh_session(workspace):
    """Only the tuned class is scored again after a step; the answer is the one a fresh session gives."""
    s = Session(workspace)
    first = {split: s.performance(split) for split in ("val", "test")}
    k = _weakest(s)
    top = s.class_concepts(k, k=2)["concepts"]
    for c in top:
        s.tune([{"class": k, "concept": c["concept_idx"], "direction": "up"}])
        fresh = Session(workspace)
        for split in ("val", "test"):
            assert s.performance(split) == fresh.performance(split)
    s.undo()
    s.undo()
    assert {split: s.performance(split) for split in ("val", "test")} == first
