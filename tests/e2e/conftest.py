"""Browser tests: Debian's Chromium driven by pytest-playwright against a live server."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
STATIC = REPO / "src" / "inficond" / "server" / "static"
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {**browser_type_launch_args, "executable_path": "/usr/bin/chromium",
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update",
                     "--disable-sync"]}


@pytest.fixture(scope="session")
def built_front_end() -> Path:
    """The built front end; built here with npm when missing (fails without node_modules)."""
    if not (STATIC / "index.html").exists():
        web = REPO / "web"
        if not (web / "node_modules").exists() or shutil.which("npm") is None:
            pytest.fail("front end not built: run `make setup` (or `cd web && npm ci && npm run build`)")
        subprocess.run(["npm", "run", "build"], cwd=web, check=True, capture_output=True)
    return STATIC


@pytest.fixture(scope="session")
def e2e_workspace(tmp_path_factory, prepared_workspace) -> Path:
    """A private copy of the workspace this run's code built (conftest), never one left by older code."""
    dst = tmp_path_factory.mktemp("e2e") / "ws"
    shutil.copytree(prepared_workspace, dst)
    return dst


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    def __init__(self, session, token=None):
        import uvicorn

        from inficond.server import create_app

        self.session = session
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        config = uvicorn.Config(create_app(session, token=token), host="127.0.0.1", port=self.port,
                                log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="session")
def live_server(built_front_end, e2e_workspace):
    from inficond.session import Session

    with LiveServer(Session(e2e_workspace)) as srv:
        yield srv


@pytest.fixture
def fresh_server(built_front_end, e2e_workspace, tmp_path):
    """A live server on a private copy of the workspace, for a test that tunes."""
    from inficond.session import Session

    dst = tmp_path / "ws"
    shutil.copytree(e2e_workspace, dst)
    with LiveServer(Session(dst)) as srv:
        yield srv


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
