"""Shared dependencies: the engine (behind one lock) and the token check."""

from __future__ import annotations

import hmac
import re
import threading
from typing import Annotated, Any, Callable, TypeVar

from fastapi import Depends, HTTPException, Request

from .security import cookie_name

T = TypeVar("T")
_INT = re.compile(r"-?[0-9]+")


class Engine:
    """The session of one workspace, with every call serialised through one lock.

    Tuning, undo and revert change the student; reads made while one runs wait for it, so each
    response describes one consistent state and no step is lost to a race.
    """

    def __init__(self, session: Any):
        self.session = session
        # The session's own lock when it has one, so the session can release it for slow work
        # that changes nothing (encoding new concept words) and hold it only to commit.
        self.lock = getattr(session, "_lock", None) or threading.RLock()
        self.exports: dict[str, str] = {}  # download name -> file path, filled by /api/export

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        with self.lock:
            return fn(*args, **kwargs)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        attr = getattr(self.session, name)
        if not callable(attr):
            return attr

        def locked(*args: Any, **kwargs: Any) -> Any:
            with self.lock:
                return attr(*args, **kwargs)

        return locked


def get_engine(request: Request) -> Engine:
    return request.app.state.engine


EngineDep = Annotated[Engine, Depends(get_engine)]


def check_token(request: Request) -> None:
    """Require the app's token, when one is set, from the ``X-Inficond-Token`` header,
    ``Authorization: Bearer`` or the HttpOnly cookie that opening the printed URL sets.

    Never from the query string: URLs end up in logs, history and Referer headers.
    """
    expected = request.app.state.token
    if not expected:
        return
    if "token" in request.query_params:
        raise HTTPException(
            400, "the token is not accepted in an API URL; send the X-Inficond-Token header "
                 "(the web page uses a cookie set by opening the URL that `inficond serve` printed)")
    given = request.headers.get("x-inficond-token")
    auth = request.headers.get("authorization", "")
    if not given and auth.lower().startswith("bearer "):
        given = auth[7:].strip()
    if not given:
        given = request.cookies.get(cookie_name(request.scope))
    if not given or not hmac.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(
            401,
            "this server needs its access token: open the URL printed by `inficond serve` "
            "(it ends in ?token=...) or send the X-Inficond-Token header",
            headers={"WWW-Authenticate": "Bearer"},
        )


MAX_REF = 200  # characters of a class or concept name in a URL; longer is no name we hold


def ref(value: str, kind: str) -> int | str:
    """A class or concept given in the URL: an index when it is all digits, else a name."""
    v = value.strip()
    if len(v) > MAX_REF:
        raise HTTPException(404, f"unknown {kind}: a name of {len(v):,} characters (at most {MAX_REF})")
    if _INT.fullmatch(v):  # ASCII digits only: "²".isdigit() is True, int("²") fails
        i = int(v)
        if i < 0:
            raise HTTPException(404, f"unknown {kind} {i}: indices start at 0")
        return i
    if not v:
        raise HTTPException(404, f"empty {kind} name")
    return v
