"""Patches and gallery images, addressed by id only; the engine maps an id to its file."""

import mimetypes
from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

from ..deps import EngineDep

router = APIRouter(prefix="/api/media", tags=["media"])

CACHE = {"Cache-Control": "private, max-age=3600"}
# What the 200 answers carry, for the OpenAPI schema (and the fuzz test that checks against it).
IMAGE = {200: {"description": "the image file", "content": {"image/jpeg": {}, "image/png": {}}}}


def _file(path: Path | None, what: str) -> FileResponse:
    if path is None or not Path(path).is_file():
        raise HTTPException(404, f"{what} has no file on disk")
    media_type = mimetypes.guess_type(str(path))[0] or "application/octet-stream"
    return FileResponse(path, media_type=media_type, headers=CACHE)


@router.get("/patches/{patch_id}", summary="A concept patch image", response_class=FileResponse, responses=IMAGE)
def patch(engine: EngineDep, patch_id: str):
    return _file(engine.patch_path(patch_id), f"patch {patch_id}")


@router.get("/images/{image_idx}", summary="A dataset image", response_class=FileResponse, responses=IMAGE)
def image(engine: EngineDep, image_idx: int):
    if image_idx < 0:
        raise HTTPException(404, f"unknown image {image_idx}: indices start at 0")
    return _file(engine.image_path(image_idx), f"image {image_idx}")
