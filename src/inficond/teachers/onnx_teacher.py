"""An ONNX image classifier run with onnxruntime on the CPU."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from inficond.exceptions import DataError, TeacherOutputError
from inficond.teachers.torch_teacher import batch_images, file_sha1, stack_outputs


class OnnxTeacher:
    """Logits from an ONNX model whose first input is an image batch (N, 3, H, W) float32.

    Parameters
    ----------
    path : .onnx file; its first output must be (N, K) logits.
    preprocess : callable, optional
        PIL image -> (3, H, W) array. Default: resize to the model's input size when it is fixed
        (else 224), mean = std = 0.5.
    batch_size : int; ignored (1 image per run) when the model's batch dimension is fixed.
    n_classes : int, optional; expected K.
    n_threads : int, optional; onnxruntime intra-op threads (default: onnxruntime's choice).
    """

    needs_images = True

    def __init__(self, path: str | Path, preprocess: Callable | None = None, batch_size: int = 32,
                 n_classes: int | None = None, n_threads: int | None = None):
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise DataError(f"ONNX teacher file not found: {self.path}; pass onnx:PATH with an existing .onnx file")
        opts = ort.SessionOptions()
        if n_threads:
            opts.intra_op_num_threads = int(n_threads)
        try:
            self.session_ = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types
            raise DataError(f"cannot load ONNX model {self.path}: {e}") from None
        inp = self.session_.get_inputs()[0]
        self.input_name_ = inp.name
        shape = list(inp.shape)
        if len(shape) != 4:
            raise DataError(f"{self.path}: first input {inp.name} has shape {shape}; expected (N, 3, H, W)")
        self.fixed_batch_ = shape[0] if isinstance(shape[0], int) else None
        self.image_size = shape[2] if isinstance(shape[2], int) else 224
        self.preprocess = preprocess
        self.batch_size = self.fixed_batch_ or int(batch_size)
        self.n_classes = n_classes
        self.sha1_ = file_sha1(self.path)

    def identity(self) -> dict:
        return {"kind": "onnx", "path": str(self.path.resolve()), "sha1": self.sha1_, "n_classes": self.n_classes}

    def logits(self, image_ids: list[str], images: list[Image.Image] | None) -> np.ndarray:
        """(len(image_ids), n_classes) float32 logits for ``images`` (same order as ``image_ids``)."""
        if images is None or len(images) != len(image_ids):
            raise DataError(f"ONNX teacher needs one decoded image per id; got "
                            f"{None if images is None else len(images)} images for {len(image_ids)} ids")
        out = []
        for i in range(0, len(images), self.batch_size):
            x = batch_images(images[i : i + self.batch_size], self.preprocess, self.image_size)
            n = len(x)
            if self.fixed_batch_ and n < self.fixed_batch_:  # pad the last batch of a fixed-batch model
                x = np.concatenate([x, np.zeros((self.fixed_batch_ - n, *x.shape[1:]), np.float32)])
            try:
                y = self.session_.run(None, {self.input_name_: x})[0]
            except Exception as e:
                raise TeacherOutputError(f"ONNX teacher {self.path.name} failed on input {x.shape}: {e}") from None
            out.append(np.asarray(y)[:n])
        arr = stack_outputs(out, len(image_ids), self.n_classes, f"ONNX teacher {self.path.name}")
        self.n_classes = arr.shape[1]
        return arr
