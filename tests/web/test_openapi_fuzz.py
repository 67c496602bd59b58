"""The API's OpenAPI description fuzzed with schemathesis against the live server: no request, valid or
not, may get a 5xx (on SQLite and PostgreSQL).

Every operation of ``/api/v1/openapi.json`` gets ``MAX_EXAMPLES`` generated requests that fit its
description and as many that do not (schemathesis' positive and negative modes), each with a fresh
admin token (a fuzzed ``DELETE /tokens/{id}`` may revoke the one before) and the
``not_a_server_error`` check. (schemathesis' lazy pytest integration, ``from_fixture``, does not run
under pytest 9, so the operations are walked here with Hypothesis' ``given``.)
"""

from __future__ import annotations

import httpx
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from scrm.access import create_token
from tests.web.world import WebWorld

#: examples per operation and mode: about 25 s per backend for the ~40 operations (campaigns and
#: segments included), most of it in negative modes that Hypothesis cannot satisfy (no parameter to
#: make invalid), which end with ``Unsatisfiable`` and are passed over
MAX_EXAMPLES = 10
MY_OPERATIONS = {
    ("GET", "/customers"),
    ("GET", "/customers/{customer_id}"),
    ("GET", "/customers/{customer_id}/explain"),
    ("GET", "/leaderboard"),
    ("GET", "/funnel"),
    ("GET", "/churn"),
    ("GET", "/communities"),
    ("GET", "/communities/{community_id}"),
    ("GET", "/rules"),
    ("POST", "/rules/try"),
    ("POST", "/purchases/import"),
    ("POST", "/purchases/import/rows"),
    ("GET", "/tokens"),
    ("POST", "/tokens"),
    ("DELETE", "/tokens/{token_id}"),
    ("GET", "/audit"),
}


def fuzz(world: WebWorld, strategy: object) -> None:
    @given(case=strategy)
    @settings(
        max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None
    )
    def run(case: schemathesis.Case) -> None:
        token = create_token(world.store, "fuzz", "admin")
        case.call_and_validate(
            base_url=world.base_url,
            headers={"Authorization": f"Bearer {token}"},
            checks=[not_a_server_error],
            timeout=30,
        )

    run()


def test_no_request_gets_a_server_error(web_world: WebWorld) -> None:
    schema = schemathesis.openapi.from_url(web_world.base_url + "/openapi.json")
    failures: list[str] = []
    seen = set()
    for result in schema.get_all_operations():
        operation = result.ok()
        seen.add((operation.method.upper(), operation.path))
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                fuzz(web_world, operation.as_strategy(generation_mode=mode))
            except Unsatisfiable:  # nothing in the operation can be made invalid (no parameters)
                pass
            except Exception as exc:  # collected: every operation is fuzzed, every failure shown
                failures.append(f"{operation.method.upper()} {operation.path} ({mode.value}): {exc}")
    assert seen >= MY_OPERATIONS
    assert not failures, "\n\n".join(failures)


def test_the_description_is_served(web_world: WebWorld) -> None:
    answer = httpx.get(web_world.base_url + "/openapi.json")
    assert answer.status_code == 200 and answer.json()["info"]["title"] == "scrm API"
