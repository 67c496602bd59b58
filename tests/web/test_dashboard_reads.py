"""The reads behind the overview and the community map (graph/overview.py, graph/community_map.py),
checked against the stored rows, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from graph.community_map import community_map
from graph.overview import overview
from graph.reports import community_report
from scrm.models import Follow, Interaction, Relation
from tests.web.world import WebWorld

ZONES = ("Asia/Shanghai", "America/Los_Angeles")


def _days(times: list[datetime], zone: ZoneInfo, first: date, last: date) -> Counter[str]:
    return Counter(
        t.astimezone(zone).date().isoformat() for t in times if first <= t.astimezone(zone).date() <= last
    )


def test_overview_counts_each_local_day_like_the_rows_say(web_world: WebWorld) -> None:
    follow = Follow.__table__  # type: ignore[attr-defined]
    inter = Interaction.__table__  # type: ignore[attr-defined]
    with web_world.store.connect() as conn:
        subscribed = list(conn.execute(sa.select(follow.c.subscribed_at)).scalars())
        unsubscribed = [t for t in conn.execute(sa.select(follow.c.unsubscribed_at)).scalars() if t]
        acted = list(conn.execute(sa.select(inter.c.occurred_at)).scalars())
    for name in ZONES:
        zone = ZoneInfo(name)
        data = overview(web_world.store, zone, days=60)
        assert len(data["days"]) == 60
        first, last = date.fromisoformat(data["days"][0]["day"]), date.fromisoformat(data["days"][-1]["day"])
        assert last == max(acted).astimezone(zone).date()  # the window ends at the latest interaction
        assert first == last - timedelta(days=59)
        for key, times in (("new", subscribed), ("lost", unsubscribed), ("interactions", acted)):
            expected = _days(times, zone, first, last)
            got = {d["day"]: d[key] for d in data["days"] if d[key]}
            assert got == dict(expected), (name, key)
            assert data[key] == sum(expected.values())
        assert data["interactions"] > 0 and data["new"] > 0
        assert data["followers"] == web_world.count("follow", "WHERE unsubscribed_at IS NULL")
        assert data["customers"] == web_world.count("customer", "WHERE merged_into_id IS NULL")


def test_the_overview_window_ends_now_when_activity_is_later_or_absent(web_world: WebWorld) -> None:
    zone = ZoneInfo("Asia/Shanghai")
    early = web_world.now - timedelta(days=400)
    data = overview(web_world.store, zone, days=7, now=early)
    assert data["days"][-1]["day"] == early.astimezone(zone).date().isoformat()
    assert data["interactions"] == 0


def test_the_community_map_is_bounded_and_draws_leaders_and_true_ties(web_world: WebWorld) -> None:
    _, report = community_report(web_world.store)
    small = community_map(web_world.store, nodes=12, communities=3)
    assert len(small["nodes"]) == 12 and len(small["categories"]) == 3
    leaders = [p["id"] for c in report[:3] for p in c["leaders"]]
    drawn = {n["id"] for n in small["nodes"]}
    assert set(leaders[:12]) <= drawn
    data = community_map(web_world.store, nodes=200, communities=5)
    nodes = {n["id"]: n for n in data["nodes"]}
    wanted = {c["community_id"] for c in report[:5]}
    assert {n["community"] for n in nodes.values()} <= wanted
    assert all(nodes[i]["leader"] for i in (p["id"] for c in report[:5] for p in c["leaders"]))
    relation = Relation.__table__  # type: ignore[attr-defined]
    with web_world.store.connect() as conn:
        ties = {
            (min(a, b), max(a, b))
            for a, b in conn.execute(sa.select(relation.c.source_id, relation.c.target_id))
            if a in nodes and b in nodes and a != b
        }
    assert {(link["source"], link["target"]) for link in data["links"]} == ties
    assert ties
    sizes = sorted((n["influence"], n["size"]) for n in nodes.values())
    assert [s for _, s in sizes] == sorted(s for _, s in sizes)  # bigger with more influence
