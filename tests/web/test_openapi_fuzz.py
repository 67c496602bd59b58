"""The API's OpenAPI description fuzzed with schemathesis against the live server: no request, valid or
not, may get a 5xx (on SQLite and PostgreSQL).

Every operation of ``/api/v1/openapi.json`` gets ``MAX_EXAMPLES`` generated requests that fit its
description and as many that do not (schemathesis' positive and negative modes), each with a fresh
admin token (a fuzzed ``DELETE /tokens/{id}`` may revoke the one before) and the
``not_a_server_error`` check. (schemathesis' lazy pytest integration, ``from_fixture``, does not run
under pytest 9, so the operations are walked here with Hypothesis' ``given``.)

A second test sends, deterministically, values known to break APIs (NUL, integers past 64 bits, NaN,
a long string, LIKE wildcards, JSON of the wrong type) in each parameter and top-level body field of
each operation.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

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


#: values that have broken APIs before: NUL (PostgreSQL text refuses it), integers past 64 bits,
#: negatives, NaN, a long string, percent signs and quotes (SQL LIKE and quoting)
HOSTILE = ["\x00", "a\x00b", str(2**63), str(-(2**63) - 1), "-1", "nan", "inf", "x" * 5000, "%_\\'\""]
HOSTILE_JSON: list[object] = [*HOSTILE, 2**63, -(2**63) - 1, 1e308, None, [], {}, True]


def fill(template: str, names: list[str], values: dict[str, str]) -> str:
    """The path ``template`` with ``values`` for its parameters (1 for those not given)."""
    return template.format(**{n: quote(values.get(n, "1"), safe="") for n in names})


def hostile_requests(description: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(method, path, httpx keyword arguments): each parameter and each top-level body field of each
    operation set to each hostile value, the other path parameters to 1."""
    schemas = description.get("components", {}).get("schemas", {})
    for template, methods in description["paths"].items():
        for method, operation in methods.items():
            parameters = operation.get("parameters", [])
            path_names = [p["name"] for p in parameters if p["in"] == "path"]

            for parameter in parameters:
                for value in HOSTILE:
                    if parameter["in"] == "path":
                        yield method.upper(), fill(template, path_names, {parameter["name"]: value}), {}
                    elif parameter["in"] == "query":
                        yield (
                            method.upper(),
                            fill(template, path_names, {}),
                            {"params": {parameter["name"]: value}},
                        )
            content = operation.get("requestBody", {}).get("content", {})
            body = content.get("application/json", {}).get("schema", {})
            fields = schemas.get(body.get("$ref", "").rsplit("/", 1)[-1], {}).get("properties", {})
            for name in fields:
                for json_value in HOSTILE_JSON:
                    yield method.upper(), fill(template, path_names, {}), {"json": {name: json_value}}
            if "multipart/form-data" in content:
                for value in HOSTILE:
                    files = {"file": ("o.csv", value.encode("utf-8", "surrogatepass"))}
                    yield (
                        method.upper(),
                        fill(template, path_names, {}),
                        {"files": files, "data": {"source": value}},
                    )


def test_hostile_values_in_every_parameter_and_field(web_world: WebWorld) -> None:
    description = httpx.get(web_world.base_url + "/openapi.json").json()
    errors = []
    calls = 0
    with httpx.Client(base_url=web_world.base_url, timeout=30) as client:
        for method, path, kwargs in hostile_requests(description):
            token = create_token(web_world.store, "hostile", "admin")
            answer = client.request(method, path, headers={"Authorization": f"Bearer {token}"}, **kwargs)
            calls += 1
            if answer.status_code >= 500:
                errors.append(f"{method} {path} {kwargs!r:.200}: {answer.status_code} {answer.text[:200]}")
    assert calls > 500
    assert not errors, "\n".join(errors)
