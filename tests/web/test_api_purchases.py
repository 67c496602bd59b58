"""POST /purchases/import (a file) and /purchases/import/rows (JSON), on SQLite and PostgreSQL: stored
once, bad rows reported by line, bad files and bodies a 4xx that stores nothing, audited."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from scrm.web.api import purchases
from tests.web.world import WebWorld


def some_openids(world: WebWorld, n: int) -> list[str]:
    with world.store.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT value FROM identity WHERE kind = 'openid' ORDER BY id LIMIT :n"), {"n": n}
        )
        return [r[0] for r in rows]


def orders_csv(world: WebWorld, tag: str) -> bytes:
    """Seven orders: lines 2, 4 and 8 good; 3 (amount), 5 (time), 6 and 7 (no buyer) rejected."""
    a, b = some_openids(world, 2)
    return (
        "order_id,amount,time,openid,account,note\n"
        f"{tag}-1,128.50,2026-05-01 12:30,{a},brand,x\n"
        f"{tag}-2,not money,2026-05-01 12:30,{a},brand,x\n"
        f"{tag}-3,-20,2026-05-02T08:00:00+08:00,{b},brand,x\n"
        f"{tag}-4,10,,{b},brand,x\n"
        f"{tag}-5,99,1777777777,,,x\n"
        f"{tag}-6,1.00,2026-05-03,,,y\n"
        f"{tag}-7,5,2026-05-03,{b},brand,z\n"
    ).encode()


def audit_rows(world: WebWorld, action: str) -> list[dict[str, Any]]:
    with world.store.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT actor, target, detail FROM audit_log WHERE action = :a ORDER BY id"),
            {"a": action},
        ).all()
    return [{"actor": r.actor, "target": r.target, "detail": json.loads(r.detail)} for r in rows]


def test_a_csv_upload_is_stored_once_with_rejected_lines(web_world: WebWorld) -> None:
    tag = f"T{uuid.uuid4().hex[:8]}"
    before = web_world.count("purchase")
    client = web_world.client("marketer")
    files = {"file": ("orders.csv", orders_csv(web_world, tag), "text/csv")}
    first = client.post("/purchases/import", files=files, data={"source": "popup"})
    assert first.status_code == 200, first.text
    report = first.json()
    assert report["imported"] == 3 and report["already_stored"] == 0 and report["rows"] == 7
    assert [r["line"] for r in report["rejected"]] == [3, 5, 6, 7]
    assert "amount" in report["rejected"][0]["error"] and report["ignored_columns"] == ["note"]
    assert web_world.count("purchase") == before + 3
    assert web_world.count("purchase", "WHERE order_id LIKE :t AND source = 'popup'", t=f"{tag}-%") == 3
    again = client.post("/purchases/import", files=files, data={"source": "popup"}).json()
    assert again["imported"] == 0 and again["already_stored"] == 3
    assert web_world.count("purchase") == before + 3
    (entry, *_) = [e for e in audit_rows(web_world, "purchases.import") if e["target"] == "popup"]
    assert entry["actor"] == "token:test-marketer" and entry["detail"]["imported"] == 3
    assert entry["detail"]["rejected_total"] == 4 and report["rejected_total"] == 4


def test_json_rows(web_world: WebWorld) -> None:
    tag = f"J{uuid.uuid4().hex[:8]}"
    (openid,) = some_openids(web_world, 1)
    rows = [
        {
            "order_id": f"{tag}-1",
            "amount": 12.5,
            "time": "2026-05-01 12:00",
            "openid": openid,
            "account": "brand",
        },
        {"order_id": f"{tag}-2", "amount": "7", "time": 1777777777, "phone": "13800138000"},
        {"order_id": f"{tag}-3", "time": "2026-05-01"},
    ]
    client = web_world.client("admin")
    report = client.post("/purchases/import/rows", json={"source": "api", "rows": rows}).json()
    assert report["imported"] == 2 and report["customers_created"] == 1
    assert report["rejected"] == [{"line": 3, "error": "amount is empty"}]
    again = client.post("/purchases/import/rows", json={"source": "api", "rows": rows[:2]}).json()
    assert again["imported"] == 0 and again["already_stored"] == 2
    view = client.get("/customers", params={"q": "13800138000"}).json()["items"]
    assert view and view[0]["orders"] >= 1


@pytest.mark.parametrize(
    "body",
    [
        {"rows": []},
        {"rows": "order_id,amount"},
        {"rows": [{"order_id": "x", "amount": {"a": 1}}]},
        {"rows": [{"order_id": "a\x00b", "amount": 1, "time": "2026-05-01", "phone": "13800138000"}]},
        {"source": "", "rows": [{"order_id": "x"}]},
        {"source": "a\nb", "rows": [{"order_id": "x"}]},
        {"rows": [{"order_id": "x"}] * 10_001},
    ],
)
def test_bad_row_bodies_are_422_and_store_nothing(web_world: WebWorld, body: Any) -> None:
    before = web_world.count("purchase")
    answer = web_world.client("marketer").post("/purchases/import/rows", json=body)
    assert answer.status_code == 422, answer.text[:300]
    assert answer.json()["error"]["code"] == "invalid"
    assert web_world.count("purchase") == before


@pytest.mark.parametrize(
    ("content", "form"),
    [
        (b"no,header,here\n1,2,3\n", {}),
        (b"", {}),
        (b"order_id,amount,time,phone\n" + "订单,1,2026-05-01,13800138000\n".encode("gbk"), {}),
        (b"\x00\x01\x02garbage\xff\xfe", {}),
        (b'{"order_id": "x"}\n', {"format": "csv"}),
    ],
)
def test_unreadable_files_are_422_invalid_file(
    web_world: WebWorld, content: bytes, form: dict[str, str]
) -> None:
    before = web_world.count("purchase")
    answer = web_world.client("marketer").post(
        "/purchases/import", files={"file": ("o.csv", content, "text/csv")}, data=form
    )
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert (
        error["code"] == "invalid_file"
        and error["message"].startswith("o.csv")
        and "/tmp" not in error["message"]
    )
    assert web_world.count("purchase") == before


def test_bad_forms_are_422(web_world: WebWorld) -> None:
    client = web_world.client("marketer")
    assert client.post("/purchases/import", data={"source": "x"}).status_code == 422
    files = {"file": ("o.csv", b"order_id,amount,time\n", "text/csv")}
    for form in ({"format": "xlsx"}, {"encoding": "ebcdic"}, {"source": "a\x01b"}, {"source": "x" * 101}):
        answer = client.post("/purchases/import", files=files, data=form)
        assert answer.status_code == 422 and answer.json()["error"]["code"] == "invalid", answer.text


def test_the_answer_lists_the_first_rejected_rows(
    web_world: WebWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(purchases, "MAX_REJECTED", 2)
    report = (
        web_world.client("marketer")
        .post("/purchases/import", files={"file": ("o.csv", orders_csv(web_world, "R"))})
        .json()
    )
    assert report["rejected_total"] == 4 and [r["line"] for r in report["rejected"]] == [3, 5]


def test_a_file_too_large_is_413(web_world: WebWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(purchases, "MAX_UPLOAD_BYTES", 1000)
    before = web_world.count("purchase")
    content = orders_csv(web_world, "BIG") + b"x" * 2000
    answer = web_world.client("marketer").post("/purchases/import", files={"file": ("o.csv", content)})
    assert answer.status_code == 413 and answer.json()["error"]["code"] == "too_large"
    assert web_world.count("purchase") == before


def test_viewers_may_not_import(web_world: WebWorld) -> None:
    before = web_world.count("purchase")
    files = {"file": ("orders.csv", orders_csv(web_world, "V"), "text/csv")}
    answer = web_world.client("viewer").post("/purchases/import", files=files)
    assert answer.status_code == 403 and answer.json()["error"]["code"] == "forbidden"
    rows = {"rows": [{"order_id": "V-1", "amount": 1, "time": "2026-05-01", "phone": "13800138000"}]}
    assert web_world.client("viewer").post("/purchases/import/rows", json=rows).status_code == 403
    assert web_world.client(None).post("/purchases/import/rows", json=rows).status_code == 401
    assert web_world.count("purchase") == before
