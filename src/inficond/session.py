"""The engine facade: one object per workspace that the CLI and the server both call.

A ``Session`` loads a workspace's arrays once, keeps the current student (the provenance head)
and answers every view's question from memory. All answers are JSON-able dicts. Classes and
concepts may be given by index or by name; unknown ones raise ``UnknownNameError``.
Tuning, undo and revert are serialised by a lock so concurrent callers see consistent states.
"""

from __future__ import annotations

import copy
import re
import threading
import time
import warnings
from collections import OrderedDict
from functools import cached_property
from pathlib import Path

import numpy as np
from scipy.special import expit

from inficond.analysis import (
    all_class_metrics,
    alignment,
    alignment_change,
    class_metrics,
    concept_class_influence,
    concept_map,
    extend_concept_map,
    presence_discrepancy,
    rank_concepts,
    suggest_moves,
    top_images,
    whatif_curves,
)
from inficond.analysis.metrics import metrics_batch
from inficond.analysis.suggest import group_suspects, rank_erase_moves, shortcut_suspects
from inficond.analysis.whatif import influence_grid
from inficond.exceptions import ArgumentError, TuningError, UnknownNameError, VoteConflictError, WorkspaceError
from inficond.store.workspace import PENDING_PATCHES_KEY, Float32Rows, Workspace
from inficond.students import ConceptStudent, Instruction, ProvenanceLog, apply_tuning, export_student, lambda_for_sparsity
from inficond.students._solvers import _duplicate_columns
from inficond.students.provenance import widen_student
from inficond.students.tuning import ERASE_HOW, MODES as TUNE_MODES, carry_step_params, reference_influence, tune_bounds

# Measured on the development data: 30 concepts per class give val mAP 0.757 on the 8 well-populated
# classes, 100 give 0.783 (teacher 0.850); 100 ranked concepts stay readable in the views.
DEFAULT_MAX_CONCEPTS = 100
TUNE_FACTOR = 0.5  # see inficond.students.tuning: a vote moves a weight by half a typical top influence
SHORTCUT_POOL = 40  # suspects grouped into contexts; the learned grass context spread over ~38 of them
CLASS_VIEWS_KEPT = 256  # class-view answers kept across student states (each ~15 kB)

METRICS = ("ap", "precision", "recall", "f1", "accuracy")


def ap_interval(ap: float | None, n_pos: int, z: float = 1.96) -> list[float] | None:
    """A 95% interval for an AP measured on ``n_pos`` positives (logit interval, Boyd et al. 2013).

    A cue for the sample size, not an exact bound: few positives give a wide interval.
    """
    if ap is None or n_pos <= 0:
        return None
    # Half a positive of continuity correction: clamping at 1e-6 made AP 1.0 on 128 positives read
    # as [0, 1]; expit does not overflow at the extremes. The measured AP always lies inside.
    a = min(max(float(ap), 0.5 / n_pos), 1 - 0.5 / n_pos)
    half = z / np.sqrt(n_pos * a * (1 - a))
    eta = np.log(a / (1 - a))
    return [min(float(expit(eta - half)), float(ap)), max(float(expit(eta + half)), float(ap))]


def _num(v) -> float | None:
    v = float(v)
    return v if np.isfinite(v) else None


def _standardize_rows(X, rows, mean, scale, block: int = 8192, order: str = "C") -> np.ndarray:
    """``(X[rows] - mean) / scale`` in float64, built block by block into its result: the same
    values without a float32 copy of the rows and a second float64 temporary, which made building
    Z of train the server's memory peak (+0.5 GB at 100,000 images; bench_memory.py).
    ``order="F"``: the result column-major (what the tuning refit gathers columns from)."""
    Z = np.empty((len(rows), X.shape[1]), order=order)
    if order == "F":
        # row blocks small enough that their transposed copy stays in cache (measured at 21k
        # train rows: 1,024-row blocks through a temporary as fast as the row-major build;
        # 8,192-row blocks written straight into the column-major result 2-3x slower)
        for i in range(0, len(rows), 1024):
            t = np.subtract(X[rows[i : i + 1024]], mean)
            t /= scale
            Z[i : i + 1024] = t
        return Z
    for i in range(0, len(rows), block):
        np.subtract(X[rows[i : i + block]], mean, out=Z[i : i + block])
        Z[i : i + block] /= scale
    return Z


_PATCH_ID = re.compile(r"^(\d+)-(\d+)$")
MAX_WORD_CHARS = 64  # a concept word or short phrase; longer ones break the views' layout
MAX_ADDED_CONCEPTS = 1000  # words the server lets users add; each adds a float16 column per image


class _Encoded:
    """The workspace encoder with some words' text already encoded (outside the session lock)."""

    def __init__(self, encoder, words: list[str], text) -> None:
        self.encoder, self.text = encoder, dict(zip(words, text))

    def identity(self) -> dict:
        return self.encoder.identity()

    def encode_text(self, words: list[str]) -> np.ndarray:
        if words and all(w in self.text for w in words):
            return np.stack([self.text[w] for w in words])
        return self.encoder.encode_text(words)  # a word normalised differently: encode it now


class Session:
    """Open the workspace at ``path`` for analysis and tuning.

    Parameters
    ----------
    path : str or Path
        A workspace built by ``inficond prepare``.

    Attributes
    ----------
    notices : list of str
        Why the workspace is older than what ``prepare`` builds today (older default corpus or
        encoder), with the command that rebuilds it; also issued as ``OutdatedWorkspaceWarning``.
    """

    def __init__(self, path: str | Path):
        self.ws = Workspace(path)
        if not self.ws.has_array("teacher_logits"):
            raise WorkspaceError(f"workspace {path} is not fully prepared; run `inficond prepare --out {path}` again")
        from inficond.prepare import OutdatedWorkspaceWarning, outdated_notices

        self.notices = outdated_notices(self.ws)  # an older workspace still works: a notice, not an error
        for note in self.notices:
            warnings.warn(note, OutdatedWorkspaceWarning, stacklevel=2)
        self.log = ProvenanceLog(self.ws)
        if self.ws.get_meta(PENDING_PATCHES_KEY):  # an add-concepts killed before its patches were built
            from inficond.concepts.mapping import finish_pending_patches

            finish_pending_patches(self.ws)
        self._lock = threading.RLock()
        self._encoder_lock = threading.Lock()  # one text-model load, outside self._lock
        self._cache: dict = {}
        self._z_cache: dict = {}  # split -> (standardisation key, Z); see _Z
        # one build of each Z at a time, without the session lock (warm_up builds Z of train while
        # the views answer); never held while taking self._lock
        self._z_lock = threading.RLock()
        self._z_dups: dict = {}  # split -> (standardisation key, identical columns of Z); see _duplicates
        self._scores_of: dict = {}  # (id(student), class, split) -> (student, logits); see _class_scores
        self._rows: dict = {}  # split -> its image rows (fixed once prepared)
        self._teacher_metrics: dict = {}  # split -> the teacher's metrics (the teacher never changes)
        self._class_views: OrderedDict = OrderedDict()  # see _per_class_state
        self._perf_rows: OrderedDict = OrderedDict()  # see _student_rows

    # -- data ------------------------------------------------------------------------
    @property
    def path(self) -> Path:
        return self.ws.path

    @cached_property
    def X(self) -> Float32Rows:
        """Concept vectors, (n_images, n_concepts): indexing gives float32 arrays, read from the
        memory-mapped file (no float32 copy of the whole array held; see Float32Rows)."""
        return Float32Rows(self.ws.array("concept_vectors"))

    @cached_property
    def T(self) -> np.ndarray:
        """Teacher logits, (n_images, n_classes) float32."""
        return np.asarray(self.ws.array("teacher_logits"), dtype=np.float32)

    @property
    def Y(self) -> np.ndarray:
        return self.ws.labels

    def rows(self, split: str) -> np.ndarray:
        """Image rows of ``split`` (read-only; asked for by every view, so computed once)."""
        if split not in ("train", "val", "test"):
            raise ArgumentError(f"unknown split {split!r}; expected train, val or test")
        if split not in self._rows:
            r = self.ws.split_indices(split)
            r.flags.writeable = False
            self._rows[split] = r
        return self._rows[split]

    def class_idx(self, cls) -> int:
        if isinstance(cls, str) and cls.isascii() and cls.isdigit():  # "²".isdigit() too
            cls = int(cls)
        return self.ws.class_index(cls)

    def concept_idx(self, concept) -> int:
        if isinstance(concept, str) and concept.isascii() and concept.isdigit():
            concept = int(concept)
        return self.ws.concept_index(concept)

    @cached_property
    def excluded(self) -> np.ndarray:
        return np.array([bool(r[0]) for r in self.ws.db.execute("SELECT excluded FROM classes ORDER BY idx")])

    # -- student state ---------------------------------------------------------------
    def distill(self, lam: float | None = None, max_concepts: int | None = None, solver: str = "cd") -> dict:
        """Fit every class's student on the train split and record it as a new provenance root.

        ``lam`` fixes the L1 strength; otherwise each class gets the lam that keeps at most
        ``max_concepts`` (default DEFAULT_MAX_CONCEPTS) non-zero concepts, from a warm-started regularisation path.
        """
        train = self.rows("train")
        with self._lock:
            t0 = time.perf_counter()
            if lam is None and solver == "cd":  # the search ends with this very fit: keep it
                lam, student = lambda_for_sparsity(self.X[train], self.T[train],
                                                   max_concepts=max_concepts or DEFAULT_MAX_CONCEPTS, return_student=True)
            else:
                if lam is None:
                    lam = lambda_for_sparsity(self.X[train], self.T[train],
                                              max_concepts=max_concepts or DEFAULT_MAX_CONCEPTS)
                student = ConceptStudent(lam=lam, solver=solver).fit(self.X[train], self.T[train])
            lam_list = np.atleast_1d(np.asarray(lam, dtype=float)).tolist()
            state = self.log.record_distill(student, {"lam": lam_list, "solver": solver, "max_concepts": max_concepts})
            self._cache.clear()
            secs = time.perf_counter() - t0
        out = self.summary()["student"]
        out["seconds"] = round(secs, 3)
        out["state_id"] = state
        return out

    def _require_student(self) -> None:
        if self.log.head() is None:
            raise WorkspaceError(f"no student yet in {self.path}; run `inficond distill {self.path}` first")

    @property
    def student(self) -> ConceptStudent:
        self._require_student()
        head = self.log.head()
        if self._cache.get("head") != head:
            student, history = self.log.load_state(head)
            self._cache.clear()
            self._cache.update(head=head, student=self._fit_width(student), history=history)
        return self._cache["student"]

    @property
    def history(self) -> dict:
        self.student  # refresh cache
        return self._cache["history"]

    def _fit_width(self, student: ConceptStudent) -> ConceptStudent:
        """Pad a student saved before concepts were added (new concepts start at influence 0).

        The same padding as :meth:`ProvenanceLog.replay`, so replay reproduces such states."""
        if self.X.shape[1] > student.coef_.shape[1]:
            student = widen_student(student, self.X[self.rows("train")])
        return student

    def _Z(self, split: str, student: ConceptStudent | None = None) -> np.ndarray:
        """Standardised concepts of ``split`` under ``student``'s (default: the current) standardisation.

        Kept across student states, keyed by ``mean_`` and ``scale_``: tuning refits keep the
        distillation's standardisation, so a tune, undo or revert reuses it instead of rebuilding
        it (measured: the first calls after a state change at 30k images; bench_scale.py).
        """
        s = self.student if student is None else student
        key = (s.mean_.tobytes(), s.scale_.tobytes())
        with self._z_lock:
            hit = self._z_cache.get(split)
            if hit is None or hit[0] != key:
                self._z_cache.pop(split, None)  # the old Z goes before the new one is built
                # train column-major: the tuning refit's Newton models gather its columns (tune_class)
                order = "F" if split == "train" else "C"
                hit = self._z_cache[split] = (key, _standardize_rows(self.X, self.rows(split), s.mean_, s.scale_,
                                                                     order=order))
            return hit[1]

    def _duplicates(self, split: str = "train", student: ConceptStudent | None = None) -> list[np.ndarray]:
        """Groups of identical columns of :meth:`_Z` (aliases), kept with it for the tuning refits."""
        s = self.student if student is None else student
        with self._z_lock:
            Z = self._Z(split, s)
            key = self._z_cache[split][0]
            hit = self._z_dups.get(split)
            if hit is None or hit[0] != key:
                hit = self._z_dups[split] = (key, _duplicate_columns(Z))
            return hit[1]

    def warm_up(self) -> dict:
        """Make the first tuning step as fast as the later ones; the server runs it on a background
        thread once it serves (``create_app``), without the session lock.

        A fresh server's first step cost ~540 ms against ~195 ms later on the development
        workspace (bench_tune_step.py --first): building Z of train (and its aliases), and the
        solver's first call (BLAS and LAPACK's first calls, first-touch page faults). Builds
        those here, then runs the tuning solver once on a small problem. Returns the seconds
        each part took. A workspace without a student has nothing to warm.
        """
        from inficond.students._solvers import synthetic_problem
        from inficond.students.tuning import tune_class

        with self._lock:  # one consistent student; what reads the database, read here
            if self.log.head() is None:
                return {}
            s = self.student
            for split in ("train", "val", "test"):
                self.rows(split)
            self.X
        took = {}
        t0 = time.perf_counter()
        # Z of train only: Z of val and test built here too held 30 and ~70 MiB more at 100k
        # after the page's first views (measured in-process); the views and the step build them.
        self._duplicates("train", s)
        took["z_s"] = time.perf_counter() - t0
        if s.solver == "cd":  # the default; "adam-paper" would load torch (start-up keeps it out)
            t0 = time.perf_counter()
            # the real refit's code path (tune_class -> solve_cd) on a small synthetic problem
            X, T = synthetic_problem(n=256, n_concepts=40, n_classes=1, seed=0, n_factors=8)
            tiny = ConceptStudent(lam=0.01, n_threads=s.n_threads).fit(X, T)
            tune_class(tiny, X, T, 0, [Instruction(0, int(np.argmax(np.abs(tiny.coef_[0]))), "down")])
            took["solver_s"] = time.perf_counter() - t0
        return took

    def _student_logits(self, split: str) -> np.ndarray:
        key = ("S", split)
        if key not in self._cache:
            s = self.student
            self._cache[key] = self._Z(split) @ s.coef_.T + s.intercept_
        return self._cache[key]

    # -- views -----------------------------------------------------------------------
    def summary(self) -> dict:
        ws = self.ws
        splits = {s: int(len(self.rows(s))) for s in ("train", "val", "test")}
        sources = {r[0]: r[1] for r in ws.db.execute("SELECT source, COUNT(*) FROM concepts GROUP BY source")}
        out = {
            "dataset": {
                "root": ws.get_meta("data_root"),
                "n_images": int(ws.n_images),
                "n_classes": len(ws.class_names),
                "splits": splits,
                "skipped": ws.get_meta("skipped", []),
                "corrupt": self._corrupt(),
                "class_names": ws.class_names,
            },
            "teacher": ws.get_meta("teacher"),
            "encoder": ws.get_meta("encoder"),
            "corpus": {"n_concepts": len(ws.concept_words), "sources": sources},
            "workspace": str(self.path.resolve()),  # keys the browser's pending votes
            "student": None,
        }
        if self.log.head() is not None:
            perf = self.performance("val")
            s = self.student
            out["student"] = {
                "state_id": self.log.head(),
                "lam": np.atleast_1d(np.asarray(s.lam_, dtype=float)).tolist(),
                "solver": s.solver,
                "teacher_map": perf["teacher_map"],
                "student_map": perf["student_map"],
                "test_student_map": self.performance("test")["student_map"],
                "mean_nonzero": float(np.mean((s.coef_ != 0).sum(1)[~self.excluded])) if (~self.excluded).any() else 0.0,
            }
        return out

    def _corrupt(self) -> list[list]:
        """[image_id, error] of the images prepare could not read, found in the cached status column
        (the query scanned every image row: 40 ms of each summary at 100,000 images)."""
        idx = np.flatnonzero(self.ws.status == "corrupt")
        if not idx.size:
            return []
        q = f"SELECT image_id, error FROM images WHERE idx IN ({','.join(map(str, idx.tolist()))}) ORDER BY idx"
        return [list(r) for r in self.ws.db.execute(q)]

    def performance(self, split: str = "val") -> dict:
        key = ("perf", split)
        if key in self._cache and self._cache.get("head") == self.log.head():
            return self._cache[key]
        rows = self.rows(split)
        y, t, st = self.Y[rows], self.T[rows], self._student_logits(split)
        if split not in self._teacher_metrics:
            self._teacher_metrics[split] = all_class_metrics(y, t, excluded=self.excluded)
        tm = self._teacher_metrics[split]
        student_rows = self._student_rows(split, y, t, st)
        reasons = {r[0]: r[1] for r in self.ws.db.execute("SELECT idx, reason FROM classes")}
        classes = []
        for k, name in enumerate(self.ws.class_names):
            tk, sk = tm["per_class"][k], student_rows[k]["student"]
            classes.append(
                {
                    "class_idx": k,
                    "name": name,
                    "excluded": bool(self.excluded[k]),
                    "reason": reasons.get(k),
                    "n_pos": int(y[:, k].sum()),
                    "student_ap_ci": ap_interval(sk["ap"], int(y[:, k].sum())),
                    "teacher": {m: tk[m] for m in METRICS},
                    "student": {m: sk[m] for m in METRICS},
                    "gap": None if tk["ap"] is None or sk["ap"] is None else tk["ap"] - sk["ap"],
                    "fidelity": student_rows[k]["fidelity"],
                    "alignment": student_rows[k]["alignment"],
                }
            )
        # the mean as all_class_metrics takes it: the same values in the same order, the same bits
        ap = np.array([np.nan if r["student"]["ap"] is None else r["student"]["ap"] for r in student_rows])
        ap_ok = ~self.excluded & ~np.isnan(ap)
        out = {
            "split": split,
            "teacher_map": tm["mean"]["ap"],
            "student_map": float(ap[ap_ok].mean()) if ap_ok.any() else None,
            "n_classes_in_mean": tm["n_classes"],
            "classes": classes,
        }
        self._cache[key] = out
        return out

    def _student_rows(self, split: str, y: np.ndarray, t: np.ndarray, st: np.ndarray) -> list[dict]:
        """Each class's student metrics, agreement with the teacher and alignment on ``split``.

        Kept per class state (:meth:`_class_state`): a step refits one class, so after it only
        that class is scored again (the other 19 of the development data's 20 were rescored on
        every step, twice: val and test). Rows are scored together by the same batch function as
        :func:`~inficond.analysis.all_class_metrics`, whose rows are independent: the same values.
        """
        K = y.shape[1]
        s, history = self.student, self.history
        keys = [(split, self._class_state(k, s, history)) for k in range(K)]
        todo = [k for k in range(K) if keys[k] not in self._perf_rows]
        if todo:
            vals = metrics_batch(y[:, todo].T, st[:, todo].T, METRICS)
            for j, k in enumerate(todo):
                a = float(vals["ap"][j])
                self._perf_rows[keys[k]] = {
                    "student": {"ap": None if np.isnan(a) else a,
                                **{m: float(vals[m][j]) for m in METRICS if m != "ap"}},
                    "fidelity": float(((t[:, k] > 0) == (st[:, k] > 0)).mean()),  # fidelity()'s per-class agreement
                    "alignment": alignment(y[:, k], t[:, k] > 0, st[:, k] > 0),
                }
            while len(self._perf_rows) > 4 * CLASS_VIEWS_KEPT:
                self._perf_rows.popitem(last=False)
        # shared by the answers of the states where the class is the same, like the cached answer
        # itself is shared by every caller of one state: read-only for callers
        return [self._perf_rows[key] for key in keys]

    def _class_scores(self, k: int, split: str, student: ConceptStudent | None = None) -> np.ndarray:
        """Logits of class ``k`` on ``split`` from ``student`` (default: the current one).

        A student other than the current one (a step's result, before it is recorded) keeps its
        last scores: a step asks for them five times (metrics, alignment, fidelity), each a
        product over every val or test image (~15 ms at 100,000 images)."""
        if student is None:
            return self._student_logits(split)[:, k]
        key = (id(student), k, split)
        hit = self._scores_of.get(key)
        if hit is None or hit[0] is not student:
            hit = (student, self._Z(split, student) @ student.coef_[k] + student.intercept_[k])
            if len(self._scores_of) >= 4:  # two splits of the step being made
                self._scores_of.clear()
            self._scores_of[key] = hit
        return hit[1]

    def _class_metrics(self, k: int, split: str, student: ConceptStudent | None = None) -> dict:
        m = class_metrics(self.Y[self.rows(split), k], self._class_scores(k, split, student))
        return {key: m[key] for key in METRICS}

    def _alignment(self, k: int, split: str, student: ConceptStudent | None = None) -> dict:
        rows = self.rows(split)
        return alignment(self.Y[rows, k], self.T[rows, k] > 0, self._class_scores(k, split, student) > 0)

    def _discrepancy_full(self, k: int) -> dict:
        key = ("disc", k)
        if key not in self._cache:
            rows = self.rows("val")
            self._cache[key] = presence_discrepancy(
                self.X[rows], self.Y[rows, k], self._student_logits("val")[:, k] > 0
            )
        return self._cache[key]

    def _discrepancy(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        d = self._discrepancy_full(k)
        return d["dp"], d["dn"]

    def _ranking_arrays(self, k: int, sort: str) -> tuple[np.ndarray, np.ndarray, str | None]:
        """dp, dn for ranking, and a note when a discrepancy is undefined and a fallback is used.

        An undefined discrepancy is all zeros, so ranking by it would fall back to index order.
        In its place we rank by class contrast (mean presence among val positives minus among
        val negatives), which still says which concepts set the class apart.
        """
        d = self._discrepancy_full(k)
        dp, dn, note = d["dp"], d["dn"], None
        sub = {"discrepancy_p": ("p", "positives", "pos_aligned", "pos_misaligned"),
               "discrepancy_n": ("n", "negatives", "neg_aligned", "neg_misaligned")}.get(sort)
        if sub and not d[f"{sub[0]}_defined"]:
            rows = self.rows("val")
            y = self.Y[rows, k].astype(bool)
            X = self.X[rows]
            right, wrong = d["counts"][sub[2]], d["counts"][sub[3]]
            if not (y.any() and (~y).any()):
                return dp, dn, (f"This class has no val {'positives' if not y.any() else 'negatives'}, so no "
                                "discrepancy or contrast can rank its concepts; shown in corpus order.")
            contrast = X[y].mean(0).astype(np.float64) - X[~y].mean(0).astype(np.float64)
            why = (f"the student gets none of the {wrong} val {sub[1]} right" if right == 0
                   else f"the student gets all {right} val {sub[1]} right")
            note = (f"Discrepancy among {sub[1]} is undefined: {why}. Sorted instead by class contrast "
                    "(how much more present a concept is among positives than among negatives).")
            if sub[0] == "p":
                dp = contrast
            else:
                dn = -contrast
        return dp, dn, note

    def _whatif(self, k: int, concepts, n_points: int = 21, metrics=METRICS) -> dict:
        rows = self.rows("val")
        s = self.student
        return whatif_curves(
            self._Z("val"), s.coef_[k], float(s.intercept_[k]), self.Y[rows, k], np.asarray(concepts, dtype=int),
            n_points=n_points, metrics=tuple(metrics),
        )

    def _per_state(self, key: tuple, build):
        """``build()`` once per student state; a copy each call (callers may change what they get).

        For views whose exact what-if work grows with the images (class concepts, suggestions:
        0.2-0.3 s at 4k, 0.5-2.7 s at 30k per call, bench_scale.py), so going back to a class
        or reloading a view is answered from memory. Emptied with the cache when the head moves.
        """
        self.student  # empties the cache when the head moved
        head = self._cache.get("head")
        full = ("view", head, *key)
        if full not in self._cache:
            out = build()
            if self._cache.get("head") != head:  # a step landed meanwhile (outside the server's lock)
                return out
            self._cache[full] = out
        return copy.deepcopy(self._cache[full])

    def _class_state(self, k: int, s: ConceptStudent | None = None, history: dict | None = None) -> tuple:
        """What class ``k``'s views depend on: its influences, intercept, standardisation and votes.

        A tuning step refits one class, so the other classes keep this key across the step, and
        an undo brings the tuned class's old key back. ``s`` and ``history``: the current ones.
        """
        s = self.student if s is None else s
        history = self.history if history is None else history
        votes = tuple(sorted((c, lo, hi) for (kk, c), (lo, hi) in history.items() if kk == k))
        return (k, s.coef_[k].tobytes(), float(s.intercept_[k]), hash(s.mean_.tobytes()), hash(s.scale_.tobytes()),
                votes, s.coef_.shape[1])

    def _per_class_state(self, k: int, key: tuple, build):
        """``build()`` once per class state (:meth:`_class_state`); a copy each call.

        Like :meth:`_per_state`, but kept when another class is tuned or a step is undone:
        after a step the page asks for the tuned class's views again, and going back to a class
        or undoing answers from memory (the class concepts' what-if curves and discrepancies
        took 60-100 ms per call on the development workspace).
        """
        with self._lock:
            head = self.log.head()
            full = (self._class_state(k), *key)
            hit = self._class_views.get(full)
            if hit is not None:
                self._class_views.move_to_end(full)
                return copy.deepcopy(hit)
        hit = build()  # takes the lock for what it reads (suggestions score outside it)
        with self._lock:
            if self.log.head() != head:  # a step landed meanwhile: an answer, not one to keep
                return hit
            self._class_views[full] = hit
            while len(self._class_views) > CLASS_VIEWS_KEPT:
                self._class_views.popitem(last=False)
        return copy.deepcopy(hit)

    def class_concepts(self, cls, k: int = 10, sort: str = "influence") -> dict:
        ki = self.class_idx(cls)
        if not 1 <= int(k) <= len(self.ws.concept_words):
            raise ArgumentError(f"k must be between 1 and {len(self.ws.concept_words)}, got {k}")
        return self._per_class_state(ki, ("class_concepts", int(k), sort), lambda: self._class_concepts(ki, int(k), sort))

    def _class_concepts(self, ki: int, k: int, sort: str) -> dict:
        coef = self.student.coef_[ki]
        dp, dn, note = self._ranking_arrays(ki, sort)
        order = [d["concept_idx"] for d in rank_concepts(coef, dp, dn, by=sort, k=int(k))]
        curves = self._whatif(ki, order, metrics=("ap",))
        words = self.ws.concept_words
        concepts = []
        for r, c in enumerate(order):
            concepts.append(
                {
                    "rank": r + 1,
                    "concept_idx": int(c),
                    "word": words[c],
                    "influence": float(coef[c]),
                    "discrepancy_p": float(dp[c]),
                    "discrepancy_n": float(dn[c]),
                    "whatif": {
                        "grid": curves["grid"][r].tolist(),
                        "ap": curves["values"]["ap"][r].tolist(),
                        "current": float(curves["current"][r]),
                    },
                    "patches": self._patches(int(c), limit=4),
                    "vote": self.earlier_vote(ki, int(c)),
                }
            )
        return {
            "class_idx": ki,
            "name": self.ws.class_names[ki],
            "sort": sort,
            "sort_note": note,
            "k": int(k),
            "ap": self._class_metrics(ki, "val")["ap"],
            "max_abs_influence": float(np.abs(coef).max()) if coef.size else 0.0,
            "nonzero": int((coef != 0).sum()),
            "concepts": concepts,
        }

    def search_concepts(self, cls, q: str, limit: int = 20) -> dict:
        """Corpus words containing ``q`` (case-insensitive), with their influence on the class.

        Every word is searched, including zero-weight and newly added ones, so any concept can
        be voted. Exact matches come first, then prefixes, then larger |influence|.
        """
        ki = self.class_idx(cls)
        q = " ".join(str(q).split()).lower()
        if not q:
            raise ArgumentError("search text q is empty; type part of a concept word")
        if not 1 <= int(limit) <= 200:
            raise ArgumentError(f"limit must be between 1 and 200, got {limit}")
        coef = self.student.coef_[ki]
        words = self.ws.concept_words
        hits = [i for i, w in enumerate(words) if q in w.lower()]
        hits.sort(key=lambda i: (words[i].lower() != q, not words[i].lower().startswith(q), -abs(coef[i]), i))
        nz_rank = {int(c): r + 1 for r, c in enumerate(np.argsort(-np.abs(coef), kind="stable")) if coef[c] != 0}
        sources = dict(self.ws.db.execute("SELECT idx, source FROM concepts"))
        return {
            "class_idx": ki,
            "name": self.ws.class_names[ki],
            "q": q,
            "total": len(hits),
            "concepts": [
                {"concept_idx": int(i), "word": words[i], "influence": float(coef[i]),
                 "rank": nz_rank.get(int(i)), "source": sources.get(int(i)), "vote": self.earlier_vote(ki, int(i))}
                for i in hits[: int(limit)]
            ],
        }

    def vote_proposal(self, k: int, c: int, factor: float = TUNE_FACTOR) -> dict:
        """Where an up or a down vote at strength ``factor`` would put the bound of concept ``c``."""
        factor = float(factor)
        if not (np.isfinite(factor) and 0 < factor <= 2):
            raise ArgumentError(f"factor (vote strength) must be in (0, 2], got {factor!r}")
        coef = self.student.coef_[k]
        out = {"factor": factor, "ref": reference_influence(coef), "earlier": self.earlier_vote(k, c)}
        for d in ("up", "down"):
            h = tune_bounds(coef, [Instruction(k, c, d)], self.history, factor=factor, on_conflict="replace")
            lo, hi = h[(k, c)]
            out[d] = float(lo if d == "up" else hi)
        return out

    def whatif(self, cls, concept, n_points: int = 21, factor: float | None = None) -> dict:
        ki, ci = self.class_idx(cls), self.concept_idx(concept)
        if not 3 <= int(n_points) <= 201:
            raise ArgumentError(f"n_points must be between 3 and 201, got {n_points}")
        proposal = None if factor is None else self.vote_proposal(ki, ci, factor)
        if proposal is None:
            cur = self._whatif(ki, [ci], n_points=int(n_points))
        else:
            # the default grid plus both proposed bounds, so the chart can be read there
            base = influence_grid(self.student.coef_[ki], [ci], int(n_points))[0]
            grid = np.unique(np.concatenate([base, [proposal["up"], proposal["down"]]]))
            rows = self.rows("val")
            s = self.student
            cur = whatif_curves(self._Z("val"), s.coef_[ki], float(s.intercept_[ki]), self.Y[rows, ki],
                                np.asarray([ci]), grid=grid, metrics=METRICS)
            for d in ("up", "down"):
                j = int(np.flatnonzero(grid == proposal[d])[0])
                proposal[f"{d}_values"] = {m: _num(cur["values"][m][0][j]) for m in METRICS}
        out = {
            "class_idx": ki,
            "concept_idx": ci,
            "word": self.ws.concept_words[ci],
            "grid": cur["grid"][0].tolist(),
            "values": {m: cur["values"][m][0].tolist() for m in METRICS},
            "current": float(cur["current"][0]),
        }
        if proposal is not None:
            out["proposal"] = proposal
        return out

    def _patches(self, c: int, limit: int | None = None) -> list[dict]:
        q = "SELECT rank, similarity, image_idx FROM patches WHERE concept_idx = ? ORDER BY rank"
        rows = self.ws.db.execute(q + (f" LIMIT {int(limit)}" if limit else ""), (c,)).fetchall()
        return [{"patch_id": f"{c}-{r}", "similarity": float(s), "image_idx": int(i)} for r, s, i in rows]

    def concept_detail(self, concept, cls=None, n_images: int = 12, factor: float | None = None) -> dict:
        ci = self.concept_idx(concept)
        done = np.flatnonzero(self.ws.status == "done")
        col = self.X[done, ci]
        best = done[top_images(col, k=int(n_images))]
        argmax = self.ws.array("concept_argmax")
        boxes = self.ws.array("region_boxes")
        ids = self.ws.image_ids
        images = [
            {
                "image_idx": int(i),
                "image_id": ids[i],
                "split": str(self.ws.splits[i]),
                "similarity": float(self.X[i, ci]),
                "box": [float(v) for v in boxes[i, int(argmax[i, ci])]],
            }
            for i in best
        ]
        classes = [
            {"class_idx": int(d["class_idx"]), "name": self.ws.class_names[d["class_idx"]], "influence": float(d["influence"])}
            for d in concept_class_influence(self.student.coef_, ci, k=5)
        ] if self.log.head() is not None else []
        source = self.ws.db.execute("SELECT source FROM concepts WHERE idx = ?", (ci,)).fetchone()[0]
        out = {
            "concept_idx": ci,
            "word": self.ws.concept_words[ci],
            "source": source,
            "images": images,
            "patches": self._patches(ci),
            "classes": classes,
            "whatif": None,
        }
        if cls is not None:
            out["whatif"] = self.whatif(cls, ci, factor=factor)
            out["vote"] = self.earlier_vote(self.class_idx(cls), ci)
        return out

    def concept_map(self) -> dict:
        words = self.ws.concept_words
        text = np.asarray(self.ws.array("concept_text"), dtype=np.float32)
        with self._lock:
            if self.ws.has_array("concept_map"):
                xy = np.asarray(self.ws.array("concept_map"))
                if len(xy) < len(words):
                    xy = extend_concept_map(xy, text[: len(xy)], text[len(xy):])
                    self.ws.save_array("concept_map", xy)
            else:
                xy = concept_map(text, seed=0)
                self.ws.save_array("concept_map", xy)
        return {"points": [{"concept_idx": i, "word": w, "x": float(x), "y": float(y)} for i, (w, (x, y)) in enumerate(zip(words, xy))]}

    # -- tuning ------------------------------------------------------------------------
    def _parse_instructions(self, instructions) -> tuple[int, list[Instruction]]:
        if not instructions:
            raise TuningError("no tuning instructions given; vote at least one concept up or down")
        parsed = []
        for ins in instructions:
            get = ins.get if isinstance(ins, dict) else (lambda key, o=ins: getattr(o, key, None))
            cls = get("class") if get("class") is not None else get("class_idx")
            con = get("concept") if get("concept") is not None else get("concept_idx")
            direction = get("direction")
            if direction not in ("up", "down"):
                raise TuningError(f"direction must be 'up' or 'down', got {direction!r}")
            parsed.append(Instruction(self.class_idx(cls), self.concept_idx(con), direction))
        classes = {p.class_idx for p in parsed}
        if len(classes) > 1:
            names = sorted(self.ws.class_names[k] for k in classes)
            raise TuningError(f"one tuning step tunes one class; got instructions for {names}")
        return classes.pop(), parsed

    def tune(self, instructions, factor: float = TUNE_FACTOR, on_conflict: str = "error", mode: str = "bound",
             erase: bool = False, erase_how: str = "marginal", label_weight: float = 0.0) -> dict:
        """Apply a batch of up/down votes for one class as one provenance step.

        ``factor`` is the vote strength (see :mod:`inficond.students.tuning`). A vote opposite
        to an earlier one on the same concept raises :class:`VoteConflictError` unless
        ``on_conflict="replace"``, which drops the earlier vote's bound.

        ``mode="soft"`` changes the voted concepts' L1 penalty instead of bounding them;
        ``erase=True`` also regresses each downvoted concept's share out of the teacher's logits
        for this class (kept for later steps); ``label_weight`` mixes the train labels into the
        target (0 = teacher only). All are recorded in the step so replay repeats them; see
        :mod:`inficond.students.tuning` and BENCHMARKS.md for what each measured. The result's
        ``fidelity`` tells how the step moved the class away from (or towards) the teacher on val.
        """
        k, parsed = self._parse_instructions(instructions)
        factor = float(factor)
        if not (np.isfinite(factor) and 0 < factor <= 2):
            raise TuningError(f"factor (vote strength) must be in (0, 2], got {factor!r}")
        if on_conflict not in ("error", "replace"):
            raise TuningError(f"on_conflict must be 'error' or 'replace', got {on_conflict!r}")
        train = self.rows("train")
        with self._lock:
            if on_conflict == "error":
                self._raise_conflicts(k, parsed)
            parent = self.log.head()
            params = self._step_params(parent, parsed, factor, on_conflict, mode, erase, erase_how, label_weight)
            before = {s: self._class_metrics(k, s) for s in ("val", "test")}
            fid_before = self._fidelity(k)
            t0 = time.perf_counter()
            # the refit reads the kept Z of train (the step keeps the standardisation): no copy of X
            new_student, history = apply_tuning(self.student, None, self.T[train], parsed, self.history,
                                                labels=self.Y[train] if label_weight else None,
                                                Z=self._Z("train"), duplicates=self._duplicates("train"), **params)
            ms = (time.perf_counter() - t0) * 1000
            after = {s: self._class_metrics(k, s, new_student) for s in ("val", "test")}
            align = {s: (self._alignment(k, s), self._alignment(k, s, new_student)) for s in ("val", "test")}
            fid_after = self._fidelity(k, new_student)
            state = self.log.record_step(parent, new_student, parsed, history, before, after, ms,
                                         step_params=params)
            self._cache.clear()
            self._cache.update(head=state, student=new_student, history=history)
        words = self.ws.concept_words
        return {
            "state_id": state,
            "class_idx": k,
            "instructions": [
                {"class_idx": p.class_idx, "concept_idx": p.concept_idx, "word": words[p.concept_idx], "direction": p.direction}
                for p in parsed
            ],
            "val": {"before": before["val"], "after": after["val"]},
            "test": {"before": before["test"], "after": after["test"]},
            "alignment": {s: {"before": b, "after": a, "change": alignment_change(b, a)} for s, (b, a) in align.items()},
            "duration_ms": round(ms, 2),
            "factor": factor,
            "options": {key: params[key] for key in ("mode", "erase", "erase_how", "label_weight") if key in params},
            "fidelity": {
                "split": "val",
                "before": fid_before,
                "after": fid_after,
                "change": {m: fid_after[m] - fid_before[m] for m in fid_before},
                # one image's prediction or more now disagrees with the teacher
                "costs_fidelity": bool(fid_after["agreement"] - fid_before["agreement"] < -0.5 / len(self.rows("val"))),
            },
        }

    def _step_params(self, parent, parsed, factor, on_conflict, mode, erase, erase_how, label_weight) -> dict:
        """The recorded options of a step; erased concepts and soft-vote penalties carry over from the parent."""
        if mode not in TUNE_MODES:
            raise TuningError(f"mode must be one of {TUNE_MODES}, got {mode!r}")
        if erase_how not in ERASE_HOW:
            raise TuningError(f"erase_how must be one of {ERASE_HOW}, got {erase_how!r}")
        label_weight = float(label_weight)
        if not 0 <= label_weight <= 1:
            raise TuningError(f"label_weight must be in [0, 1], got {label_weight!r}")
        prev = self.log.steps(parent)[-1]
        params = {"factor": factor, "on_conflict": on_conflict,
                  **carry_step_params(prev.get("step_params") if prev["kind"] == "tune" else None, parsed, mode, erase)}
        if mode != "bound":
            params["mode"] = mode
        if "erase" in params:
            params["erase_how"] = erase_how
        if label_weight:
            params["label_weight"] = label_weight
        return params

    def _fidelity(self, k: int, student: ConceptStudent | None = None) -> dict:
        """Agreement with the teacher's predictions and the distillation loss to it (KL, nats) on val."""
        rows = self.rows("val")
        t = self.T[rows, k].astype(np.float64)
        s = self._class_scores(k, "val", student).astype(np.float64)
        p, q = expit(t), expit(s)
        eps = 1e-12
        kl = p * np.log((p + eps) / (q + eps)) + (1 - p) * np.log((1 - p + eps) / (1 - q + eps))
        return {"agreement": float(np.mean((t > 0) == (s > 0))), "kl": float(np.mean(kl))}

    def earlier_vote(self, k: int, c: int) -> str | None:
        """The direction of the standing vote on concept ``c`` of class ``k`` (from its bound), if any."""
        lo, hi = self.history.get((int(k), int(c)), (-np.inf, np.inf))
        if lo > -np.inf:
            return "up"
        if hi < np.inf:
            return "down"
        return None

    def _raise_conflicts(self, k: int, parsed: list[Instruction]) -> None:
        """Votes opposite to a standing earlier vote, said in plain words (the UI offers to replace)."""
        words, name = self.ws.concept_words, self.ws.class_names[k]
        clash = [(p, self.earlier_vote(k, p.concept_idx)) for p in parsed]
        clash = [(p, e) for p, e in clash if e is not None and e != p.direction]
        if not clash:
            return
        verb = {"up": "uptuned", "down": "downtuned"}
        parts = [f"\u201c{words[p.concept_idx]}\u201d was {verb[e]} for {name} in an earlier step" for p, e in clash]
        raise VoteConflictError(
            "; ".join(parts) + ". This vote goes the other way. Replace the earlier vote with this one, "
            "or undo the earlier step.",
            conflicts=[{"concept_idx": p.concept_idx, "word": words[p.concept_idx], "earlier": e,
                        "now": p.direction} for p, e in clash],
        )

    def provenance(self) -> dict:
        self._require_student()
        head = self.log.head()
        on_path = {s["id"] for s in self.log.steps()}
        words, names = self.ws.concept_words, self.ws.class_names
        steps = []
        for s in self.log.all_states():
            ins = [
                {"class_idx": i["class_idx"], "concept_idx": i["concept_idx"], "word": words[i["concept_idx"]],
                 "class": names[i["class_idx"]], "direction": i["direction"]}
                for i in s.get("instructions") or []
            ]
            mb, ma = s.get("metrics_before") or {}, s.get("metrics_after") or {}
            steps.append(
                {
                    "state_id": s["id"],
                    "parent_id": s["parent_id"],
                    "kind": s["kind"],
                    "created_at": s["created_at"],
                    "class_idx": ins[0]["class_idx"] if ins else None,
                    "instructions": ins,
                    "val": {"before": mb.get("val"), "after": ma.get("val")},
                    "test": {"before": mb.get("test"), "after": ma.get("test")},
                    "duration_ms": s.get("duration_ms"),
                    "on_head_path": s["id"] in on_path,
                }
            )
        return {"head": head, "cumulative": self._cumulative(steps), "steps": steps}

    def _cumulative(self, steps: list[dict]) -> dict:
        """Change since the current student's distillation, along the head path.

        AP changes of different classes do not add up to anything; per class they do (a step
        refits only its class, so its deltas telescope). The mean-AP change is the sum of the
        per-class changes over the classes in the mean, divided by their number.
        """
        names = self.ws.class_names
        per: dict[int, dict] = {}
        for s in steps:
            if not (s["on_head_path"] and s["kind"] == "tune" and s["class_idx"] is not None):
                continue
            row = per.setdefault(s["class_idx"], {"class_idx": s["class_idx"], "name": names[s["class_idx"]],
                                                  "steps": 0, "val_ap_delta": 0.0, "test_ap_delta": 0.0})
            row["steps"] += 1
            for split in ("val", "test"):
                b, a = (s[split] or {}).get("before"), (s[split] or {}).get("after")
                if row[f"{split}_ap_delta"] is None or not (b and a) or b.get("ap") is None or a.get("ap") is None:
                    row[f"{split}_ap_delta"] = None
                else:
                    row[f"{split}_ap_delta"] += a["ap"] - b["ap"]
        out = {"per_class": sorted(per.values(), key=lambda r: r["class_idx"])}
        for split in ("val", "test"):
            n = self.performance(split)["n_classes_in_mean"]
            d = [r[f"{split}_ap_delta"] for r in per.values() if not self.excluded[r["class_idx"]]]
            out[f"{split}_map_delta"] = (float(sum(x for x in d if x is not None)) / n) if n else None
        return out

    def undo(self) -> dict:
        with self._lock:
            self._require_student()
            self.log.undo()
            self._cache.clear()
        return self.provenance()

    def revert(self, state_id: int) -> dict:
        with self._lock:
            self._require_student()
            if not any(str(s["id"]) == str(state_id).strip() for s in self.log.all_states()):
                raise UnknownNameError("tuning state", state_id)
            self.log.revert(int(state_id))
            self._cache.clear()
        return self.provenance()

    def suggest(self, cls, k: int = 5, candidates: int = 30, split: str = "train", shortcuts: int = 5) -> list[dict]:
        """Votes that would raise AP on ``split`` most if applied alone (exact what-if); never applied here.

        Judged on ``train`` by default: suggestions picked on val overfit val (see the tuning
        scenarios in BENCHMARKS.md), while val and test stay an honest check of each step.
        Besides the weight moves (``kind`` "move"), up to ``shortcuts`` suspected shortcuts
        (concepts the teacher credits beyond the train labels, see
        :func:`~inficond.analysis.suggest.shortcut_suspects`) are scored by applying their
        ▼ vote with ``erase=True`` and refitting; those that gain come as ``kind`` "shortcut"
        with ``erase`` True, ranked with the rest by gain (one entry per concept). Suspects whose
        presences go together count as one context (``related`` lists its other words), so the
        ``shortcuts`` scored are distinct contexts.

        Without shortcuts the session lock is held only to read the state; the what-if scoring
        (0.1-0.2 s on the development workspace's train split) runs outside it, so a caller that
        does not hold the lock (the server) answers other requests meanwhile: the page asks for
        the suggestions right after a class's concepts, and the next class click no longer
        waits for them.
        """
        ki = self.class_idx(cls)
        key = ("suggest", ki, int(k), int(candidates), str(split), int(shortcuts))
        build = lambda: self._suggest(ki, k, candidates, split, shortcuts)  # noqa: E731
        if shortcuts:  # scored with the head step's carried options (erase ...): one answer per state
            with self._lock:
                return self._per_state(key, build)
        return self._per_class_state(ki, key, build)

    def _suggest(self, cls, k: int, candidates: int, split: str, shortcuts: int) -> list[dict]:
        moves = [{**m, "kind": "move", "erase": False} for m in self._suggest_moves(cls, k, candidates, split)]
        moves += self._suggest_shortcuts(cls, int(shortcuts), split) if shortcuts else []
        best: dict[int, dict] = {}
        for m in moves:
            if m["concept_idx"] not in best or m["gain"] > best[m["concept_idx"]]["gain"]:
                best[m["concept_idx"]] = m
        with self._lock:
            words = self.ws.concept_words
        ranked = sorted(best.values(), key=lambda m: (-m["gain"], m["concept_idx"]))[: int(k)]
        return [{**m, "concept_idx": int(m["concept_idx"]), "word": words[int(m["concept_idx"])], "split": split,
                 **({"related": [words[c] for c in m["related"]]} if "related" in m else {})}
                for m in ranked]

    def _suggest_shortcuts(self, cls, n: int, split: str) -> list[dict]:
        """Suspects from the train teacher logits and labels, each scored by applying its erase-downvote."""
        ki = self.class_idx(cls)
        train = self.rows("train")
        Z = self._Z("train")
        # one context shows as many words (see group_suspects): score one vote per context
        pool = shortcut_suspects(Z, self.T[train, ki], self.Y[train, ki], k=SHORTCUT_POOL)
        suspects = group_suspects(Z, pool)[:n]
        after = []
        with self._lock:
            parent = self.log.head()
            for sus in suspects:
                parsed = [Instruction(ki, int(sus["concept_idx"]), "down")]
                try:
                    self._raise_conflicts(ki, parsed)
                    params = self._step_params(parent, parsed, TUNE_FACTOR, "error", "bound", True, "marginal", 0.0)
                    st, _ = apply_tuning(self.student, None, self.T[train], parsed, self.history, Z=Z,
                                         duplicates=self._duplicates("train"), **params)
                except (TuningError, VoteConflictError):  # e.g. the concept was voted up before
                    after.append(None)
                    continue
                after.append(self._class_scores(ki, split, st))
        rows = self.rows(split)
        return rank_erase_moves(suspects, after, self.Y[rows, ki], self._class_scores(ki, split))

    def _suggest_moves(self, cls, k: int, candidates: int, split: str) -> list[dict]:
        """Weight moves among the weight- and discrepancy-ranked concepts (exact what-if, no refit)."""
        ki = self.class_idx(cls)
        with self._lock:  # one consistent state; a later step replaces these objects, never changes them
            s = self.student
            coef = s.coef_[ki].copy()
            dp, dn = self._discrepancy(ki)
            Z, y = self._Z(split), self.Y[self.rows(split), ki]
        cand = np.unique([
            d["concept_idx"] for b in ("influence", "discrepancy_p", "discrepancy_n")
            for d in rank_concepts(coef, dp, dn, by=b, k=min(candidates, coef.size))
        ]).astype(int)
        step = TUNE_FACTOR * np.maximum(np.abs(coef[cand]), reference_influence(coef))
        up, down = coef[cand] + step, coef[cand] - step
        return suggest_moves(Z, coef, float(s.intercept_[ki]), y, cand, up, down, k=int(k))

    # -- corpus and export -------------------------------------------------------------
    def add_concepts(self, words: list[str], max_added: int | None = None) -> dict:
        """Encode new concept words (text only) and add their columns; no image is re-encoded.

        The text is encoded without holding the session lock (the first call loads the text
        model, ~16 s), so every other request goes on meanwhile; only the commit takes the lock.
        ``max_added`` caps the concepts added after prepare (the server passes MAX_ADDED_CONCEPTS).
        """
        return self.commit_concepts(self.encode_concepts(words, max_added=max_added))

    def encode_concepts(self, words: list[str], max_added: int | None = None) -> dict:
        """Step one of :meth:`add_concepts`, outside the lock: clean the words and encode the new ones."""
        clean, skipped = [], []
        with self._lock:
            have = set(self.ws.concept_words)
            n_added = self._n_added_concepts()
        for w in words:
            w2 = " ".join(str(w).split()).lower()
            if not w2:
                skipped.append({"word": w, "reason": "empty"})
            elif len(w2) > MAX_WORD_CHARS:
                skipped.append({"word": w2[:MAX_WORD_CHARS] + "\u2026",
                                "reason": f"longer than {MAX_WORD_CHARS} characters ({len(w2):,})"})
            elif w2 in have or w2 in clean:
                skipped.append({"word": w, "reason": "already in the corpus"})
            else:
                clean.append(w2)
        self._check_growth(n_added, len(clean), max_added)
        text = self._text_encoder().encode_text(clean) if clean else None
        return {"words": clean, "text": text, "skipped": skipped, "max_added": max_added}

    def commit_concepts(self, encoded: dict) -> dict:
        """Step two of :meth:`add_concepts`, under the lock: add the encoded words' columns."""
        from inficond.concepts import extend_concepts

        words, skipped, added = encoded["words"], list(encoded["skipped"]), []
        if words:
            with self._lock:
                self._check_growth(self._n_added_concepts(), len(words), encoded.get("max_added"))
                encoder = _Encoded(self._text_encoder(), words, encoded["text"])
                idx = extend_concepts(self.ws, encoder, words, source="ui")
                self.__dict__.pop("X", None)
                with self._z_lock:
                    self._z_cache.clear()
                    self._z_dups.clear()
                self._scores_of.clear()
                self._cache.clear()
                self._class_views.clear()
                self._perf_rows.clear()
                added = [{"concept_idx": int(i), "word": self.ws.concept_words[i]} for i in idx]
            got = {a["word"] for a in added}  # a word another call added meanwhile is skipped
            skipped += [{"word": w, "reason": "already in the corpus"} for w in words if w not in got]
        return {"added": added, "skipped": skipped}

    def _n_added_concepts(self) -> int:
        return int(self.ws.db.execute("SELECT COUNT(*) FROM concepts WHERE source = 'ui'").fetchone()[0])

    @staticmethod
    def _check_growth(n_added: int, n_new: int, limit: int | None) -> None:
        if limit is not None and n_new and n_added + n_new > limit:
            raise WorkspaceError(
                f"the corpus already holds {n_added:,} added concepts and at most {limit:,} may be "
                f"added; these {n_new} words would exceed that (each adds a column to every image's vector)")

    def _text_encoder(self):
        """The workspace's encoder, built once (its text model loads on first use)."""
        from inficond.encoders.base import create_encoder, encoder_class

        with self._encoder_lock:
            if getattr(self, "_encoder", None) is None:
                ident = dict(self.ws.get_meta("encoder"))
                cls = encoder_class(ident["name"])
                if hasattr(cls, "from_identity"):  # the settings it was prepared with, not the defaults
                    self._encoder = cls.from_identity(ident)
                else:
                    self._encoder = create_encoder(ident.pop("name"), **ident.get("kwargs", {}))
            return self._encoder

    def export(self, out_dir: str | Path | None = None) -> dict:
        out = Path(out_dir) if out_dir else self.path / "export" / f"state-{self.log.head()}"
        paths = export_student(
            self.student, self.ws.concept_words, self.ws.class_names, self.ws.get_meta("encoder"), out,
            concept_text=self.ws.array("concept_text"),
        )
        return {k: str(v) for k, v in paths.items()}

    def patch_path(self, patch_id: str) -> Path:
        m = _PATCH_ID.match(str(patch_id))
        row = None
        if m:
            row = self.ws.db.execute(
                "SELECT file FROM patches WHERE concept_idx = ? AND rank = ?", (int(m[1]), int(m[2]))
            ).fetchone()
        if row is None:
            raise UnknownNameError("patch", patch_id)
        return self.path / row[0]

    def image_path(self, image_idx: int) -> Path:
        i = int(image_idx)
        if not 0 <= i < self.ws.n_images:
            raise UnknownNameError("image", image_idx)
        return self.ws.image_paths[i]
