"""`inficond.launch_app`: the app served from Python in a background thread, and shown in Chromium."""

from __future__ import annotations

import json
import socket
import sys
import threading
import urllib.error
import urllib.request
import webbrowser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

import pytest

import inficond
from inficond.exceptions import UnknownNameError
from inficond.launch import LaunchError
from inficond.session import Session


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {**browser_type_launch_args, "executable_path": "/usr/bin/chromium",
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync"]}


@pytest.fixture(scope="session")
def built_front_end():
    from inficond.server.app import STATIC_DIR

    if not (STATIC_DIR / "index.html").is_file():
        pytest.fail("front end not built: run `make setup` (or `cd web && npm ci && npm run build`)")
    return STATIC_DIR


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def refused(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=3)
    except urllib.error.URLError as e:
        return isinstance(e.reason, ConnectionRefusedError)
    return False


def test_launch_serves_the_workspace_and_close_frees_the_port(prepared_workspace):
    app = inficond.launch_app(prepared_workspace)
    try:
        assert app.url == f"http://127.0.0.1:{app.port}/"
        summary = get_json(app.url + "api/summary")
        assert summary["dataset"]["class_names"] == Session(prepared_workspace).ws.class_names
        assert app.running and "running" in repr(app)
    finally:
        app.close()
    assert not app.running and refused(app.url + "api/summary")
    app.close()  # idempotent
    assert "closed" in app._repr_html_()


def test_a_shared_session_shows_python_tuning_in_the_app(workspace):
    s = Session(workspace)
    with inficond.launch_app(s) as app:
        assert app.session is s
        cls = next(c["name"] for c in s.performance("val")["classes"] if s.class_concepts(c["name"], k=1)["nonzero"])
        word = s.class_concepts(cls, k=1)["concepts"][0]["word"]
        state = s.tune([{"class": cls, "concept": word, "direction": "up"}])["state_id"]
        prov = get_json(app.url + "api/provenance")
        assert prov["head"] == state


def test_select_names_the_class_in_the_url_and_the_widget(prepared_workspace):
    with inficond.launch_app(prepared_workspace) as app:
        names = app.session.ws.class_names
        assert app.url_for() == app.url
        app.select(names[3])
        assert app.selected == names[3] and app.url_for().endswith(f"#class={names[3]}")
        assert app.select(5).selected == names[5]  # an index works too
        with pytest.raises(UnknownNameError, match="zebra"):
            app.select("zebra")
        assert app.selected == names[5]  # a bad name changes nothing
        w = app.widget(height=500)
        assert (w.url, w.selected, w.height) == (app.url, names[5], 500)
        app.select(names[1])
        assert w.selected == names[1]  # the shown widget follows
        assert app.widget() is w
        html = app._repr_html_()
        assert f'src="{app.url}#class={names[1]}"' in html and "<iframe" in html


def test_a_taken_port_and_a_public_host_are_refused(prepared_workspace):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        with pytest.raises(LaunchError, match=f"127.0.0.1:{port}"):
            inficond.launch_app(prepared_workspace, port=port)
    with pytest.raises(LaunchError, match="0.0.0.0"):
        inficond.launch_app(prepared_workspace, host="0.0.0.0")
    with pytest.raises(TypeError, match="int"):
        inficond.launch_app(42)


def test_open_hands_the_selected_url_to_the_browser(prepared_workspace, tmp_path, monkeypatch):
    log = tmp_path / "opened.txt"
    script = tmp_path / "browser.py"
    script.write_text(f"import sys; open({str(log)!r}, 'a').write(sys.argv[1] + '\\n')\n")
    # $BROWSER is how users pick a browser; webbrowser reads it when it first registers browsers
    monkeypatch.setenv("BROWSER", f"{sys.executable} {script} %s")
    monkeypatch.setattr(webbrowser, "_tryorder", None)
    monkeypatch.setattr(webbrowser, "_browsers", {})
    with inficond.launch_app(prepared_workspace) as app:
        name = app.session.ws.class_names[2]
        assert app.open(name)
    assert unquote(log.read_text().strip()) == f"{app.url}#class={name}"


WAIT = 30_000  # ms; a shared 2-core machine can take seconds per view (no timing is asserted)


@pytest.mark.e2e
def test_chromium_shows_the_app_and_follows_select(built_front_end, workspace, page):
    """The page served by launch_app renders real content and follows #class= without reloading."""
    from playwright.sync_api import expect

    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    with inficond.launch_app(workspace) as app:
        perf = app.session.performance("val")["classes"]
        # two classes whose students use concepts, so the knowledge view has rows to show
        first, second = [c for c in perf if app.session.class_concepts(c["class_idx"], k=1)["nonzero"]][:2]
        page.set_viewport_size({"width": 1440, "height": 900})
        page.goto(app.select(first["name"]).url_for())
        row = page.locator(f'[data-testid=class-row][data-class-idx="{first["class_idx"]}"]')
        # the first load computes the concept map (t-SNE) on a fresh workspace: allow for it
        expect(row).to_have_attribute("aria-selected", "true", timeout=4 * WAIT)
        expect(page.locator("[data-testid=view-knowledge]")).to_contain_text(first["name"], timeout=WAIT)
        expect(page.locator("[data-testid=concept-row]").first).to_be_visible(timeout=WAIT)
        assert "has not been built" not in page.content()
        page.evaluate("() => { window.__same_page = true; }")
        # what the widget does on select(): change only the fragment
        page.evaluate("(u) => { window.location.href = u; }", app.select(second["name"]).url_for())
        row2 = page.locator(f'[data-testid=class-row][data-class-idx="{second["class_idx"]}"]')
        expect(row2).to_have_attribute("aria-selected", "true", timeout=WAIT)
        expect(page.locator("[data-testid=view-knowledge]")).to_contain_text(second["name"], timeout=WAIT)
        assert page.evaluate("() => window.__same_page === true")  # no reload
    assert errors == []


@pytest.mark.e2e
def test_a_notebook_page_on_loopback_can_frame_the_app(built_front_end, prepared_workspace, page):
    """What Jupyter does with the app's _repr_html_: a page of another loopback origin frames it."""
    with inficond.launch_app(prepared_workspace) as app:
        with urllib.request.urlopen(app.url, timeout=10) as r:
            assert r.headers.get("x-frame-options") is None
            assert "frame-ancestors" in r.headers.get("content-security-policy", "")
        cls = next(c for c in app.session.performance("val")["classes"] if not c["excluded"])
        body = f"<!doctype html><h1>notebook</h1>{app.select(cls['name'])._repr_html_()}".encode()

        class Notebook(BaseHTTPRequestHandler):  # a Jupyter-like page: another port, another origin
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        nb = ThreadingHTTPServer(("127.0.0.1", 0), Notebook)
        threading.Thread(target=nb.serve_forever, daemon=True).start()
        try:
            page.set_viewport_size({"width": 1500, "height": 1000})
            page.goto(f"http://localhost:{nb.server_address[1]}/notebook.html")
            frame = page.frame_locator("iframe[title=InFiConD]")
            row = frame.locator(f'[data-testid=class-row][data-class-idx="{cls["class_idx"]}"]')
            row.wait_for(timeout=4 * WAIT)
            assert row.get_attribute("aria-selected") == "true"
        finally:
            nb.shutdown()
            nb.server_close()
