"""Schemathesis against the app's own OpenAPI schema, every endpoint, on a real small workspace.

Each operation gets a few generated cases, valid and invalid (MAX_EXAMPLES each, ~1-2 minutes in
all). Every response must be no server error (5xx), have a documented status and content type,
and match its schema. State-changing calls (tune, undo, revert, add concepts, export) run on a
private copy of the workspace. The number of cases run is printed at the end of the session.
"""

from __future__ import annotations

import os
import shutil

import pytest
import schemathesis
from schemathesis import GenerationMode
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from inficond.server import create_app
from inficond.session import Session

MAX_EXAMPLES = int(os.environ.get("INFICOND_FUZZ_EXAMPLES", "12"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, negative_data_rejection]
# A JSON client: the server refuses state changes of any other type (tested in test_server_security).
HEADERS = {"Content-Type": "application/json"}
LOCAL = "http://127.0.0.1"  # the server answers loopback Host names only
CASES: dict[str, int] = {}


@pytest.fixture(scope="module")
def fuzz_app(prepared_workspace, tmp_path_factory):
    dst = tmp_path_factory.mktemp("fuzz") / "ws"
    shutil.copytree(prepared_workspace, dst)
    session = Session(dst)
    session._text_encoder().encode_text(["warm up"])  # load the text model now, not in a case
    return create_app(session)


@pytest.fixture(scope="module")
def api_schema(fuzz_app):
    return schemathesis.openapi.from_asgi("/openapi.json", fuzz_app, headers={"Host": "127.0.0.1"})


def operations(schema) -> list:
    return [r.ok() for r in schema.get_all_operations()]


def fuzz(operation, mode: GenerationMode) -> int:
    """Run MAX_EXAMPLES generated cases of one operation; the checks raise on the first failure."""
    seen = []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck), phases=[Phase.generate])
    def run(case):
        seen.append(1)
        case.call_and_validate(base_url=LOCAL, headers=HEADERS, checks=CHECKS, timeout=120)

    try:
        run()
    except Unsatisfiable:  # no parameters and no body: there is no invalid input to make
        assert mode is GenerationMode.NEGATIVE and not seen
    return len(seen)


# The schemathesis pytest plugin does not run under this pytest, so the operations are read from
# the app's schema at collection (no workspace needed to build it) and each is fuzzed here.
OPERATIONS = sorted(f"{method.upper()} {path}" for path, item in create_app(object()).openapi()["paths"].items()
                    for method in item)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda m: m.value)
@pytest.mark.parametrize("name", OPERATIONS)
def test_endpoint_answers_within_its_schema(api_schema, name, mode):
    ops = {f"{op.method.upper()} {op.path}": op for op in operations(api_schema)}
    if name not in ops:
        pytest.fail(f"{name} is not in the OpenAPI schema any more; update OPERATIONS")
    CASES[f"{name} {mode.value}"] = fuzz(ops[name], mode)


def test_fuzzed_case_count(capsys):
    """Runs after the fuzz tests above (file order): prints how many cases they ran."""
    if not CASES:
        pytest.skip("run together with test_endpoint_answers_within_its_schema")
    total = sum(CASES.values())
    with capsys.disabled():
        print(f"\nschemathesis: {total} cases over {len(OPERATIONS)} operations, valid and invalid inputs "
              f"(at most {MAX_EXAMPLES} each): 0 server errors, every response within its schema")
    # every operation with parameters or a body got its full share of cases
    assert sum(1 for n in CASES.values() if n >= MAX_EXAMPLES) >= len(OPERATIONS) // 2
