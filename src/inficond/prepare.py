"""Build a workspace from a dataset: regions, concept vectors, segments, teacher logits, patches.

The work is done in batches of images. After each batch its array rows are flushed to disk and
only then are its images marked ``done`` in SQLite, so a killed run (``kill -9`` included)
resumes from the first unfinished batch and never redoes finished images.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from inficond.data import class_support, load_dataset
from inficond.data.dataset import Dataset
from inficond.data.images import load_image
from inficond.exceptions import CorruptImageError, DataError, WorkspaceError, WorkspaceMismatchError
from inficond.store.workspace import Workspace

DATA_ENV = "INFICOND_DATA"
DEFAULT_ENCODER = "conse-effnet"
DEFAULT_TEACHER = "effnet-lite2"
# Big photos are decoded at reduced scale (JPEG DCT scaling): the models look at ≤ 448 px.
DECODE_MAX_SIDE = 1024


@dataclass
class PrepareReport:
    """What ``prepare`` did. Counts are images unless stated."""

    workspace: Path
    n_images: int
    n_done: int
    n_corrupt: int
    n_processed_now: int
    n_concepts: int
    seconds: float
    images_per_second: float
    encode_seconds: float = 0.0  # of ``seconds``: the image batches (local loop or Ray), without set-up and finish
    corrupt: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    excluded_classes: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = dict(self.__dict__)
        d["workspace"] = str(self.workspace)
        return d


def resolve_data_path(data: str | os.PathLike | None) -> Path:
    """The dataset folder from the argument or ``$INFICOND_DATA``, with a helpful error when missing."""
    path = data or os.environ.get(DATA_ENV)
    if not path:
        raise DataError(f"no dataset given: pass --data PATH (or set {DATA_ENV}=PATH)")
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"dataset folder {path} does not exist: pass --data PATH (or set {DATA_ENV}=PATH)")
    return path


def corpus_digest(words: list[str], prompts: list[str | None]) -> str:
    h = hashlib.sha256(json.dumps([words, prompts]).encode()).hexdigest()
    return h[:16]


def concept_text(enc, texts: list[str]) -> np.ndarray:
    """(len(texts), D) float32 ``enc.encode_text(texts)``, kept on disk by the encoder's identity and the texts.

    The default corpus is the same for every workspace, and embedding its words (MiniLM, 5 prompts
    x 642 words, plus importing sentence-transformers) took 38 of the 85 s of a profiled
    ``prepare --limit 24``. The cache holds exactly what ``encode_text`` returned, so a hit gives
    the same bytes.
    It lives beside the encoders' ONNX exports (``$INFICOND_CACHE`` or ``~/.cache/inficond``).
    """
    from inficond.encoders.conse_effnet import cache_dir

    key = hashlib.sha256(json.dumps([enc.identity(), list(texts)], sort_keys=True).encode()).hexdigest()[:24]
    path = cache_dir() / "concept_text" / f"{key}.npy"
    try:
        emb = np.load(path, allow_pickle=False)
        if emb.shape == (len(texts), enc.dim) and emb.dtype == np.float32 and np.isfinite(emb).all():
            return emb
    except (OSError, ValueError, EOFError):
        pass
    emb = np.asarray(enc.encode_text(list(texts)), dtype=np.float32)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            np.save(f, emb, allow_pickle=False)
        os.replace(tmp, path)  # concurrent runs: the rename is atomic
    except OSError:  # a read-only cache folder: just embed again next time
        pass
    return emb


def pipeline_threads(cpus: int | None = None) -> tuple[int, int]:
    """(worker threads, threads per model) for the local pipeline on ``cpus`` cores (default: this machine's).

    Two workers, each model on half the cores: on 2 cores every model runs on one thread and
    two of them run side by side (measured on the shared 2-core machine: one ONNX Runtime thread
    per model gave 41 ms/image for the encoder's network where two threads gave 80).
    """
    if cpus is None:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return (2, max(1, cpus // 2)) if cpus >= 2 else (1, 1)


_TORCH_LOCK = threading.Lock()
_TORCH_PENDING: list = []  # _torch_threads blocks entered before torch was imported


class _torch_threads:
    """Sets torch's thread count for a block and restores it: at once when torch is imported, else
    as soon as ``_Preload`` has imported it (``_torch_imported``)."""

    def __init__(self, n: int):
        self.n, self.before = n, None

    def __enter__(self):
        import sys

        with _TORCH_LOCK:
            torch = sys.modules.get("torch")
            # A torch still being imported by the preload thread may lack these: it sets them then.
            if torch is not None and hasattr(torch, "get_num_threads") and hasattr(torch, "set_num_threads"):
                self._apply(torch)
            else:
                _TORCH_PENDING.append(self)
        return self

    def _apply(self, torch) -> None:
        self.before = torch.get_num_threads()
        torch.set_num_threads(self.n)

    def __exit__(self, *exc):
        import sys

        with _TORCH_LOCK:
            if self in _TORCH_PENDING:
                _TORCH_PENDING.remove(self)
            if self.before is not None:
                sys.modules["torch"].set_num_threads(self.before)


def _torch_imported() -> None:
    """Applies the thread counts of the ``_torch_threads`` blocks that were entered before torch was imported."""
    import sys

    with _TORCH_LOCK:
        for block in _TORCH_PENDING:
            block._apply(sys.modules["torch"])
        _TORCH_PENDING.clear()


class _Preload:
    """Imports torch (the face detector's) and scikit-learn's clustering (the segments') and
    logistic regression (the teacher head's, fitted after the last batch) on a background thread while ``prepare`` reads the dataset, opens the workspace and loads the ONNX
    models, which need neither.

    Both imports cost 1-3 s of one core at the start of every run; in a fresh process they used
    to run before anything else, with the second core idle. Errors are left to the real imports
    (the stages import the same modules again and report what is missing). :meth:`join` waits
    for the thread, so no import is still running when ``prepare`` returns.
    """

    MODULES = ("torch", "sklearn.cluster", "sklearn.neighbors", "sklearn.linear_model")

    def __init__(self):
        import sys

        todo = [m for m in self.MODULES if m not in sys.modules]
        self.thread = threading.Thread(target=self._run, args=(todo,), name="inficond-preload", daemon=True)
        if todo:
            self.thread.start()

    @staticmethod
    def _run(modules: list[str]) -> None:
        from importlib import import_module

        for m in modules:
            try:
                import_module(m)
                if m == "torch":
                    _torch_imported()
            except Exception:  # noqa: BLE001  (reported by the stage that needs the module)
                pass

    def join(self) -> None:
        if self.thread.is_alive():
            self.thread.join()


class OutdatedWorkspaceWarning(UserWarning):
    """A workspace was built with an older default corpus or encoder version; it still works as built."""


def _rebuild_hint(ws: Workspace, data=None) -> str:
    root = data if isinstance(data, (str, os.PathLike)) else ws.get_meta("data_root") or "DATA"
    return f"`inficond prepare --data {root} --out NEW_DIR`"


def _encoder_version(name: str) -> int | None:
    """The installed version of the registered encoder ``name`` (its module's VERSION), without building it."""
    import sys

    from inficond.encoders import base

    base._load_builtin()
    factory = base._REGISTRY.get(name)
    return getattr(sys.modules.get(getattr(factory, "__module__", "")), "VERSION", None) if factory else None


def _describe(key: str, value) -> str:
    if key == "corpus" and isinstance(value, dict):
        src = "the default corpus" if value.get("source") == "default" else f"corpus {value.get('source')}"
        return f"{src} ({value.get('n')} words, digest {value.get('digest')})"
    if key == "encoder" and isinstance(value, dict):
        return f"encoder {value.get('name')} version {value.get('version')}"
    return f"{key} {json.dumps(value, sort_keys=True)[:200]}"


def _mismatch_message(ws: Workspace, key: str, stored, new, data) -> str:
    """Plain words for a resumed ``prepare`` whose settings differ from the workspace's."""
    same_kind = (isinstance(stored, dict) and isinstance(new, dict)
                 and stored.get("name", stored.get("kind")) == new.get("name", new.get("kind")))
    if key == "corpus" and same_kind and stored.get("source") == new.get("source") == "default":
        what = f"an older default concept corpus ({stored.get('n')} words; this version of inficond has {new.get('n')})"
    elif key == "encoder" and same_kind and stored.get("version") != new.get("version"):
        what = f"an older {stored.get('name')} encoder (version {stored.get('version')}; this one is {new.get('version')})"
    elif same_kind:
        diff = sorted(k for k in set(stored) | set(new) if stored.get(k) != new.get(k))
        if diff == ["text_centre"]:
            what = f"{key} text embeddings centred on an older default concept corpus"
        else:
            what = f"other {key} settings ({'; '.join(f'{k}: {stored.get(k)!r}, now {new.get(k)!r}' for k in diff)[:400]})"
    else:
        what = f"{_describe(key, stored)}, not {_describe(key, new)}"
    return (f"workspace {ws.path} was built with {what}, so this run cannot resume it. "
            f"Build a new workspace with {_rebuild_hint(ws, data)} (the old one still opens as it was built, "
            f"e.g. `inficond serve {ws.path}`), or re-run with the settings it was built with.")


def _check_identity(ws: Workspace, key: str, value, data) -> None:
    stored = ws.get_meta(key)
    try:
        ws.check_identity(key, value)
    except WorkspaceMismatchError:
        raise WorkspaceMismatchError(_mismatch_message(ws, key, stored, json.loads(json.dumps(value)), data)) from None


def outdated_notices(ws: Workspace) -> list[str]:
    """Why ``ws`` differs from what ``prepare`` would build today with the defaults, in plain words.

    Cheap (no model is loaded): compares the stored default-corpus digest with the packaged corpus, the
    stored encoder version with the installed one and the default teacher's settings with today's.
    An empty list means nothing is known to be outdated.
    """
    from inficond.concepts import default_corpus
    from inficond.concepts.corpus import default_corpus_digest

    reasons = []
    corpus = ws.get_meta("corpus") or {}
    if corpus.get("source") == "default":
        words = default_corpus()
        now = corpus_digest([w.word for w in words], [w.prompt for w in words])
        if corpus.get("digest") != now:
            reasons.append(f"an older default concept corpus ({corpus.get('n')} words; now {len(words)})")
    enc = ws.get_meta("encoder") or {}
    version = _encoder_version(enc.get("name", ""))
    if version is not None and enc.get("version") is not None and enc["version"] != version:
        reasons.append(f"an older {enc['name']} encoder (version {enc['version']}; now {version})")
    teacher = ws.get_meta("teacher") or {}
    if teacher.get("kind") == "effnet":
        from inficond.teachers import effnet

        now = {"C": effnet.DEFAULT_C, "image_size": effnet.DEFAULT_IMAGE_SIZE}
        if teacher.get("model") == "efficientnet-lite2" and {k: teacher.get(k) for k in now} != now:
            reasons.append(f"older default teacher settings (C {teacher.get('C')} at {teacher.get('image_size')} px; "
                           f"now C {now['C']} at {now['image_size']} px)")
    centre = str(enc.get("text_centre", ""))
    if centre.startswith("mean-default-corpus:") and centre.split(":", 1)[1] != default_corpus_digest() and not reasons:
        reasons.append(f"{enc.get('name')} text embeddings centred on an older default corpus")
    if not reasons:
        return []
    return [f"workspace {ws.path} was built with {' and '.join(reasons)}. It still works as built; to use the "
            f"current ones, build a new workspace with {_rebuild_hint(ws)}."]


def prepare(
    data: str | os.PathLike | Dataset | None,
    out: str | os.PathLike,
    *,
    encoder: str = DEFAULT_ENCODER,
    encoder_kwargs: dict | None = None,
    teacher: str = DEFAULT_TEACHER,
    corpus: str | os.PathLike | None = None,
    limit: int | None = None,
    batch_size: int = 32,
    test_fraction: float = 0.15,
    seed: int = 0,
    min_positives: int = 5,
    patches_per_concept: int = 8,
    progress: bool = True,
    ray: str | None = None,
    ray_workers: int | None = None,
) -> PrepareReport:
    """Build (or resume) the workspace ``out`` from the dataset ``data``.

    Parameters
    ----------
    data : path, Dataset or None
        Dataset folder (CSV, VOC or COCO layout) or a loaded Dataset; None reads ``$INFICOND_DATA``.
    out : path
        Workspace folder; created when missing, resumed when present.
    encoder : str
        Registered concept encoder name (``inficond.encoders.list_encoders()``).
    teacher : str
        Teacher spec: ``effnet-lite2`` (default), ``file:PATH``, ``onnx:PATH``, ``torch:PATH.pt``.
    corpus : path or None
        Concept corpus (.txt or .json); None = the built-in ~600-word corpus.
    limit : int or None
        Keep only the first ``limit`` images of each split (quick runs).
    batch_size : int
        Images per batch; also the unit of resumption.
    ray : str or None
        Run the batches on Ray Data (``inficond.prepare_ray``): ``"local"`` starts (or reuses) a
        Ray instance on this machine, any other value is a cluster address for ``ray.init``.
        None (default) runs them in this process. Both write the same bytes.
    ray_workers : int or None
        Ray workers (one CPU each, each loading the models once); None = one per CPU of the cluster.
    """
    if ray_workers is not None and (ray is None or int(ray_workers) < 1):
        raise DataError(f"ray_workers must be >= 1 and needs ray (--ray-workers needs --ray), got {ray_workers}")
    if ray is not None:
        from inficond.prepare_ray import check_address

        check_address(ray)
    t0 = time.perf_counter()
    preload = _Preload() if ray is None else None
    try:
        return _prepare(data, out, t0, encoder=encoder, encoder_kwargs=encoder_kwargs, teacher=teacher, corpus=corpus,
                        limit=limit, batch_size=batch_size, test_fraction=test_fraction, seed=seed,
                        min_positives=min_positives, patches_per_concept=patches_per_concept, progress=progress,
                        ray=ray, ray_workers=ray_workers)
    finally:
        if preload is not None:
            preload.join()


def _prepare(data, out, t0: float, *, encoder, encoder_kwargs, teacher, corpus, limit, batch_size, test_fraction,
             seed, min_positives, patches_per_concept, progress, ray, ray_workers) -> PrepareReport:
    from inficond.concepts import build_patches, default_corpus, load_corpus
    from inficond.encoders.base import create_encoder
    from inficond.teachers import create_teacher

    ds = data if isinstance(data, Dataset) else load_dataset(resolve_data_path(data), test_fraction=test_fraction, seed=seed)
    if limit is not None:
        ds = ds.limit(int(limit))
    ws = Workspace(out, create=True)
    _check_identity(ws, "split", {"test_fraction": test_fraction, "seed": seed, "limit": limit}, data)
    ws.add_dataset(ds)

    # The corpus first: a new default corpus also changes the encoder's text centring, and
    # "older corpus" is the plainer reason to give.
    words_src = default_corpus() if corpus is None else load_corpus(corpus)
    words = [w.word for w in words_src]
    prompts = [w.prompt for w in words_src]
    _check_identity(ws, "corpus", {"source": "default" if corpus is None else Path(corpus).name,
                                   "digest": corpus_digest(words, prompts), "n": len(words)}, data)
    enc = create_encoder(encoder, **(encoder_kwargs or {}))
    _check_identity(ws, "encoder", enc.identity(), data)
    if not ws.concept_words:
        ws.add_concepts(words, prompts, source="default" if corpus is None else Path(corpus).name)
    if not ws.has_array("concept_text"):
        ws.save_array("concept_text", concept_text(enc, [p or w for w, p in zip(words, prompts)]))
    text = np.asarray(ws.array("concept_text"), dtype=np.float32)

    teach = create_teacher(teacher, ws.class_names, workspace=ws.path)
    _check_identity(ws, "teacher", teach.identity(), data)
    uses_features = hasattr(teach, "features") and hasattr(teach, "logits_from_features")

    # The workspace's concepts, not the corpus's: `add-concepts` may have appended words
    # (with their columns) since the first run, and a resumed run must accept them.
    n, n_cls, n_con = ws.n_images, len(ws.class_names), len(ws.concept_words)
    if text.shape[0] != n_con:
        raise WorkspaceError(f"workspace {ws.path} has {n_con} concept words but {text.shape[0]} concept "
                             "embeddings; it was changed by something other than inficond")
    r_max, dim = enc.max_regions, enc.dim
    regions = ws.open_array("regions", (n, r_max, dim), np.float16)
    counts = ws.open_array("region_counts", (n,), np.int16)
    boxes = ws.open_array("region_boxes", (n, r_max, 4), np.float32)
    vectors = ws.open_array("concept_vectors", (n, n_con), np.float16)
    argmax = ws.open_array("concept_argmax", (n, n_con), np.int16)
    feats = None
    if teach.needs_images:
        if uses_features:
            feats = ws.open_array("teacher_features", (n, teach.n_features), np.float16)
        else:
            direct = ws.open_array("teacher_logits_partial", (n, n_cls), np.float32)

    arrays = {"regions": regions, "boxes": boxes, "counts": counts, "vectors": vectors, "argmax": argmax}
    if teach.needs_images:
        arrays["teacher"] = feats if uses_features else direct
    pending = ws.pending_indices()
    paths = ws.image_paths
    ids = ws.image_ids
    batches = [pending[i : i + batch_size] for i in range(0, len(pending), batch_size)]

    bar = tqdm(total=len(pending), desc="prepare: encode images", unit="img", disable=not progress)
    write = lambda ok, bad, out: _write_and_count(ws, arrays, ok, bad, out, bar)  # noqa: E731
    t_encode = time.perf_counter()
    if ray is None:
        stages = BatchStages(enc, teach, text)
        workers, threads = pipeline_threads()
        with _torch_threads(threads):
            if batches:
                # a thread count the caller chose for the encoder is kept
                stages.load(threads, encoder_threads="num_threads" not in (encoder_kwargs or {}))
            done_now = _run_batches_locally(stages, batches, paths, ids, write, workers=workers)
    else:
        from inficond.prepare_ray import run_batches_on_ray

        spec = StageSpec(encoder, dict(encoder_kwargs or {}), teacher, list(ws.class_names), str(ws.path), text,
                         enc.identity(), teach.identity())
        done_now = run_batches_on_ray(spec, batches, paths, ids, write, address=ray, workers=ray_workers)
    bar.close()
    encode_secs = time.perf_counter() - t_encode

    _finish_teacher(ws, teach, uses_features, progress)
    _record_class_support(ws, ds, min_positives)
    # Set once every image is done; concepts added later get their patches from add-concepts.
    if ws.get_meta("patches_built") is None:
        build_patches(ws, per_concept=patches_per_concept)
        ws.set_meta("patches_built", len(ws.concept_words))

    secs = time.perf_counter() - t0
    status = ws.status
    corrupt = [(r[0], r[1]) for r in ws.db.execute("SELECT image_id, error FROM images WHERE status = 'corrupt'")]
    excluded = {r[0]: r[1] for r in ws.db.execute("SELECT name, reason FROM classes WHERE excluded = 1")}
    report = PrepareReport(
        workspace=ws.path,
        n_images=n,
        n_done=int((status == "done").sum()),
        n_corrupt=int((status == "corrupt").sum()),
        n_processed_now=done_now,
        n_concepts=len(ws.concept_words),
        seconds=round(secs, 2),
        images_per_second=round(done_now / secs, 2) if done_now else 0.0,
        encode_seconds=round(encode_secs, 2),
        corrupt=corrupt,
        skipped=[tuple(s) for s in ws.get_meta("skipped", [])],
        excluded_classes=excluded,
    )
    ws.set_meta("prepare_report", report.to_dict())
    return report


@dataclass
class BatchOutput:
    """One batch's workspace rows for its decoded images (``ok``), in the workspace's dtypes."""

    regions: np.ndarray  # (n_ok, R_max, D) float16, zero past each image's count
    boxes: np.ndarray  # (n_ok, R_max, 4) float32
    counts: np.ndarray  # (n_ok,) int16
    vectors: np.ndarray  # (n_ok, C) float16
    argmax: np.ndarray  # (n_ok, C) int16
    teacher: np.ndarray | None  # (n_ok, F) float16 features, (n_ok, K) float32 logits, or None
    segments: list  # per image, a list of concepts.segments.Segment


def decode_batch(paths: list, batch) -> tuple[list, list[int], list[tuple[int, str]]]:
    """Decoded images of the rows ``batch``, the rows that decoded and (row, why) for those that did not."""
    imgs, ok, bad = [], [], []
    for i in batch:
        try:
            imgs.append(load_image(paths[i], max_side=DECODE_MAX_SIDE))
            ok.append(int(i))
        except CorruptImageError as e:
            bad.append((int(i), str(e)))
    return imgs, ok, bad


class BatchStages:
    """The per-batch work of ``prepare``: images -> regions, concept vectors, teacher output, segments.

    One set of stages for both drivers (the local pipeline below and ``inficond.prepare_ray``), so
    both write the same bytes: :meth:`run` does them one after the other, :meth:`submit` as
    parallel tasks.
    """

    def __init__(self, enc, teach, text: np.ndarray):
        self.enc, self.teach, self.text = enc, teach, np.asarray(text, dtype=np.float32)
        self.uses_features = hasattr(teach, "features") and hasattr(teach, "logits_from_features")
        # Encoders that expose their two halves (conse-effnet: network and face detector) get
        # them run as separate tasks; any other encoder is one task (encode_regions).
        self.split_encoder = all(hasattr(enc, m) for m in ("network_outputs", "person_scores", "embed"))
        self._segments_lock = threading.Lock()
        self._last_segments: Future | None = None

    # -- the stages ---------------------------------------------------------------------------
    def teacher(self, imgs: list, image_ids: list[str]) -> np.ndarray | None:
        if not self.teach.needs_images:
            return None
        return (self.teach.features(imgs).astype(np.float16) if self.uses_features
                else np.asarray(self.teach.logits(list(image_ids), imgs), dtype=np.float32))

    def segments(self, embs: list) -> list:
        from inficond.concepts import segment_regions

        # One batch's segments at a time: the clustering is mostly Python (scikit-learn's Ward
        # loop), so two threads at once only fight over the GIL (measured: 17 vs 14 ms/image).
        with self._segments_lock:
            return [segment_regions(e, self.text) for e in embs]

    def assemble(self, embs: list) -> tuple[np.ndarray, ...]:
        """Workspace rows (regions, boxes, counts, vectors, argmax) of one batch's region embeddings."""
        from inficond.concepts import map_concepts

        n, r_max, dim = len(embs), self.enc.max_regions, self.enc.dim
        regions = np.zeros((n, r_max, dim), np.float16)
        boxes = np.zeros((n, r_max, 4), np.float32)
        counts = np.zeros(n, np.int16)
        for j, e in enumerate(embs):
            r = len(e.embeddings)
            regions[j, :r] = e.embeddings.astype(np.float16)
            boxes[j, :r] = e.boxes
            counts[j] = r
        v, a = map_concepts(regions, counts, self.text)
        return regions, boxes, counts, v.astype(np.float16), a

    def load(self, threads: int | None = None, encoder_threads: bool = True) -> None:
        """Load the models now (not racing inside the first tasks), each on ``threads`` CPU threads
        (the encoder too unless ``encoder_threads`` is False).

        The thread count does not change the outputs (tests/test_encoders.py, tests/test_teachers.py).
        """
        for model, attr in ((self.enc, "num_threads"), (self.teach, "n_threads")):
            if threads is not None and hasattr(model, attr) and (encoder_threads or model is not self.enc):
                setattr(model, attr, int(threads))
        if threads == 1 and hasattr(self.teach, "n_threads") and hasattr(self.teach, "batch_size"):
            # On one thread one image per pass costs the least CPU (EfficientNet-Lite2 at 384 px,
            # measured: 42 ms/image at 1, 51 at 8, 63 at 32); the features do not depend on it.
            self.teach.batch_size = 1
            if hasattr(model, "load_models"):
                model.load_models()

    # -- the two ways to run them ----------------------------------------------------------------
    def run(self, imgs: list, image_ids: list[str]) -> BatchOutput:
        """Every stage in this thread, one after the other (Ray workers: one CPU each)."""
        embs = self.enc.encode_regions(imgs)
        return BatchOutput(*self.assemble(embs), self.teacher(imgs, image_ids), self.segments(embs))

    def submit(self, imgs: list, image_ids: list[str], pool: ThreadPoolExecutor) -> Future:
        """The stages as tasks on ``pool``; a future of the batch's ``BatchOutput``.

        Network, face detector and teacher start at once; region embeddings, concept vectors and
        segments follow when the first two are done. Each task computes exactly what :meth:`run`
        computes (row by row), so the bytes are the same whatever the scheduling.
        """
        teacher = pool.submit(self.teacher, imgs, image_ids)
        if self.split_encoder:
            parts = [pool.submit(self.enc.network_outputs, imgs), pool.submit(self.enc.person_scores, imgs)]
            embs = _after(pool, parts, self.enc.embed)
        else:
            embs = pool.submit(self.enc.encode_regions, imgs)
        rows = _after(pool, [embs], self.assemble)
        # After the previous batch's segments, so no worker waits on the lock in ``segments``.
        prev = [self._last_segments] if self._last_segments is not None and not self._last_segments.done() else []
        segs = self._last_segments = _after(pool, [embs, *prev], lambda e, *_: self.segments(e))
        return _after(pool, [rows, teacher, segs], lambda r, t, g: BatchOutput(*r, t, g))


def _after(pool: ThreadPoolExecutor, deps: list[Future], fn) -> Future:
    """A future of ``fn(*results of deps)``, run on ``pool`` once every dependency is done.

    Tasks are chained by callbacks, not by a pool thread waiting on another task, so a small pool
    cannot deadlock. A failed dependency fails the result with the same exception.
    """
    out: Future = Future()
    left = [len(deps)]
    lock = threading.Lock()

    def run():
        try:
            out.set_result(fn(*[d.result() for d in deps]))
        except BaseException as e:  # noqa: BLE001  (handed to whoever waits on ``out``)
            out.set_exception(e)

    def one_done(d: Future):
        with lock:
            left[0] -= 1
            last = left[0] == 0
        if not last:
            return
        failed = next((d.exception() for d in deps if d.exception() is not None), None)
        if failed is not None:
            out.set_exception(failed)
            return
        try:
            pool.submit(run)
        except RuntimeError as e:  # the pool was shut down after a failure elsewhere
            out.set_exception(e)

    for d in deps:
        d.add_done_callback(one_done)
    return out


@dataclass
class StageSpec:
    """What a remote worker needs to build the same ``BatchStages`` as the driver (picklable)."""

    encoder: str
    encoder_kwargs: dict
    teacher: str
    class_names: list[str]
    workspace: str
    text: np.ndarray
    encoder_identity: dict
    teacher_identity: dict

    def build(self) -> BatchStages:
        """The stages, or WorkspaceMismatchError when this machine builds another encoder or teacher."""
        from inficond.encoders.base import create_encoder
        from inficond.teachers import create_teacher

        enc = create_encoder(self.encoder, **self.encoder_kwargs)
        teach = create_teacher(self.teacher, self.class_names, workspace=self.workspace)
        # A worker with another inficond version would write different bytes: refuse it.
        for what, mine, want in (("encoder", enc.identity(), self.encoder_identity),
                                 ("teacher", teach.identity(), self.teacher_identity)):
            mine, want = (json.loads(json.dumps(d, sort_keys=True)) for d in (mine, want))
            if mine != want:
                diff = "; ".join(f"{k}: {mine.get(k)!r} here, {want.get(k)!r} on the driver"
                                 for k in sorted(set(mine) | set(want)) if mine.get(k) != want.get(k))
                raise WorkspaceMismatchError(f"a worker builds another {what} than the driver ({diff[:300]}); "
                                             "install the same inficond version on every node")
        return BatchStages(enc, teach, self.text)


def _run_batches_locally(stages: BatchStages, batches: list, paths: list, ids: list[str], write,
                         workers: int = 2, depth: int = 2) -> int:
    """Run ``batches`` in this process, calling ``write(ok, bad, out)`` after each; returns images seen.

    A pipeline on threads: one thread decodes ahead, and ``workers`` threads run the stages of up
    to ``depth`` batches at once (network, face detector and teacher side by side, then regions,
    concept vectors and segments), so both cores stay busy although each model runs on one thread
    (on a shared 2-core machine two intra-op threads per model were slower than one: they wait for
    each other). The models release the GIL. Batches are written in order, each only when all of
    its stages are done, so resumption stays exact.
    """
    done = 0
    if not batches:
        return done
    with ThreadPoolExecutor(max_workers=1) as decoder, ThreadPoolExecutor(max_workers=workers) as pool:
        decoding = deque(decoder.submit(decode_batch, paths, b) for b in batches[:depth])
        running: deque = deque()
        try:
            for b in range(len(batches)):
                imgs, ok, bad = decoding.popleft().result()
                if b + depth < len(batches):
                    decoding.append(decoder.submit(decode_batch, paths, batches[b + depth]))
                running.append((ok, bad, stages.submit(imgs, [ids[i] for i in ok], pool) if ok else None))
                if len(running) >= depth:
                    ok_, bad_, fut = running.popleft()
                    done += write(ok_, bad_, fut.result() if fut is not None else None)
            while running:
                ok_, bad_, fut = running.popleft()
                done += write(ok_, bad_, fut.result() if fut is not None else None)
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return done


def _write_and_count(ws: Workspace, arrays: dict, ok: list[int], bad: list[tuple[int, str]], out, bar) -> int:
    n = write_batch(ws, arrays, ok, bad, out)
    bar.update(n)
    return n


def write_batch(ws: Workspace, arrays: dict, ok: list[int], bad: list[tuple[int, str]], out: BatchOutput | None) -> int:
    """Store one batch: corrupt rows marked, array rows written and flushed, then ``ok`` marked done.

    The flush comes before the ``done`` commit, so a kill at any point leaves only finished
    images marked done. Returns the number of images handled (ok + corrupt).
    """
    from inficond.concepts import write_segments

    if bad:
        with ws.transaction() as db:
            db.executemany("UPDATE images SET status = 'corrupt', error = ? WHERE idx = ?", [(m, i) for i, m in bad])
    if ok:
        sub = np.asarray(ok)
        for name in ("regions", "boxes", "counts", "vectors", "argmax"):
            arrays[name][sub] = getattr(out, name)
        if "teacher" in arrays:
            arrays["teacher"][sub] = out.teacher
        for row, seg in zip(ok, out.segments):
            write_segments(ws, row, seg)
        for arr in arrays.values():
            arr.flush()
        ws.mark_images(ok, "done")
    return len(ok) + len(bad)


def _finish_teacher(ws: Workspace, teach, uses_features: bool, progress: bool) -> None:
    """Write ``teacher_logits`` (N, K) for the done images; train the default head once."""
    done = np.flatnonzero(ws.status == "done")
    n, k = ws.n_images, len(ws.class_names)
    if ws.has_array("teacher_logits") and ws.get_meta("teacher_logits_rows") == len(done):
        return
    logits = np.zeros((n, k), np.float32)
    if uses_features:
        feats = np.asarray(ws.array("teacher_features"), dtype=np.float32)
        if not getattr(teach, "is_fitted", False):
            train = ws.split_indices("train")
            if progress:
                print(f"prepare: training the teacher head on {len(train)} train images")
            teach.fit(feats[train], ws.labels[train])
            teach.save(ws.path / "teacher")
        logits[done] = teach.logits_from_features(feats[done])
    elif teach.needs_images:
        logits[done] = np.asarray(ws.array("teacher_logits_partial"))[done]
    else:
        logits[done] = teach.logits([ws.image_ids[i] for i in done], None)
    ws.save_array("teacher_logits", logits)
    ws.set_meta("teacher_logits_rows", len(done))


def _record_class_support(ws: Workspace, ds: Dataset, min_positives: int) -> None:
    support = class_support(ds, min_positives=min_positives)
    with ws.transaction() as db:
        for name, info in support.items():
            db.execute(
                "UPDATE classes SET excluded = ?, reason = ? WHERE name = ?",
                (int(bool(info.get("excluded"))), info.get("reason"), name),
            )
