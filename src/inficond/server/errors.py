"""Map errors to problem JSON (``{title, detail, status}``) so that nothing reaches the
browser as a bare 500 or an HTML page."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from inficond.exceptions import (
    DataError,
    InficondError,
    TeacherOutputError,
    TuningError,
    UnknownNameError,
    WorkspaceError,
)

log = logging.getLogger("inficond.server")

TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Request too large",
    422: "Invalid request",
    500: "Internal server error",
}


def problem(status: int, detail: str, title: str | None = None) -> JSONResponse:
    return JSONResponse(
        {"type": "about:blank", "title": title or TITLES.get(status, "Error"),
         "detail": detail, "status": status},
        status_code=status,
        media_type="application/problem+json",
    )


def status_for(exc: BaseException) -> int:
    """The HTTP status an engine exception maps to."""
    if isinstance(exc, UnknownNameError):
        return 404
    if isinstance(exc, (TuningError, DataError, TeacherOutputError)):
        return 422
    if isinstance(exc, WorkspaceError):
        return 409
    if isinstance(exc, (ValueError, IndexError, KeyError, TypeError)):
        return 422
    return 500


def _field(loc: tuple) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path")]
    return ".".join(parts) or "body"


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        msgs = []
        for err in exc.errors()[:5]:
            loc = tuple(err.get("loc", ()))
            where = loc[0] if loc else "request"
            msgs.append(f"{where} field '{_field(loc)}': {err.get('msg', 'invalid')}")
        return problem(422, "; ".join(msgs) or "malformed request")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no such endpoint: {request.method} {request.url.path}"
        resp = problem(exc.status_code, detail)
        if exc.headers:
            resp.headers.update(exc.headers)
        return resp

    @app.exception_handler(InficondError)
    async def _engine(request: Request, exc: InficondError):
        status = status_for(exc)
        if status >= 500:
            log.exception("engine error on %s", request.url.path, exc_info=exc)
        return problem(status, str(exc), title=type(exc).__name__)

    @app.exception_handler(ValueError)
    async def _value(request: Request, exc: ValueError):
        return problem(422, str(exc) or type(exc).__name__)

    @app.exception_handler(Exception)
    async def _other(request: Request, exc: Exception):
        log.exception("unhandled error on %s", request.url.path, exc_info=exc)
        return problem(500, f"{type(exc).__name__}: {exc}")
