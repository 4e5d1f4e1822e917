"""The HTTP API over a real Session on a real small workspace (FastAPI TestClient)."""

from __future__ import annotations

import base64
import re
import shutil
import threading
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from inficond.server import create_app
from inficond.server.app import resolve_token
from inficond.session import Session

REPO = Path(__file__).resolve().parents[1]
LOCAL = "http://127.0.0.1"  # the server answers loopback Host names only (see test_server_security.py)
JSON = {"Content-Type": "application/json"}  # every POST must say JSON, even without a body


@pytest.fixture(scope="session")
def server_base_workspace(prepared_workspace) -> Path:
    """The workspace built by this run's code (conftest): never one left over from older code."""
    return prepared_workspace


@pytest.fixture(scope="module")
def session(server_base_workspace, tmp_path_factory) -> Session:
    dst = tmp_path_factory.mktemp("server-ro") / "ws"
    shutil.copytree(server_base_workspace, dst)
    return Session(dst)


@pytest.fixture(scope="module")
def client(session) -> TestClient:
    return TestClient(create_app(session), base_url=LOCAL)


@pytest.fixture
def fresh(server_base_workspace, tmp_path):
    """A private copy, for tests that tune: (session, client)."""
    dst = tmp_path / "ws"
    shutil.copytree(server_base_workspace, dst)
    s = Session(dst)
    return s, TestClient(create_app(s), base_url=LOCAL)


def weakest(session: Session) -> dict:
    perf = session.performance("val")
    return max((c for c in perf["classes"] if not c["excluded"] and c["gap"] is not None),
               key=lambda c: c["gap"])


def assert_problem(r, status: int, *words: str) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) >= {"title", "detail", "status"}
    assert body["status"] == status
    for w in words:
        assert w.lower() in body["detail"].lower(), body
    return body


# ------------------------------------------------------------------ views return the engine's data
def test_summary_matches_session(client, session):
    r = client.get("/api/summary")
    assert r.status_code == 200
    body = r.json()
    want = session.summary()
    assert body["dataset"]["n_images"] == want["dataset"]["n_images"]
    assert body["dataset"]["class_names"] == want["dataset"]["class_names"]
    assert body["student"]["student_map"] == pytest.approx(want["student"]["student_map"])
    assert body["corpus"]["n_concepts"] == want["corpus"]["n_concepts"]


def test_performance_matches_session(client, session):
    body = client.get("/api/performance").json()
    want = session.performance("val")
    assert body["split"] == "val"
    assert [c["name"] for c in body["classes"]] == [c["name"] for c in want["classes"]]
    for got, exp in zip(body["classes"], want["classes"]):
        assert got["student"]["ap"] == exp["student"]["ap"]
        assert got["alignment"]["pos"]["n"] == exp["alignment"]["pos"]["n"]
    assert client.get("/api/performance?split=test").json()["split"] == "test"


def test_class_concepts_by_index_and_by_name(client, session):
    cls = weakest(session)
    by_idx = client.get(f"/api/classes/{cls['class_idx']}/concepts?k=5").json()
    by_name = client.get(f"/api/classes/{cls['name']}/concepts", params={"k": 5}).json()
    assert by_idx == by_name
    assert len(by_idx["concepts"]) == 5
    c0 = by_idx["concepts"][0]
    assert len(c0["whatif"]["grid"]) == 21
    for sort in ("discrepancy_p", "discrepancy_n"):
        r = client.get(f"/api/classes/{cls['class_idx']}/concepts?k=3&sort={sort}")
        assert r.status_code == 200 and r.json()["sort"] == sort


def test_whatif_suggestions_detail_and_map(client, session):
    cls = weakest(session)["class_idx"]
    concept = session.class_concepts(cls, k=1)["concepts"][0]
    w = client.get(f"/api/classes/{cls}/whatif/{concept['concept_idx']}?n_points=11").json()
    assert len(w["grid"]) == 11 and set(w["values"]) >= {"ap", "f1", "precision", "recall", "accuracy"}
    sugg = client.get(f"/api/classes/{cls}/suggestions?k=3")
    assert sugg.status_code == 200
    want = session.suggest(cls, k=3)
    assert [(m["concept_idx"], m["direction"]) for m in sugg.json()] == [(m["concept_idx"], m["direction"]) for m in want]
    assert [m["gain"] for m in sugg.json()] == pytest.approx([m["gain"] for m in want])
    if not want:  # judged on train: none can exist only where no vote can raise train AP
        assert session._class_metrics(cls, "train")["ap"] == pytest.approx(1.0)
    d = client.get(f"/api/concepts/{concept['word']}", params={"cls": cls}).json()
    assert d["concept_idx"] == concept["concept_idx"]
    assert d["whatif"]["class_idx"] == cls
    assert client.get(f"/api/concepts/{concept['concept_idx']}").json()["whatif"] is None
    pts = client.get("/api/concepts/map").json()["points"]
    assert len(pts) == session.summary()["corpus"]["n_concepts"]
    assert all(-1.0001 <= p["x"] <= 1.0001 and -1.0001 <= p["y"] <= 1.0001 for p in pts)


# ------------------------------------------------------------------ errors are 4xx problem JSON
@pytest.mark.parametrize("url, status, word", [
    ("/api/classes/unicorn/concepts", 404, "unicorn"),
    ("/api/classes/9999/concepts", 404, "9999"),
    ("/api/classes/-1/concepts", 404, "class"),
    ("/api/classes/0/whatif/no-such-concept-xyz", 404, "no-such-concept-xyz"),
    ("/api/classes/0/whatif/999999", 404, "999999"),
    ("/api/concepts/999999", 404, "concept"),
    ("/api/concepts/0?cls=unicorn", 404, "unicorn"),
    ("/api/classes/0/concepts?k=0", 422, "k"),
    ("/api/classes/0/concepts?k=abc", 422, "k"),
    ("/api/classes/0/concepts?sort=weight", 422, "sort"),
    ("/api/classes/0/whatif/0?n_points=1", 422, "n_points"),
    ("/api/performance?split=holdout", 422, "split"),
    ("/api/media/images/999999", 404, "image"),
    ("/api/media/patches/nope", 404, "patch"),
    ("/api/media/patches/..%2F..%2Fworkspace.sqlite", 404, "patch"),
    ("/api/export/files/workspace.sqlite", 404, "export"),
    ("/api/nothing-here", 404, "no such endpoint"),
])
def test_bad_requests_are_problem_json(client, url, status, word):
    assert_problem(client.get(url), status, word)


@pytest.mark.parametrize("body, word", [
    ({}, "instructions"),
    ({"instructions": []}, "instructions"),
    ({"instructions": [{"class": 0, "concept": 0, "direction": "sideways"}]}, "direction"),
    ({"instructions": [{"class": 0, "direction": "up"}]}, "concept"),
    ({"instructions": [{"class": 0, "concept": 0, "direction": "up", "weight": 3}]}, "weight"),
    ({"instructions": "up"}, "instructions"),
])
def test_malformed_tune_bodies_are_422(client, body, word):
    assert_problem(client.post("/api/tune", json=body), 422, word)


def test_non_json_body_is_422(client):
    r = client.post("/api/tune", content=b"{not json", headers={"content-type": "application/json"})
    assert_problem(r, 422)


def test_tune_with_unknown_names_is_404_and_records_nothing(client, session):
    before = len(client.get("/api/provenance").json()["steps"])
    r = client.post("/api/tune", json={"instructions": [{"class": "unicorn", "concept": 0, "direction": "up"}]})
    assert_problem(r, 404, "unicorn")
    r = client.post("/api/tune", json={"instructions": [{"class": 0, "concept": "zzz-unknown", "direction": "up"}]})
    assert_problem(r, 404, "zzz-unknown")
    assert len(client.get("/api/provenance").json()["steps"]) == before


def test_tune_two_classes_in_one_step_is_422(client, session):
    names = [c["name"] for c in session.performance()["classes"] if not c["excluded"]][:2]
    body = {"instructions": [{"class": names[0], "concept": 0, "direction": "up"},
                             {"class": names[1], "concept": 1, "direction": "down"}]}
    assert_problem(client.post("/api/tune", json=body), 422, "one class")


def test_revert_to_unknown_state_is_4xx(client):
    r = client.post("/api/provenance/revert", json={"state_id": 987654})
    assert_problem(r, 404, "987654")


# ------------------------------------------------------------------ tuning round trip
def test_tune_then_undo(fresh):
    s, client = fresh
    cls = weakest(s)
    concepts = s.class_concepts(cls["class_idx"], k=2)["concepts"]
    body = {"instructions": [
        {"class": cls["name"], "concept": concepts[0]["word"], "direction": "up"},
        {"class": cls["class_idx"], "concept": concepts[1]["concept_idx"], "direction": "down"},
    ]}
    prov0 = client.get("/api/provenance").json()
    r = client.post("/api/tune", json=body)
    assert r.status_code == 200, r.text
    res = r.json()
    assert res["class_idx"] == cls["class_idx"]
    assert [i["direction"] for i in res["instructions"]] == ["up", "down"]
    assert set(res["val"]) == {"before", "after"} and res["test"]["after"] is not None

    prov1 = client.get("/api/provenance").json()
    assert len(prov1["steps"]) == len(prov0["steps"]) + 1
    assert prov1["head"] == res["state_id"]
    perf = client.get("/api/performance").json()["classes"][cls["class_idx"]]
    assert perf["student"]["ap"] == pytest.approx(res["val"]["after"]["ap"])
    assert perf["student"]["ap"] == pytest.approx(s.performance("val")["classes"][cls["class_idx"]]["student"]["ap"])

    undone = client.post("/api/provenance/undo", headers=JSON).json()
    assert undone["head"] == prov0["head"]
    after_undo = client.get("/api/performance").json()["classes"][cls["class_idx"]]
    assert after_undo["student"]["ap"] == pytest.approx(cls["student"]["ap"])

    reverted = client.post("/api/provenance/revert", json={"state_id": res["state_id"]}).json()
    assert reverted["head"] == res["state_id"]


def test_concurrent_tunes_are_serialised_and_none_is_lost(fresh):
    s, client = fresh
    cls = weakest(s)
    concepts = s.class_concepts(cls["class_idx"], k=4)["concepts"]
    n0 = len(client.get("/api/provenance").json()["steps"])
    results, errors = [], []

    def go(c):
        r = client.post("/api/tune", json={"instructions": [
            {"class": cls["class_idx"], "concept": c["concept_idx"], "direction": "up"}]})
        (results if r.status_code == 200 else errors).append(r)

    threads = [threading.Thread(target=go, args=(c,)) for c in concepts[:3]]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, [e.text for e in errors]
    prov = client.get("/api/provenance").json()
    tunes = [st for st in prov["steps"] if st["kind"] == "tune"]
    assert len(prov["steps"]) == n0 + 3
    # each step builds on the one before it: a chain, not three siblings of one parent
    ids = {r.json()["state_id"] for r in results}
    parents = {st["parent_id"] for st in tunes if st["state_id"] in ids}
    assert len(parents) == 3
    assert all(st["on_head_path"] for st in tunes)


def test_add_concepts_validates_and_reports(fresh):
    s, client = fresh
    assert_problem(client.post("/api/concepts", json={"words": []}), 422, "words")
    assert_problem(client.post("/api/concepts", json={"word": "x"}), 422)
    existing = s.summary()
    word = existing["corpus"]["n_concepts"]
    r = client.post("/api/concepts", json={"words": [s.ws.concept_words[0]]})
    assert r.status_code == 200
    assert r.json()["added"] == [] and r.json()["skipped"][0]["reason"]
    assert word == client.get("/api/summary").json()["corpus"]["n_concepts"]


# ------------------------------------------------------------------ media and export by id only
def test_media_served_by_id(client, session):
    cls = weakest(session)["class_idx"]
    concept = session.class_concepts(cls, k=1)["concepts"][0]
    patch = concept["patches"][0]["patch_id"]
    r = client.get(f"/api/media/patches/{patch}")
    assert r.status_code == 200 and r.headers["content-type"].startswith("image/")
    img = session.concept_detail(concept["concept_idx"])["images"][0]["image_idx"]
    r = client.get(f"/api/media/images/{img}")
    assert r.status_code == 200 and r.headers["content-type"].startswith("image/")


def test_patches_in_one_request_match_the_files(client, session):
    cls = weakest(session)["class_idx"]
    ids = [p["patch_id"] for c in session.class_concepts(cls, k=3)["concepts"] for p in c["patches"][:4]]
    r = client.get("/api/media/patches", params=[("ids", i) for i in ids + ids[:1]])  # a repeat is answered once
    assert r.status_code == 200, r.text
    got = r.json()["patches"]
    assert list(got) == list(dict.fromkeys(ids))
    for i in ids:
        single = client.get(f"/api/media/patches/{i}")
        head, _, b64 = got[i].partition(",")
        assert head == f"data:{single.headers['content-type']};base64"
        assert base64.b64decode(b64) == single.content


@pytest.mark.parametrize("query, status, word", [
    ("", 422, "ids"),
    ("?ids=nope", 404, "patch"),
    ("?ids=..%2F..%2Fworkspace.sqlite", 404, "patch"),
    ("?" + "&".join(["ids=0-0"] * 401), 422, "ids"),
])
def test_patch_batch_refuses_bad_ids(client, query, status, word):
    assert_problem(client.get("/api/media/patches" + query), status, word)


def test_export_offers_downloads(fresh):
    s, client = fresh
    r = client.post("/api/export", headers=JSON)
    assert r.status_code == 200, r.text
    files = r.json()["files"]
    assert set(files) >= {"json", "onnx"}
    for url in files.values():
        d = client.get(url)
        assert d.status_code == 200 and len(d.content) > 0
        assert "attachment" in d.headers["content-disposition"]


# ------------------------------------------------------------------ token and binding
def test_token_required_on_every_api_request(session):
    client = TestClient(create_app(session, token="s3cret"), base_url=LOCAL)
    assert_problem(client.get("/api/summary"), 401, "token")
    assert_problem(client.get("/api/summary", headers={"X-Inficond-Token": "wrong"}), 401)
    assert_problem(client.post("/api/tune", json={}), 401)
    assert client.get("/api/summary", headers={"X-Inficond-Token": "s3cret"}).status_code == 200
    assert client.get("/api/summary", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert_problem(client.get("/api/summary?token=s3cret"), 400, "not accepted in an API URL")
    assert_problem(client.get("/api/media/images/0?token=s3cret"), 400, "header")
    assert client.get("/api/media/images/0").status_code == 401


def test_non_local_binding_gets_a_token():
    assert resolve_token("127.0.0.1", None) is None
    assert resolve_token("localhost", None) is None
    assert resolve_token("::1", None) is None
    assert resolve_token("127.0.0.1", "abc") == "abc"
    generated = resolve_token("0.0.0.0", None)
    assert generated and len(generated) >= 20
    assert resolve_token("192.168.1.5", "mine") == "mine"


def test_openapi_schema_has_typed_models(client):
    schema = client.get("/openapi.json").json()
    paths = schema["paths"]
    for p in ["/api/summary", "/api/performance", "/api/classes/{cls}/concepts", "/api/concepts/map",
              "/api/tune", "/api/provenance", "/api/provenance/undo", "/api/export",
              "/api/media/patches/{patch_id}"]:
        assert p in paths
    comps = schema["components"]["schemas"]
    assert {"TuneRequest", "TuneResult", "Performance", "ClassConcepts", "Provenance", "Problem"} <= set(comps)


def test_create_app_accepts_a_workspace_path(server_base_workspace):
    client = TestClient(create_app(server_base_workspace), base_url=LOCAL)
    assert client.get("/api/summary").status_code == 200


def test_front_end_is_served(client):
    r = client.get("/")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    # the built page itself (its hashed bundle), not the "front end not built" notice
    static = REPO / "src" / "inficond" / "server" / "static"
    assert (static / "index.html").exists(), "front end not built: run `make setup`"
    assert r.text == (static / "index.html").read_text()
    bundle = re.search(r'src="\.?/?(assets/index-[\w-]+\.js)"', r.text)
    assert bundle, "index.html loads no bundle"
    js = client.get("/" + bundle.group(1))
    assert js.status_code == 200 and "javascript" in js.headers["content-type"] and len(js.content) > 10_000
