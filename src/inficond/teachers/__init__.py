"""Teachers: anything that gives one logit per class and image (see :mod:`inficond.teachers.base`)."""

from __future__ import annotations

from importlib import import_module
from pathlib import Path

from inficond.exceptions import UnknownNameError
from inficond.teachers.base import Teacher, check_logits

__all__ = [
    "Teacher", "check_logits", "create_teacher", "TEACHER_KINDS", "DEFAULT_TEACHER",
    "EffNetTeacher", "LogitsFileTeacher", "OnnxTeacher", "TorchTeacher",
]

DEFAULT_TEACHER = "effnet-lite2"
TEACHER_KINDS = ("effnet-lite0", "effnet-lite1", "effnet-lite2", "file:PATH", "onnx:PATH", "torch:PATH.pt")

# The teacher classes load on first use: the students import ``check_logits`` from here, and the
# effnet module's scikit-learn import was most of the server's 2 s start (PEP 562 lazy attributes).
_LAZY = {"EffNetTeacher": "effnet", "LogitsFileTeacher": "logits_file", "OnnxTeacher": "onnx_teacher",
         "TorchTeacher": "torch_teacher"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def create_teacher(spec: str, class_names: list[str], workspace: str | Path | None = None, **kw) -> Teacher:
    """Build a teacher from a spec string.

    Parameters
    ----------
    spec : str
        ``effnet-lite2`` (default; also ``effnet-lite0``/``effnet-lite1``), ``file:PATH`` (.csv/.npz/.npy
        logits), ``onnx:PATH`` (ONNX model), ``torch:PATH.pt`` (TorchScript file).
    class_names : list of str, length K; the logits' columns.
    workspace : folder, optional
        For ``effnet-*``: when ``workspace/teacher`` holds a head saved by ``EffNetTeacher.save`` with
        the same model and classes it is loaded (fitted); otherwise the teacher is returned unfitted
        and must be ``fit`` on train features. Ignored by the other kinds.
    **kw : passed to the teacher's constructor (e.g. ``image_ids`` for a .npy file, ``batch_size``,
        ``preprocess``, ``C``).

    Raises
    ------
    UnknownNameError
        Unknown kind; the message lists the known ones.
    """
    from inficond.teachers.effnet import EffNetTeacher
    from inficond.teachers.logits_file import LogitsFileTeacher
    from inficond.teachers.onnx_teacher import OnnxTeacher
    from inficond.teachers.torch_teacher import TorchTeacher

    spec = (spec or DEFAULT_TEACHER).strip()
    kind, sep, arg = spec.partition(":")
    kind = kind.lower()
    if kind.startswith("effnet-lite") and not sep:
        model = "efficientnet-" + kind.removeprefix("effnet-")
        if model not in ("efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2"):
            raise UnknownNameError("teacher", spec, TEACHER_KINDS)
        saved = Path(workspace) / "teacher" if workspace is not None else None
        if saved is not None and (saved / "teacher.json").is_file():
            t = EffNetTeacher.load(saved)
            wanted = EffNetTeacher(class_names, model_name=model, **kw).identity()
            if t.identity() == wanted:
                return t
        return EffNetTeacher(class_names, model_name=model, **kw)
    if sep and arg:
        if kind == "file":
            return LogitsFileTeacher(arg, class_names, **kw)
        if kind == "onnx":
            return OnnxTeacher(arg, n_classes=len(class_names), **kw)
        if kind == "torch":
            return TorchTeacher.from_torchscript(arg, n_classes=len(class_names), **kw)
    raise UnknownNameError("teacher", spec, TEACHER_KINDS)
