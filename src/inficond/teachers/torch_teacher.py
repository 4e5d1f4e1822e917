"""Any torch model (or plain callable) that maps an image batch to logits."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from inficond.exceptions import DataError, TeacherOutputError
from inficond.teachers.base import check_logits


def pil_to_batch(images: list[Image.Image], size: int = 224, mean: float = 0.5, std: float = 0.5) -> np.ndarray:
    """Default preprocessing: whole image resized to ``size x size`` (no crop), ``(x/255 - mean)/std``.

    Returns
    -------
    ndarray (n, 3, size, size) float32.
    """
    arr = np.empty((len(images), size, size, 3), dtype=np.uint8)
    for i, im in enumerate(images):
        im = im if im.mode == "RGB" else im.convert("RGB")
        arr[i] = np.asarray(im.resize((size, size), Image.Resampling.BILINEAR))
    x = arr.transpose(0, 3, 1, 2).astype(np.float32)
    x /= 255.0
    x -= mean
    x /= std
    return x


def file_sha1(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        while b := f.read(chunk):
            h.update(b)
    return h.hexdigest()


def batch_images(images: list[Image.Image], preprocess: Callable | None, size: int) -> np.ndarray:
    """(n, 3, H, W) float32 from PIL images, with a per-image ``preprocess`` or :func:`pil_to_batch`.

    ``preprocess`` takes one PIL image and returns a (3, H, W) tensor or array (torchvision-style).
    """
    if preprocess is None:
        return pil_to_batch(images, size)
    return np.stack([np.asarray(preprocess(im), dtype=np.float32) for im in images])


def stack_outputs(out: list[np.ndarray], n_images: int, n_classes: int | None, source: str) -> np.ndarray:
    """Concatenate per-batch outputs and validate them as (n_images, n_classes) logits."""
    try:
        arr = np.concatenate([np.asarray(o, dtype=np.float32) for o in out]) if out else np.zeros((0, n_classes or 0))
    except ValueError:
        raise TeacherOutputError(f"{source} returned batches of different shapes {[np.shape(o) for o in out]}") from None
    if n_classes is None:
        if arr.ndim != 2:
            raise TeacherOutputError(f"{source} returned logits of shape {arr.shape}; expected (images, classes)")
        n_classes = arr.shape[1]
    return check_logits(arr, n_images, n_classes, source=source)


class TorchTeacher:
    """Logits from a torch ``nn.Module`` or any callable ``f(x: Tensor (N,3,H,W)) -> (N,K)``.

    Parameters
    ----------
    model : torch.nn.Module or callable
        Put in eval mode if it is a module; run under ``torch.inference_mode``.
    preprocess : callable, optional
        PIL image -> (3, H, W) tensor/array. Default: resize to 224 x 224, mean = std = 0.5.
    batch_size : int
    n_classes : int, optional
        Expected number of logits per image; default taken from the first output.
    """

    needs_images = True

    def __init__(self, model, preprocess: Callable | None = None, batch_size: int = 32, n_classes: int | None = None,
                 image_size: int = 224):
        if not callable(model):
            raise TypeError(f"model must be a torch module or a callable; got {type(model).__name__}")
        self.model = model
        self.preprocess = preprocess
        self.batch_size = int(batch_size)
        self.n_classes = n_classes
        self.image_size = int(image_size)
        self.source: str | None = None
        self.source_sha1: str | None = None
        if hasattr(model, "eval"):
            model.eval()

    @classmethod
    def from_torchscript(cls, path: str | Path, **kw) -> "TorchTeacher":
        """Load a TorchScript file (``torch.jit.save``) on the CPU."""
        import torch

        path = Path(path)
        if not path.is_file():
            raise DataError(f"TorchScript teacher file not found: {path}; pass torch:PATH.pt with an existing file")
        try:
            model = torch.jit.load(str(path), map_location="cpu")
        except RuntimeError as e:
            raise DataError(f"{path} is not a TorchScript file (save one with torch.jit.script(m).save): {e}") from None
        t = cls(model, **kw)
        t.source, t.source_sha1 = str(path.resolve()), file_sha1(path)
        return t

    def identity(self) -> dict:
        ident = {"kind": "torch", "model": type(self.model).__name__, "n_classes": self.n_classes,
                 "image_size": None if self.preprocess else self.image_size}
        if self.source:
            ident.update(path=self.source, sha1=self.source_sha1)
        return ident

    def logits(self, image_ids: list[str], images: list[Image.Image] | None) -> np.ndarray:
        """(len(image_ids), n_classes) float32 logits for ``images`` (same order as ``image_ids``)."""
        import torch

        if images is None or len(images) != len(image_ids):
            raise DataError(f"torch teacher needs one decoded image per id; got "
                            f"{None if images is None else len(images)} images for {len(image_ids)} ids")
        out = []
        with torch.inference_mode():
            for i in range(0, len(images), self.batch_size):
                x = torch.from_numpy(batch_images(images[i : i + self.batch_size], self.preprocess, self.image_size))
                y = self.model(x)
                if isinstance(y, torch.Tensor):
                    y = y.detach().float().cpu().numpy()
                elif not isinstance(y, np.ndarray):
                    raise TeacherOutputError(f"torch teacher returned {type(y).__name__}; expected a (N, K) tensor")
                out.append(y)
        arr = stack_outputs(out, len(image_ids), self.n_classes, "torch teacher")
        self.n_classes = arr.shape[1]  # later calls must agree
        return arr
