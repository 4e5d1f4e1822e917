"""The web app: ``create_app(session)`` and ``serve(workspace)``."""

from __future__ import annotations

import logging
import os
import secrets
import threading
import webbrowser
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Optional

from fastapi import Depends, FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from . import errors
from .deps import Engine, check_token
from .security import MAX_BODY, RequestGuard, allowed_hosts, is_loopback
from .routers import classes, concepts, export, media, performance, provenance, summary, tuning
from .schemas import Problem

STATIC_DIR = Path(__file__).with_name("static")

ROUTERS = (summary, performance, classes, concepts, tuning, provenance, export, media)

log = logging.getLogger("inficond.server")


def _warm_up(session: Any) -> None:
    """``session.warm_up()`` (the first tuning step's arrays and the solver's first call), at a
    lower CPU priority than the requests: it runs while the page's first views are answered."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)  # this thread only (Linux)
    except (AttributeError, OSError):
        pass
    try:
        session.warm_up()
    except Exception as e:  # an optimisation only: the first step builds what it needs itself
        log.warning("warm-up failed (the first tuning step will be slower): %r", e)
    _trim_heap()


def _trim_heap() -> None:
    """Give the warm-up's freed temporaries back to the OS. They were allocated in this thread's
    own malloc arena, which keeps freed blocks: +75 MiB of server memory after the page's first
    views at 100,000 images (bench_scale_paired.py). glibc only; elsewhere nothing to do."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _lifespan(session: Any, warm_up: bool):
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if warm_up and hasattr(session, "warm_up"):
            # after start-up: the server answers at once, the thread builds beside the requests
            threading.Thread(target=_warm_up, args=(session,), name="inficond-warm-up", daemon=True).start()
        yield

    return lifespan

_NOT_BUILT = """<!doctype html><meta charset="utf-8"><title>InFiConD</title>
<body style="font:15px system-ui;margin:3em">
<h1>InFiConD</h1><p>The API is running (see <a href="/docs">/docs</a>), but the web front end
has not been built. Run <code>cd web &amp;&amp; npm ci &amp;&amp; npm run build</code>.</p>"""


def create_app(session: Any, token: Optional[str] = None, *, host: str = "127.0.0.1",
               port: Optional[int] = None, static_dir: Optional[Path] = None,
               max_body: int = MAX_BODY, warm_up: bool = True) -> FastAPI:
    """Build the FastAPI app over one :class:`~inficond.session.Session`.

    Parameters
    ----------
    session : Session, str or Path
        The engine of one workspace (or the workspace folder, opened here). Every call to it
        goes through one lock.
    token : str, optional
        When set, every ``/api`` request must carry it (``X-Inficond-Token`` header,
        ``Authorization: Bearer``, or the cookie that ``GET /?token=`` sets; never in an API URL).
    host : str, default '127.0.0.1'
        The address the server is bound to. Requests must name a loopback host (127.0.0.1,
        localhost, [::1]) or this one in their Host header; bound to 0.0.0.0 or ::, any name.
    port : int, optional
        The port it listens on; when given, a Host header naming another port is refused.
    static_dir : Path, optional
        The built front end; defaults to the ``static`` folder shipped in the package.
    max_body : int
        Largest request body in bytes (413 beyond it, before anything parses it).
    warm_up : bool, default True
        When the server starts (the app's lifespan), run ``session.warm_up()`` on a background
        thread, so that the first tuning step costs what the later ones do.

    See ``docs/ARCHITECTURE.md`` ("What the server accepts from whom") and ``server/security.py``.
    """
    if isinstance(session, (str, Path)):
        from inficond.session import Session

        session = Session(session)
    app = FastAPI(
        title="InFiConD",
        version="0.1.0",
        description="Interactive no-code fine-tuning of concept-based students.",
        responses={code: {"model": Problem} for code in (400, 401, 403, 404, 409, 413, 415, 422, 500)},
        lifespan=_lifespan(session, warm_up),
    )
    app.openapi = lambda: _openapi_with_problems(app)
    app.state.engine = Engine(session)
    app.state.token = token
    errors.install(app)
    app.add_middleware(RequestGuard, hosts=allowed_hosts(host), port=port, token=token, max_body=max_body)
    for module in ROUTERS:
        app.include_router(module.router, dependencies=[Depends(check_token)])

    static = Path(static_dir) if static_dir is not None else STATIC_DIR
    if (static / "index.html").is_file():
        app.mount("/", StaticFiles(directory=static, html=True), name="static")
    else:
        @app.get("/", include_in_schema=False)
        def _index() -> HTMLResponse:
            return HTMLResponse(_NOT_BUILT)
    return app


def _openapi_with_problems(app: FastAPI) -> dict:
    """The OpenAPI schema with every error documented as it is sent: problem JSON
    (``application/problem+json``, :class:`Problem`), including FastAPI's default 422."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, description=app.description,
                             routes=app.routes)
        problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
        for item in schema.get("paths", {}).values():
            for op in item.values():
                for code, resp in op.get("responses", {}).items():
                    if code[0] in "45":
                        resp["content"] = problem
        comps = schema.get("components", {}).get("schemas", {})
        for unused in ("HTTPValidationError", "ValidationError"):
            comps.pop(unused, None)
        app.openapi_schema = schema
    return app.openapi_schema


def resolve_token(host: str, token: Optional[str]) -> Optional[str]:
    """The token to require: the given one, or a fresh one when binding beyond loopback."""
    if token:
        return token
    if is_loopback(host):
        return None
    return secrets.token_urlsafe(24)


def serve(workspace: str | Path, host: str = "127.0.0.1", port: int = 8765,
          token: Optional[str] = None, open_browser: bool = False) -> None:
    """Open ``workspace`` and serve the app until interrupted.

    Binding to a non-loopback address requires a token; when none is given one is generated
    and printed as part of the URL. Opening that URL trades the token for an HttpOnly cookie
    and redirects to the same page without it.
    """
    import uvicorn

    from inficond.session import Session

    token = resolve_token(host, token)
    session = Session(workspace)
    app = create_app(session, token=token, host=host, port=port)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else (f"[{host}]" if ":" in host else host)
    url = f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
    print(f"InFiConD: serving {workspace} at {url}", flush=True)
    if open_browser:
        webbrowser.open(url)
    uvicorn.run(app, host=host, port=port, log_level="warning")
