"""The rescore end to end, on SQLite and PostgreSQL: store -> `scrm score` -> snapshots -> reports.

The store is filled as a user's would be: purchases imported through the CLI, followers, referrals and
shares read inserted as the WeChat sync stores them. Li spent 2,000 CNY and has a following (eight
followers referred by her, who read what she shares); Wang spent 5,000 CNY and nobody listens to him;
Zhao leads a second circle; Bo reads both and bridges them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from graph import funnels
from graph.pipeline import rescore
from graph.reports import churn_report
from scrm.cli import cli
from scrm.config import Settings, load_settings
from scrm.errors import ScrmError, StoreError
from scrm.models import Account, Customer, CustomerScore, Follow, Identity, Interaction, Relation, ScoreRun
from scrm.store import Store

HEADER = "order_id,amount,time,phone,name\n"
T0 = datetime(2026, 6, 1, tzinfo=UTC)
run_t = ScoreRun.__table__  # type: ignore[attr-defined]
score_t = CustomerScore.__table__  # type: ignore[attr-defined]
REFUSING = [["top"], ["communities"], ["explain", "1"], ["funnel"], ["churn"]]


def scrm(runner: CliRunner, config: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(cli, ["--config", str(config), *args], catch_exceptions=False)
    return result.exit_code, result.output


def scrm_json(runner: CliRunner, config: Path, *args: str) -> Any:
    code, out = scrm(runner, config, *args, "--json")
    assert code == 0, out
    return json.loads(out)


def _import(runner: CliRunner, config: Path, path: Path, rows: list[str]) -> None:
    path.write_text(HEADER + "\n".join(rows) + "\n", "utf-8")
    code, out = scrm(runner, config, "import", "purchases", str(path), "--json")
    assert code == 0, out


def _customers(store: Store, *names: str) -> dict[str, int]:
    """Customers by name, created (as the follower sync would) when not there yet."""
    with store.session() as s:
        known = {c.display_name: c.id for c in s.exec(sa.select(Customer)).scalars()}  # type: ignore[call-overload]
        for name in names:
            if name not in known:
                customer = Customer(display_name=name)
                s.add(customer)
                s.flush()
                known[name] = customer.id
    return known


def _follow(store: Store, ids: list[int], at: datetime) -> None:
    with store.session() as s:
        account = s.exec(sa.select(Account)).scalars().one()  # type: ignore[call-overload]
        for customer in ids:
            s.add(Follow(account_id=account.id, customer_id=customer, subscribed_at=at))


def _shares_read(store: Store, sharer: int, readers: list[int], at: datetime, tag: str) -> None:
    with store.session() as s:
        for reader in readers:
            s.add(
                Interaction(
                    platform="wechat",
                    external_id=f"{tag}-{sharer}-{reader}",
                    kind="share_read",
                    customer_id=sharer,
                    target_customer_id=reader,
                    occurred_at=at,
                )
            )


def _referrals(store: Store, referrer: int, referred: list[int], at: datetime) -> None:
    with store.session() as s:
        for customer in referred:
            s.add(
                Relation(kind="referred_by", source_id=customer, target_id=referrer, first_at=at, last_at=at)
            )


@pytest.fixture
def ready(runner: CliRunner, config_file: Path) -> Path:
    code, out = scrm(runner, config_file, "init")
    assert code == 0, out
    return config_file


@pytest.fixture
def shop(runner: CliRunner, ready: Path, tmp_path: Path) -> tuple[Path, Store, dict[str, int]]:
    """The store described in the module docstring, not scored yet."""
    _import(
        runner,
        ready,
        tmp_path / "orders.csv",
        [
            "L1,2000,2026-05-10 10:00,13800000001,Li",
            "W1,5000,2026-05-10 11:00,13800000002,Wang",
            "Z1,500,2026-04-01 10:00,13800000003,Zhao",
            "Z2,300,2026-05-15 10:00,13800000003,Zhao",
            *(
                f"X{i},{100 + 40 * i},2026-0{1 + i % 5}-0{1 + i % 9} 09:00,1390000{i:04d},Buyer{i}"
                for i in range(12)
            ),
        ],
    )
    settings = load_settings(ready)
    store = Store(settings.database_url)
    fans = [f"Fan{i}" for i in range(8)]
    circle = [f"Pal{i}" for i in range(6)]
    people = _customers(store, *fans, *circle, "Bo")
    with store.session() as s:  # the follower sync learnt Fan0's phone
        s.add(Identity(customer_id=people["Fan0"], kind="phone", value="+8613700000000", source="test"))
    _follow(store, [people[n] for n in (*fans, *circle, "Bo")], T0 - timedelta(days=100))
    _referrals(store, people["Li"], [people[n] for n in fans], T0 - timedelta(days=60))
    _shares_read(store, people["Li"], [people[n] for n in (*fans, "Bo")], T0 - timedelta(days=20), "li")
    _shares_read(store, people["Zhao"], [people[n] for n in (*circle, "Bo")], T0 - timedelta(days=20), "zhao")
    for i, name in enumerate(circle):  # Zhao's circle also talk among themselves
        _shares_read(
            store, people[name], [people[circle[(i + 1) % len(circle)]]], T0 - timedelta(days=30), "pal"
        )
    yield ready, store, people
    store.close()


@pytest.mark.parametrize("args", REFUSING, ids=lambda a: a[0])
def test_reports_refuse_before_any_score_run(runner: CliRunner, ready: Path, args: list[str]) -> None:
    code, out = scrm(runner, ready, *args)
    assert code == 1 and "run `scrm score` first" in out


def test_score_then_reports(runner: CliRunner, shop: tuple[Path, Store, dict[str, int]]) -> None:
    config, _, people = shop
    report = scrm_json(runner, config, "score", "--as-of", "2026-06-01")
    assert report["customers"] == len(people) == 30
    # ties summed per pair: fans -> Li (referred and read), Bo -> Li, the circle and Bo -> Zhao, the circle
    assert report["edges"] == 8 + 1 + 6 + 1 + 6
    assert report["purchases"] == 16 and report["followers"] == 15
    assert report["communities"] >= 2 and 0.2 < report["modularity"] < 1
    assert sum(report["stages"].values()) == 30 and report["stages"]["prospect"] == 15
    assert report["stage_changes"] == 30  # everyone enters a first stage

    top = scrm_json(runner, config, "top", "--limit", "100")
    assert [r["customer_id"] for r in top["customers"]][:1] == [people["Li"]]
    rank = {r["customer_id"]: i for i, r in enumerate(top["customers"])}
    assert rank[people["Li"]] < rank[people["Wang"]]  # 2,000 CNY with a following beats 5,000 alone
    for row in top["customers"]:
        assert sum(row["points"].values()) == pytest.approx(row["social_value"], abs=0.05)
    by_clv = [
        r["customer_id"]
        for r in scrm_json(runner, config, "top", "--by", "clv", "--limit", "100")["customers"]
    ]
    assert by_clv.index(people["Wang"]) < by_clv.index(
        people["Li"]
    )  # same day, one order each: 5,000 > 2,000

    li = scrm_json(runner, config, "explain", str(people["Li"]))
    assert li["reach_direct"] == 9 and li["referral_reach"] == 8 and li["is_leader"]
    assert li["monetary_minor"] == 200_000 and li["frequency"] == 0 and len(li["rfm"]) == 3
    assert sum(c["points"] for c in li["components"]) == pytest.approx(li["social_value"], abs=0.05)
    assert [h["run_id"] for h in li["history"]] == [top["run_id"]]
    wang = scrm_json(runner, config, "explain", str(people["Wang"]))
    assert wang["reach_two_hop"] == 0 and wang["social_value"] < li["social_value"]

    communities = scrm_json(runner, config, "communities")["communities"]
    leaders = {c["leaders"][0]["id"]: c for c in communities}
    assert people["Li"] in leaders and people["Zhao"] in leaders
    assert leaders[people["Li"]]["community_id"] != leaders[people["Zhao"]]["community_id"]
    assert sum(c["modularity_share"] for c in communities) == pytest.approx(report["modularity"], abs=1e-3)
    in_li = scrm_json(runner, config, "top", "--community", str(leaders[people["Li"]]["community_id"]))
    assert {r["community_id"] for r in in_li["customers"]} == {leaders[people["Li"]]["community_id"]}

    funnel = scrm_json(runner, config, "funnel")
    assert {s["stage"]: s["customers"] for s in funnel["stages"] if s["customers"]} == report["stages"]
    assert {s["stage"]: s["entered"] for s in funnel["stages"] if s["entered"]} == report["stages"]
    assert funnel["moves"] == []


def _stages(runner: CliRunner, config: Path) -> dict[int, str]:
    rows = scrm_json(runner, config, "top", "--limit", "1000")["customers"]
    return {r["customer_id"]: r["stage"] for r in rows}


def test_a_second_run_keeps_community_ids_and_records_stage_changes(
    runner: CliRunner, shop: tuple[Path, Store, dict[str, int]], tmp_path: Path
) -> None:
    config, store, people = shop
    settings = load_settings(config)
    first = rescore(store, settings, now=T0)
    before = _stages(runner, config)
    communities_before = {
        c["leaders"][0]["id"]: c["community_id"]
        for c in scrm_json(runner, config, "communities")["communities"]
    }
    # Half a year later: Fan0 bought for the first time, a new follower arrived, the rest is silent.
    later = T0 + timedelta(days=200)
    _import(runner, config, tmp_path / "more.csv", ["F1,99,2026-12-01 10:00,13700000000,Fan0"])
    newcomer = _customers(store, "Newcomer")["Newcomer"]
    _follow(store, [newcomer], later - timedelta(days=1))
    second = rescore(store, settings, now=later)
    assert second.run_id > first.run_id and second.customers == first.customers + 1
    after = _stages(runner, config)
    communities_after = {
        c["leaders"][0]["id"]: c["community_id"]
        for c in scrm_json(runner, config, "communities")["communities"]
    }
    assert communities_after == communities_before  # same circles, same ids

    fan0 = people["Fan0"]
    assert (before[fan0], after[fan0]) == ("prospect", "new")
    changed = {c for c in after if before.get(c) != after[c]}
    assert second.stage_changes == len(changed) and newcomer in changed
    with store.connect() as conn:
        moves = conn.execute(
            sa.text("SELECT customer_id, from_stage, to_stage FROM stage_change WHERE run_id = :r"),
            {"r": second.run_id},
        ).all()
    assert {m.customer_id: (m.from_stage, m.to_stage) for m in moves} == {
        c: (before.get(c, ""), after[c]) for c in changed
    }
    funnel = scrm_json(runner, config, "funnel")
    assert {(m["from"], m["to"]) for m in funnel["moves"]} == {
        (before[c], after[c]) for c in changed if c in before
    }
    rates = {(c["from"], c["to"]): c["rate"] for c in funnel["conversion"]}
    assert rates[("prospect", "new")] == pytest.approx(1 / 16)  # Fan0, of 15 prospects and the newcomer

    at_risk = {c for c, s in after.items() if s == "at_risk"}
    churn = scrm_json(runner, config, "churn")
    warnings = churn["warnings"]
    assert {w["customer_id"] for w in warnings} == at_risk and churn["total"] == len(at_risk)
    clv = [w["clv_minor"] for w in warnings]
    assert clv == sorted(clv, reverse=True)  # the most valuable first
    assert len(scrm_json(runner, config, "churn", "--limit", "2")["warnings"]) == min(2, len(at_risk))
    at_risk_before = {c for c, s in before.items() if s == "at_risk"}
    assert second.new_churn_warnings == len(at_risk - at_risk_before)
    assert second.resolved_churn_warnings == len(at_risk_before - at_risk)
    assert all(w["reasons"] for w in warnings)
    explained = scrm_json(runner, config, "explain", str(fan0))
    assert [h["stage"] for h in explained["history"]] == ["new", "prospect"]
    assert explained["stage_from"] == "prospect" and "first purchase" in explained["stage_reason"]


def _churn_pages(store: Store) -> list[Any]:
    pages = [churn_report(store, limit=n, offset=o)[1:] for n, o in ((1, 0), (2, 0), (2, 1), (2, 2), (50, 3))]
    return [*pages, churn_report(store)[1:]]


def test_the_funnel_and_churn_head_are_kept_with_the_run_and_equal_the_computed_ones(
    runner: CliRunner,
    shop: tuple[Path, Store, dict[str, int]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The run keeps its funnel and its first open churn warnings (one row to read); they equal the
    ones computed from every stage change and warning; a run written before they were kept (no
    ``funnel`` or ``churn`` in its summary) gets them computed, the same."""
    config, store, _people = shop
    monkeypatch.setattr(funnels, "CHURN_HEAD", 2)  # pages beyond the kept head read the store
    settings = load_settings(config)
    rescore(store, settings, now=T0)
    _import(runner, config, tmp_path / "more.csv", ["F1,99,2026-12-01 10:00,13700000000,Fan0"])
    second = rescore(store, settings, now=T0 + timedelta(days=200))
    with store.connect() as conn:
        computed = funnels.compute_funnel(conn, second.run_id)
        query = sa.select(run_t.c.summary).where(run_t.c.id == second.run_id)
        summary = json.loads(conn.execute(query).scalar_one())
    assert summary["funnel"] == computed
    assert computed["moves"] and any(c["rate"] for c in computed["conversion"])  # a real funnel, two runs
    stored = scrm_json(runner, config, "funnel")
    assert {k: stored[k] for k in computed} == computed
    assert summary["churn"]["open"] == churn_report(store)[1] > 2 and len(summary["churn"]["head"]) == 2
    kept_pages = _churn_pages(store)
    del summary["funnel"], summary["churn"]
    with store.connect() as conn:
        conn.execute(sa.update(run_t).where(run_t.c.id == second.run_id).values(summary=json.dumps(summary)))
    assert scrm_json(runner, config, "funnel") == stored  # an older run: computed, the same answer
    assert _churn_pages(store) == kept_pages


def _with(settings: Settings, **scoring: Any) -> Settings:
    return settings.model_copy(update={"scoring": settings.scoring.model_copy(update=scoring)})


def test_a_failed_run_leaves_the_previous_snapshot(
    runner: CliRunner, shop: tuple[Path, Store, dict[str, int]]
) -> None:
    config, store, _ = shop
    settings = load_settings(config)
    good = rescore(store, settings, now=T0)
    with pytest.raises(ScrmError, match="nope"):
        rescore(store, _with(settings, community_method="nope"), now=T0 + timedelta(days=1))
    with store.connect() as conn:
        runs = conn.execute(sa.select(run_t).order_by(run_t.c.id)).all()
        failed_rows = conn.execute(
            sa.select(sa.func.count()).select_from(score_t).where(score_t.c.run_id == runs[-1].id)
        ).scalar_one()
    assert [r.status for r in runs] == ["done", "failed"] and failed_rows == 0
    assert "nope" in json.loads(runs[-1].summary)["error"]
    assert scrm_json(runner, config, "top")["run_id"] == good.run_id


def test_a_run_that_finished_meanwhile_is_not_overwritten(shop: tuple[Path, Store, dict[str, int]]) -> None:
    config, store, _ = shop
    settings = load_settings(config)
    rescore(store, settings, now=T0)
    inner: list[int] = []

    def meanwhile(stage: str, done: int, total: int) -> None:
        if stage == "writing the snapshot" and not inner:
            inner.append(rescore(store, settings, now=T0 + timedelta(days=1)).run_id)

    with pytest.raises(StoreError, match="finished while run"):
        rescore(store, settings, now=T0 + timedelta(days=2), progress=meanwhile)
    with store.connect() as conn:
        runs = conn.execute(sa.select(run_t.c.id, run_t.c.status).order_by(run_t.c.id)).all()
    assert [r.status for r in runs] == ["done", "failed", "done"] and runs[2].id == inner[0]


def test_old_snapshots_are_pruned(shop: tuple[Path, Store, dict[str, int]]) -> None:
    config, store, _ = shop
    settings = _with(load_settings(config), keep_snapshots=2)
    runs = [rescore(store, settings, now=T0 + timedelta(days=d)).run_id for d in range(3)]
    with store.connect() as conn:
        kept = conn.execute(sa.select(score_t.c.run_id).distinct().order_by(score_t.c.run_id)).scalars().all()
    assert kept == runs[1:]


def test_an_empty_store_scores_to_empty_reports(runner: CliRunner, ready: Path) -> None:
    report = scrm_json(runner, ready, "score")
    assert (report["customers"], report["edges"], report["communities"], report["stages"]) == (0, 0, 0, {})
    assert scrm_json(runner, ready, "top")["customers"] == []
    assert scrm_json(runner, ready, "churn")["warnings"] == []
    assert all(s["customers"] == 0 for s in scrm_json(runner, ready, "funnel")["stages"])


def test_explain_follows_a_merge_and_refuses_unknown_customers(
    runner: CliRunner, ready: Path, tmp_path: Path
) -> None:
    (tmp_path / "a.csv").write_text("order_id,amount,time,phone,email\nA1,10,2026-05-01,13800000001,\n")
    (tmp_path / "b.csv").write_text("order_id,amount,time,phone,email\nB1,20,2026-05-02,,li@x.cn\n")
    (tmp_path / "c.csv").write_text(
        "order_id,amount,time,phone,email\nC1,30,2026-05-03,13800000001,li@x.cn\n"
    )
    for name in ("a", "b", "c"):
        code, out = scrm(
            runner, ready, "import", "purchases", str(tmp_path / f"{name}.csv"), "--source", name
        )
        assert code == 0, out
    assert scrm_json(runner, ready, "score", "--as-of", "2026-06-01")["customers"] == 1
    explained = scrm_json(runner, ready, "explain", "2")  # the younger customer, merged into 1
    assert (explained["customer_id"], explained["merged_from"]) == (1, 2)
    assert explained["monetary_minor"] == 6000 and explained["frequency"] == 2
    code, out = scrm(runner, ready, "explain", "99")
    assert code == 1 and "no customer 99" in out


def test_a_store_failing_mid_write_rolls_the_whole_snapshot_back(
    runner: CliRunner, shop: tuple[Path, Store, dict[str, int]]
) -> None:
    config, store, _ = shop
    settings = load_settings(config)
    good = rescore(store, settings, now=T0)
    with store.connect() as conn:  # the last table the snapshot writes to goes missing
        conn.exec_driver_sql("DROP TABLE churn_warning")
    with pytest.raises(StoreError, match="previous snapshot is still the current one"):
        rescore(store, settings, now=T0 + timedelta(days=30))
    with store.connect() as conn:
        runs = conn.execute(sa.select(run_t.c.id, run_t.c.status).order_by(run_t.c.id)).all()
        written = {
            table: conn.execute(
                sa.text(f"SELECT count(*) FROM {table} WHERE run_id = :r"), {"r": runs[-1].id}
            ).scalar_one()
            for table in ("customer_score", "community", "stage_change")
        }
    assert [r.status for r in runs] == ["done", "failed"]
    assert written == {"customer_score": 0, "community": 0, "stage_change": 0}
    assert scrm_json(runner, config, "top")["run_id"] == good.run_id
