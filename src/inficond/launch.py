"""Launch the web app from Python or Jupyter: ``launch_app(workspace_or_session)``.

The app runs in a background thread (a uvicorn ``Server`` on 127.0.0.1) so the caller keeps its
prompt or notebook kernel. The returned :class:`App` handle reports the URL, opens a browser tab,
selects a class and shuts the server down; in Jupyter it displays itself inline.

The selected class travels in the URL fragment, ``#class=<name>``: the page reads it on load and
on ``hashchange``, so a link, a browser tab and an inline frame select the same way, and changing
the fragment never reloads the page (the views keep their state).

Two inline displays exist, measured in JupyterLab by ``benchmarks/bench_notebook_display.py``
(results/notebook_display.md): both show the app in about the same time (1.4-3.6 s to the
selected class on a busy 2-core machine), but

- the ``<iframe>`` (``App._repr_html_``, the default display) needs no extra package and its
  output is plain HTML, kept by nbconvert; a later ``select`` reaches it only in a new display
  (0 of 8 selects followed);
- the anywidget (``App.widget()``, ``pip install anywidget``, 13 MB with ipywidgets) follows
  every later ``select`` in place through its synced ``selected`` trait (8 of 8, 0.4-1.5 s).

Both are frames of the app's page, so the server must allow loopback pages to frame it:
:class:`_EmbeddableOnLoopback` replaces the server's frame-nothing headers for this purpose.
"""

from __future__ import annotations

import html
import inspect
import ipaddress
import socket
import threading
import time
import webbrowser
from pathlib import Path
from typing import Any, Optional
from urllib.parse import quote

from inficond.exceptions import InficondError

__all__ = ["App", "launch_app"]

_START_TIMEOUT_S = 30.0


class LaunchError(InficondError, RuntimeError):
    """The app could not be started (port taken, server failed to come up)."""


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _bind(host: str, port: Optional[int]) -> socket.socket:
    """A listening socket: ours, so a free port (``port=None``) cannot be taken between pick and use."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((host, 0 if port is None else int(port)))
    except OSError as e:
        sock.close()
        raise LaunchError(f"cannot serve on {host}:{port}: {e.strerror or e}; pass another port or port=None "
                          "for a free one") from None
    sock.listen(128)
    return sock


# Who may show the app in a frame: notebook front ends served from this machine (JupyterLab,
# Notebook, VS Code's webviews). The server refuses every frame by default (clickjacking of the
# vote and undo buttons); a page that launch_app serves on loopback may be framed by loopback pages.
FRAME_ANCESTORS = b"frame-ancestors 'self' http://127.0.0.1:* http://localhost:* http://[::1]:* vscode-webview:"


class _EmbeddableOnLoopback:
    """ASGI wrapper: replace the server's no-frames headers by :data:`FRAME_ANCESTORS`."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def wrapped(message):
            if message["type"] == "http.response.start":
                headers = []
                for k, v in message.get("headers", []):
                    if k.lower() == b"x-frame-options":
                        continue
                    if k.lower() == b"content-security-policy":
                        kept = [d.strip() for d in v.split(b";") if d.strip() and not d.strip().startswith(b"frame-ancestors")]
                        v = b"; ".join([*kept, FRAME_ANCESTORS])
                    headers.append((k, v))
                if not any(k.lower() == b"content-security-policy" for k, _ in headers):
                    headers.append((b"content-security-policy", FRAME_ANCESTORS))
                message = {**message, "headers": headers}
            await send(message)

        return await self.app(scope, receive, wrapped)


class App:
    """A running InFiConD app. Made by :func:`launch_app`; not constructed directly.

    Attributes
    ----------
    session : Session
        The engine the app serves; tuning it from Python shows in the app after a reload.
    url : str
        The page, e.g. ``http://127.0.0.1:51234/``.
    port : int
    selected : str or None
        The class last passed to :meth:`select`.
    """

    def __init__(self, session: Any, host: str, port: Optional[int], height: int):
        import uvicorn

        from inficond.server import create_app

        self.session = session
        self.host = host
        self.height = int(height)
        self.selected: Optional[str] = None
        self._widget = None
        self._sock = _bind(host, port)
        self.port = int(self._sock.getsockname()[1])
        kwargs = {k: v for k, v in (("host", host), ("port", self.port))
                  if k in inspect.signature(create_app).parameters}  # Host checks, where the server has them
        app = _EmbeddableOnLoopback(create_app(session, **kwargs))
        config = uvicorn.Config(app, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, name=f"inficond-app-{self.port}", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.close()
                raise LaunchError(f"the app server on {host}:{self.port} did not start")
            time.sleep(0.02)

    # -- where ---------------------------------------------------------------------------
    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    @property
    def running(self) -> bool:
        return self._thread.is_alive() and not self._server.should_exit

    def url_for(self, cls: Any = None) -> str:
        """The page URL, selecting ``cls`` (a class name or index) when given."""
        name = self._class_name(cls) if cls is not None else self.selected
        return self.url if name is None else f"{self.url}#class={quote(name, safe='')}"

    def _class_name(self, cls: Any) -> str:
        k = self.session.class_idx(cls)  # UnknownNameError lists the known classes
        return self.session.ws.class_names[k]

    # -- actions -------------------------------------------------------------------------
    def select(self, cls: Any) -> "App":
        """Select class ``cls`` (name or index) in the app.

        A shown widget follows at once; a browser tab opened by :meth:`open` follows on the next
        :meth:`open`, and an inline frame on the next display (the URLs carry ``#class=``).
        """
        self.selected = self._class_name(cls)
        if self._widget is not None:
            self._widget.selected = self.selected
        return self

    def open(self, cls: Any = None) -> bool:
        """Open the app (selecting ``cls`` if given) in the default web browser."""
        if cls is not None:
            self.select(cls)
        return webbrowser.open(self.url_for())

    def close(self) -> None:
        """Stop the server and free the port. Idempotent."""
        self._server.should_exit = True
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)
        try:
            self._sock.close()
        except OSError:
            pass

    def __enter__(self) -> "App":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self.running else "closed"
        return f"<inficond App {state} at {self.url_for()} on {self.session.path}>"

    # -- Jupyter -------------------------------------------------------------------------
    def iframe_html(self, height: Optional[int] = None) -> str:
        """The app in an ``<iframe>``, as HTML."""
        h = int(height or self.height)
        if not self.running:
            return f"<p><b>InFiConD app closed</b> (was {html.escape(self.url)})</p>"
        src = html.escape(self.url_for(), quote=True)
        return (f'<iframe src="{src}" width="100%" height="{h}" style="border:1px solid #ccd;border-radius:4px" '
                f'title="InFiConD" data-inficond-port="{self.port}"></iframe>'
                f'<div style="font:12px system-ui;color:#667">InFiConD at <a href="{src}" target="_blank">{src}</a></div>')

    def _repr_html_(self) -> str:
        return self.iframe_html()

    def widget(self, height: Optional[int] = None):
        """The app as an anywidget whose ``selected`` trait follows :meth:`select` (needs ``anywidget``)."""
        from inficond._widget import AppWidget

        if self._widget is None:
            self._widget = AppWidget(url=self.url, selected=self.selected or "", height=int(height or self.height))
        elif height is not None:
            self._widget.height = int(height)
        return self._widget


def launch_app(workspace_or_session: Any, port: Optional[int] = None, *, host: str = "127.0.0.1",
               height: int = 820, open_browser: bool = False) -> App:
    """Serve the InFiConD app for a workspace in a background thread and return its handle.

    Parameters
    ----------
    workspace_or_session : str, Path or Session
        A prepared (and distilled) workspace folder, or an open :class:`~inficond.session.Session`
        (share it to see tuning done from Python in the app).
    port : int, optional
        Default: a free port chosen by the OS.
    host : str, default "127.0.0.1"
        Only loopback addresses: the handle serves without a token (use ``inficond serve --host``
        with a token to share the app on a network).
    height : int, default 820
        Pixel height of the inline display in Jupyter.
    open_browser : bool, default False
        Also open a browser tab.

    Returns
    -------
    App
        ``.url``, ``.open()``, ``.select(cls)``, ``.close()``; shows inline in Jupyter.

    Examples
    --------
    >>> app = inficond.launch_app("workspaces/dev")   # doctest: +SKIP
    >>> app.select("sofa")                            # doctest: +SKIP
    >>> app.close()                                   # doctest: +SKIP
    """
    from inficond.session import Session

    if not _is_loopback(host):
        raise LaunchError(f"launch_app serves on loopback only, got host {host!r}; "
                          "use `inficond serve --host HOST --token TOKEN` to share the app")
    if isinstance(workspace_or_session, (str, Path)):
        session = Session(workspace_or_session)
    elif isinstance(workspace_or_session, Session):
        session = workspace_or_session
    else:
        raise TypeError(f"launch_app needs a workspace path or a Session, got {type(workspace_or_session).__name__}")
    app = App(session, host=host, port=port, height=height)
    if open_browser:
        app.open()
    return app
