"""2-D map of the concepts for the concept embedding view (t-SNE with openTSNE).

:func:`concept_map` embeds the concept text vectors with cosine affinities (the joint
image-text space is compared by cosine) and rescales the result into ``[-1, 1]``: centred
on the middle of its bounding box and divided by the larger half-extent, so the aspect ratio
is kept and the longer axis spans exactly ``[-1, 1]``. One thread and exact neighbours for
corpora under 5000 concepts keep it deterministic for a given ``seed``.

:func:`extend_concept_map` places concepts added later without moving the existing ones
(users keep their mental map): each new concept goes to the per-coordinate median of the
map positions of its ``k`` nearest existing concepts by cosine distance. This is openTSNE's
recommended ``"median"`` placement for new points (``TSNEEmbedding.prepare_partial``); we
skip openTSNE's follow-up optimisation because it works on the raw t-SNE scale, which the
rescaled map no longer has. Deterministic (no randomness involved).
"""

from __future__ import annotations

import numpy as np

__all__ = ["concept_map", "extend_concept_map", "scale_to_unit"]


def scale_to_unit(Y) -> np.ndarray:
    """Rescale 2-D points into ``[-1, 1]`` keeping the aspect ratio.

    Parameters
    ----------
    Y : array-like of shape (C, 2)

    Returns
    -------
    ndarray of shape (C, 2), float64
    """
    Y = np.asarray(Y, dtype=np.float64)
    if Y.shape[0] == 0:
        return Y.copy()
    lo, hi = Y.min(axis=0), Y.max(axis=0)
    half = (hi - lo).max() / 2
    out = Y - (lo + hi) / 2
    return out / half if half > 0 else out


def concept_map(text_embeddings, seed: int = 0, perplexity: float = 30,
                n_iter: int = 500) -> np.ndarray:
    """t-SNE layout of the concepts.

    Parameters
    ----------
    text_embeddings : array-like of shape (C, D)
        Encoded concept texts (``concept_text``).
    seed : int, default=0
    perplexity : float, default=30
        Lowered to ``(C - 1) / 3`` for small corpora (openTSNE's own limit).
    n_iter : int, default=500
        Iterations of the main optimisation phase (after openTSNE's 250 early-exaggeration
        iterations).

    Returns
    -------
    ndarray of shape (C, 2), float64, in ``[-1, 1]``
    """
    from openTSNE import TSNE  # import here: openTSNE is only needed for the map

    X = np.asarray(text_embeddings, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"text_embeddings must be (C, D), got shape {X.shape}")
    C = X.shape[0]
    if C < 5:
        # Too few points for t-SNE: a PCA layout is as good and avoids openTSNE's limits.
        return _tiny_layout(X)
    tsne = TSNE(
        n_components=2,
        perplexity=min(float(perplexity), (C - 1) / 3),
        metric="cosine",
        initialization="pca",
        neighbors="exact" if C < 5000 else "annoy",
        n_iter=n_iter,
        random_state=seed,
        n_jobs=1,
        verbose=False,
    )
    return scale_to_unit(np.asarray(tsne.fit(X)))


def _tiny_layout(X) -> np.ndarray:
    C = X.shape[0]
    if C <= 1:
        return np.zeros((C, 2))
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    U = X / np.where(norms > 0, norms, 1)
    U = U - U.mean(axis=0)
    u, s, _ = np.linalg.svd(U, full_matrices=False)
    Y = np.zeros((C, 2))
    r = min(2, s.size)
    Y[:, :r] = u[:, :r] * s[:r]
    return scale_to_unit(Y)


def extend_concept_map(existing_embedding, old_text, new_text, k: int = 10) -> np.ndarray:
    """Positions for new concepts on an existing map, without moving the old ones.

    Parameters
    ----------
    existing_embedding : array-like of shape (C_old, 2)
        The map from :func:`concept_map` (rows follow ``old_text``).
    old_text : array-like of shape (C_old, D)
    new_text : array-like of shape (C_new, D)
    k : int, default=10
        Neighbours whose median position places a new concept (capped at ``C_old``).

    Returns
    -------
    ndarray of shape (C_old + C_new, 2)
        The whole map: the existing rows unchanged, then the new concepts.
    """
    E = np.asarray(existing_embedding, dtype=np.float64)
    old = np.asarray(old_text, dtype=np.float64)
    new = np.asarray(new_text, dtype=np.float64)
    if E.ndim != 2 or old.ndim != 2 or E.shape[0] != old.shape[0]:
        raise ValueError(f"existing_embedding {E.shape} must have one row per old_text row "
                         f"{old.shape}")
    if new.ndim != 2 or new.shape[1] != old.shape[1]:
        raise ValueError(f"new_text must be (C_new, {old.shape[1]}), got {new.shape}")
    if new.shape[0] == 0:
        return E.copy()
    if old.shape[0] == 0:
        raise ValueError("cannot extend an empty concept map; use concept_map()")
    # Imported here: scikit-learn takes ~1 s to import and only added concepts need it.
    from sklearn.neighbors import NearestNeighbors

    nn = NearestNeighbors(n_neighbors=min(k, old.shape[0]), metric="cosine",
                          algorithm="brute").fit(old)
    neighbors = nn.kneighbors(new, return_distance=False)
    return np.vstack([E, np.median(E[neighbors], axis=1)])
