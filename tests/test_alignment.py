"""Alignment subsets: counts add up and match a plain loop."""

import numpy as np
import pytest

from inficond.analysis import CATEGORIES, alignment, alignment_change, alignment_per_class


def _naive(y, t, s):
    out = {"pos": dict.fromkeys(CATEGORIES, 0), "neg": dict.fromkeys(CATEGORIES, 0)}
    for yi, ti, si in zip(y, t, s):
        sub = out["pos" if yi else "neg"]
        tc, sc = ti == yi, si == yi
        key = ("both_correct" if tc and sc else "only_teacher_correct" if tc
               else "only_student_correct" if sc else "both_wrong")
        sub[key] += 1
    return out


def test_alignment_matches_naive_loop_and_sums_up():
    rng = np.random.default_rng(0)
    y, t, s = (rng.integers(0, 2, 300).astype(bool) for _ in range(3))
    res = alignment(y, t, s)
    naive = _naive(y, t, s)
    for sub in ("pos", "neg"):
        assert res[sub]["counts"] == naive[sub]
        assert sum(res[sub]["counts"].values()) == res[sub]["n"]
        assert sum(res[sub]["rates"].values()) == pytest.approx(1.0)
    assert res["pos"]["n"] + res["neg"]["n"] == res["n"] == 300
    assert res["pos"]["share"] + res["neg"]["share"] == pytest.approx(1.0)


def test_alignment_empty_subset():
    res = alignment([1, 1], [1, 0], [0, 0])
    assert res["neg"]["empty"] and res["neg"]["n"] == 0
    assert all(v == 0.0 for v in res["neg"]["rates"].values())
    assert res["pos"]["counts"]["only_teacher_correct"] == 1
    assert res["pos"]["counts"]["both_wrong"] == 1


def test_alignment_rejects_logits():
    with pytest.raises(ValueError, match="predictions"):
        alignment([1, 0], [0.3, -2.0], [1, 0])


def test_alignment_change_and_per_class():
    y = np.array([1, 1, 0, 0])
    before = alignment(y, [1, 1, 0, 0], [0, 0, 0, 1])
    after = alignment(y, [1, 1, 0, 0], [1, 0, 0, 0])
    ch = alignment_change(before, after)
    assert ch["pos"]["counts"]["only_teacher_correct"] == -1
    assert ch["pos"]["counts"]["both_correct"] == 1
    assert ch["neg"]["rates"]["both_correct"] == pytest.approx(0.5)
    per = alignment_per_class(np.c_[y, 1 - y], np.c_[y, 1 - y], np.c_[y, y])
    assert per[0]["pos"]["counts"]["both_correct"] == 2
    assert per[1]["pos"]["counts"]["only_teacher_correct"] == 2
    with pytest.raises(ValueError):
        alignment_change(before, alignment([1], [1], [1]))
