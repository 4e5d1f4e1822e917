"""Patches and gallery images, addressed by id only; the engine maps an id to its file."""

import base64
import mimetypes
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Response
from fastapi.responses import FileResponse

from ..deps import EngineDep
from ..schemas import PatchBatch

router = APIRouter(prefix="/api/media", tags=["media"])

CACHE = {"Cache-Control": "private, max-age=3600"}
# What the 200 answers carry, for the OpenAPI schema (and the fuzz test that checks against it).
IMAGE = {200: {"description": "the image file", "content": {"image/jpeg": {}, "image/png": {}}}}


def _file(path: Path | None, what: str) -> FileResponse:
    if path is None or not Path(path).is_file():
        raise HTTPException(404, f"{what} has no file on disk")
    media_type = mimetypes.guess_type(str(path))[0] or "application/octet-stream"
    return FileResponse(path, media_type=media_type, headers=CACHE)


# The knowledge view shows 4 patches per listed concept (40 for the default top 10). One request
# each cost ~4 ms of the server's time (middleware, token check, thread hops, the file response),
# 160 ms per class, which the next click's answer queued behind; one request for all costs ~5 ms.
MAX_BATCH = 400


@router.get("/patches", summary="Several concept patches as data URLs, in one answer", response_model=PatchBatch)
def patches(engine: EngineDep, response: Response,
            ids: Annotated[list[str], Query(min_length=1, max_length=MAX_BATCH,
                                            description="patch ids, e.g. ids=157-0&ids=157-1")]):
    paths = engine.call(lambda: {i: engine.session.patch_path(i) for i in dict.fromkeys(ids)})
    out = {}
    for i, path in paths.items():
        if not Path(path).is_file():
            raise HTTPException(404, f"patch {i} has no file on disk")
        media_type = mimetypes.guess_type(str(path))[0] or "application/octet-stream"
        out[i] = f"data:{media_type};base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")
    response.headers.update(CACHE)
    return {"patches": out}


@router.get("/patches/{patch_id}", summary="A concept patch image", response_class=FileResponse, responses=IMAGE)
def patch(engine: EngineDep, patch_id: str):
    return _file(engine.patch_path(patch_id), f"patch {patch_id}")


@router.get("/images/{image_idx}", summary="A dataset image", response_class=FileResponse, responses=IMAGE)
def image(engine: EngineDep, image_idx: int):
    if image_idx < 0:
        raise HTTPException(404, f"unknown image {image_idx}: indices start at 0")
    return _file(engine.image_path(image_idx), f"image {image_idx}")
