"""``open_clip``: a real CLIP (any open_clip ViT) as the concept encoder.

Image side
    The image is squashed to the model's input size (no centre crop, so region boxes are
    fractions of the whole image) and normalised with the model's mean/std. Dense patch
    embeddings come from the last block:

    * ``dense="maskclip"`` (default, MaskCLIP, Zhou et al. 2022): the last attention block's
      value path only (``out_proj(v(ln_1(x)))``, no query-key mixing, no residual/MLP), then
      ``ln_post`` and ``proj``. Patch tokens of CLIP's normal output are poorly aligned with
      text; the value path keeps them local and in the joint space.
    * ``dense="tokens"``: the normal output tokens (``visual.output_tokens``) times ``proj``.

    The ``g x g`` patch embeddings are grouped into ``n_segments`` spatially connected segments
    (Ward clustering on embedding + position, see ``inficond.concepts.segments``); each segment
    is a region (mean of its patches) and ``grid`` records the segment of every patch. Region 0 is
    the whole image (CLIP's pooled embedding) when ``whole_image`` is true.

Text side
    ``model.encode_text(tokenizer([template.format(w) ...]))``. All embeddings are L2-normalised
    (CLIP's space is already centred by training; no extra centring).

Weights
    A CLIP without trained weights embeds nothing meaningful, so the encoder refuses to build
    one unless ``allow_random=True`` (tests only). Weights are a pretrained tag, which open_clip
    downloads into its cache when online, or a local checkpoint file; from the command line::

        inficond prepare --data DATA --out WS --encoder open_clip --clip-model ViT-B-32 --clip-weights laion2b_s34b_b79k
        inficond prepare --data DATA --out WS --encoder open_clip --clip-model ViT-B-32 --clip-weights ViT-B-32.pt

    A checkpoint is identified by the SHA-256 of its bytes, so a workspace resumes with the same
    file wherever it lies and refuses a different one.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from inficond.encoders.base import RegionEmbeddings, register_encoder
from inficond.exceptions import DataError, EncoderLoadError, UnknownNameError

VERSION = 2  # 2: checkpoint files identified by content digest (was name and size)


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)).astype(np.float32)


def _file_digest(path: Path) -> str:
    """``sha256:<16 hex>`` of the file's bytes (read in 1 MiB blocks)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return "sha256:" + h.hexdigest()[:16]


def _is_path(pretrained: str) -> bool:
    return os.sep in pretrained or pretrained.endswith((".pt", ".pth", ".bin", ".safetensors")) or Path(pretrained).is_file()


def weights_help(model_name: str) -> str:
    """How to get weights for ``model_name``: its pretrained tags and the checkpoint-file route."""
    try:
        import open_clip

        tags = open_clip.list_pretrained_tags_by_model(model_name)
    except Exception:  # unknown or custom architecture
        tags = []
    shown = ", ".join(tags[:6]) + (", ..." if len(tags) > 6 else "") if tags else "none registered"
    return (f"pass --clip-weights TAG (open_clip downloads it into its cache when online; tags for {model_name}: "
            f"{shown}) or --clip-weights FILE, a checkpoint saved elsewhere, e.g. with "
            f"`torch.save(open_clip.create_model('{model_name}', pretrained=TAG).state_dict(), 'clip.pt')` "
            "(in Python: pretrained=TAG or pretrained=FILE)")


@register_encoder("open_clip")
class OpenClipEncoder:
    """An open_clip ViT as a concept encoder (dense MaskCLIP patches grouped into segments).

    Parameters
    ----------
    model_name : str, optional
        open_clip architecture name (``open_clip.list_models()``); default 'ViT-B-32', or the
        stem of ``config`` when one is given.
    pretrained : str or None
        A pretrained tag (``open_clip.list_pretrained_tags_by_model(model_name)``; needs the
        weights in the local cache or a network) or a local checkpoint path. Required unless
        ``model`` is given or ``allow_random`` is set.
    config : str or Path, optional
        An open_clip model-config JSON to register first (``open_clip.add_model_config``), for an
        architecture open_clip does not ship; ``model_name`` is then the file's stem unless given.
    allow_random : bool, default False
        Build ``model_name`` with random weights when ``pretrained`` is None (tests only: the
        embeddings carry no meaning, and a warning says so).
    model : open_clip CLIP, optional
        An already built model (e.g. a tiny random model in tests); skips loading.
    tokenizer : callable, optional
        ``list[str] -> LongTensor (n, context_length)``; default ``open_clip.get_tokenizer(model_name)``
        or, with ``model`` given, the default BPE tokenizer at the model's context length.
    preprocess : callable, optional
        ``PIL.Image -> FloatTensor (3, S, S)``. It must map the whole image (no crop), or boxes are
        wrong. Default: bilinear squash to the model's input size, then the model's mean/std.
    dense : {'maskclip', 'tokens'}, default 'maskclip'
    n_segments : int, default 8
        Segments per image (regions besides the whole image).
    spatial_weight : float, default 1.0
        Weight of patch position against the embedding when grouping patches.
    whole_image : bool, default True
        Add CLIP's pooled image embedding as region 0.
    template : str, default 'a photo of a {}.'
        Text prompt template; ``'{}'`` encodes words as given.
    batch_size : int, default 16
    device : str, default 'cpu'
    """

    name = "open_clip"

    def __init__(self, model_name: str | None = None, pretrained: str | None = None, model=None, tokenizer=None,
                 preprocess=None, dense: str = "maskclip", n_segments: int = 8, spatial_weight: float = 1.0,
                 whole_image: bool = True, template: str = "a photo of a {}.", batch_size: int = 16,
                 device: str = "cpu", config: str | os.PathLike | None = None, allow_random: bool = False):
        try:
            import open_clip
        except ImportError as e:  # the default install has neither open_clip nor torchvision
            raise EncoderLoadError(f"the open_clip encoder needs the clip extra ({e}): pip install 'inficond[clip]', "
                                   "or make test's .venv-clip (see the README's install section)") from None
        import torch

        if dense not in ("maskclip", "tokens"):
            raise ValueError(f"dense must be 'maskclip' or 'tokens', got {dense!r}")
        if "{}" not in template:
            raise ValueError(f"template must contain '{{}}' where the word goes, got {template!r}")
        self.torch = torch
        self._config_id = None
        if config is not None:
            cfg = Path(config)
            if not cfg.is_file() or cfg.suffix.lower() != ".json":
                raise EncoderLoadError(f"open_clip model config {cfg} is not a .json file; pass an open_clip model-config JSON")
            open_clip.add_model_config(cfg)
            model_name = model_name or cfg.stem
            self._config_id = _file_digest(cfg)
        model_name = model_name or "ViT-B-32"
        self.model_name, self.pretrained = model_name, None if pretrained is None else str(pretrained)
        self.dense, self.n_segments, self.spatial_weight = dense, int(n_segments), float(spatial_weight)
        self.whole_image, self.template, self.batch_size, self.device = bool(whole_image), template, int(batch_size), device
        self._weights_id = None
        self._weights_digest = None

        if model is None:
            model = self._load(open_clip, model_name, self.pretrained, allow_random)
        elif pretrained is None:
            # A model handed in: its weights are its identity.
            h = hashlib.sha256()
            for k, v in sorted(model.state_dict().items()):
                h.update(k.encode())
                h.update(v.detach().cpu().float().numpy().tobytes())
            self._weights_id = "state_dict:" + h.hexdigest()[:16]
        self.model = model.to(device).eval()
        visual = self.model.visual
        if not hasattr(visual, "transformer") or not hasattr(visual, "conv1"):
            raise EncoderLoadError(
                f"open_clip model {model_name!r} has a {type(visual).__name__} vision tower; dense regions need a "
                "ViT (VisionTransformer), e.g. ViT-B-32 or ViT-B-16"
            )
        size = visual.image_size
        self.image_size = tuple(size) if isinstance(size, (tuple, list)) else (size, size)
        patch = visual.patch_size
        self.patch_size = tuple(patch) if isinstance(patch, (tuple, list)) else (patch, patch)
        self.grid_shape = (self.image_size[0] // self.patch_size[0], self.image_size[1] // self.patch_size[1])

        if tokenizer is None:
            ctx = getattr(self.model, "context_length", 77)
            if model_name in open_clip.list_models():
                tokenizer = open_clip.get_tokenizer(model_name, context_length=ctx)
            else:  # a hand-built model: the default BPE tokenizer at its context length
                tokenizer = open_clip.tokenizer.SimpleTokenizer(context_length=ctx)
        self.tokenizer = tokenizer
        cfg = open_clip.get_model_preprocess_cfg(self.model) if hasattr(open_clip, "get_model_preprocess_cfg") else {}
        self.mean = np.asarray(cfg.get("mean", open_clip.OPENAI_DATASET_MEAN), np.float32)
        self.std = np.asarray(cfg.get("std", open_clip.OPENAI_DATASET_STD), np.float32)
        self.preprocess = preprocess
        with torch.no_grad():
            self.dim = int(self.model.encode_text(self.tokenizer(["x"]).to(device)).shape[-1])
        self.max_regions = min(self.n_segments, self.grid_shape[0] * self.grid_shape[1]) + int(self.whole_image)

    # -- loading --------------------------------------------------------------------------
    @staticmethod
    def _load(open_clip, model_name: str, pretrained: str | None, allow_random: bool = False):
        known = open_clip.list_models()
        if model_name not in known and not model_name.startswith(("hf-hub:", "local-dir:")):
            raise UnknownNameError("open_clip model", model_name, known)
        if pretrained is None:
            if not allow_random:
                raise EncoderLoadError(f"open_clip {model_name} needs trained weights: {weights_help(model_name)}")
            warnings.warn(
                f"open_clip {model_name} with random weights (pretrained=None): embeddings carry no meaning", stacklevel=3
            )
        elif _is_path(pretrained):
            if not Path(pretrained).is_file():
                raise EncoderLoadError(f"open_clip checkpoint {pretrained} does not exist; {weights_help(model_name)}")
        else:
            tags = open_clip.list_pretrained_tags_by_model(model_name)
            if pretrained not in tags:
                raise UnknownNameError(f"pretrained tag for {model_name}", pretrained, tags)
        try:
            model, _, _ = open_clip.create_model_and_transforms(model_name, pretrained=pretrained)
        except Exception as e:  # network down, no cache, corrupt file...
            raise EncoderLoadError(
                f"cannot load open_clip {model_name} weights {pretrained!r}: {type(e).__name__}: {e}. "
                f"Without internet, save the checkpoint on a connected machine and pass the file: {weights_help(model_name)}"
            ) from e
        return model

    # -- interface ------------------------------------------------------------------------
    def identity(self) -> dict:
        weights = self._weights_id
        if weights is None and self.pretrained is not None:
            if self._weights_digest is None:  # a checkpoint's digest once per encoder: hashing ~600 MB takes a second
                p = self.pretrained
                self._weights_digest = _file_digest(Path(p)) if Path(p).is_file() else f"tag:{p}"
            weights = self._weights_digest
        return {
            "name": self.name, "version": VERSION, "model": self.model_name, "weights": weights,
            "config": self._config_id,
            "image_size": list(self.image_size), "resize": "squash-bilinear", "dense": self.dense,
            "n_segments": self.n_segments, "spatial_weight": self.spatial_weight, "whole_image": self.whole_image,
            "template": self.template, "custom_preprocess": self.preprocess is not None,
        }

    def encode_text(self, words: list[str]) -> np.ndarray:
        """(n_words, dim) float32, L2-normalised."""
        if isinstance(words, str):
            raise TypeError("encode_text takes a list of strings, not one string")
        torch = self.torch
        out = []
        with torch.no_grad():
            for s in range(0, len(words), 256):
                toks = self.tokenizer([self.template.format(w) for w in words[s : s + 256]]).to(self.device)
                out.append(self.model.encode_text(toks).float().cpu().numpy())
        return _unit(np.concatenate(out)) if out else np.zeros((0, self.dim), np.float32)

    def encode_regions(self, images: list[Image.Image]) -> list[RegionEmbeddings]:
        """One ``RegionEmbeddings`` per image: region 0 the whole image, then segments (with ``grid``)."""
        from inficond.concepts.segments import cluster_regions

        gh, gw = self.grid_shape
        ys, xs = np.mgrid[0:gh, 0:gw]
        centres = np.stack([(xs.ravel() + 0.5) / gw, (ys.ravel() + 0.5) / gh], 1)
        cell_boxes = np.stack([xs.ravel() / gw, ys.ravel() / gh, (xs.ravel() + 1) / gw, (ys.ravel() + 1) / gh], 1)
        out = []
        for s in range(0, len(images), self.batch_size):
            pooled, dense = self.dense_embeddings(images[s : s + self.batch_size])
            for p, d in zip(pooled, dense):
                labels = cluster_regions(d, centres, self.n_segments, self.spatial_weight)
                n_seg = labels.max() + 1
                emb, boxes = [], []
                if self.whole_image:
                    emb.append(p)
                    boxes.append([0.0, 0.0, 1.0, 1.0])
                for k in range(n_seg):
                    m = labels == k
                    emb.append(d[m].mean(0))
                    b = cell_boxes[m]
                    boxes.append([b[:, 0].min(), b[:, 1].min(), b[:, 2].max(), b[:, 3].max()])
                grid = (labels + int(self.whole_image)).reshape(gh, gw)
                out.append(RegionEmbeddings(np.asarray(boxes, np.float32), _unit(np.asarray(emb)), grid))
        return out

    # -- steps ----------------------------------------------------------------------------
    def pixels(self, images: list[Image.Image]):
        """(B, 3, H, W) float tensor ready for the vision tower."""
        torch = self.torch
        if self.preprocess is not None:
            return torch.stack([self.preprocess(im) for im in images]).to(self.device)
        H, W = self.image_size
        arr = np.empty((len(images), H, W, 3), np.float32)
        for i, im in enumerate(images):
            if not isinstance(im, Image.Image):
                raise DataError(f"encode_regions expects PIL images, got {type(im).__name__} at position {i}")
            arr[i] = np.asarray(im.convert("RGB").resize((W, H), Image.BILINEAR), np.float32)
        arr = (arr / 255.0 - self.mean) / self.std
        return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous().to(self.device)

    def dense_embeddings(self, images: list[Image.Image]) -> tuple[np.ndarray, np.ndarray]:
        """Pooled (B, D) and per-patch (B, gh*gw, D) unit embeddings, row-major patches."""
        torch = self.torch
        v = self.model.visual
        x = self.pixels(images)
        with torch.no_grad():
            if self.dense == "tokens":
                old = v.output_tokens
                v.output_tokens = True
                try:
                    pooled, tokens = v(x)
                finally:
                    v.output_tokens = old
                dense = tokens @ v.proj if v.proj is not None else tokens
            else:
                pooled, dense = self._maskclip(v, x)
        return _unit(pooled.float().cpu().numpy()), _unit(dense.float().cpu().numpy())

    @staticmethod
    def _maskclip(v, x):
        import torch.nn.functional as F

        h = v._embeds(x)  # (B, 1 + L, width), after ln_pre
        tr = v.transformer
        if not getattr(tr, "batch_first", True):
            h = h.transpose(0, 1)
        blocks = tr.resblocks
        for blk in blocks[:-1]:
            h = blk(h)
        last = blocks[-1]
        # Pooled output: the normal last block.
        full = last(h)
        if not getattr(tr, "batch_first", True):
            full, h = full.transpose(0, 1), h.transpose(0, 1)
        pooled, _ = v._pool(full)
        if v.proj is not None:
            pooled = pooled @ v.proj
        # Dense output: value path of the last attention only.
        attn = last.attn
        width = h.shape[-1]
        y = last.ln_1(h)
        val = F.linear(y, attn.in_proj_weight[2 * width :], attn.in_proj_bias[2 * width :] if attn.in_proj_bias is not None else None)
        val = attn.out_proj(val)
        val = last.ls_1(val) if hasattr(last, "ls_1") else val
        val = v.ln_post(val)
        tokens = val[:, 1:]  # _embeds always prepends the class token
        if v.proj is not None:
            tokens = tokens @ v.proj
        return pooled, tokens
