"""Shared dependencies: the engine (behind one lock) and the token check."""

from __future__ import annotations

import hmac
import threading
from typing import Annotated, Any, Callable, TypeVar

from fastapi import Depends, HTTPException, Request

T = TypeVar("T")


class Engine:
    """The session of one workspace, with every call serialised through one lock.

    Tuning, undo and revert change the student; reads made while one runs wait for it, so each
    response describes one consistent state and no step is lost to a race.
    """

    def __init__(self, session: Any):
        self.session = session
        self.lock = threading.RLock()
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
    """Require the app's token, from ``Authorization: Bearer``, ``X-Inficond-Token`` or
    ``?token=``, when one is set."""
    expected = request.app.state.token
    if not expected:
        return
    given = request.headers.get("x-inficond-token") or request.query_params.get("token")
    auth = request.headers.get("authorization", "")
    if not given and auth.lower().startswith("bearer "):
        given = auth[7:].strip()
    if not given or not hmac.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(
            401,
            "this server needs its access token: open the URL printed by `inficond serve` "
            "(it ends in ?token=...) or send the X-Inficond-Token header",
            headers={"WWW-Authenticate": "Bearer"},
        )


def ref(value: str, kind: str) -> int | str:
    """A class or concept given in the URL: an index when it is all digits, else a name."""
    v = value.strip()
    if v.lstrip("-").isdigit():
        i = int(v)
        if i < 0:
            raise HTTPException(404, f"unknown {kind} {i}: indices start at 0")
        return i
    if not v:
        raise HTTPException(404, f"empty {kind} name")
    return v
