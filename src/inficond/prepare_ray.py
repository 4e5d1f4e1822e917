"""``prepare`` on Ray Data: the same per-batch stages as the local loop, run by a pool of workers.

One Ray Data row is one ``prepare`` batch (its image rows, paths and ids), so a worker sees
exactly the images the local loop would put together and runs the same
:class:`inficond.prepare.BatchStages` on them: the arrays come out bit-identical. Each worker is
a Ray actor that builds the encoder and the teacher once (``map_batches`` with a callable class)
and turns batches into regions, concept vectors, teacher output and segments.

Results stream back to this process in batch order (``preserve_order``) and are written here
by :func:`inficond.prepare.write_batch`: rows flushed, then the batch marked ``done``. So the
finished images are always a prefix of the run's batches, as in the local loop, and a stopped
run resumes from the first unfinished batch.

Workers decode the images themselves: on a cluster every node needs inficond installed (the
same version; a worker refuses another encoder or teacher identity) and the dataset path.
The workspace is only written by this process.
"""

from __future__ import annotations

import logging
import os
import socket

import numpy as np

from inficond.exceptions import DataError, WorkspaceMismatchError
from inficond.prepare import BatchOutput, StageSpec, decode_batch

#: the ``ray`` argument that starts (or reuses) a Ray instance on this machine
LOCAL = "local"


class PrepareWorker:
    """A Ray Data actor: builds the models once, then maps one batch row to one row per image."""

    def __init__(self, spec: StageSpec):
        # A refusal goes back as data, not as an exception: Ray passes a worker's exceptions on
        # as wrapped text, and the driver should raise the plain inficond error.
        self.stages, self.refusal = None, None
        try:
            self.stages = spec.build()
        except WorkspaceMismatchError as e:
            self.refusal = str(e)

    def __call__(self, row: dict) -> dict:
        if self.refusal is not None:
            return {"refused": np.asarray([self.refusal], dtype=object)}
        idx = [int(i) for i in np.asarray(row["idx"][0]).ravel()]
        paths = dict(zip(idx, np.asarray(row["path"][0]).ravel().tolist()))
        ids = dict(zip(idx, np.asarray(row["image_id"][0]).ravel().tolist()))
        imgs, ok, bad = decode_batch(paths, idx)
        out = self.stages.run(imgs, [ids[i] for i in ok]) if ok else None
        # Corrupt images come back as rows with an error and empty arrays (zero-length shapes
        # are avoided: every column keeps one shape across rows).
        return _rows(ok, bad, out)


def _rows(ok: list[int], bad: list[tuple[int, str]], out: BatchOutput | None) -> dict:
    cols = {"idx": np.asarray(ok + [i for i, _ in bad], np.int64),
            "error": np.asarray([""] * len(ok) + [m for _, m in bad], dtype=object)}
    if out is None:
        return cols
    for name in ("regions", "boxes", "counts", "vectors", "argmax") + (("teacher",) if out.teacher is not None else ()):
        a = getattr(out, name)
        cols[name] = np.concatenate([a, np.zeros((len(bad),) + a.shape[1:], a.dtype)])
    segs = np.empty(len(ok) + len(bad), dtype=object)  # filled one by one: equal-length lists would broadcast
    for j, s in enumerate(list(out.segments) + [[] for _ in bad]):
        segs[j] = list(s)
    cols["segments"] = segs
    return cols


def _split(block: dict) -> tuple[list[int], list[tuple[int, str]], BatchOutput | None]:
    """The worker's rows back as (ok, bad, BatchOutput of the ok rows)."""
    idx = np.asarray(block["idx"]).astype(int)
    err = [str(e) for e in block["error"]]
    good = np.array([not e for e in err], bool)
    ok = idx[good].tolist()
    bad = [(int(i), e) for i, e in zip(idx, err) if e]
    if not ok:
        return ok, bad, None
    take = lambda name: np.asarray(block[name])[good] if name in block else None  # noqa: E731
    segs = [list(s) for s in np.asarray(block["segments"], dtype=object)[good]]
    return ok, bad, BatchOutput(take("regions"), take("boxes"), take("counts"), take("vectors"), take("argmax"),
                                take("teacher"), segs)


def check_address(address: str | None) -> None:
    """Refuse, before any work, a missing Ray or a ``host:port`` nobody listens on (``ray.init``
    would retry it for minutes)."""
    try:
        import ray  # noqa: F401
    except ImportError:
        raise DataError("--ray needs Ray Data: pip install 'inficond[ray]'") from None
    if address in (None, LOCAL):
        return
    host, sep, port = address.rpartition(":")
    if address == "auto" or "://" in address or not sep or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=10).close()
    except OSError as e:
        raise DataError(f"cannot reach the Ray cluster at {address!r} ({e}); start one with `ray start --head` "
                        "and pass its address (e.g. --ray 10.0.0.5:6379, or --ray auto on a node of it)") from None


def _connect(address: str | None):
    """``ray.init`` for ``address`` unless Ray is already up; returns whether this call started it."""
    check_address(address)
    import ray

    if ray.is_initialized():
        return False
    logging.getLogger("ray").setLevel(logging.WARNING)
    if address in (None, LOCAL):
        ray.init(num_cpus=len(os.sched_getaffinity(0)), include_dashboard=False, log_to_driver=False)
    else:
        try:
            ray.init(address=address, log_to_driver=False)
        except (ConnectionError, ValueError, RuntimeError) as e:
            raise DataError(f"cannot connect to the Ray cluster at {address!r} ({e}); start one with "
                            "`ray start --head` and pass its address (e.g. --ray 10.0.0.5:6379 or --ray auto)") from None
    return True


def run_batches_on_ray(spec: StageSpec, batches: list, paths: list, ids: list[str], write, *,
                       address: str | None = LOCAL, workers: int | None = None) -> int:
    """Run ``batches`` (lists of workspace rows) on Ray, calling ``write(ok, bad, out)`` in batch order.

    Parameters
    ----------
    spec : StageSpec
        What each worker builds (encoder, teacher, concept text and their identities).
    batches : list of int arrays
        Workspace rows per batch, as the local loop would run them.
    address : str or None
        ``"local"``/None: this machine (all its CPUs) unless Ray is already initialised;
        otherwise the address passed to ``ray.init``.
    workers : int or None
        Actors in the pool, one CPU each; None = the cluster's CPUs (at most one per batch).

    Returns
    -------
    int, the images handled (done + corrupt).
    """
    if not batches:
        return 0
    if workers is not None and workers < 1:
        raise DataError(f"--ray-workers must be >= 1, got {workers}")
    started = _connect(address)
    import ray
    import ray.data

    try:
        if workers is None:
            workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
        workers = min(int(workers), len(batches))
        ctx = ray.data.DataContext.get_current()
        ctx.execution_options.preserve_order = True  # done images stay a prefix of the batches
        ctx.enable_progress_bars = False  # prepare's own bar counts written images
        ctx.print_on_execution_start = False
        # Absolute paths: a workspace may record them relative to where `prepare` first ran.
        rows = [{"idx": np.asarray(b, np.int64), "path": [os.path.abspath(paths[i]) for i in b],
                 "image_id": [ids[i] for i in b]} for b in batches]
        ds = ray.data.from_items(rows, override_num_blocks=len(rows)).map_batches(
            PrepareWorker, fn_constructor_kwargs={"spec": spec}, batch_size=1, batch_format="numpy",
            # min_size=1: work starts as soon as one worker has its models (the others may wait
            # for a CPU, e.g. one a killed run still holds until Ray reaps it).
            compute=ray.data.ActorPoolStrategy(min_size=1, max_size=workers, initial_size=workers), num_cpus=1)
        done = 0
        for block in ds.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=0):
            if "refused" in block:
                raise WorkspaceMismatchError(str(block["refused"][0]))
            done += write(*_split(block))
        return done
    finally:
        if started:
            ray.shutdown()
