"""The concept-encoder interface and its registry (one factory, encoders registered by name)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol, runtime_checkable

import numpy as np
from PIL import Image

from inficond.exceptions import UnknownNameError


@dataclass
class RegionEmbeddings:
    """The regions of one image in the joint image-text space.

    Attributes
    ----------
    boxes : ndarray of shape (n_regions, 4), float32
        ``x0, y0, x1, y1`` as fractions of the image width and height.
    embeddings : ndarray of shape (n_regions, dim), float32
        L2-normalised rows.
    grid : ndarray of shape (gh, gw), int, optional
        Region id of each grid cell when regions are segments of a grid (masks); None for boxes only.
    """

    boxes: np.ndarray
    embeddings: np.ndarray
    grid: np.ndarray | None = None


@runtime_checkable
class ConceptEncoder(Protocol):
    """Embeds words and image regions into one L2-normalised space.

    Attributes
    ----------
    name : str
        Registry name.
    dim : int
        Embedding size D.
    max_regions : int
        Upper bound on regions per image (sizes the workspace arrays).
    """

    name: str
    dim: int
    max_regions: int

    def identity(self) -> dict:
        """JSON-able settings that change embeddings; a workspace refuses to mix two identities."""

    def encode_text(self, words: list[str]) -> np.ndarray:
        """(n_words, dim) float32, L2-normalised."""

    def encode_regions(self, images: list[Image.Image]) -> list[RegionEmbeddings]:
        """One ``RegionEmbeddings`` per image, in order."""


_REGISTRY: dict[str, Callable[..., ConceptEncoder]] = {}


def register_encoder(name: str):
    def deco(factory):
        _REGISTRY[name] = factory
        return factory

    return deco


def list_encoders() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def encoder_class(name: str) -> type:
    """The class registered as ``name``."""
    _load_builtin()
    if name not in _REGISTRY:
        raise UnknownNameError("encoder", name, sorted(_REGISTRY))
    return _REGISTRY[name]


def create_encoder(name: str, **kwargs) -> ConceptEncoder:
    """Build the encoder registered as ``name`` (see ``list_encoders()``)."""
    return encoder_class(name)(**kwargs)


def _load_builtin() -> None:
    # Imported lazily: each module registers itself, and torch-heavy imports wait until needed.
    from inficond.encoders import conse_effnet, open_clip_encoder  # noqa: F401
