"""Suspected-shortcut suggestions: partial correlation given the label, scored by the real erase-downvote."""

from __future__ import annotations

import json

import numpy as np
import pytest

from _data_fixtures import plant_shortcut
from inficond.analysis.suggest import group_suspects, rank_erase_moves, shortcut_suspects
from inficond.session import Session


def test_shortcut_suspects_is_the_partial_correlation_given_the_label():
    rng = np.random.default_rng(0)
    n = 400
    y = rng.random(n) < 0.3
    label_only = y + 0.5 * rng.standard_normal(n)  # goes with the label, not with the logit beyond it
    context = rng.standard_normal(n)  # raises the logit whatever the label
    noise = rng.standard_normal((n, 3))
    Z = np.column_stack([label_only, context, noise])
    t = 3.0 * y + 1.5 * context + 0.5 * rng.standard_normal(n)
    sus = shortcut_suspects(Z, t, y, k=5, min_corr=-1.0)
    assert sus[0]["concept_idx"] == 1
    # the same number from regression residuals on [1, y]
    A = np.column_stack([np.ones(n), y])
    res = lambda v: v - A @ np.linalg.lstsq(A, v, rcond=None)[0]  # noqa: E731
    for d in sus:
        c = d["concept_idx"]
        assert d["partial_corr"] == pytest.approx(np.corrcoef(res(Z[:, c]), res(t))[0, 1], abs=1e-9)
    assert abs(next(d for d in sus if d["concept_idx"] == 0)["partial_corr"]) < 0.15
    # only positive partial correlations by default, and bad shapes are named
    assert [d["concept_idx"] for d in shortcut_suspects(Z, t, y)][0] == 1
    with pytest.raises(ValueError, match="same number of rows"):
        shortcut_suspects(Z[:10], t, y)


def test_rank_erase_moves_keeps_only_real_gains():
    y = np.array([1, 1, 0, 0, 0])
    before = np.array([0.1, -1.0, 0.5, -2.0, -3.0])  # AP < 1
    better = np.array([1.0, 0.9, 0.5, -2.0, -3.0])  # AP 1
    worse = -better
    sus = [{"concept_idx": 7, "partial_corr": 0.4}, {"concept_idx": 3, "partial_corr": 0.3},
           {"concept_idx": 5, "partial_corr": 0.2}]
    out = rank_erase_moves(sus, [worse, better, None], y, before)
    assert [m["concept_idx"] for m in out] == [3]
    assert out[0]["kind"] == "shortcut" and out[0]["erase"] is True and out[0]["direction"] == "down"
    assert out[0]["ap_after"] == pytest.approx(1.0) and out[0]["gain"] > 0


def test_group_suspects_folds_one_context_into_one_suggestion():
    rng = np.random.default_rng(1)
    n = 500
    context = rng.standard_normal(n)
    # three words of one context (presences correlated ~0.8), one unrelated suspect, one constant column
    Z = np.column_stack([context + 0.5 * rng.standard_normal(n) for _ in range(3)]
                        + [rng.standard_normal(n), np.ones(n)])
    sus = [{"concept_idx": c, "partial_corr": p} for c, p in ((1, 0.5), (3, 0.45), (0, 0.4), (4, 0.3), (2, 0.2))]
    groups = group_suspects(Z, sus, min_corr=0.5)
    assert [(g["concept_idx"], g["related"]) for g in groups] == [(1, [0, 2]), (3, []), (4, [])]
    assert groups[0]["partial_corr"] == 0.5  # the leading suspect's own fields are kept
    # a threshold above every correlation keeps each suspect alone; no suspects, no groups
    assert [g["related"] for g in group_suspects(Z, sus, min_corr=0.99)] == [[]] * 5
    assert group_suspects(Z, []) == []
    # rank_erase_moves carries the group along
    y = np.array([1, 0, 1, 0])
    out = rank_erase_moves(groups[:1], [np.array([1.0, 0.0, 1.0, 0.0])], y, np.array([0.0, 1.0, 1.0, 0.0]))
    assert out[0]["related"] == [0, 2]


def _shortcut_words(s, cls):
    return [m["word"] for m in s.suggest(cls, k=3) if m["kind"] == "shortcut"]


def test_planted_shortcut_is_suggested_and_its_gain_is_real(workspace, prepared_workspace):
    # control: the workspace's own teacher has no grass shortcut for dog
    assert "grass" not in _shortcut_words(Session(prepared_workspace), "dog")
    s = plant_shortcut(workspace)
    top = s.suggest("dog", k=3)
    hit = [m for m in top if m["word"] == "grass"]
    assert hit, f"grass not among the top 3: {[(m['word'], m['kind'], m['gain']) for m in top]}"
    m = hit[0]
    assert m["kind"] == "shortcut" and m["erase"] is True and m["direction"] == "down" and m["gain"] > 0
    # the suggested vote, applied as the UI would (erase on), gives the train AP the suggestion promised
    s.tune([{"class": "dog", "concept": "grass", "direction": "down"}], erase=True)
    assert s._class_metrics(s.class_idx("dog"), "train")["ap"] == pytest.approx(m["ap_after"], abs=1e-9)


def test_api_offers_shortcuts_only_on_request_and_the_cli_applies_them_with_erase(workspace):
    import subprocess
    import sys

    from fastapi.testclient import TestClient

    from inficond.server import create_app

    s = plant_shortcut(workspace)
    client = TestClient(create_app(s), base_url="http://127.0.0.1")
    plain = client.get("/api/classes/dog/suggestions", params={"k": 3})
    assert plain.status_code == 200
    # the page's chips send plain votes, so by default the API offers no erase-only suggestion
    assert all(m["kind"] == "move" for m in plain.json())
    asked = client.get("/api/classes/dog/suggestions", params={"k": 3, "shortcuts": 5}).json()
    hit = [m for m in asked if m["word"] == "grass" and m["kind"] == "shortcut" and m["erase"] is True]
    assert hit and isinstance(hit[0]["related"], list) and "grass" not in hit[0]["related"]
    assert all(w in s.ws.concept_words for w in hit[0]["related"])
    assert client.get("/api/classes/dog/suggestions", params={"shortcuts": 11}).status_code == 422
    # `inficond tune --erase` records the erase option in the provenance step
    r = subprocess.run([sys.executable, "-m", "inficond.cli", "tune", str(workspace), "dog", "--down", "grass",
                        "--erase"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    s2 = Session(workspace)
    params = json.loads(s2.log._row(s2.log.head())["step_params"])
    assert params.get("erase") == [[s2.class_idx("dog"), s2.concept_idx("grass")]], params
