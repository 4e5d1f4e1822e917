"""Export: JSON round trip and an ONNX model that matches decision_function."""

import json

import numpy as np
import pytest

from inficond.exceptions import DataError
from inficond.students import ConceptStudent, export_student, load_student
from inficond.students._solvers import synthetic_problem


@pytest.fixture(scope="module")
def student():
    X, T = synthetic_problem(n=300, n_concepts=40, n_classes=3, seed=8, n_factors=8)
    return X, ConceptStudent(lam=0.01).fit(X, T)


def export(student, tmp_path):
    X, st = student
    return export_student(st, [f"word{i}" for i in range(40)], ["cat", "dog", "car"],
                          {"name": "conse-effnet", "version": 1}, tmp_path)


def test_json_round_trip_is_exact(student, tmp_path):
    X, st = student
    paths = export(student, tmp_path)
    doc = json.loads(paths["json"].read_text())
    assert doc["format"] == "inficond-student" and doc["format_version"] == 1
    assert doc["class_names"] == ["cat", "dog", "car"] and doc["concept_words"][3] == "word3"
    assert doc["encoder"] == {"name": "conse-effnet", "version": 1}
    back = load_student(paths["json"])
    np.testing.assert_array_equal(back.coef_, st.coef_)
    np.testing.assert_array_equal(back.decision_function(X), st.decision_function(X))
    assert back.classes_ == ["cat", "dog", "car"]


def test_onnx_matches_decision_function(student, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    X, st = student
    paths = export(student, tmp_path)
    sess = ort.InferenceSession(str(paths["onnx"]), providers=["CPUExecutionProvider"])
    for n in (1, 57):
        out = sess.run(["logits"], {"concepts": X[:n].astype(np.float32)})[0]
        assert out.shape == (n, 3) and out.dtype == np.float32
        np.testing.assert_allclose(out, st.decision_function(X[:n]), atol=1e-5)


def test_export_validates(student, tmp_path):
    X, st = student
    with pytest.raises(DataError, match="concept words"):
        export_student(st, ["a"], ["cat", "dog", "car"], {}, tmp_path)
    with pytest.raises(DataError, match="class names"):
        export_student(st, [str(i) for i in range(40)], ["cat"], {}, tmp_path)
    (tmp_path / "x.json").write_text('{"format": "other"}')
    with pytest.raises(DataError, match="not an inficond-student"):
        load_student(tmp_path / "x.json")


def test_concept_text_is_exported_exactly_and_never_left_stale(student, tmp_path):
    # predict.py reads concept_text.npy: prompted concepts ("can" -> "tin can") cannot be re-encoded
    # from the bare words, so the export must carry the embeddings the vectors were made with
    X, st = student
    text = np.random.default_rng(0).normal(size=(40, 16)).astype(np.float32)
    paths = export_student(st, [f"word{i}" for i in range(40)], ["cat", "dog", "car"], {}, tmp_path,
                           concept_text=text)
    np.testing.assert_array_equal(np.load(paths["concept_text"]), text)
    with pytest.raises(DataError, match=r"\(40, dim\).*\(39, 16\)"):
        export_student(st, [f"word{i}" for i in range(40)], ["cat", "dog", "car"], {}, tmp_path,
                       concept_text=text[:39])
    assert np.load(tmp_path / "concept_text.npy").shape == (40, 16)  # a refused export changes nothing
    # an export without embeddings into the same folder removes the earlier file
    paths = export(student, tmp_path)
    assert "concept_text" not in paths and not (tmp_path / "concept_text.npy").exists()
