"""Group an image's regions into a few coherent segments and name each with its best concept.

Regions are clustered on their embedding plus their box centre (scaled by ``spatial_weight``),
with Ward agglomerative clustering (scikit-learn) restricted to spatial neighbours, so a
segment is a connected patch of regions that look alike. A segment's embedding is the
re-normalised mean of its members; its concept is the word with the highest cosine.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass

import numpy as np

from inficond.encoders.base import RegionEmbeddings


@dataclass
class Segment:
    """One segment of an image.

    Attributes
    ----------
    members : ndarray of int, region indices in the ``RegionEmbeddings``
    box : ndarray (4,) float32, union of the members' boxes, fractions ``x0, y0, x1, y1``
    concept : int, index (row of ``text``) of the best-matching concept
    similarity : float, cosine of the segment embedding with that concept
    embedding : ndarray (D,) float32, unit-norm mean of the members
    """

    members: np.ndarray
    box: np.ndarray
    concept: int
    similarity: float
    embedding: np.ndarray


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


@functools.lru_cache(maxsize=32)
def _connectivity(centres_bytes: bytes, n: int, n_neighbors: int):
    """k-NN graph of region centres. Cached: an encoder gives every image the same region layout,
    and building the graph is half the cost of clustering one image (prepare calls this per image)."""
    from sklearn.neighbors import kneighbors_graph

    centres = np.frombuffer(centres_bytes, np.float64).reshape(n, 2)
    # Ties between equidistant grid neighbours are broken by a tiny deterministic jitter.
    jitter = np.arange(n, dtype=np.float64)[:, None] * np.array([[1e-6, 1.3e-6]])
    return kneighbors_graph(centres + jitter, n_neighbors=n_neighbors, include_self=False)


def cluster_regions(embeddings: np.ndarray, centres: np.ndarray, n_clusters: int, spatial_weight: float = 1.0,
                    n_neighbors: int = 8) -> np.ndarray:
    """Cluster labels (n,) for regions with unit ``embeddings`` (n, D) and ``centres`` (n, 2) in [0, 1].

    Ward clustering on ``[embedding, spatial_weight * centre]`` with a k-nearest-neighbour
    connectivity graph on the centres (clusters stay spatially connected). Labels are renumbered
    in order of first appearance, so they are deterministic.
    """
    from sklearn.cluster import AgglomerativeClustering

    n = len(embeddings)
    k = int(min(max(n_clusters, 1), n))
    if k == n:
        return np.arange(n)
    if k == 1:
        return np.zeros(n, int)
    feats = np.hstack([embeddings.astype(np.float64), spatial_weight * centres.astype(np.float64)])
    conn = _connectivity(np.ascontiguousarray(centres, np.float64).tobytes(), n, min(n_neighbors, n - 1))
    labels = AgglomerativeClustering(n_clusters=k, linkage="ward", connectivity=conn).fit_predict(feats)
    _, first = np.unique(labels, return_index=True)
    order = np.argsort(np.argsort(first))  # old label -> rank of first appearance
    return order[labels]


def segment_regions(region_embeddings: RegionEmbeddings, text: np.ndarray, n_segments: int = 6,
                    spatial_weight: float = 1.0, skip_whole_image: bool = True) -> list[Segment]:
    """Segments of one image, each named with its best concept.

    Parameters
    ----------
    region_embeddings : RegionEmbeddings
        Boxes (R, 4) and unit embeddings (R, D) of one image.
    text : ndarray (C, D)
        Unit concept embeddings (rows of ``concept_text``).
    n_segments : int, default 6
        Segments wanted (fewer when there are fewer regions).
    spatial_weight : float, default 1.0
        Weight of the box centre (fractions of the image) against the embedding (unit norm).
    skip_whole_image : bool, default True
        Leave out regions whose box covers the whole image (they belong to every segment).

    Returns
    -------
    list of Segment, ordered by first member region.
    """
    boxes = np.asarray(region_embeddings.boxes, np.float32)
    emb = np.asarray(region_embeddings.embeddings, np.float32)
    text = np.asarray(text, np.float32)
    if emb.ndim != 2 or text.ndim != 2 or emb.shape[1] != text.shape[1]:
        raise ValueError(f"region embeddings {emb.shape} and text {text.shape} must be (R, D) and (C, D)")
    keep = np.arange(len(emb))
    if skip_whole_image and len(emb) > 1:
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        keep = np.flatnonzero(area < 0.999)
        if len(keep) == 0:
            keep = np.arange(len(emb))
    if len(keep) == 0:
        return []
    centres = np.stack([(boxes[keep, 0] + boxes[keep, 2]) / 2, (boxes[keep, 1] + boxes[keep, 3]) / 2], 1)
    labels = cluster_regions(emb[keep], centres, n_segments, spatial_weight)
    out = []
    for s in range(labels.max() + 1):
        members = keep[labels == s]
        e = _unit(emb[members].mean(0))
        sims = text @ e
        c = int(np.argmax(sims))
        b = boxes[members]
        box = np.array([b[:, 0].min(), b[:, 1].min(), b[:, 2].max(), b[:, 3].max()], np.float32)
        out.append(Segment(members=members, box=box, concept=c, similarity=float(sims[c]), embedding=e.astype(np.float32)))
    return out


def write_segments(ws, image_idx: int, segments: list[Segment]) -> None:
    """Replace the ``segments`` rows of image ``image_idx`` (one transaction)."""
    with ws.transaction() as db:
        db.execute("DELETE FROM segments WHERE image_idx = ?", (int(image_idx),))
        db.executemany(
            "INSERT INTO segments(image_idx, segment, concept_idx, similarity, box) VALUES (?, ?, ?, ?, ?)",
            [
                (int(image_idx), i, int(s.concept), float(s.similarity), json.dumps([round(float(v), 5) for v in s.box]))
                for i, s in enumerate(segments)
            ],
        )


def read_segments(ws, image_idx: int) -> list[dict]:
    """Rows of the ``segments`` table for one image: dicts with segment, concept_idx, word, similarity, box."""
    rows = ws.db.execute(
        "SELECT s.segment, s.concept_idx, c.word, s.similarity, s.box FROM segments s "
        "JOIN concepts c ON c.idx = s.concept_idx WHERE s.image_idx = ? ORDER BY s.segment",
        (int(image_idx),),
    ).fetchall()
    return [dict(segment=r[0], concept_idx=r[1], word=r[2], similarity=r[3], box=json.loads(r[4])) for r in rows]
