"""Fine-tuning provenance: every student state and tuning step, kept in the workspace SQLite.

States form a tree. A distillation is a root; every tuning step adds a child of the state it
started from. ``head`` (in ``meta``, key ``student_head``) is the state the user works on.
Undo moves head to its parent and revert moves it to any state; neither deletes anything, so
states after the new head stay as another branch, and the next step starts a new branch.
Head moves are logged in ``student_head_moves`` (they are not states: no weights change).

Tables (created on first use, ``CREATE TABLE IF NOT EXISTS``)::

    student_states(id, parent_id, created_at, kind 'distill'|'tune', solver, params JSON,
                   lam/coef/intercept/mean/scale .npy blobs, bounds JSON)
    tuning_steps(state_id, instructions JSON, step_params JSON, metrics_before JSON,
                 metrics_after JSON, duration_ms)
    student_head_moves(id, created_at, action 'undo'|'revert', from_state, to_state)

Each record is one transaction with the head update, so a killed process leaves either the
whole step or none of it. Arrays are stored as .npy bytes: loading gives the same bits.
"""

from __future__ import annotations

import io
import json
import math
from datetime import datetime, timezone

import numpy as np

from inficond.exceptions import TuningError
from inficond.store.workspace import Workspace
from inficond.students.estimator import ConceptStudent
from inficond.students.tuning import STEP_PARAMS, Instruction, apply_tuning, bounds_from_history

__all__ = ["ProvenanceLog", "history_to_json", "history_from_json", "widen_student"]

HEAD_KEY = "student_head"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS student_states (
  id         INTEGER PRIMARY KEY AUTOINCREMENT,
  parent_id  INTEGER REFERENCES student_states(id),
  created_at TEXT NOT NULL,
  kind       TEXT NOT NULL CHECK (kind IN ('distill', 'tune')),
  solver     TEXT NOT NULL,
  params     TEXT NOT NULL,              -- JSON: estimator parameters + caller's settings
  lam        BLOB NOT NULL,              -- .npy float64 (K,)
  coef       BLOB NOT NULL,              -- .npy float64 (K, C)
  intercept  BLOB NOT NULL,              -- .npy float64 (K,)
  mean       BLOB NOT NULL,              -- .npy float64 (C,)
  scale      BLOB NOT NULL,              -- .npy float64 (C,)
  bounds     TEXT NOT NULL               -- JSON [[class, concept, lower|null, upper|null], ...]
);
CREATE TABLE IF NOT EXISTS tuning_steps (
  state_id       INTEGER PRIMARY KEY REFERENCES student_states(id),
  instructions   TEXT NOT NULL,          -- JSON [{class_idx, concept_idx, direction}, ...]
  step_params    TEXT NOT NULL,          -- JSON {factor, on_conflict, ...} for replay
  metrics_before TEXT,                   -- JSON, filled by the caller (val and test)
  metrics_after  TEXT,
  duration_ms    REAL
);
CREATE TABLE IF NOT EXISTS student_head_moves (
  id         INTEGER PRIMARY KEY AUTOINCREMENT,
  created_at TEXT NOT NULL,
  action     TEXT NOT NULL CHECK (action IN ('undo', 'revert')),
  from_state INTEGER REFERENCES student_states(id),
  to_state   INTEGER NOT NULL REFERENCES student_states(id)
);
"""


def _npy(a) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(a, dtype=np.float64), allow_pickle=False)
    return buf.getvalue()


def _from_npy(b: bytes) -> np.ndarray:
    return np.load(io.BytesIO(b), allow_pickle=False)


def history_to_json(history) -> str:
    """Bounds history as JSON (``null`` for an infinite bound), sorted for stable output."""
    rows = [
        [int(k), int(c), None if math.isinf(lo) else float(lo), None if math.isinf(hi) else float(hi)]
        for (k, c), (lo, hi) in sorted((history or {}).items())
    ]
    return json.dumps(rows)


def history_from_json(text: str) -> dict:
    return {
        (int(k), int(c)): (-math.inf if lo is None else float(lo), math.inf if hi is None else float(hi))
        for k, c, lo, hi in json.loads(text)
    }


def widen_student(student: ConceptStudent, X_train: np.ndarray) -> ConceptStudent:
    """Give ``student`` the columns of concepts added after it was fitted (in place; returned).

    The new concepts start at influence 0 and are standardised with their train mean and
    standard deviation (computed in float64, so the session and :meth:`ProvenanceLog.replay`
    agree to the bit). ``X_train`` holds every column, old and new.
    """
    extra = X_train.shape[1] - student.coef_.shape[1]
    if extra > 0:
        new = np.asarray(X_train[:, -extra:], dtype=np.float64)
        scale = new.std(0)
        student.coef_ = np.hstack([student.coef_, np.zeros((student.coef_.shape[0], extra))])
        student.mean_ = np.concatenate([student.mean_, new.mean(0)])
        student.scale_ = np.concatenate([student.scale_, np.where(scale > 0, scale, 1.0)])
        if getattr(student, "lower_", None) is not None and student.lower_.shape[1] < student.coef_.shape[1]:
            pad = ((0, 0), (0, extra))
            student.lower_ = np.pad(student.lower_, pad, constant_values=-np.inf)
            student.upper_ = np.pad(student.upper_, pad, constant_values=np.inf)
    return student


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _jsonable(x):
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


class ProvenanceLog:
    """Record, browse, undo, revert and replay student states in workspace ``ws``."""

    def __init__(self, ws: Workspace):
        self.ws = ws
        with ws.transaction(keeps_cache=True) as db:
            for stmt in _SCHEMA.split(";"):
                if stmt.strip():
                    db.execute(stmt)

    # -- writing -------------------------------------------------------------------------
    def _insert_state(self, db, parent_id, kind, student, params, history) -> int:
        student._check_fitted()
        cur = db.execute(
            "INSERT INTO student_states(parent_id, created_at, kind, solver, params, lam, coef, intercept, mean, "
            "scale, bounds) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                parent_id, _now(), kind, student.solver,
                json.dumps(params, sort_keys=True, default=_jsonable),
                _npy(student.lam_), _npy(student.coef_), _npy(student.intercept_), _npy(student.mean_),
                _npy(student.scale_), history_to_json(history),
            ),
        )
        return int(cur.lastrowid)

    def record_distill(self, student: ConceptStudent, params: dict | None = None) -> int:
        """Store a freshly distilled student as a new root and make it head; returns its id.

        ``params`` are extra settings to keep (e.g. how lam was chosen); the estimator's own
        parameters are always stored and are what :meth:`replay` uses.
        """
        full = {"estimator": student.get_params(), "extra": params or {}}
        with self.ws.transaction(keeps_cache=True) as db:
            sid = self._insert_state(db, None, "distill", student, full, {})
            self.ws.set_meta(HEAD_KEY, sid)
        return sid

    def record_step(self, parent_id: int, student_after: ConceptStudent, instructions, bounds_history,
                    metrics_before=None, metrics_after=None, duration_ms=None, step_params=None) -> int:
        """Store one tuning step (a child of ``parent_id``) and make it head; returns its id.

        ``student_after`` should come from :func:`inficond.students.tuning.apply_tuning` with
        ``step_params`` (factor, on_conflict, max_iter, tol) so that :meth:`replay` can repeat
        it. Metrics are whatever JSON the caller computes (e.g. val and test mAP).
        """
        self._row(parent_id)  # must exist
        unknown = set(step_params or {}) - set(STEP_PARAMS)
        if unknown:
            raise TuningError(f"unknown step_params {sorted(unknown)}; use {', '.join(STEP_PARAMS)}")
        ins = [i.to_dict() if isinstance(i, Instruction) else Instruction.from_dict(i).to_dict() for i in instructions]
        params = {"estimator": student_after.get_params()}
        with self.ws.transaction(keeps_cache=True) as db:
            sid = self._insert_state(db, int(parent_id), "tune", student_after, params, bounds_history)
            db.execute(
                "INSERT INTO tuning_steps(state_id, instructions, step_params, metrics_before, metrics_after, "
                "duration_ms) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    sid, json.dumps(ins), json.dumps(step_params or {}, sort_keys=True, default=_jsonable),
                    json.dumps(metrics_before, default=_jsonable), json.dumps(metrics_after, default=_jsonable),
                    None if duration_ms is None else float(duration_ms),
                ),
            )
            self.ws.set_meta(HEAD_KEY, sid)
        return sid

    # -- reading ---------------------------------------------------------------------------
    def head(self) -> int | None:
        """Id of the current state, or None before the first distillation."""
        h = self.ws.get_meta(HEAD_KEY)
        return None if h is None else int(h)

    def _row(self, state_id) -> dict:
        cur = self.ws.db.execute(
            "SELECT s.*, t.instructions, t.step_params, t.metrics_before, t.metrics_after, t.duration_ms "
            "FROM student_states s LEFT JOIN tuning_steps t ON t.state_id = s.id WHERE s.id = ?",
            (int(state_id) if isinstance(state_id, (int, np.integer)) else -1,),
        )
        row = cur.fetchone()
        if row is None:
            raise TuningError(f"no student state {state_id!r} in this workspace; see ProvenanceLog.all_states()")
        return dict(zip([d[0] for d in cur.description], row))

    def load_state(self, state_id: int | None = None):
        """The student and bounds history of a state (default head): ``(ConceptStudent, dict)``."""
        if state_id is None:
            state_id = self.head()
            if state_id is None:
                raise TuningError("no student recorded yet; distil one first")
        r = self._row(state_id)
        params = json.loads(r["params"])["estimator"]
        st = ConceptStudent(**params)
        st.coef_, st.intercept_ = _from_npy(r["coef"]), _from_npy(r["intercept"])
        st.mean_, st.scale_, st.lam_ = _from_npy(r["mean"]), _from_npy(r["scale"]), _from_npy(r["lam"])
        history = history_from_json(r["bounds"])
        st.lower_, st.upper_ = bounds_from_history(history, *st.coef_.shape)
        st.n_nonzero_ = np.count_nonzero(st.coef_, axis=1)
        K = st.coef_.shape[0]
        st.n_iter_, st.kkt_, st.converged_ = np.zeros(K, int), np.full(K, np.nan), np.zeros(K, bool)
        return st, history

    @staticmethod
    def _summary(r: dict) -> dict:
        return {
            "id": int(r["id"]),
            "parent_id": r["parent_id"],
            "created_at": r["created_at"],
            "kind": r["kind"],
            "solver": r["solver"],
            "instructions": json.loads(r["instructions"]) if r.get("instructions") else [],
            "step_params": json.loads(r["step_params"]) if r.get("step_params") else {},
            "metrics_before": json.loads(r["metrics_before"]) if r.get("metrics_before") else None,
            "metrics_after": json.loads(r["metrics_after"]) if r.get("metrics_after") else None,
            "duration_ms": r.get("duration_ms"),
        }

    def steps(self, branch: int | None = None) -> list[dict]:
        """The linear path root -> ``branch`` (default head), oldest first, as summaries."""
        sid = self.head() if branch is None else branch
        path = []
        while sid is not None:
            r = self._row(sid)
            path.append(self._summary(r))
            sid = r["parent_id"]
        return path[::-1]

    def all_states(self) -> list[dict]:
        """Every state (the tree: follow ``parent_id``), oldest first; ``is_head`` marks head."""
        cur = self.ws.db.execute(
            "SELECT s.id, s.parent_id, s.created_at, s.kind, s.solver, t.instructions, t.step_params, "
            "t.metrics_before, t.metrics_after, t.duration_ms FROM student_states s "
            "LEFT JOIN tuning_steps t ON t.state_id = s.id ORDER BY s.id"
        )
        names = [d[0] for d in cur.description]
        head = self.head()
        out = []
        for row in cur.fetchall():
            s = self._summary(dict(zip(names, row)))
            s["is_head"] = s["id"] == head
            out.append(s)
        return out

    # -- moving head -------------------------------------------------------------------------
    def _move_head(self, action: str, to_state: int) -> int:
        with self.ws.transaction(keeps_cache=True) as db:
            db.execute(
                "INSERT INTO student_head_moves(created_at, action, from_state, to_state) VALUES (?, ?, ?, ?)",
                (_now(), action, self.head(), int(to_state)),
            )
            self.ws.set_meta(HEAD_KEY, int(to_state))
        return int(to_state)

    def undo(self) -> int:
        """Move head to its parent (nothing is deleted); returns the new head id."""
        h = self.head()
        if h is None:
            raise TuningError("nothing to undo: no student recorded yet")
        parent = self._row(h)["parent_id"]
        if parent is None:
            raise TuningError(f"nothing to undo: state {h} is the distilled student (a root)")
        return self._move_head("undo", parent)

    def revert(self, state_id: int) -> int:
        """Make ``state_id`` head; later states stay, as another branch. Returns ``state_id``."""
        self._row(state_id)
        return self._move_head("revert", int(state_id))

    # -- replay --------------------------------------------------------------------------------
    def replay(self, steps=None, inputs=None) -> ConceptStudent:
        """Recompute a path of states from the inputs alone; returns the final student.

        Parameters
        ----------
        steps : list of dict, optional
            A path as returned by :meth:`steps` (default: root -> head). Its first entry must
            be a distillation.
        inputs : Workspace or (X, T) or (X, T, Y)
            Training concept vectors (n, C) and teacher logits (n, K); a workspace gives its
            ``train`` split of ``concept_vectors`` and ``teacher_logits`` (and labels ``Y``,
            which steps with ``label_weight > 0`` need).

        The distillation is refitted with the stored estimator parameters, then every step is
        re-applied with :func:`apply_tuning` and its stored ``step_params``. Solvers are
        deterministic, so the result equals the recorded state (to rounding, ~1e-12, when
        BLAS threading differs). Concepts added along the path (``add-concepts``) are honoured:
        each state is replayed on the columns it was recorded with, and a student meets newly
        added columns the way the session gives them (:func:`widen_student`).
        """
        steps = self.steps() if steps is None else list(steps)
        if not steps or steps[0]["kind"] != "distill":
            raise TuningError("replay needs a path that starts with a distillation (see ProvenanceLog.steps())")
        if isinstance(inputs, Workspace):
            idx = inputs.split_indices("train")
            X = np.asarray(inputs.array("concept_vectors")[idx], dtype=np.float64)
            T = np.asarray(inputs.array("teacher_logits")[idx], dtype=np.float64)
            Y = inputs.labels[idx]
        else:
            X, T, Y = (*inputs, None)[:3]
        root = self._row(steps[0]["id"])
        params = json.loads(root["params"])["estimator"]
        root_lam = _from_npy(root["lam"])
        params["lam"] = root_lam if root_lam.size > 1 and np.ptp(root_lam) > 0 else float(root_lam[0])
        width = self._width(root)
        if width > X.shape[1]:
            raise TuningError(f"state {root['id']} has {width} concepts but the inputs only {X.shape[1]}")
        student = ConceptStudent(**params).fit(X[:, :width], T)
        history: dict = {}
        for s in steps[1:]:
            width = max(width, self._width(self._row(s["id"])))
            student = widen_student(student, X[:, :width])
            ins = [Instruction.from_dict(d) for d in s["instructions"]]
            student, history = apply_tuning(student, X[:, :width], T, ins, history, labels=Y, **s["step_params"])
        return student

    @staticmethod
    def _width(row: dict) -> int:
        """Concept columns of a stored state (the corpus size when it was recorded)."""
        return int(_from_npy(row["coef"]).shape[1])
