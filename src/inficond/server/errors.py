"""Map errors to problem JSON (``{title, detail, status}``) so that nothing reaches the
browser as a bare 500 or an HTML page."""

from __future__ import annotations

import logging
import re
import uuid

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from inficond.exceptions import (
    ArgumentError,
    DataError,
    InficondError,
    TeacherOutputError,
    TuningError,
    UnknownNameError,
    WorkspaceError,
)

from .schemas import NO_CONTROL

log = logging.getLogger("inficond.server")

TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Request too large",
    415: "Unsupported media type",
    422: "Invalid request",
    500: "Internal server error",
    503: "Service unavailable",
}


MAX_DETAIL = 400  # characters; a message never carries more than a glimpse of the input
MAX_QUOTED = 60
_QUOTED = re.compile(r"""('[^']{%d,}'|"[^"]{%d,}")""" % (MAX_QUOTED + 1, MAX_QUOTED + 1))


def clip(detail: str) -> str:
    """Shorten quoted values and the whole message so no error echoes a long input back."""
    detail = _QUOTED.sub(lambda m: f"{m[0][:MAX_QUOTED - 20]}\u2026{m[0][0]} ({len(m[0]) - 2:,} characters)", detail)
    return detail if len(detail) <= MAX_DETAIL else detail[: MAX_DETAIL - 1] + "\u2026"


def problem(status: int, detail: str, title: str | None = None, **extra) -> JSONResponse:
    return JSONResponse(
        {"type": "about:blank", "title": title or TITLES.get(status, "Error"),
         "detail": clip(detail), "status": status, **extra},
        status_code=status,
        media_type="application/problem+json",
    )


def internal(request: Request, exc: BaseException) -> JSONResponse:
    """Log the exception with a fresh error id; tell the client only plain words and the id."""
    error_id = uuid.uuid4().hex[:12]
    log.error("error %s on %s %s", error_id, request.method, request.url.path, exc_info=exc)
    return problem(500, f"the server failed to answer this request (error id {error_id}); its log "
                        "has the details under that id", error_id=error_id)


def status_for(exc: BaseException) -> int:
    """The HTTP status an engine exception maps to (500: a failure of ours, not of the request)."""
    if isinstance(exc, UnknownNameError):
        return 404
    if isinstance(exc, (ArgumentError, TuningError, DataError, TeacherOutputError)):
        return 422
    if isinstance(exc, WorkspaceError):
        return 409
    return 500


def _field(loc: tuple) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path")]
    return ".".join(parts) or "body"


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        msgs = []
        for err in exc.errors()[:5]:  # the message only: never err["input"], which echoes the request
            loc = tuple(err.get("loc", ()))
            where = loc[0] if loc else "request"
            msg = err.get("msg", "invalid")
            if err.get("type") == "string_pattern_mismatch" and (err.get("ctx") or {}).get("pattern") == NO_CONTROL:
                msg = "must not contain control characters"
            msgs.append(f"{where} field '{_field(loc)}': {msg}")
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
            return internal(request, exc)
        extra = {"conflicts": exc.conflicts} if getattr(exc, "conflicts", None) else {}
        return problem(status, str(exc), **extra)

    @app.exception_handler(Exception)
    async def _other(request: Request, exc: Exception):
        # ValueError, KeyError, ... from below the engine: a bug of ours, whose text means nothing
        # to the user (e.g. "invalid literal for int()"); every bad input is refused before.
        return internal(request, exc)
