"""Session: the engine facade on a real small workspace."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from inficond.exceptions import TuningError, UnknownNameError
from inficond.session import Session


def weakest_class(s: Session) -> dict:
    perf = s.performance("val")
    return max((c for c in perf["classes"] if not c["excluded"] and c["gap"] is not None), key=lambda c: c["gap"])


def test_performance_matches_sklearn(prepared_workspace):
    s = Session(prepared_workspace)
    perf = s.performance("val")
    rows = s.rows("val")
    student = s.student
    logits = ((s.X[rows] - student.mean_) / student.scale_) @ student.coef_.T + student.intercept_
    used = []
    for c in perf["classes"]:
        y = s.Y[rows, c["class_idx"]]
        if y.sum() == 0:
            assert c["teacher"]["ap"] is None
            continue
        assert c["student"]["ap"] == pytest.approx(average_precision_score(y, logits[:, c["class_idx"]]))
        assert c["teacher"]["ap"] == pytest.approx(average_precision_score(y, s.T[rows, c["class_idx"]]))
        assert sum(c["alignment"]["pos"]["counts"].values()) == y.sum()
        assert sum(c["alignment"]["neg"]["counts"].values()) == len(y) - y.sum()
        if not c["excluded"]:
            used.append(c["student"]["ap"])
    assert perf["student_map"] == pytest.approx(np.mean(used))


def test_class_concepts_are_ranked_by_influence_with_whatif(prepared_workspace):
    s = Session(prepared_workspace)
    cls = weakest_class(s)["name"]
    out = s.class_concepts(cls, k=8)
    infl = [abs(c["influence"]) for c in out["concepts"]]
    assert infl == sorted(infl, reverse=True)
    top = out["concepts"][0]
    assert len(top["whatif"]["grid"]) == 21
    # the curve at the current influence is the current AP
    i = int(np.argmin(np.abs(np.array(top["whatif"]["grid"]) - top["influence"])))
    assert top["whatif"]["grid"][i] == pytest.approx(top["influence"])
    assert top["whatif"]["ap"][i] == pytest.approx(out["ap"])
    for sort in ("discrepancy_p", "discrepancy_n"):
        got = s.class_concepts(cls, k=5, sort=sort)["concepts"]
        vals = [abs(c[sort]) for c in got]  # ranked by size, either sign
        assert len(got) == 5 and vals == sorted(vals, reverse=True), f"{sort} not in descending order: {vals}"


def test_unknown_names_are_clear_errors(prepared_workspace):
    s = Session(prepared_workspace)
    with pytest.raises(UnknownNameError, match="class"):
        s.class_concepts("unicorn")
    with pytest.raises(UnknownNameError, match="concept"):
        s.whatif("dog", "no-such-concept-word")
    with pytest.raises(TuningError):
        s.tune([{"class": "dog", "concept": 0, "direction": "sideways"}])
    with pytest.raises(TuningError):
        s.tune([])


def test_tune_undo_revert_and_replay(workspace, tmp_path):
    fresh = tmp_path / "fresh"
    shutil.copytree(workspace, fresh)
    s = Session(workspace)
    # the weakest class that has two concepts counting for it (a tiny workspace's weakest class may
    # rest on its intercept and negative influences alone)
    perf = s.performance("val")["classes"]
    ranked = sorted((c for c in perf if not c["excluded"] and c["gap"] is not None), key=lambda c: -c["gap"])
    cls, concepts = next((c, cc) for c in ranked
                       for cc in [[x for x in s.class_concepts(c["class_idx"], k=10)["concepts"] if x["influence"] > 0]]
                       if len(cc) >= 2)
    k = cls["class_idx"]
    up, down = concepts[0], concepts[1]
    coef0 = s.student.coef_.copy()
    steps0 = len(s.provenance()["steps"])

    step = s.tune([{"class": k, "concept": up["word"], "direction": "up"},
                   {"class": k, "concept": down["concept_idx"], "direction": "down"}])
    coef1 = s.student.coef_.copy()
    assert coef1[k, up["concept_idx"]] > coef0[k, up["concept_idx"]]
    assert coef1[k, down["concept_idx"]] < coef0[k, down["concept_idx"]]
    np.testing.assert_array_equal(np.delete(coef1, k, 0), np.delete(coef0, k, 0)), "other classes untouched"
    assert step["val"]["after"]["ap"] == pytest.approx(s.performance("val")["classes"][k]["student"]["ap"])
    al = step["alignment"]["val"]
    assert al["after"] == s.performance("val")["classes"][k]["alignment"]
    for part in ("pos", "neg"):
        for cat, n in al["change"][part]["counts"].items():
            assert n == al["after"][part]["counts"][cat] - al["before"][part]["counts"][cat]
    prov = s.provenance()
    assert len(prov["steps"]) == steps0 + 1 and prov["head"] == step["state_id"]

    # a vote against an earlier one is refused (undo that step instead); nothing is recorded
    with pytest.raises(TuningError, match="was uptuned for .* in an earlier step"):
        s.tune([{"class": k, "concept": up["concept_idx"], "direction": "down"}])
    assert s.provenance()["head"] == step["state_id"]
    # a second step keeps the first step's bounds
    third = next(c for c in concepts if c["concept_idx"] not in (up["concept_idx"], down["concept_idx"]))
    s.tune([{"class": k, "concept": third["concept_idx"], "direction": "down"}])
    assert s.student.coef_[k, down["concept_idx"]] <= s.history[(k, down["concept_idx"])][1] + 1e-12
    assert s.student.coef_[k, up["concept_idx"]] >= s.history[(k, up["concept_idx"])][0] - 1e-12

    s.undo()
    np.testing.assert_allclose(s.student.coef_, coef1)
    s.undo()
    np.testing.assert_allclose(s.student.coef_, coef0)
    assert s.performance("val")["classes"][k]["student"]["ap"] == pytest.approx(cls["student"]["ap"])
    s.revert(step["state_id"])
    np.testing.assert_allclose(s.student.coef_, coef1)

    # the same instructions on a fresh copy give the same weights (deterministic)
    s2 = Session(fresh)
    s2.tune([{"class": k, "concept": up["word"], "direction": "up"},
             {"class": k, "concept": down["concept_idx"], "direction": "down"}])
    np.testing.assert_array_equal(s2.student.coef_, coef1)

    # provenance survives reopening the workspace (a new process)
    np.testing.assert_array_equal(Session(workspace).student.coef_, coef1)


def test_suggestions_raise_val_ap_when_applied(workspace):
    from sklearn.metrics import average_precision_score

    s = Session(workspace)
    cls = weakest_class(s)["class_idx"]
    moves = s.suggest(cls, k=3, split="val")
    assert moves, "the weakest class must get at least one suggestion"
    gains = [m["gain"] for m in moves]
    assert gains == sorted(gains, reverse=True) and gains[-1] > 0
    best = moves[0]
    assert best["direction"] in ("up", "down") and best["split"] == "val"
    # applied exactly as suggested (that one influence moved, nothing refitted): sklearn's val AP
    st, rows = s.student, s.rows("val")
    coef = st.coef_[cls].copy()
    assert (best["value"] > coef[best["concept_idx"]]) == (best["direction"] == "up")
    y = s.Y[rows, cls]
    z = (s.X[rows] - st.mean_) / st.scale_
    ap_before = average_precision_score(y, z @ coef + st.intercept_[cls])
    coef[best["concept_idx"]] = best["value"]
    ap_after = average_precision_score(y, z @ coef + st.intercept_[cls])
    assert best["ap_before"] == pytest.approx(ap_before, abs=1e-9)
    assert best["ap_after"] == pytest.approx(ap_after, abs=1e-9) and ap_after > ap_before
    # applied as a vote: one step, the influence moves the suggested way
    before = float(s.student.coef_[cls, best["concept_idx"]])
    step = s.tune([{"class": cls, "concept": best["concept_idx"], "direction": best["direction"]}])
    after = float(s.student.coef_[cls, best["concept_idx"]])
    assert step["state_id"] == s.log.head()
    assert (after > before) if best["direction"] == "up" else (after < before)


def test_concept_detail_and_map(prepared_workspace):
    s = Session(prepared_workspace)
    d = s.concept_detail("dog", cls="dog")
    sims = [im["similarity"] for im in d["images"]]
    assert sims == sorted(sims, reverse=True) and len(sims) > 0
    assert all(0 <= v <= 1 for im in d["images"] for v in im["box"])
    # the f1 curve is the real F1 of the val scores at each grid influence (not merely present)
    from sklearn.metrics import f1_score

    st, rows, k, c = s.student, s.rows("val"), s.class_idx("dog"), s.concept_idx("dog")
    z = (s.X[rows] - st.mean_) / st.scale_
    grid, f1 = d["whatif"]["grid"], d["whatif"]["values"]["f1"]
    assert len(f1) == len(grid) > 2
    for j in (0, len(grid) // 2, len(grid) - 1):
        w = st.coef_[k].copy()
        w[c] = grid[j]
        assert f1[j] == pytest.approx(f1_score(s.Y[rows, k], z @ w + st.intercept_[k] > 0, zero_division=0), abs=1e-9)
    assert s.patch_path(d["patches"][0]["patch_id"]).exists()
    with pytest.raises(UnknownNameError):
        s.patch_path("../../etc/passwd")
    pts = s.concept_map()["points"]
    assert len(pts) == len(s.ws.concept_words)
    assert all(-1.0001 <= p["x"] <= 1.0001 for p in pts)


def test_add_concepts_reuses_regions(workspace):
    s = Session(workspace)
    regions_before = np.asarray(s.ws.array("regions")).copy()
    n0 = len(s.ws.concept_words)
    s.concept_map()
    out = s.add_concepts(["zebra crossing", "dog", ""])
    assert [a["word"] for a in out["added"]] == ["zebra crossing"]
    assert {x["word"] for x in out["skipped"]} == {"dog", ""}
    assert len(s.ws.concept_words) == n0 + 1 and s.X.shape[1] == n0 + 1
    np.testing.assert_array_equal(np.asarray(s.ws.array("regions")), regions_before)
    assert s.student.coef_.shape[1] == n0 + 1
    assert len(s.concept_map()["points"]) == n0 + 1
    # the new concept can be tuned right away
    s.tune([{"class": "dog", "concept": "zebra crossing", "direction": "up"}])
    assert s.student.coef_[s.class_idx("dog"), n0] > 0


def test_export_and_predict(workspace, dev_data, tmp_path):
    from inficond.predict import predict_images

    s = Session(workspace)
    paths = s.export(tmp_path / "export")
    rows = s.rows("val")[:3]
    imgs = [s.ws.image_paths[i] for i in rows]
    bad = tmp_path / "broken.jpg"
    bad.write_text("not an image")
    preds = predict_images(paths["json"], imgs + [bad])
    assert len(preds) == 4
    assert "error" in next(p for p in preds if p["image"] == str(bad))
    # the exported student on freshly encoded images matches the workspace's student logits
    student = s.student
    want = ((s.X[rows] - student.mean_) / student.scale_) @ student.coef_.T + student.intercept_
    got = np.array([[p["logits"][c] for c in s.ws.class_names] for p in preds if "logits" in p])
    np.testing.assert_allclose(got, want, atol=0.05)
