"""A person cue for ConSE: faces found by MTCNN, whose weights ship inside ``facenet-pytorch``.

ImageNet-1k has no person class, so a ConSE region showing a person is embedded as a mix of
clothes, instruments and whatever else is near (person AP 0.30 with the class word on the dev
data). A face is the part of a person that a small, packaged detector finds reliably. Design:

* ``FaceDetector.detect`` returns, per image, the face boxes (fractions of the image) and their
  probabilities. The image is shrunk to ``max_side`` first (speed; faces smaller than
  ``min_face_size`` pixels at that size are not looked for).
* ``region_person_scores`` gives a region the largest probability among the faces whose centre
  lies inside it (0 when none).
* The encoder mixes that score into ConSE as a pseudo-class whose text is ``"person"``: with
  ``q = weight * score``, the ImageNet mixing weights are scaled by ``1 - q`` and the pseudo-class
  gets ``q`` (see ``ConseEffnetEncoder.conse``).
"""

from __future__ import annotations

import contextlib
import io

import numpy as np
from PIL import Image

from inficond.exceptions import EncoderLoadError


class FaceDetector:
    """MTCNN (Zhang et al., 2016) with the weights packaged in ``facenet-pytorch``, on CPU.

    Parameters
    ----------
    max_side : int, default 320
        Images are shrunk so their longer side is at most this many pixels before detection.
    min_face_size : int, default 20
        Smallest face side searched for, in pixels at the shrunk size.
    num_threads : int or None, default 1
        torch CPU threads during detection; None leaves torch's setting. One thread: the networks
        are tiny, and two threads on a busy 2-core machine spent far more CPU time spinning than
        working (measured: >1 CPU-second per image with 2 threads, 0.05 with 1).
    """

    def __init__(self, max_side: int = 320, min_face_size: int = 20, num_threads: int | None = 1):
        if max_side < 32:
            raise ValueError(f"max_side must be >= 32, got {max_side}")
        if min_face_size < 8:
            raise ValueError(f"min_face_size must be >= 8, got {min_face_size}")
        from inficond.encoders.mtcnn_ops import import_mtcnn

        try:
            MTCNN = import_mtcnn()  # with or without torchvision (mtcnn_ops.py)
        except ImportError as e:
            raise EncoderLoadError(
                f"the person cue needs facenet-pytorch (pip install --no-deps facenet-pytorch==2.5.3): {e}") from None
        except RuntimeError as e:  # e.g. "operator torchvision::nms does not exist"
            raise EncoderLoadError(
                f"facenet-pytorch could not import torchvision ({e}); torchvision must match torch's build: "
                "uninstall it (the person cue runs without it) or install the pair in the README") from None
        self.max_side, self.min_face_size, self.num_threads = int(max_side), int(min_face_size), num_threads
        with contextlib.redirect_stdout(io.StringIO()):
            self._mtcnn = MTCNN(keep_all=True, min_face_size=self.min_face_size, device="cpu")
        _channels_last_pools(self._mtcnn)

    def identity(self) -> dict:
        return self.describe(self.max_side, self.min_face_size)

    @staticmethod
    def describe(max_side: int = 320, min_face_size: int = 20) -> dict:
        """The settings that change detections (no model is loaded)."""
        return {"model": "mtcnn", "weights": "facenet-pytorch", "max_side": int(max_side),
                "min_face_size": int(min_face_size)}

    def detect(self, images: list[Image.Image]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per image: face boxes ``(n, 4)`` as fractions ``x0, y0, x1, y1`` and probabilities ``(n,)``."""
        import torch

        out = []
        threads = torch.get_num_threads()
        if self.num_threads:
            torch.set_num_threads(self.num_threads)
        try:
            for im in images:
                small = im.convert("RGB") if im.mode != "RGB" else im
                if max(small.size) > self.max_side:
                    small = small.copy()
                    small.thumbnail((self.max_side, self.max_side), Image.Resampling.BILINEAR)
                with torch.no_grad():
                    boxes, probs = self._mtcnn.detect(small)
                if boxes is None:
                    out.append((np.zeros((0, 4), np.float32), np.zeros(0, np.float32)))
                    continue
                w, h = small.size
                b = np.asarray(boxes, np.float32) / np.array([w, h, w, h], np.float32)
                out.append((np.clip(b, 0.0, 1.0), np.asarray(probs, np.float32)))
        finally:
            if self.num_threads:
                torch.set_num_threads(threads)
        return out


def _channels_last_pools(mtcnn) -> None:
    """Run MTCNN's max-pooling layers in channels-last memory order.

    PyTorch's CPU max pooling is about 2.7x faster channels-last for these small-channel maps
    (P-Net's pool was a third of the detector's time), and a maximum does not depend on the
    memory order, so the detections are bit-identical (tests/test_encoders.py).
    """
    import torch

    class ChannelsLastMaxPool(torch.nn.Module):
        def __init__(self, pool: torch.nn.MaxPool2d):
            super().__init__()
            self.pool = pool

        def forward(self, x):
            # Only plain NCHW input is converted, and its output converted back: the layers after
            # the pool then see the memory order they saw before (convolutions pick their kernel
            # by it, and another kernel rounds differently).
            if x.is_contiguous() and not x.is_contiguous(memory_format=torch.channels_last):
                return self.pool(x.contiguous(memory_format=torch.channels_last)).contiguous()
            return self.pool(x)

    for net in (mtcnn.pnet, mtcnn.rnet, mtcnn.onet):
        for name, child in list(net.named_children()):
            if isinstance(child, torch.nn.MaxPool2d):
                setattr(net, name, ChannelsLastMaxPool(child))


def region_person_scores(region_boxes: np.ndarray, faces: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """(R,) the largest probability of a face whose centre lies in each region (0 when none).

    Parameters
    ----------
    region_boxes : ndarray (R, 4) of fractions ``x0, y0, x1, y1``
    faces : (boxes (n, 4) fractions, probabilities (n,)) from ``FaceDetector.detect``
    """
    boxes, probs = faces
    if len(probs) == 0:
        return np.zeros(len(region_boxes), np.float32)
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    rb = region_boxes[:, None, :]
    inside = (cx >= rb[..., 0]) & (cx < rb[..., 2]) & (cy >= rb[..., 1]) & (cy < rb[..., 3])  # (R, n)
    return np.where(inside, probs[None, :], 0.0).max(1).astype(np.float32)
