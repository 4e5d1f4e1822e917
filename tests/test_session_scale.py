"""What the session keeps so the first views after a tuning step stay cheap at scale, and that
keeping it changes no answer."""

from __future__ import annotations

import json

import numpy as np

from inficond.session import Session
from inficond.students._solvers import _duplicate_columns


def test_summary_lists_the_corrupt_images_from_the_cached_status(workspace):
    from inficond.store.workspace import Workspace

    ws = Workspace(workspace)
    ws.mark_images([3, 1], "corrupt", "not an image")
    ids = ws.image_ids
    got = Session(workspace).summary()["dataset"]["corrupt"]
    assert got == [[ids[1], "not an image"], [ids[3], "not an image"]]
    assert got == [list(r) for r in ws.db.execute("SELECT image_id, error FROM images WHERE status='corrupt'")]


def test_a_step_keeps_the_image_columns_and_the_alias_groups(workspace):
    s = Session(workspace)
    labels, status = s.ws.labels, s.ws.status
    groups = s._duplicates("train")
    assert [g.tolist() for g in groups] == [g.tolist() for g in _duplicate_columns(s._Z("train"))]
    k = int(np.argmax((s.student.coef_ != 0).sum(1)))
    c = int(np.argmax(np.abs(s.student.coef_[k])))
    s.tune([{"class": k, "concept": c, "direction": "down"}])
    assert s.ws.labels is labels and s.ws.status is status  # not read again from every image row
    assert s._duplicates("train") is groups
    s.undo()
    assert s.ws.labels is labels


def test_views_after_a_step_and_undo_equal_a_fresh_session(workspace):
    """Kept columns and groups change no answer: the views after tune + undo + tune equal those of
    a session opened on the resulting state."""
    s = Session(workspace)
    k = int(np.argmax((s.student.coef_ != 0).sum(1)))
    c = int(np.argmax(np.abs(s.student.coef_[k])))
    s.suggest(k, shortcuts=0)
    s.tune([{"class": k, "concept": c, "direction": "down"}])
    s.undo()
    s.tune([{"class": k, "concept": c, "direction": "up"}])
    fresh = Session(workspace)
    for view in (lambda x: x.summary(), lambda x: x.class_concepts(k), lambda x: x.suggest(k, shortcuts=0),
                 lambda x: x.concept_detail(c, cls=k)):
        assert json.dumps(view(s), sort_keys=True) == json.dumps(view(fresh), sort_keys=True)  # NaN == NaN
