"""The engine facade: one object per workspace that the CLI and the server both call.

A ``Session`` loads a workspace's arrays once, keeps the current student (the provenance head)
and answers every view's question from memory. All answers are JSON-able dicts. Classes and
concepts may be given by index or by name; unknown ones raise ``UnknownNameError``.
Tuning, undo and revert are serialised by a lock so concurrent callers see consistent states.
"""

from __future__ import annotations

import re
import threading
import time
from functools import cached_property
from pathlib import Path

import numpy as np

from inficond.analysis import (
    all_class_metrics,
    alignment,
    alignment_change,
    class_metrics,
    concept_class_influence,
    concept_map,
    extend_concept_map,
    fidelity,
    presence_discrepancy,
    rank_concepts,
    suggest_moves,
    top_images,
    whatif_curves,
)
from inficond.exceptions import TuningError, UnknownNameError, WorkspaceError
from inficond.store.workspace import Workspace
from inficond.students import ConceptStudent, Instruction, ProvenanceLog, apply_tuning, export_student, lambda_for_sparsity
from inficond.students.tuning import reference_influence

# Measured on the development data: 30 concepts per class give val mAP 0.757 on the 8 well-populated
# classes, 100 give 0.783 (teacher 0.850); 100 ranked concepts stay readable in the views.
DEFAULT_MAX_CONCEPTS = 100
TUNE_FACTOR = 0.5  # see inficond.students.tuning: a vote moves a weight by half a typical top influence

METRICS = ("ap", "precision", "recall", "f1", "accuracy")
_PATCH_ID = re.compile(r"^(\d+)-(\d+)$")


class Session:
    """Open the workspace at ``path`` for analysis and tuning.

    Parameters
    ----------
    path : str or Path
        A workspace built by ``inficond prepare``.
    """

    def __init__(self, path: str | Path):
        self.ws = Workspace(path)
        if not self.ws.has_array("teacher_logits"):
            raise WorkspaceError(f"workspace {path} is not fully prepared; run `inficond prepare --out {path}` again")
        self.log = ProvenanceLog(self.ws)
        self._lock = threading.RLock()
        self._cache: dict = {}

    # -- data ------------------------------------------------------------------------
    @property
    def path(self) -> Path:
        return self.ws.path

    @cached_property
    def X(self) -> np.ndarray:
        """Concept vectors, (n_images, n_concepts) float32."""
        return np.asarray(self.ws.array("concept_vectors"), dtype=np.float32)

    @cached_property
    def T(self) -> np.ndarray:
        """Teacher logits, (n_images, n_classes) float32."""
        return np.asarray(self.ws.array("teacher_logits"), dtype=np.float32)

    @property
    def Y(self) -> np.ndarray:
        return self.ws.labels

    def rows(self, split: str) -> np.ndarray:
        if split not in ("train", "val", "test"):
            raise ValueError(f"unknown split {split!r}; expected train, val or test")
        return self.ws.split_indices(split)

    def class_idx(self, cls) -> int:
        if isinstance(cls, str) and cls.isdigit():
            cls = int(cls)
        return self.ws.class_index(cls)

    def concept_idx(self, concept) -> int:
        if isinstance(concept, str) and concept.isdigit():
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
            if lam is None:
                lam = lambda_for_sparsity(self.X[train], self.T[train], max_concepts=max_concepts or DEFAULT_MAX_CONCEPTS)
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
        """Pad a student saved before concepts were added (new concepts start at influence 0)."""
        c = self.X.shape[1]
        extra = c - student.coef_.shape[1]
        if extra > 0:
            train = self.rows("train")
            new = self.X[train, -extra:]
            scale = new.std(0)
            student.coef_ = np.hstack([student.coef_, np.zeros((student.coef_.shape[0], extra))])
            student.mean_ = np.concatenate([student.mean_, new.mean(0)])
            student.scale_ = np.concatenate([student.scale_, np.where(scale > 0, scale, 1.0)])
        return student

    def _Z(self, split: str) -> np.ndarray:
        key = ("Z", split)
        if key not in self._cache:
            s = self.student
            self._cache[key] = (self.X[self.rows(split)] - s.mean_) / s.scale_
        return self._cache[key]

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
                "corrupt": [list(r) for r in ws.db.execute("SELECT image_id, error FROM images WHERE status='corrupt'")],
                "class_names": ws.class_names,
            },
            "teacher": ws.get_meta("teacher"),
            "encoder": ws.get_meta("encoder"),
            "corpus": {"n_concepts": len(ws.concept_words), "sources": sources},
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

    def performance(self, split: str = "val") -> dict:
        key = ("perf", split)
        if key in self._cache and self._cache.get("head") == self.log.head():
            return self._cache[key]
        rows = self.rows(split)
        y, t, st = self.Y[rows], self.T[rows], self._student_logits(split)
        tm = all_class_metrics(y, t, excluded=self.excluded)
        sm = all_class_metrics(y, st, excluded=self.excluded)
        agree = fidelity(t, st)["per_class_agreement"]
        reasons = {r[0]: r[1] for r in self.ws.db.execute("SELECT idx, reason FROM classes")}
        classes = []
        for k, name in enumerate(self.ws.class_names):
            tk, sk = tm["per_class"][k], sm["per_class"][k]
            classes.append(
                {
                    "class_idx": k,
                    "name": name,
                    "excluded": bool(self.excluded[k]),
                    "reason": reasons.get(k),
                    "n_pos": int(y[:, k].sum()),
                    "teacher": {m: tk[m] for m in METRICS},
                    "student": {m: sk[m] for m in METRICS},
                    "gap": None if tk["ap"] is None or sk["ap"] is None else tk["ap"] - sk["ap"],
                    "fidelity": float(agree[k]),
                    "alignment": alignment(y[:, k], t[:, k] > 0, st[:, k] > 0),
                }
            )
        out = {
            "split": split,
            "teacher_map": tm["mean"]["ap"],
            "student_map": sm["mean"]["ap"],
            "n_classes_in_mean": tm["n_classes"],
            "classes": classes,
        }
        self._cache[key] = out
        return out

    def _class_scores(self, k: int, split: str, student: ConceptStudent | None = None) -> np.ndarray:
        """Logits of class ``k`` on ``split`` from ``student`` (default: the current one)."""
        if student is None:
            return self._student_logits(split)[:, k]
        rows = self.rows(split)
        return ((self.X[rows] - student.mean_) / student.scale_) @ student.coef_[k] + student.intercept_[k]

    def _class_metrics(self, k: int, split: str, student: ConceptStudent | None = None) -> dict:
        m = class_metrics(self.Y[self.rows(split), k], self._class_scores(k, split, student))
        return {key: m[key] for key in METRICS}

    def _alignment(self, k: int, split: str, student: ConceptStudent | None = None) -> dict:
        rows = self.rows(split)
        return alignment(self.Y[rows, k], self.T[rows, k] > 0, self._class_scores(k, split, student) > 0)

    def _discrepancy(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        key = ("disc", k)
        if key not in self._cache:
            rows = self.rows("val")
            d = presence_discrepancy(
                self.X[rows], self.Y[rows, k], self._student_logits("val")[:, k] > 0
            )
            self._cache[key] = (d["dp"], d["dn"])
        return self._cache[key]

    def _whatif(self, k: int, concepts, n_points: int = 21, metrics=METRICS) -> dict:
        rows = self.rows("val")
        s = self.student
        return whatif_curves(
            self._Z("val"), s.coef_[k], float(s.intercept_[k]), self.Y[rows, k], np.asarray(concepts, dtype=int),
            n_points=n_points, metrics=tuple(metrics),
        )

    def class_concepts(self, cls, k: int = 10, sort: str = "influence") -> dict:
        ki = self.class_idx(cls)
        if not 1 <= int(k) <= len(self.ws.concept_words):
            raise ValueError(f"k must be between 1 and {len(self.ws.concept_words)}, got {k}")
        coef = self.student.coef_[ki]
        dp, dn = self._discrepancy(ki)
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
                }
            )
        return {
            "class_idx": ki,
            "name": self.ws.class_names[ki],
            "sort": sort,
            "k": int(k),
            "ap": self._class_metrics(ki, "val")["ap"],
            "max_abs_influence": float(np.abs(coef).max()) if coef.size else 0.0,
            "nonzero": int((coef != 0).sum()),
            "concepts": concepts,
        }

    def whatif(self, cls, concept, n_points: int = 21) -> dict:
        ki, ci = self.class_idx(cls), self.concept_idx(concept)
        if not 3 <= int(n_points) <= 201:
            raise ValueError(f"n_points must be between 3 and 201, got {n_points}")
        cur = self._whatif(ki, [ci], n_points=int(n_points))
        return {
            "class_idx": ki,
            "concept_idx": ci,
            "word": self.ws.concept_words[ci],
            "grid": cur["grid"][0].tolist(),
            "values": {m: cur["values"][m][0].tolist() for m in METRICS},
            "current": float(cur["current"][0]),
        }

    def _patches(self, c: int, limit: int | None = None) -> list[dict]:
        q = "SELECT rank, similarity, image_idx FROM patches WHERE concept_idx = ? ORDER BY rank"
        rows = self.ws.db.execute(q + (f" LIMIT {int(limit)}" if limit else ""), (c,)).fetchall()
        return [{"patch_id": f"{c}-{r}", "similarity": float(s), "image_idx": int(i)} for r, s, i in rows]

    def concept_detail(self, concept, cls=None, n_images: int = 12) -> dict:
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
            out["whatif"] = self.whatif(cls, ci)
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

    def tune(self, instructions) -> dict:
        """Apply a batch of up/down votes for one class as one provenance step."""
        k, parsed = self._parse_instructions(instructions)
        train = self.rows("train")
        with self._lock:
            parent = self.log.head()
            before = {s: self._class_metrics(k, s) for s in ("val", "test")}
            t0 = time.perf_counter()
            new_student, history = apply_tuning(self.student, self.X[train], self.T[train], parsed, self.history,
                                                factor=TUNE_FACTOR)
            ms = (time.perf_counter() - t0) * 1000
            after = {s: self._class_metrics(k, s, new_student) for s in ("val", "test")}
            align = {s: (self._alignment(k, s), self._alignment(k, s, new_student)) for s in ("val", "test")}
            state = self.log.record_step(parent, new_student, parsed, history, before, after, ms,
                                         step_params={"factor": TUNE_FACTOR})
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
        }

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
        path_steps = [s for s in steps if s["on_head_path"] and s["kind"] == "tune"]

        def total(split):
            return float(sum(s[split]["after"]["ap"] - s[split]["before"]["ap"] for s in path_steps
                             if s[split]["after"] and s[split]["before"] and s[split]["after"]["ap"] is not None
                             and s[split]["before"]["ap"] is not None))

        return {"head": head, "cumulative": {"val_ap_delta": total("val"), "test_ap_delta": total("test")}, "steps": steps}

    def undo(self) -> dict:
        with self._lock:
            self._require_student()
            self.log.undo()
            self._cache.clear()
        return self.provenance()

    def revert(self, state_id: int) -> dict:
        with self._lock:
            self._require_student()
            self.log.revert(int(state_id))
            self._cache.clear()
        return self.provenance()

    def suggest(self, cls, k: int = 5, candidates: int = 30, split: str = "train") -> list[dict]:
        """Votes that would raise AP on ``split`` most if applied alone (exact what-if); never applied here.

        Judged on ``train`` by default: suggestions picked on val overfit val (see the tuning
        scenarios in BENCHMARKS.md), while val and test stay an honest check of each step.
        """
        ki = self.class_idx(cls)
        s = self.student
        coef = s.coef_[ki]
        dp, dn = self._discrepancy(ki)
        cand = np.unique([
            d["concept_idx"] for b in ("influence", "discrepancy_p", "discrepancy_n")
            for d in rank_concepts(coef, dp, dn, by=b, k=min(candidates, coef.size))
        ]).astype(int)
        step = TUNE_FACTOR * np.maximum(np.abs(coef[cand]), reference_influence(coef))
        up, down = coef[cand] + step, coef[cand] - step
        rows = self.rows(split)
        moves = suggest_moves(self._Z(split), coef, float(s.intercept_[ki]), self.Y[rows, ki], cand, up, down, k=int(k))
        words = self.ws.concept_words
        return [{**m, "concept_idx": int(m["concept_idx"]), "word": words[int(m["concept_idx"])], "split": split}
                for m in moves]

    # -- corpus and export -------------------------------------------------------------
    def add_concepts(self, words: list[str]) -> dict:
        """Encode new concept words (text only) and add their columns; no image is re-encoded."""
        from inficond.concepts import extend_concepts
        from inficond.encoders.base import create_encoder

        clean, skipped = [], []
        have = set(self.ws.concept_words)
        for w in words:
            w2 = " ".join(str(w).split()).lower()
            if not w2:
                skipped.append({"word": w, "reason": "empty"})
            elif w2 in have or w2 in clean:
                skipped.append({"word": w, "reason": "already in the corpus"})
            else:
                clean.append(w2)
        added = []
        if clean:
            with self._lock:
                ident = dict(self.ws.get_meta("encoder"))
                name = ident.pop("name")
                encoder = self._encoder if getattr(self, "_encoder", None) else create_encoder(name, **ident.get("kwargs", {}))
                self._encoder = encoder
                idx = extend_concepts(self.ws, encoder, clean, source="ui")
                self.__dict__.pop("X", None)
                self._cache.clear()
                added = [{"concept_idx": int(i), "word": self.ws.concept_words[i]} for i in idx]
        return {"added": added, "skipped": skipped}

    def export(self, out_dir: str | Path | None = None) -> dict:
        out = Path(out_dir) if out_dir else self.path / "export" / f"state-{self.log.head()}"
        paths = export_student(
            self.student, self.ws.concept_words, self.ws.class_names, self.ws.get_meta("encoder"), out
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
