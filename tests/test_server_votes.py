"""The API behind voting on any concept: search over the whole corpus, vote strength and its
preview, conflicts in plain words, and the figures the views show (real Session, real workspace)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from inficond.server import create_app
from inficond.session import Session

LOCAL = "http://127.0.0.1"
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def base_workspace(prepared_workspace) -> Path:
    """The workspace built by this run's code (conftest), never one left over from older code."""
    return prepared_workspace


@pytest.fixture
def fresh(base_workspace, tmp_path):
    """A private copy: (session, client)."""
    dst = tmp_path / "ws"
    shutil.copytree(base_workspace, dst)
    s = Session(dst)
    return s, TestClient(create_app(s), base_url=LOCAL)


def included(s: Session) -> list[dict]:
    return [c for c in s.performance("val")["classes"] if not c["excluded"] and c["student"]["ap"] is not None]


def zero_weight_concept(s: Session, k: int) -> int:
    coef = s.student.coef_[k]
    return int(np.flatnonzero(coef == 0)[0])


def test_search_covers_zero_weight_words_and_they_can_be_voted(fresh):
    s, client = fresh
    k = included(s)[0]["class_idx"]
    c = zero_weight_concept(s, k)
    word = s.ws.concept_words[c]
    r = client.get(f"/api/classes/{k}/concepts/search", params={"q": word.upper()})
    assert r.status_code == 200, r.text
    body = r.json()
    hit = body["concepts"][0]
    assert hit["word"] == word and hit["concept_idx"] == c  # the exact match first, case-insensitive
    assert hit["influence"] == 0.0 and hit["rank"] is None
    assert body["total"] >= 1
    # a substring finds every word containing it
    sub = word[:3]
    got = client.get(f"/api/classes/{k}/concepts/search", params={"q": sub, "limit": 200}).json()
    assert got["total"] == sum(sub in w.lower() for w in s.ws.concept_words)
    # and the zero-weight concept can be voted
    t = client.post("/api/tune", json={"instructions": [{"class": k, "concept": c, "direction": "up"}]})
    assert t.status_code == 200, t.text
    assert s.student.coef_[k, c] > 0
    again = client.get(f"/api/classes/{k}/concepts/search", params={"q": word}).json()["concepts"][0]
    assert again["vote"] == "up" and again["influence"] > 0


def test_search_rejects_empty_text_and_bad_limit(fresh):
    _, client = fresh
    r = client.get("/api/classes/0/concepts/search", params={"q": "   "})
    assert r.status_code == 422 and "empty" in r.json()["detail"]
    r = client.get("/api/classes/0/concepts/search", params={"q": "a", "limit": 0})
    assert r.status_code == 422 and "limit" in r.json()["detail"]


def test_vote_strength_reaches_the_refit_and_the_preview_names_the_bound(fresh):
    s, client = fresh
    k = included(s)[0]["class_idx"]
    c = zero_weight_concept(s, k)
    prev = client.get(f"/api/classes/{k}/whatif/{c}", params={"factor": 0.2}).json()
    p = prev["proposal"]
    assert p["factor"] == 0.2 and p["up"] == pytest.approx(0.2 * p["ref"]) and p["down"] == pytest.approx(-0.2 * p["ref"])
    # both bounds are on the curve's grid, and the value read there is the curve's value
    j = prev["grid"].index(p["up"])
    assert prev["values"]["ap"][j] == pytest.approx(p["up_values"]["ap"])
    detail = client.get(f"/api/concepts/{c}", params={"cls": k, "factor": 0.2}).json()
    assert detail["whatif"]["proposal"]["up"] == pytest.approx(p["up"])

    r = client.post("/api/tune", json={"factor": 0.2, "instructions": [{"class": k, "concept": c, "direction": "up"}]})
    assert r.status_code == 200, r.text
    assert r.json()["factor"] == 0.2
    assert s.student.coef_[k, c] >= p["up"] - 1e-9
    assert s.log.all_states()[-1]["step_params"]["factor"] == 0.2

    bad = client.post("/api/tune", json={"factor": 0, "instructions": [{"class": k, "concept": c, "direction": "up"}]})
    assert bad.status_code == 422 and "factor" in bad.json()["detail"]


def test_opposite_vote_is_a_plain_conflict_that_can_replace_the_earlier_one(fresh):
    s, client = fresh
    k = included(s)[0]["class_idx"]
    c = zero_weight_concept(s, k)
    word = s.ws.concept_words[c]
    assert client.post("/api/tune", json={"instructions": [{"class": k, "concept": c, "direction": "down"}]}).status_code == 200
    n = len(s.log.all_states())
    w_down = float(s.student.coef_[k, c])
    assert w_down < 0
    r = client.post("/api/tune", json={"instructions": [{"class": k, "concept": c, "direction": "up"}]})
    assert r.status_code == 422
    body = r.json()
    assert body["conflicts"] == [{"concept_idx": c, "word": word, "earlier": "down", "now": "up"}]
    assert word in body["detail"] and "downtuned" in body["detail"]
    assert "on_conflict" not in body["detail"] and "bound" not in body["detail"]
    assert len(s.log.all_states()) == n  # nothing recorded

    ok = client.post("/api/tune", json={"on_conflict": "replace",
                                        "instructions": [{"class": k, "concept": c, "direction": "up"}]})
    assert ok.status_code == 200, ok.text
    assert s.earlier_vote(k, c) == "up" and s.student.coef_[k, c] > w_down
    assert client.get(f"/api/concepts/{c}", params={"cls": k}).json()["vote"] == "up"


def test_cumulative_change_is_mean_ap_and_per_class(fresh):
    s, client = fresh
    a, b = included(s)[:2]
    map0 = {sp: s.performance(sp)["student_map"] for sp in ("val", "test")}
    for cls in (a, b):
        top = s.class_concepts(cls["class_idx"], k=1)["concepts"][0]
        r = client.post("/api/tune", json={"instructions": [
            {"class": cls["class_idx"], "concept": top["concept_idx"], "direction": "down"}]})
        assert r.status_code == 200, r.text
    cum = client.get("/api/provenance").json()["cumulative"]
    assert "val_ap_delta" not in cum  # the old sum of different classes' AP changes is gone
    assert [r["class_idx"] for r in cum["per_class"]] == sorted([a["class_idx"], b["class_idx"]])
    for row, cls in zip(sorted(cum["per_class"], key=lambda r: r["class_idx"]), sorted([a, b], key=lambda c: c["class_idx"])):
        now = s.performance("val")["classes"][cls["class_idx"]]["student"]["ap"]
        assert row["val_ap_delta"] == pytest.approx(now - cls["student"]["ap"])
        assert row["steps"] == 1
    for sp in ("val", "test"):
        assert cum[f"{sp}_map_delta"] == pytest.approx(s.performance(sp)["student_map"] - map0[sp], abs=1e-9)
    # undo: the totals follow the head path
    client.post("/api/provenance/undo", headers=JSON)
    cum2 = client.get("/api/provenance").json()["cumulative"]
    assert len(cum2["per_class"]) == 1


def test_discrepancy_sort_says_when_it_is_undefined_and_falls_back_to_contrast(fresh):
    s, client = fresh
    # (class, sort) pairs where the discrepancy is undefined (the student gets all or none of that
    # side right) or defined; which side is which depends on the data, so both sides are searched
    pairs = [(c["class_idx"], side) for c in included(s) if 0 < c["n_pos"] for side in ("p", "n")]
    undefined = [(k, side) for k, side in pairs if not s._discrepancy_full(k)[f"{side}_defined"]]
    defined = [(k, side) for k, side in pairs if s._discrepancy_full(k)[f"{side}_defined"]]
    assert undefined and defined, "the small workspace has (class, side) pairs of both kinds"
    rows = s.rows("val")
    k, side = undefined[0]
    y = s.Y[rows, k].astype(bool)
    assert y.any() and (~y).any()
    body = client.get(f"/api/classes/{k}/concepts", params={"k": 8, "sort": f"discrepancy_{side}"}).json()
    assert "undefined" in body["sort_note"] and "contrast" in body["sort_note"]
    idx = [c["concept_idx"] for c in body["concepts"]]
    assert idx != sorted(idx)  # not corpus order
    contrast = s.X[rows][y].mean(0).astype(np.float64) - s.X[rows][~y].mean(0).astype(np.float64)
    want = np.argsort(-np.abs(contrast), kind="stable")[:8]
    assert idx == [int(i) for i in want]
    k2, side2 = defined[0]
    ok = client.get(f"/api/classes/{k2}/concepts", params={"sort": f"discrepancy_{side2}"}).json()
    assert ok["sort_note"] is None


def test_performance_gives_an_ap_interval_from_the_positives_count(fresh):
    s, client = fresh
    for c in client.get("/api/performance").json()["classes"]:
        ap, ci = c["student"]["ap"], c["student_ap_ci"]
        if ap is None or c["n_pos"] == 0:
            assert ci is None
        else:
            assert ci[0] <= ap <= ci[1]
    from inficond.session import ap_interval
    wide, narrow = ap_interval(0.6, 5), ap_interval(0.6, 500)
    assert wide[1] - wide[0] > 3 * (narrow[1] - narrow[0])
    # a perfect AP on many positives is a narrow cue, not [0, 1]; on few it stays wide; no overflow
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sure, unsure = ap_interval(1.0, 128), ap_interval(1.0, 3)
    assert 0.9 < sure[0] < 1.0 == sure[1] and unsure[0] < 0.5


def test_summary_names_the_workspace(fresh):
    s, client = fresh
    assert client.get("/api/summary").json()["workspace"] == str(s.path.resolve())
