"""The teacher interface: all InFiConD takes from a teacher is one logit per class and image."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
from PIL import Image

from inficond.exceptions import TeacherOutputError


@runtime_checkable
class Teacher(Protocol):
    """Anything that gives logits of shape (n_images, n_classes).

    Attributes
    ----------
    needs_images : bool
        False when logits come from a file keyed by image id (no decoding needed).
    """

    needs_images: bool

    def identity(self) -> dict:
        """JSON-able description stored in the workspace."""

    def logits(self, image_ids: list[str], images: list[Image.Image] | None) -> np.ndarray:
        """(len(image_ids), n_classes) float32 logits, validated with ``check_logits``."""


def check_logits(logits, n_images: int, n_classes: int | None, source: str = "teacher", dtype=np.float32) -> np.ndarray:
    """Return ``logits`` as ``dtype`` (n_images, n_classes) or raise a clear ``TeacherOutputError``.

    ``n_classes=None`` accepts any number (≥ 1) of columns.
    """
    try:
        arr = np.asarray(logits, dtype=dtype)
    except (TypeError, ValueError) as e:
        raise TeacherOutputError(f"{source} returned non-numeric logits: {e}") from None
    if arr.ndim == 1 and n_classes == 1:
        arr = arr[:, None]
    k = arr.shape[1] if n_classes is None and arr.ndim == 2 and arr.shape[1] >= 1 else n_classes
    if arr.shape != (n_images, k):
        raise TeacherOutputError(
            f"{source} returned logits of shape {arr.shape}; expected ({n_images}, {k or 'n_classes'}) = (images, classes)"
        )
    bad = ~np.isfinite(arr)
    if bad.any():
        rows = np.unique(np.nonzero(bad)[0])[:5].tolist()
        raise TeacherOutputError(
            f"{source} returned {int(bad.sum())} NaN/inf logits (first bad rows: {rows}); fix the teacher output"
        )
    return arr
