"""The one in-memory description every dataset loader returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from inficond.exceptions import DataError

SPLITS = ("train", "val", "test")


@dataclass
class Dataset:
    """Images with image-level multi-labels and a split.

    Attributes
    ----------
    root : Path
        Folder the dataset was read from.
    image_ids : list of str, length n_images
    paths : list of Path, length n_images
    class_names : list of str, length n_classes
    labels : ndarray of shape (n_images, n_classes), dtype uint8
        Multi-hot ground truth (1 = at least one object of the class).
    splits : ndarray of shape (n_images,), dtype '<U5'
        One of ``train`` (distillation), ``val`` (interactive analysis), ``test`` (held out).
    skipped : list of (image id, reason)
        Entries the loader could not use (missing or corrupt files); nothing else is dropped.
    """

    root: Path
    image_ids: list[str]
    paths: list[Path]
    class_names: list[str]
    labels: np.ndarray
    splits: np.ndarray
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        n = len(self.image_ids)
        self.labels = np.asarray(self.labels, dtype=np.uint8)
        self.splits = np.asarray(self.splits, dtype="<U5")
        if len(self.paths) != n or self.labels.shape != (n, len(self.class_names)) or self.splits.shape != (n,):
            raise DataError(
                f"inconsistent dataset: {n} ids, {len(self.paths)} paths, labels {self.labels.shape}, "
                f"splits {self.splits.shape}, {len(self.class_names)} classes"
            )
        if len(set(self.image_ids)) != n:
            raise DataError("duplicate image ids in dataset")
        bad = sorted(set(self.splits.tolist()) - set(SPLITS))
        if bad:
            raise DataError(f"unknown split name(s) {bad}; expected {SPLITS}")

    def __len__(self) -> int:
        return len(self.image_ids)

    def indices(self, split: str) -> np.ndarray:
        return np.flatnonzero(self.splits == split)

    def subset(self, idx: np.ndarray | list[int]) -> "Dataset":
        idx = np.asarray(idx, dtype=int)
        return Dataset(
            root=self.root,
            image_ids=[self.image_ids[i] for i in idx],
            paths=[self.paths[i] for i in idx],
            class_names=list(self.class_names),
            labels=self.labels[idx],
            splits=self.splits[idx],
            skipped=list(self.skipped),
        )

    def limit(self, n_per_split: int) -> "Dataset":
        """The first ``n_per_split`` images of each split (for a quick run)."""
        keep = np.concatenate([self.indices(s)[:n_per_split] for s in SPLITS])
        return self.subset(np.sort(keep))
