"""Admin endpoints (tokens, audit log), who may call what, and what is refused without valid credentials,
on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.web.world import WebWorld

#: (method, path, JSON body) of every read endpoint of this part of the API
READS = [
    ("GET", "/customers", None),
    ("GET", "/customers/1", None),
    ("GET", "/customers/1/explain", None),
    ("GET", "/leaderboard", None),
    ("GET", "/funnel", None),
    ("GET", "/churn", None),
    ("GET", "/communities", None),
    ("GET", "/communities/0", None),
    ("GET", "/rules", None),
    ("POST", "/rules/try", {"text": "help"}),
]
WRITES = [("POST", "/purchases/import/rows", {"rows": [{"order_id": "R-1"}]})]
ADMIN = [
    ("GET", "/tokens", None),
    ("POST", "/tokens", {"name": "matrix", "role": "viewer"}),
    ("DELETE", "/tokens/999999", None),
    ("GET", "/audit", None),
]
OK = {"GET": 200, "POST": 200, "DELETE": 404}  # what the allowed role gets (the token to delete is unknown)


def call(client: httpx.Client, method: str, path: str, body: Any) -> httpx.Response:
    return client.request(method, path, json=body) if body is not None else client.request(method, path)


@pytest.mark.parametrize(
    ("role", "allowed"),
    [("viewer", {"read"}), ("marketer", {"read", "write"}), ("admin", {"read", "write", "admin"})],
)
def test_each_role_may_do_what_its_role_allows(web_world: WebWorld, role: str, allowed: set[str]) -> None:
    client = web_world.client(role)
    for kind, endpoints in (("read", READS), ("write", WRITES), ("admin", ADMIN)):
        for method, path, body in endpoints:
            answer = call(client, method, path, body)
            if kind in allowed:
                expected = 201 if path == "/tokens" and method == "POST" else OK[method]
                assert answer.status_code == expected, (role, method, path, answer.text)
            else:
                assert answer.status_code == 403, (role, method, path, answer.text)
                assert answer.json()["error"]["code"] == "forbidden"


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer scrm_unknown-token",
        "Bearer not-an-scrm-token",
        "Basic dXNlcjpwYXNz",
        "Bearer",
        "scrm_x",
    ],
)
def test_without_valid_credentials_every_endpoint_is_401(
    web_world: WebWorld, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    with httpx.Client(base_url=web_world.base_url, headers=headers) as client:
        for method, path, body in READS + WRITES + ADMIN:
            answer = call(client, method, path, body)
            assert answer.status_code == 401, (authorization, method, path, answer.text)
            assert answer.json()["error"]["code"] == "unauthenticated"
            assert answer.headers["WWW-Authenticate"] == "Bearer"


def test_tokens_created_used_and_revoked_through_the_api(web_world: WebWorld) -> None:
    admin = web_world.client("admin")
    created = admin.post("/tokens", json={"name": "reporting", "role": "viewer"})
    assert created.status_code == 201, created.text
    row = created.json()
    token = row["token"]
    assert token.startswith(row["prefix"]) and row["role"] == "viewer" and row["revoked_at"] is None
    listed = admin.get("/tokens", params={"limit": 500}).json()
    mine = next(t for t in listed["items"] if t["id"] == row["id"])
    assert "token" not in mine and token not in str(listed) and mine["name"] == "reporting"
    reporting = web_world.client(token=token)
    assert reporting.get("/customers").status_code == 200
    assert reporting.get("/tokens").status_code == 403
    revoked = admin.delete(f"/tokens/{row['id']}")
    assert revoked.status_code == 200 and revoked.json() == {"id": row["id"], "revoked": True}
    refused = reporting.get("/customers")
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthenticated"
    again = admin.delete(f"/tokens/{row['id']}")
    assert again.status_code == 404 and again.json()["error"]["code"] == "not_found"
    actions = admin.get("/audit", params={"target": "reporting"}).json()["items"]
    assert [(a["action"], a["actor"]) for a in actions] == [("token.create", "token:test-admin")]
    assert actions[0]["detail"]["id"] == row["id"] and token not in str(actions)
    revokes = admin.get("/audit", params={"action": "token.revoke", "target": str(row["id"])}).json()
    assert [a["actor"] for a in revokes["items"]] == ["token:test-admin"]
    assert web_world.count("audit_log", "WHERE detail LIKE :t", t=f"%{token}%") == 0


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x", "role": "root"},
        {"name": "", "role": "viewer"},
        {"name": "   ", "role": "viewer"},
        {"name": "x" * 101, "role": "viewer"},
        {"name": "a\x00b", "role": "viewer"},
        {"role": "viewer"},
        {"name": "x"},
        ["x", "viewer"],
    ],
)
def test_bad_token_requests_are_422_and_create_nothing(web_world: WebWorld, body: Any) -> None:
    before = web_world.count("api_token")
    answer = web_world.client("admin").post("/tokens", json=body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["code"] == "invalid"
    assert web_world.count("api_token") == before


@pytest.mark.parametrize("token_id", ["0", "-1", "x", str(2**40)])
def test_bad_token_ids_are_422(web_world: WebWorld, token_id: str) -> None:
    answer = web_world.client("admin").delete(f"/tokens/{token_id}")
    assert answer.status_code == 422 and answer.json()["error"]["code"] == "invalid"


def test_audit_log_filters_and_pages(web_world: WebWorld) -> None:
    admin = web_world.client("admin")
    for n in range(3):
        assert admin.post("/tokens", json={"name": f"page-{n}", "role": "marketer"}).status_code == 201
    everything = admin.get("/audit", params={"limit": 500}).json()
    assert everything["total"] == web_world.count("audit_log") == len(everything["items"])
    ids = [e["id"] for e in everything["items"]]
    assert ids == sorted(ids, reverse=True)
    by_prefix = admin.get("/audit", params={"action": "token.", "limit": 2}).json()
    assert by_prefix["total"] == web_world.count("audit_log", "WHERE action LIKE 'token.%'")
    assert len(by_prefix["items"]) == 2 and by_prefix["items"][0]["target"] == "page-2"
    second = admin.get("/audit", params={"action": "token.", "limit": 2, "offset": 1}).json()
    assert second["items"][0] == by_prefix["items"][1]
    cli = admin.get("/audit", params={"actor": "cli", "limit": 500}).json()
    assert {e["target"] for e in cli["items"]} >= {"test-admin", "test-marketer", "test-viewer"}
    assert admin.get("/audit", params={"action": "no.such"}).json()["total"] == 0
    assert admin.get("/audit", params={"action": "%"}).json()["total"] == 0
    for params in ({"limit": 0}, {"offset": -1}, {"action": ""}, {"actor": "x" * 201}, {"target": "\x00"}):
        answer = admin.get("/audit", params=params)
        assert answer.status_code == 422, (params, answer.text)
