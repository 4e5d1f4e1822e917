"""The front end's API types are generated from the server's OpenAPI schema and kept current."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "gen_api_types.py"


@pytest.fixture(scope="module")
def gen():
    spec = importlib.util.spec_from_file_location("gen_api_types", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def fresh(gen, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("api") / "api.gen.ts"
    try:
        assert gen.main(["--out", str(out)]) == 0
    except gen.GeneratorMissing as e:
        pytest.fail(f"{e} (`make setup` installs it)")
    return out


def test_generated_types_are_current(gen, fresh):
    committed = gen.DEFAULT_OUT.read_text(encoding="utf-8")
    assert fresh.read_text(encoding="utf-8") == committed, (
        "web/src/lib/api.gen.ts is stale: run `python scripts/gen_api_types.py` and commit it")


def test_generated_types_cover_every_schema(gen, fresh):
    text = fresh.read_text(encoding="utf-8")
    schema = gen.openapi_schema()
    for name in schema["components"]["schemas"]:
        assert f"export type {name} = components['schemas']['{name}'];" in text
    for path in schema["paths"]:
        assert f'"{path}": {{' in text


def test_a_changed_schema_changes_the_output(gen):
    schema = gen.openapi_schema()
    schema["components"]["schemas"]["Scores"]["properties"]["brand_new"] = {"type": "integer"}
    assert "brand_new?: number;" in gen.generate(schema)
    assert "brand_new" not in gen.DEFAULT_OUT.read_text(encoding="utf-8")


def test_check_reports_a_stale_file(gen, tmp_path, capsys):
    stale = tmp_path / "api.gen.ts"
    stale.write_text("// old\n", encoding="utf-8")
    assert gen.main(["--check", "--out", str(stale)]) == 1
    assert "stale" in capsys.readouterr().err


def test_bad_schema_is_a_clear_error(gen):
    with pytest.raises(RuntimeError, match="openapi-typescript failed"):
        gen.generate({"openapi": "3.1.0", "paths": {"/x": {"get": {"responses": {"200": {"$ref": "#/nope"}}}}}})
