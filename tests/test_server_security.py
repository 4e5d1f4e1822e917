"""What the server accepts from whom: Host and Origin checks, JSON-only state changes, input and
body limits, no internals or long inputs in errors, the token kept out of URLs, add-concepts not
blocking reads, and a short mixed load. All against a real Session on a real small workspace."""

from __future__ import annotations

import logging
import shutil
import sys
import threading
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from inficond.server import create_app
from inficond.session import Session

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

LOCAL = "http://127.0.0.1:8765"
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def session(prepared_workspace, tmp_path_factory) -> Session:
    dst = tmp_path_factory.mktemp("sec-ro") / "ws"
    shutil.copytree(prepared_workspace, dst)
    return Session(dst)


@pytest.fixture(scope="module")
def client(session) -> TestClient:
    return TestClient(create_app(session, port=8765), base_url=LOCAL)


@pytest.fixture
def fresh(prepared_workspace, tmp_path):
    """A private copy that a test may change: (session, client)."""
    dst = tmp_path / "ws"
    shutil.copytree(prepared_workspace, dst)
    s = Session(dst)
    return s, TestClient(create_app(s, port=8765), base_url=LOCAL)


def problem(r, status: int, *words: str) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["status"] == status
    for w in words:
        assert w.lower() in body["detail"].lower(), body
    return body


def one_vote(s: Session) -> dict:
    perf = s.performance("val")
    k = next(c["class_idx"] for c in perf["classes"] if not c["excluded"])
    c = s.class_concepts(k, k=1)["concepts"][0]["concept_idx"]
    return {"instructions": [{"class": k, "concept": c, "direction": "up"}]}


# ------------------------------------------------------------------ Host: no DNS rebinding
@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.1:8765", "localhost:8765", "[::1]:8765", "LOCALHOST"])
def test_loopback_host_names_are_accepted(client, host):
    assert client.get("/api/summary", headers={"Host": host}).status_code == 200


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8765", "127.0.0.1.evil.example",
                                  "192.168.1.5:8765", "127.0.0.1:9999"])
def test_foreign_host_is_refused(client, host):
    # a DNS-rebinding page reaches 127.0.0.1 under its own name: the Host header gives it away
    problem(client.get("/api/summary", headers={"Host": host}), 403, "host")
    problem(client.get("/", headers={"Host": host}), 403)


def test_bound_host_is_accepted_and_any_host_when_bound_to_all(session):
    named = TestClient(create_app(session, token="t", host="192.168.1.5"), base_url="http://192.168.1.5")
    assert named.get("/api/summary", headers={"X-Inficond-Token": "t"}).status_code == 200
    problem(named.get("/api/summary", headers={"X-Inficond-Token": "t", "Host": "evil.example"}), 403)
    every = TestClient(create_app(session, token="t", host="0.0.0.0"), base_url="http://my-box.lan:8765")
    assert every.get("/api/summary", headers={"X-Inficond-Token": "t"}).status_code == 200
    problem(every.get("/api/summary"), 401, "token")  # any name, but still the token


# ------------------------------------------------------------------ cross-site requests
def test_cross_origin_form_post_is_refused_and_changes_nothing(fresh):
    s, client = fresh
    assert client.post("/api/tune", json=one_vote(s)).status_code == 200
    head = s.log.head()
    form = {"Content-Type": "application/x-www-form-urlencoded", "Origin": "http://evil.example"}
    problem(client.post("/api/provenance/undo", content=b"x=1", headers=form), 403, "origin")
    problem(client.post("/api/export", content=b"", headers=form), 403)
    # a text/plain form (the other preflight-free type) without an Origin: refused for its type
    problem(client.post("/api/provenance/undo", content=b"{}", headers={"Content-Type": "text/plain"}), 415, "json")
    problem(client.post("/api/provenance/undo"), 415, "application/json")
    # JSON from another origin (would need a CORS preflight, which is never granted) and "null" origins
    for origin in ("http://evil.example", "http://127.0.0.1:9999", "https://127.0.0.1:8765", "null"):
        problem(client.post("/api/provenance/undo", headers={**JSON, "Origin": origin}), 403)
    problem(client.post("/api/provenance/undo", headers={**JSON, "Sec-Fetch-Site": "cross-site"}), 403)
    assert s.log.head() == head  # nothing was undone
    # the page's own requests, and non-browser clients without an Origin, go through
    same = {**JSON, "Origin": "http://127.0.0.1:8765", "Sec-Fetch-Site": "same-origin"}
    assert client.post("/api/provenance/undo", headers=same).status_code == 200
    assert s.log.head() != head


def test_responses_forbid_framing(client):
    r = client.get("/api/summary")
    assert r.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "access-control-allow-origin" not in r.headers


# ------------------------------------------------------------------ input limits, no echo
def test_body_over_the_limit_is_413_before_parsing(fresh):
    s, client = fresh
    n0 = len(s.ws.concept_words)
    big = b'{"words": ["' + b"a" * 1_100_000 + b'"]}'
    body = problem(client.post("/api/concepts", content=big, headers=JSON), 413, "1,000,000 bytes")
    assert len(str(body)) < 500

    def chunks():  # no Content-Length: the limit is counted while reading
        yield b'{"words": ["'
        for _ in range(300):
            yield b"b" * 4096
        yield b'"]}'

    small = TestClient(create_app(s, max_body=100_000), base_url=LOCAL)
    problem(small.post("/api/concepts", content=chunks(), headers=JSON), 413)
    assert len(s.ws.concept_words) == n0


def test_long_concept_word_is_refused_without_echo(fresh):
    s, client = fresh
    n0 = len(s.ws.concept_words)
    body = problem(client.post("/api/concepts", json={"words": ["w" * 5000]}), 422, "at most 64 characters")
    assert "w" * 100 not in str(body)
    assert len(s.ws.concept_words) == n0
    # the engine (CLI path) skips such a word with the reason, before loading any model
    out = s.add_concepts(["w" * 5000])
    assert out["added"] == [] and "longer than 64" in out["skipped"][0]["reason"]
    assert len(out["skipped"][0]["word"]) <= 65


@pytest.mark.parametrize("method, url, body", [
    ("GET", "/api/classes/{x}/concepts", None),
    ("GET", "/api/concepts/{x}", None),
    ("GET", "/api/concepts/0?cls={x}", None),
    ("POST", "/api/tune", {"instructions": [{"class": 0, "concept": "{x}", "direction": "up"}]}),
    ("POST", "/api/tune", {"instructions": [{"class": "{x}", "concept": 0, "direction": "up"}]}),
    ("POST", "/api/provenance/revert", {"state_id": "{x}"}),
])
def test_a_100000_character_input_is_not_echoed(client, method, url, body):
    x = "q" * 100_000
    if body is None:  # HTTP clients and uvicorn cap a URL near 64 kB; send the most they allow
        r = client.get(url.replace("{x}", x[:60_000]))
    else:
        import json as _json
        r = client.post(url, content=_json.dumps(body).replace("{x}", x), headers=JSON)
    assert 400 <= r.status_code < 500 and r.status_code in (404, 422), r.text[:300]
    assert len(r.text) < 1000
    assert "q" * 80 not in r.text


def test_long_quoted_values_in_messages_are_clipped(client):
    r = client.get("/api/classes/" + "z" * 150 + "/concepts")  # under the 200-char name limit
    body = problem(r, 404, "unknown class")
    assert "z" * 60 not in body["detail"] and "150 characters" in body["detail"]


def test_corpus_growth_is_capped(fresh, monkeypatch):
    s, client = fresh
    import inficond.server.routers.concepts as route

    monkeypatch.setattr(route, "MAX_ADDED_CONCEPTS", 2)  # the cap, set small; the encoder is real
    r = client.post("/api/concepts", json={"words": ["violet kite", "amber lamp", "copper kettle"]})
    problem(r, 409, "at most 2 may be added")
    assert client.post("/api/concepts", json={"words": ["violet kite", "amber lamp"]}).status_code == 200
    problem(client.post("/api/concepts", json={"words": ["copper kettle"]}), 409, "already holds 2 added")
    assert s.ws.concept_words[-2:] == ["violet kite", "amber lamp"]


# ------------------------------------------------------------------ internals stay in the log
def test_unhandled_errors_log_an_id_and_return_plain_words(session, caplog):
    app = create_app(session)

    def boom():
        int("not a number")  # the kind of text that must not reach the client

    app.add_api_route("/api/boom", boom)
    app.router.routes.insert(0, app.router.routes.pop())  # before the front end's catch-all mount

    client = TestClient(app, base_url=LOCAL, raise_server_exceptions=False)
    with caplog.at_level(logging.ERROR, logger="inficond.server"):
        body = problem(client.get("/api/boom"), 500, "error id")
    assert "invalid literal" not in str(body) and "ValueError" not in str(body)
    assert body["error_id"] and body["error_id"] in body["detail"]
    logged = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    assert body["error_id"] in logged and "invalid literal" in caplog.text


@pytest.mark.parametrize("method, url, body, status", [
    ("POST", "/api/provenance/revert", {"state_id": 987654}, 404),
    ("POST", "/api/provenance/revert", {"state_id": "abc"}, 422),
    ("GET", "/api/classes/\u00b2/concepts", None, 404),  # "²".isdigit() is True; int("²") fails
    ("GET", "/api/concepts/\u00b2", None, 404),
    ("GET", "/api/classes/0/concepts/search?q=%20%20", None, 422),  # the engine's own check: 422, not 500
    ("POST", "/api/tune", {"instructions": [{"class": "\u00b2", "concept": 0, "direction": "up"}]}, 404),
])
def test_error_messages_carry_no_internals(client, method, url, body, status):
    r = client.get(url) if method == "GET" else client.post(url, json=body)
    b = problem(r, status)
    for leak in ("ProvenanceLog", "invalid literal", "Traceback", "Error:", "all_states"):
        assert leak not in b["detail"] and leak not in b["title"], b


# ------------------------------------------------------------------ the token stays out of URLs
def test_token_is_taken_by_header_or_cookie_never_from_an_api_url(session):
    app = create_app(session, token="s3cret-t0ken", port=8765)
    client = TestClient(app, base_url=LOCAL, follow_redirects=False)
    problem(client.get("/api/summary"), 401, "token")
    problem(client.get("/api/summary?token=s3cret-t0ken"), 400, "not accepted in an API URL")
    problem(client.get("/api/media/images/0?token=s3cret-t0ken"), 400)
    assert client.get("/api/summary", headers={"X-Inficond-Token": "s3cret-t0ken"}).status_code == 200

    # the printed URL: trade the token for an HttpOnly, SameSite=Strict cookie and a clean URL
    problem(client.get("/?token=wrong"), 401, "not this server's")
    r = client.get("/?token=s3cret-t0ken&tab=map")
    assert r.status_code == 303 and r.headers["location"] == "/?tab=map"
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    assert "s3cret-t0ken" not in r.headers["location"]
    # the cookie authenticates API calls and image loads, whose URLs carry no token
    assert client.get("/api/summary").status_code == 200
    img = session.concept_detail(0)["images"][0]["image_idx"]
    m = client.get(f"/api/media/images/{img}")
    assert m.status_code == 200 and m.headers["content-type"].startswith("image/")
    client.cookies.clear()
    client.cookies.set("inficond-token", "s3cret-t0ken")  # a cookie of another port's server
    problem(client.get("/api/summary"), 401)


def test_openapi_documents_the_refusals(client):
    ops = client.get("/openapi.json").json()["paths"]["/api/tune"]["post"]["responses"]
    assert {"403", "413", "415", "422", "500"} <= set(ops)


# ------------------------------------------------------------------ add-concepts does not block reads
class GatedEncoder:
    """The workspace's real encoder; encode_text waits (at most 120 s) until the test has done a read."""

    def __init__(self, real):
        self.real = real
        self.encoding = threading.Event()
        self.read_done = threading.Event()
        self.read_finished_first = None

    def identity(self):
        return self.real.identity()

    def encode_text(self, words):
        self.encoding.set()
        self.read_finished_first = self.read_done.wait(timeout=120)
        return self.real.encode_text(words)


def test_a_read_completes_while_add_concepts_is_encoding(fresh):
    s, client = fresh
    gate = GatedEncoder(s._text_encoder())  # loads the real text model once
    s._encoder = gate
    result = {}
    adder = threading.Thread(target=lambda: result.update(
        r=client.post("/api/concepts", json={"words": ["striped awning"]})))
    adder.start()
    assert gate.encoding.wait(timeout=120), "add-concepts never started encoding"
    reader = threading.Thread(target=lambda: result.update(read=client.get("/api/performance")))
    reader.start()
    reader.join(timeout=120)  # with the engine lock held through encoding, this read would wait
    gate.read_done.set()
    adder.join(timeout=300)
    assert gate.read_finished_first is True, "the read waited for add-concepts to finish encoding"
    assert result["read"].status_code == 200
    assert result["r"].status_code == 200, result["r"].text
    assert [a["word"] for a in result["r"].json()["added"]] == ["striped awning"]
    assert client.get("/api/concepts/striped awning").json()["word"] == "striped awning"


# ------------------------------------------------------------------ mixed load, short
def test_short_mixed_load_loses_and_duplicates_no_step(prepared_workspace, tmp_path):
    from bench_server_load import ServerProcess, ok, run_load

    ws = tmp_path / "ws"
    shutil.copytree(prepared_workspace, ws)
    with ServerProcess(ws) as srv:
        res = run_load(srv.url, clients=6, seconds=4, seed=1, p_tune=0.3, p_undo=0.2)
    assert res["errors"] == 0, res["error_samples"]
    assert res["tunes"] > 0 and res["undos"] > 0 and res["reads"] > 0
    c = res["check"]
    assert c["new_states_in_log"] == res["tunes"] and c["log_matches_clients"] and c["state_ids_unique"]
    assert c["head_depth"] == res["tunes"] - res["undos"]
    assert ok(res)
