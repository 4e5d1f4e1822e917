"""Stand-ins for the two torchvision functions that facenet-pytorch's MTCNN imports.

``facenet_pytorch/models/utils/detect_face.py`` does ``from torchvision.ops.boxes import
batched_nms`` and ``from torchvision.transforms import functional as F`` (``F.to_tensor``, used
only to crop faces, which the person cue never does). The default install has no torchvision
(the CPU-only torch on local disk has no matching torchvision build; see the README's install
section), so ``import_mtcnn`` lends facenet-pytorch these functions while it is imported, and only
when torchvision is absent. They are written out here, not approximated: the detections are the
same as torchvision's (tests/test_encoders.py checks both on VOC photos when torchvision is
installed).

Hand-written because no well-kept torch-only package offers torchvision's NMS with its exact
ordering and float32 arithmetic; the greedy loop mirrors torchvision's CPU kernel
(``torchvision/csrc/ops/cpu/nms_kernel.cpp``) step for step.
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
import threading
import types

import numpy as np
import torch


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Indices of the boxes kept by greedy non-maximum suppression, by decreasing score.

    Same contract and result as ``torchvision.ops.nms``: boxes ``(N, 4)`` as ``x1, y1, x2, y2``;
    a box is dropped when its IoU with a kept, higher-scoring box is ``> iou_threshold``.
    """
    if boxes.dim() != 2 or boxes.shape[-1] != 4:
        raise ValueError(f"boxes must be (N, 4), got {tuple(boxes.shape)}")
    if scores.shape != boxes.shape[:1]:
        raise ValueError(f"scores must be ({boxes.shape[0]},), got {tuple(scores.shape)}")
    device = boxes.device
    if boxes.numel() == 0:
        return torch.empty((0,), dtype=torch.int64, device=device)
    boxes, scores = boxes.detach().cpu(), scores.detach().cpu()
    x1, y1, x2, y2 = (boxes[:, k].contiguous() for k in range(4))
    areas = ((x2 - x1) * (y2 - y1)).numpy()  # in the boxes' dtype, as torchvision computes them
    order = scores.sort(stable=True, dim=0, descending=True)[1].numpy()
    x1, y1, x2, y2 = x1.numpy(), y1.numpy(), x2.numpy(), y2.numpy()
    zero = np.zeros((), x1.dtype)
    suppressed = np.zeros(len(order), bool)
    keep = []
    for pos, i in enumerate(order):
        if suppressed[i]:
            continue
        keep.append(i)
        rest = order[pos + 1:]
        rest = rest[~suppressed[rest]]
        w = np.maximum(zero, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
        h = np.maximum(zero, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
        inter = w * h
        ovr = inter / (areas[i] + areas[rest] - inter)
        # The C++ kernel compares the box-dtype IoU with a double threshold: so do we (NumPy would
        # otherwise round the threshold to float32).
        suppressed[rest[ovr.astype(np.float64) > float(iou_threshold)]] = True
    return torch.as_tensor(np.asarray(keep, np.int64), device=device)


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """``torchvision.ops.boxes.batched_nms``: NMS within each category ``idxs``, never across.

    Takes the same two routes as torchvision (one NMS over category-offset boxes for small inputs,
    one NMS per category for large ones), since the offset changes the float32 IoUs.
    """
    if boxes.numel() > (4000 if boxes.device.type == "cpu" else 100_000) and not torch.jit.is_tracing():
        keep_mask = torch.zeros_like(scores, dtype=torch.bool)
        for class_id in torch.unique(idxs):
            curr = torch.where(idxs == class_id)[0]
            keep_mask[curr[nms(boxes[curr], scores[curr], iou_threshold)]] = True
        keep = torch.where(keep_mask)[0]
        return keep[scores[keep].sort(descending=True)[1]]
    if boxes.numel() == 0:
        return torch.empty((0,), dtype=torch.int64, device=boxes.device)
    max_coordinate = boxes.max()
    offsets = idxs.to(boxes) * (max_coordinate + torch.tensor(1).to(boxes))
    return nms(boxes + offsets[:, None], scores, iou_threshold)


def to_tensor(pic) -> torch.Tensor:
    """``torchvision.transforms.functional.to_tensor`` for the NumPy input facenet-pytorch passes.

    HWC (or HW) array to a CHW tensor; uint8 is scaled to [0, 1] in the default float dtype.
    """
    if not isinstance(pic, np.ndarray):
        raise TypeError(f"without torchvision, to_tensor takes a numpy array, got {type(pic).__name__}")
    if pic.ndim not in (2, 3):
        raise ValueError(f"pic should be 2/3 dimensional. Got {pic.ndim} dimensions.")
    if pic.ndim == 2:
        pic = pic[:, :, None]
    img = torch.from_numpy(pic.transpose((2, 0, 1))).contiguous()
    return img.to(dtype=torch.get_default_dtype()).div(255) if img.dtype == torch.uint8 else img


_IMPORT_LOCK = threading.Lock()


@contextlib.contextmanager
def _torchvision_stand_in():
    """Puts a ``torchvision`` holding only the functions above into ``sys.modules``, then removes it.

    Removed again at once (what was there before is put back) so that nothing else (transformers checks whether torchvision is
    installed) ever sees it; facenet-pytorch keeps the functions it bound at import.
    """
    names = ["torchvision", "torchvision.ops", "torchvision.ops.boxes", "torchvision.transforms",
             "torchvision.transforms.functional"]
    mods = {n: types.ModuleType(n, "inficond stand-in for facenet-pytorch's MTCNN import") for n in names}
    mods["torchvision.ops.boxes"].batched_nms = batched_nms
    mods["torchvision.ops.boxes"].nms = nms
    mods["torchvision.transforms.functional"].to_tensor = to_tensor
    for n in names[1:]:
        parent, _, child = n.rpartition(".")
        setattr(mods[parent], child, mods[n])
    with _IMPORT_LOCK:
        before = {n: sys.modules[n] for n in names if n in sys.modules}
        sys.modules.update(mods)
        try:
            yield
        finally:
            for n in names:
                if sys.modules.get(n) is mods[n]:
                    del sys.modules[n]
            sys.modules.update(before)


def import_mtcnn():
    """``facenet_pytorch.MTCNN``, with torchvision's functions when it is installed, else ours."""
    if "facenet_pytorch" in sys.modules or importlib.util.find_spec("torchvision") is not None:
        from facenet_pytorch import MTCNN
        return MTCNN
    with _torchvision_stand_in():
        from facenet_pytorch import MTCNN
    return MTCNN


def uses_torchvision() -> bool:
    """Whether the imported facenet-pytorch runs torchvision's NMS (False: this module's)."""
    detect_face = sys.modules.get("facenet_pytorch.models.utils.detect_face")
    if detect_face is None:
        raise RuntimeError("facenet-pytorch is not imported yet; call import_mtcnn() first")
    return detect_face.batched_nms is not batched_nms
