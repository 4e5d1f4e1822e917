"""Students: sparse linear per-class models over concept vectors, their tuning and history.

Public API::

    ConceptStudent              fit / decision_function / predict_proba / objective
    lambda_for_sparsity         L1 strength for at most N concepts per class
    Instruction, tune_class     concept tuning (up/down votes -> weight bounds -> refit)
    bounds_from_history         (K, C) lower/upper arrays from a tuning history
    ProvenanceLog               student states and tuning steps in the workspace SQLite
    export_student, load_student  JSON + ONNX export
"""

from inficond.students.estimator import SOLVER_NAMES, ConceptStudent, lambda_for_sparsity
from inficond.students.export import export_student, load_student
from inficond.students.provenance import ProvenanceLog
from inficond.students.tuning import Instruction, apply_tuning, bounds_from_history, tune_bounds, tune_class

__all__ = [
    "ConceptStudent",
    "lambda_for_sparsity",
    "SOLVER_NAMES",
    "Instruction",
    "tune_bounds",
    "tune_class",
    "apply_tuning",
    "bounds_from_history",
    "ProvenanceLog",
    "export_student",
    "load_student",
]
