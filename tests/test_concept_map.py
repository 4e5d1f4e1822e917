"""Concept map: shaped, scaled, deterministic; extension keeps old points."""

import numpy as np
import pytest

from inficond.analysis import concept_map, extend_concept_map


@pytest.fixture(scope="module")
def texts():
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(4, 16))
    return np.repeat(centers, 25, axis=0) + 0.1 * rng.normal(size=(100, 16))


@pytest.fixture(scope="module")
def emb(texts):
    return concept_map(texts, seed=0)


def test_concept_map_is_deterministic_and_scaled(texts, emb):
    a = emb
    b = concept_map(texts, seed=0)
    assert a.shape == (100, 2)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a).max() == pytest.approx(1.0) and np.abs(a).max() <= 1.0 + 1e-12


def test_concept_map_keeps_clusters_together(emb):
    a = emb
    labels = np.repeat(np.arange(4), 25)
    d = np.linalg.norm(a[:, None] - a[None], axis=2)
    same = d[labels[:, None] == labels[None]].mean()
    other = d[labels[:, None] != labels[None]].mean()
    assert same < other / 3


def test_tiny_corpora():
    assert concept_map(np.ones((1, 4))).shape == (1, 2)
    small = concept_map(np.eye(3))
    assert small.shape == (3, 2) and np.isfinite(small).all()


def test_extend_places_new_concepts_near_their_neighbours(texts, emb):
    new = texts[[0, 30]] + 0.01
    full = extend_concept_map(emb, texts, new)
    assert full.shape == (102, 2)
    np.testing.assert_array_equal(full[:100], emb)  # old concepts do not move
    np.testing.assert_array_equal(full, extend_concept_map(emb, texts, new))
    pos = full[100:]
    centroid = [emb[:25].mean(axis=0), emb[25:50].mean(axis=0)]
    for p, c in zip(pos, centroid):
        assert np.linalg.norm(p - c) < 0.3
    np.testing.assert_array_equal(extend_concept_map(emb, texts, np.zeros((0, 16))), emb)
