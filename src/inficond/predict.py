"""Label new images with an exported student: encoder → concept vector → student logits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from inficond.data.images import load_image
from inficond.exceptions import CorruptImageError, DataError, WorkspaceMismatchError
from inficond.prepare import DECODE_MAX_SIDE

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def _expand(images: list[str | Path]) -> list[Path]:
    out: list[Path] = []
    for item in images:
        p = Path(item)
        if p.is_dir():
            out += sorted(q for q in p.rglob("*") if q.suffix.lower() in IMAGE_SUFFIXES)
        elif p.exists():
            out.append(p)
        else:
            raise DataError(f"image {p} does not exist")
    if not out:
        raise DataError(f"no images found in {[str(i) for i in images]}")
    return out


def encoder_from_identity(identity: dict):
    """Rebuild the encoder a workspace or export was made with; refuse if settings differ."""
    from inficond.encoders.base import create_encoder

    encoder = create_encoder(identity["name"])
    if json.loads(json.dumps(encoder.identity(), sort_keys=True)) != json.loads(json.dumps(identity, sort_keys=True)):
        raise WorkspaceMismatchError(
            f"the student was built with encoder settings {identity}, but this install gives {encoder.identity()}"
        )
    return encoder


def predict_images(student_json: str | Path, images: list[str | Path], top: int = 3, batch_size: int = 16) -> list[dict]:
    """Predict labels for image files (or folders of images) with an exported student.

    Returns one dict per image: ``image``, ``logits`` {class: logit}, ``positive``: the classes with
    probability > 0.5, each with its ``top`` contributing concepts (influence × standardised
    presence, the terms of the student's logit). Unreadable images get an ``error`` entry instead.
    """
    from inficond.concepts import map_concepts
    from inficond.students import load_student

    student_json = Path(student_json)
    meta = json.loads(student_json.read_text())
    student = load_student(student_json)
    words, classes = meta["concept_words"], meta["class_names"]
    # The workspace's own concept embeddings: prompted concepts were encoded from their prompt
    # ("tin can" for ``can``), which the bare words in the JSON cannot reproduce.
    text_file = student_json.with_name("concept_text.npy")
    encoder = encoder_from_identity(meta["encoder"])
    text = np.load(text_file) if text_file.exists() else encoder.encode_text(words)
    if text.shape[0] != len(words):
        raise DataError(f"{text_file} has {text.shape[0]} concept rows, the student {len(words)} concepts")

    results: list[dict] = []
    paths = _expand(images)
    for start in range(0, len(paths), batch_size):
        chunk = paths[start : start + batch_size]
        imgs, ok = [], []
        for p in chunk:
            try:
                imgs.append(load_image(p, max_side=DECODE_MAX_SIDE))
                ok.append(p)
            except CorruptImageError as e:
                results.append({"image": str(p), "error": str(e)})
        if not ok:
            continue
        embs = encoder.encode_regions(imgs)
        r_max = max(len(e.embeddings) for e in embs)
        # float16 regions and concept vectors, as ``prepare`` stores them: the student was fitted
        # on those, so the same image gives the same vector here (not one ~1e-4 off).
        regions = np.zeros((len(embs), r_max, text.shape[1]), np.float16)
        counts = np.zeros(len(embs), np.int16)
        for i, e in enumerate(embs):
            regions[i, : len(e.embeddings)] = e.embeddings
            counts[i] = len(e.embeddings)
        X, _ = map_concepts(regions, counts, text)
        X = X.astype(np.float16).astype(np.float64)
        Z = (X - student.mean_) / student.scale_
        logits = Z @ student.coef_.T + student.intercept_
        for p, z, lg in zip(ok, Z, logits):
            positive = []
            for k in np.flatnonzero(lg > 0):
                contrib = z * student.coef_[k]
                best = np.argsort(-contrib)[:top]
                positive.append({
                    "class": classes[k],
                    "logit": float(lg[k]),
                    "probability": float(1 / (1 + np.exp(-lg[k]))),
                    "concepts": [{"word": words[c], "contribution": float(contrib[c])} for c in best if contrib[c] > 0],
                })
            positive.sort(key=lambda d: -d["logit"])
            results.append({"image": str(p), "logits": dict(zip(classes, map(float, lg))), "positive": positive})
    return results
