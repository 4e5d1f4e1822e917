"""Who may talk to the server: the Host, Origin, content-type, body-size and token-exchange guard.

A page on another site can make the user's browser send requests to ``127.0.0.1``: form POSTs
(no preflight), ``<img>`` GETs, and, after DNS rebinding, requests whose Host is the attacker's
name. This ASGI middleware runs before routing and refuses:

- a ``Host`` that is not one of the names the server was bound to (403): defeats DNS rebinding;
- on POST/PUT/PATCH/DELETE, an ``Origin`` other than the server's own, ``Sec-Fetch-Site`` other
  than same-origin/none, or a content type other than JSON (403/415): defeats cross-site forms,
  whose content types are limited to form and text types without a CORS preflight we never grant;
- a body over ``max_body`` bytes (413), counted while it is read and before anything parses it.

It also turns ``GET /<page>?token=T`` into an HttpOnly, SameSite=Strict cookie and a redirect to
the same URL without the token, so the token leaves the address bar and is never put into an
API or image URL (see :func:`inficond.server.deps.check_token`).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from typing import Iterable, Optional
from urllib.parse import parse_qsl, urlencode, urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
ANY_ADDRESS = ("0.0.0.0", "::", "")
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
MAX_BODY = 1_000_000  # bytes; the largest legal body (100 words of 64 characters) is ~7 kB
TOKEN_COOKIE = "inficond-token"
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),  # no clickjacking of the vote and undo buttons
    (b"content-security-policy", b"frame-ancestors 'none'"),
    (b"referrer-policy", b"no-referrer"),
]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def allowed_hosts(bind_host: str = "127.0.0.1") -> Optional[frozenset[str]]:
    """The Host names accepted for a server bound to ``bind_host``; None accepts any.

    Loopback names always; a named host or address as well when bound to it. Bound to every
    address (0.0.0.0 or ::) the server cannot know its names, so any is accepted and the token
    (required for such binds) is the guard.
    """
    h = bind_host.strip().strip("[]").lower()
    if h in ANY_ADDRESS:
        return None
    return frozenset({*LOOPBACK_NAMES, h})


def split_host(value: str) -> tuple[str, Optional[int]]:
    """``"[::1]:8765"`` -> ``("::1", 8765)``; ``"localhost"`` -> ``("localhost", None)``."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        name, rest = value[1:end], value[end + 1:]
        port = rest[1:] if rest.startswith(":") else ""
    elif value.count(":") == 1:
        name, port = value.split(":")
    else:
        name, port = value, ""
    if port and not port.isdigit():
        raise ValueError("bad port")
    return name, (int(port) if port else None)


def cookie_name(scope: Scope) -> str:
    """One cookie per port: browsers share cookies across the ports of one host name."""
    server = scope.get("server") or (None, None)
    return f"{TOKEN_COOKIE}-{server[1]}" if server and server[1] else TOKEN_COOKIE


def _header(scope: Scope, name: bytes) -> Optional[str]:
    for k, v in scope.get("headers", ()):
        if k == name:
            return v.decode("latin-1")
    return None


async def _reply(send: Send, status: int, title: str, detail: str,
                 headers: Iterable[tuple[bytes, bytes]] = ()) -> None:
    body = json.dumps({"type": "about:blank", "title": title, "detail": detail, "status": status}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/problem+json"),
                            (b"content-length", str(len(body)).encode()), *SECURITY_HEADERS, *headers]})
    await send({"type": "http.response.body", "body": body})


class RequestGuard:
    """ASGI middleware; see the module docstring. ``hosts`` None accepts any Host name."""

    def __init__(self, app: ASGIApp, hosts: Optional[frozenset[str]], port: Optional[int] = None,
                 token: Optional[str] = None, max_body: int = MAX_BODY):
        self.app, self.hosts, self.port, self.token, self.max_body = app, hosts, port, token, max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(scope)
        if refusal:
            await _reply(send, *refusal)
            return
        if scope["method"] == "GET" and self.token and not scope["path"].startswith("/api/"):
            if await self._exchange_token(scope, send):
                return
        if scope["method"] in UNSAFE_METHODS:
            body = await self._read_body(receive)
            if body is None:
                await _reply(send, 413, "Request too large",
                             f"the request body is larger than {self.max_body:,} bytes; send fewer or shorter items")
                return
            receive = _replay(body, receive)
        await self.app(scope, receive, _with_headers(send))

    # -- checks ------------------------------------------------------------------------
    def _refusal(self, scope: Scope) -> Optional[tuple[int, str, str]]:
        host = _header(scope, b"host")
        if host is None:
            return 400, "Bad request", "the request has no Host header"
        try:
            name, port = split_host(host)
        except ValueError:
            return 400, "Bad request", "the Host header is malformed"
        if self.hosts is not None and name not in self.hosts:
            return (403, "Forbidden", "this server answers only requests addressed to "
                    + ", ".join(sorted(self.hosts)) + "; the Host header names another server")
        if self.hosts is not None and self.port is not None and port not in (None, self.port):
            return 403, "Forbidden", f"this server listens on port {self.port}; the Host header names another port"
        length = _header(scope, b"content-length")
        if length is not None and (not length.strip().isdigit() or int(length) > self.max_body):
            return 413, "Request too large", f"the request body is larger than {self.max_body:,} bytes"
        if scope["method"] not in UNSAFE_METHODS:
            return None
        origin = _header(scope, b"origin")
        if origin is not None and not _same_origin(origin, host, scope.get("scheme", "http")):
            return (403, "Forbidden", "state-changing requests are accepted only from this server's own "
                    "pages; the Origin header names another site")
        site = _header(scope, b"sec-fetch-site")
        if site is not None and site.lower() not in ("same-origin", "none"):
            return 403, "Forbidden", "state-changing requests are accepted only from this server's own pages"
        ctype = (_header(scope, b"content-type") or "").split(";")[0].strip().lower()
        if ctype != "application/json":
            return (415, "Unsupported media type", "state-changing requests must be sent as "
                    "Content-Type: application/json (an empty body is fine)")
        return None

    async def _read_body(self, receive: Receive) -> Optional[bytes]:
        """The whole body, or None as soon as it exceeds ``max_body`` (chunked bodies included)."""
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    async def _exchange_token(self, scope: Scope, send: Send) -> bool:
        """``?token=`` on a page URL: set the cookie and redirect to the clean URL."""
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        given = [v for k, v in query if k == "token"]
        if not given:
            return False
        if not hmac.compare_digest(given[-1].encode(), self.token.encode()):
            await _reply(send, 401, "Unauthorized", "the token in this URL is not this server's; "
                         "open the URL that `inficond serve` printed")
            return True
        rest = urlencode([(k, v) for k, v in query if k != "token"])
        location = scope["path"] + (f"?{rest}" if rest else "")
        cookie = f"{cookie_name(scope)}={self.token}; HttpOnly; SameSite=Strict; Path=/"
        await send({"type": "http.response.start", "status": 303,
                    "headers": [(b"location", location.encode()), (b"set-cookie", cookie.encode()),
                                (b"cache-control", b"no-store"), (b"content-length", b"0"), *SECURITY_HEADERS]})
        await send({"type": "http.response.body", "body": b""})
        return True


def _same_origin(origin: str, host: str, scheme: str) -> bool:
    try:
        o = urlsplit(origin.strip())
        if o.scheme not in ("http", "https") or not o.hostname:
            return False  # "null" (sandboxed frames, file: pages) and junk
        o_port = o.port or (443 if o.scheme == "https" else 80)
        h_name, h_port = split_host(host)
    except ValueError:
        return False
    h_port = h_port or (443 if scheme == "https" else 80)
    return o.scheme == scheme and o.hostname == h_name and o_port == h_port


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # after the body: wait for the disconnect

    return replay


def _with_headers(send: Send) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            names = {k.lower() for k, _ in message.get("headers", [])}
            extra = [(k, v) for k, v in SECURITY_HEADERS if k not in names]
            message = {**message, "headers": [*message.get("headers", []), *extra]}
        await send(message)

    return wrapped
