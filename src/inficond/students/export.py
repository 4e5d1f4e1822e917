"""Export a student for use outside InFiConD: a JSON description and an ONNX model.

JSON (``student.json``, format ``inficond-student`` version 1)::

    {"format": "inficond-student", "format_version": 1,
     "class_names": [K names], "concept_words": [C words], "encoder": {...identity...},
     "mean": [C], "scale": [C], "coef": [[C] * K], "intercept": [K], "lam": [K],
     "estimator": {...ConceptStudent parameters...},
     "logit": "((x - mean) / scale) @ coef.T + intercept"}

Floats are written with Python's shortest round-trip repr, so :func:`load_student` restores
the exact float64 weights.

ONNX (``student.onnx``, opset 17): input ``concepts`` float32 (n, C), output ``logits``
float32 (n, K), computed as Sub(mean) -> Div(scale) -> MatMul(coef.T) -> Add(intercept).

``concept_text.npy`` (optional, float32 (C, D)): the concept embeddings the student's concept
vectors were computed with. A workspace encodes a concept's *prompt* when it has one (``can`` is
encoded as "tin can"), so re-encoding the bare words gives other vectors; :mod:`inficond.predict`
uses this file when it is there.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from inficond.exceptions import DataError
from inficond.store.workspace import atomic_write_bytes
from inficond.students.estimator import ConceptStudent

__all__ = ["export_student", "load_student", "FORMAT", "FORMAT_VERSION"]

FORMAT = "inficond-student"
FORMAT_VERSION = 1


def _onnx_model(student: ConceptStudent, class_names):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    K, C = student.coef_.shape
    f32 = np.float32
    inits = [
        numpy_helper.from_array(student.mean_.astype(f32), "mean"),
        numpy_helper.from_array(student.scale_.astype(f32), "scale"),
        numpy_helper.from_array(np.ascontiguousarray(student.coef_.T).astype(f32), "coef_t"),
        numpy_helper.from_array(student.intercept_.astype(f32), "intercept"),
    ]
    nodes = [
        helper.make_node("Sub", ["concepts", "mean"], ["centred"]),
        helper.make_node("Div", ["centred", "scale"], ["standardised"]),
        helper.make_node("MatMul", ["standardised", "coef_t"], ["weighted"]),
        helper.make_node("Add", ["weighted", "intercept"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes, "inficond_student",
        [helper.make_tensor_value_info("concepts", TensorProto.FLOAT, ["n", C])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", K])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="inficond")
    model.ir_version = 8  # readable by older runtimes too
    helper.set_model_props(model, {"class_names": json.dumps(list(class_names))})
    onnx.checker.check_model(model)
    return model


def export_student(student: ConceptStudent, concept_words, class_names, encoder_identity, out_dir,
                   concept_text=None) -> dict:
    """Write ``student.json`` and ``student.onnx`` (and ``concept_text.npy`` when given) into ``out_dir``.

    Returns ``{"json": path, "onnx": path}``, plus ``"concept_text": path`` when it was written.

    Parameters
    ----------
    student : ConceptStudent, fitted
    concept_words : list of str, length n_concepts
    class_names : list of str, length n_classes
    encoder_identity : dict
        The encoder's JSON identity (the concept vectors are only meaningful with it).
    out_dir : str or Path
    concept_text : array (n_concepts, dim) or None
        The embeddings the concept vectors were made with (a workspace's ``concept_text``). Without
        them a predictor can only re-encode ``concept_words``, which differs for prompted concepts.
    """
    student._check_fitted()
    K, C = student.coef_.shape
    concept_words, class_names = list(concept_words), list(class_names)
    if len(concept_words) != C:
        raise DataError(f"{len(concept_words)} concept words given; the student has {C} concepts")
    if len(class_names) != K:
        raise DataError(f"{len(class_names)} class names given; the student has {K} classes")
    if concept_text is not None:
        concept_text = np.asarray(concept_text, dtype=np.float32)
        if concept_text.ndim != 2 or concept_text.shape[0] != C or not np.isfinite(concept_text).all():
            raise DataError(f"concept_text must be a finite ({C}, dim) array for the student's {C} concepts, "
                            f"got shape {concept_text.shape}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    doc = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "class_names": class_names,
        "concept_words": concept_words,
        "encoder": encoder_identity,
        "mean": student.mean_.tolist(),
        "scale": student.scale_.tolist(),
        "coef": student.coef_.tolist(),
        "intercept": student.intercept_.tolist(),
        "lam": np.asarray(student.lam_, dtype=float).tolist(),
        "estimator": {k: (np.asarray(v).tolist() if isinstance(v, np.ndarray) else v)
                      for k, v in student.get_params().items()},
        "logit": "((x - mean) / scale) @ coef.T + intercept",
    }
    paths = {"json": out / "student.json", "onnx": out / "student.onnx"}
    atomic_write_bytes(paths["json"], json.dumps(doc, indent=1).encode())
    atomic_write_bytes(paths["onnx"], _onnx_model(student, class_names).SerializeToString())
    if concept_text is not None:
        buf = io.BytesIO()
        np.save(buf, concept_text)
        paths["concept_text"] = out / "concept_text.npy"
        atomic_write_bytes(paths["concept_text"], buf.getvalue())
    else:  # a file left by an earlier export into this folder would describe other concepts
        (out / "concept_text.npy").unlink(missing_ok=True)
    return paths


def load_student(json_path) -> ConceptStudent:
    """Rebuild the exported student (weights, intercepts, standardisation, lam) from its JSON.

    Class names and concept words are set as ``classes_`` and ``concepts_``, the encoder
    identity as ``encoder_``.
    """
    try:
        doc = json.loads(Path(json_path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise DataError(f"cannot read student JSON {json_path}: {e}") from None
    if doc.get("format") != FORMAT or doc.get("format_version") != FORMAT_VERSION:
        raise DataError(
            f"{json_path} is not an {FORMAT} v{FORMAT_VERSION} file "
            f"(format={doc.get('format')!r}, version={doc.get('format_version')!r})"
        )
    st = ConceptStudent(**doc.get("estimator", {}))
    st.coef_ = np.asarray(doc["coef"], dtype=np.float64)
    K, C = st.coef_.shape
    st.intercept_ = np.asarray(doc["intercept"], dtype=np.float64)
    st.mean_ = np.asarray(doc["mean"], dtype=np.float64)
    st.scale_ = np.asarray(doc["scale"], dtype=np.float64)
    st.lam_ = np.asarray(doc["lam"], dtype=np.float64)
    st.lower_, st.upper_ = np.full((K, C), -np.inf), np.full((K, C), np.inf)
    st.n_nonzero_ = np.count_nonzero(st.coef_, axis=1)
    st.n_iter_, st.kkt_, st.converged_ = np.zeros(K, int), np.full(K, np.nan), np.zeros(K, bool)
    st.classes_, st.concepts_, st.encoder_ = doc["class_names"], doc["concept_words"], doc.get("encoder")
    return st
