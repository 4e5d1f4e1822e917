"""Concept vectors: for each image and concept, the best cosine over the image's regions.

``map_concepts`` is the hot path of ``prepare`` (N x R_max x C cosines: 3,576 x 145 x 600 is
3.1e8 dot products of length 384) and of adding a concept in the interface. It runs one BLAS
matrix product per chunk of images, so memory stays bounded whatever N is.
"""

from __future__ import annotations

import json

import numpy as np

from inficond.exceptions import WorkspaceError, WorkspaceMismatchError
from inficond.store.workspace import concept_key

#: Bytes of float32 similarities one chunk may hold (chunk = images whose R_max x C scores fit).
CHUNK_BYTES = 64 * 2**20


def map_concepts(regions: np.ndarray, counts: np.ndarray, text: np.ndarray,
                 chunk_bytes: int = CHUNK_BYTES) -> tuple[np.ndarray, np.ndarray]:
    """Max cosine of each concept over each image's valid regions.

    Parameters
    ----------
    regions : ndarray (n, R_max, D), float16 or float32 (memory-mapped is fine)
        Unit region embeddings; rows ``>= counts[i]`` of image ``i`` are ignored.
    counts : ndarray (n,), int
        Valid regions per image (0 = image not encoded: its vector is 0).
    text : ndarray (C, D)
        Unit concept embeddings.
    chunk_bytes : int
        Upper bound on the float32 region block and on the similarity block held at once.

    Returns
    -------
    vectors : ndarray (n, C) float32
        ``max_r cos(region_r, concept_c)`` clipped at 0.
    argmax : ndarray (n, C) int16
        The region reaching the max (0 for images without regions).
    """
    if not isinstance(regions, np.ndarray):  # memmaps stay memmaps: chunks are read lazily
        regions = np.asarray(regions)
    counts = np.asarray(counts).astype(np.int64)
    text = np.ascontiguousarray(text, dtype=np.float32)
    if regions.ndim != 3 or text.ndim != 2 or regions.shape[2] != text.shape[1] or counts.shape != regions.shape[:1]:
        raise ValueError(
            f"shapes do not match: regions {regions.shape} (n, R_max, D), counts {counts.shape} (n,), text {text.shape} (C, D)"
        )
    n, R, D = regions.shape
    C = text.shape[0]
    if R > np.iinfo(np.int16).max:
        raise ValueError(f"R_max={R} does not fit the int16 argmax")
    vectors = np.zeros((n, C), np.float32)
    argmax = np.zeros((n, C), np.int16)
    if n == 0 or C == 0 or R == 0:
        return vectors, argmax
    # Both the float32 copy of the region block and its similarity block stay under chunk_bytes.
    step = max(1, int(chunk_bytes // max(1, R * max(C, D) * 4)))
    tT = text.T
    r_idx = np.arange(R)
    for s in range(0, n, step):
        e = min(n, s + step)
        block = np.asarray(regions[s:e], dtype=np.float32)  # (b, R, D)
        sims = (block.reshape(-1, D) @ tT).reshape(e - s, R, C)
        invalid = r_idx[None, :] >= counts[s:e, None]  # (b, R)
        sims[invalid] = -np.inf
        am = sims.argmax(1)  # (b, C)
        best = np.take_along_axis(sims, am[:, None, :], 1)[:, 0]
        empty = counts[s:e] <= 0
        best[empty] = 0.0
        am[empty] = 0
        vectors[s:e] = np.maximum(best, 0.0)
        argmax[s:e] = am
    return vectors, argmax


def _same_identity(stored, identity) -> bool:
    return stored == json.loads(json.dumps(identity, sort_keys=True))


def extend_concepts(ws, encoder, words: list[str], prompts: list[str | None] | None = None, source: str = "user",
                    build_patches_for_new: bool = True, per_concept: int = 8) -> list[int]:
    """Add concepts to a prepared workspace without re-encoding any image.

    Only the new words are encoded (``encoder.encode_text``); their columns come from the stored
    ``regions`` / ``region_counts`` arrays. The grown ``concept_text`` (rows), ``concept_vectors``
    (float16 columns) and ``concept_argmax`` (int16 columns) are staged next to the old ones,
    the words and the staged names are committed in one SQLite transaction, and only then are
    the staged files renamed (a kill before the commit leaves the old state, one after it is
    finished when the workspace is next opened). Patches come last; the concepts owing them are
    recorded with the rows and built by :func:`finish_pending_patches` (here, or when a
    :class:`~inficond.session.Session` next opens the workspace after a kill).
    Words are matched by :func:`inficond.store.workspace.concept_key` (case-insensitive).

    Parameters
    ----------
    ws : Workspace
    encoder : ConceptEncoder
        Must have the identity stored in the workspace meta ``encoder``.
    words : list of str
        Words to add; ones already in the workspace (or repeated) are skipped.
    prompts : list of (str or None), optional
        Text to encode per word (default: the word).
    source : str, default 'user'
        Stored in ``concepts.source``.
    build_patches_for_new : bool, default True
    per_concept : int, default 8
        Patches per new concept.

    Returns
    -------
    list of int
        Column indices of the concepts actually added (in order).

    Raises
    ------
    WorkspaceMismatchError
        The encoder differs from the one the workspace was prepared with.
    WorkspaceError
        The workspace has no encoder or region arrays yet (run prepare first).
    """
    stored = ws.get_meta("encoder")
    if stored is None:
        raise WorkspaceError(f"workspace {ws.path} has no encoder yet; run `inficond prepare` before adding concepts")
    if not _same_identity(stored, encoder.identity()):
        raise WorkspaceMismatchError(
            f"workspace {ws.path} was prepared with encoder {json.dumps(stored, sort_keys=True)}, not "
            f"{json.dumps(encoder.identity(), sort_keys=True)}; create the encoder with the workspace's settings"
        )
    if prompts is not None and len(prompts) != len(words):
        raise ValueError(f"{len(words)} words but {len(prompts)} prompts")
    prompts = list(prompts) if prompts is not None else [None] * len(words)
    have = {concept_key(w) for w in ws.concept_words}
    new_words, new_prompts = [], []
    for w, p in zip(words, prompts):
        w = " ".join(str(w).split())
        if not w or concept_key(w) in have:
            continue
        have.add(concept_key(w))
        new_words.append(w)
        new_prompts.append(" ".join(p.split()) if p else None)
    if build_patches_for_new:
        finish_pending_patches(ws)  # owed by an earlier call that was killed
    if not new_words:
        return []

    regions, counts = ws.array("regions"), ws.array("region_counts")
    c_old = len(ws.concept_words)
    text = encoder.encode_text([p or w for w, p in zip(new_words, new_prompts)]).astype(np.float32)
    if text.shape[1] != regions.shape[2]:
        raise WorkspaceMismatchError(f"encoder gives {text.shape[1]}-d text, workspace regions are {regions.shape[2]}-d")
    vec, am = map_concepts(regions, counts, text)

    def grown(name, new, axis, dtype, empty_shape):
        old = np.asarray(ws.array(name)) if ws.has_array(name) else np.zeros(empty_shape, dtype)
        # Columns beyond the concepts table are leftovers of an interrupted call: drop them.
        old = old[:c_old] if axis == 0 else old[:, :c_old]
        if old.shape[axis] != c_old:
            raise WorkspaceError(f"array {name} has {old.shape[axis]} concepts, the concepts table {c_old}")
        return np.concatenate([old.astype(dtype), new.astype(dtype)], axis=axis)

    n = regions.shape[0]
    staged = {
        "concept_text": ws.stage_array("concept_text", grown("concept_text", text, 0, np.float32, (0, text.shape[1]))),
        "concept_vectors": ws.stage_array("concept_vectors", grown("concept_vectors", vec, 1, np.float16, (n, 0))),
        "concept_argmax": ws.stage_array("concept_argmax", grown("concept_argmax", am, 1, np.int16, (n, 0))),
    }
    added = ws.add_concepts(new_words, new_prompts, source=source, staged_arrays=staged,
                            patches_per_concept=per_concept if build_patches_for_new else None)
    if added != list(range(c_old, c_old + len(new_words))):
        raise WorkspaceError(f"concept columns {added} do not follow the arrays ({c_old}..); workspace changed meanwhile?")
    if build_patches_for_new:
        finish_pending_patches(ws)
    return added


def finish_pending_patches(ws) -> list[int]:
    """Build the patches that added concepts still owe (all of them after a kill); returns their indices.

    The debt is recorded with the concept rows (one transaction) and cleared only after the
    patch rows are committed, so every kill point leads here again and nothing stays missing.
    """
    from inficond.concepts.patches import build_patches
    from inficond.store.workspace import PENDING_PATCHES_KEY

    owed = ws.get_meta(PENDING_PATCHES_KEY)
    if not owed:
        return []
    todo = [c for c in owed["concepts"] if c < len(ws.concept_words)]
    if todo:
        build_patches(ws, concept_idx=todo, per_concept=int(owed["per_concept"]))
    with ws.transaction() as db:
        db.execute("DELETE FROM meta WHERE key = ?", (PENDING_PATCHES_KEY,))
    return todo
