from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse

from ..deps import EngineDep
from ..schemas import ExportResult

router = APIRouter(prefix="/api/export", tags=["export"])


@router.post("", response_model=ExportResult, summary="Export the current student (JSON, ONNX)")
def export(engine: EngineDep, request: Request):
    with engine.lock:
        result = engine.session.export()
        files = {}
        for kind, path in result.items():
            if not path:
                continue
            name = Path(path).name
            engine.exports[name] = str(path)
            files[kind] = str(request.url_for("download_export", name=name).path)
    return {"files": files}


@router.get("/files/{name}", name="download_export", summary="Download an exported file",
            response_class=FileResponse,
            responses={200: {"description": "the file", "content": {"application/octet-stream": {}}}})
def download(engine: EngineDep, name: str):
    path = engine.exports.get(name)  # only names this server exported, never a request path
    if path is None or not Path(path).is_file():
        raise HTTPException(404, f"no exported file {name!r}; export the student first")
    return FileResponse(path, filename=name, media_type="application/octet-stream")
