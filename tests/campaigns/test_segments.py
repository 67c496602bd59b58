"""Segments compiled to SQL select exactly the customers a direct reading of the store selects."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from campaigns.segments import latest_run, load_segment, parse_segment, preview
from scrm.cli import cli
from scrm.errors import CampaignError
from scrm.models import Customer, CustomerScore, CustomerTag, Follow, Interaction, Tag
from tests.campaigns.conftest import World

score_t = CustomerScore.__table__  # type: ignore[attr-defined]


def ids(world: World, where: dict[str, object]) -> set[int]:
    seg = parse_segment({"name": "t", "where": where})
    with world.store.connect() as conn:
        return set(conn.execute(seg.query(latest_run(world.store), world.now)).scalars())


def scores(world: World) -> list[dict[str, object]]:
    with world.store.connect() as conn:
        rows = conn.execute(sa.select(score_t).where(score_t.c.run_id == latest_run(world.store)))
        return [dict(r._mapping) for r in rows]


def test_score_filters_and_percentiles_match_the_snapshot(world: World) -> None:
    rows = scores(world)
    assert len(rows) > 250
    by_value = sorted(rows, key=lambda r: -float(r["social_value"]))  # type: ignore[arg-type]
    n = len(rows)
    # top 10%: cume_dist over descending values <= 0.1, ties included
    expected = {
        r["customer_id"] for r in rows if sum(o["social_value"] >= r["social_value"] for o in rows) / n <= 0.1
    }  # type: ignore[operator]
    assert ids(world, {"social_value": {"top_percent": 10}}) == expected
    assert 0 < len(expected) <= n // 10
    assert by_value[0]["customer_id"] in expected
    assert ids(world, {"social_value": {"gte": 50}}) == {
        r["customer_id"] for r in rows if r["social_value"] >= 50
    }  # type: ignore[operator]
    leaders = {r["customer_id"] for r in rows if r["is_leader"]}
    assert ids(world, {"role": "leader"}) == leaders
    bridges = {r["customer_id"] for r in rows if r["is_bridge"] and not r["is_leader"]}
    assert ids(world, {"role": "bridge"}) == bridges
    communities = sorted({r["community_id"] for r in rows if r["community_id"] is not None})[:2]
    assert ids(world, {"community": communities}) == {
        r["customer_id"] for r in rows if r["community_id"] in communities
    }
    stages = {r["stage"] for r in rows}
    stage = sorted(stages)[0]
    assert ids(world, {"stage": stage}) == {r["customer_id"] for r in rows if r["stage"] == stage}
    # and / or / not combine like sets
    a = ids(world, {"role": "leader"})
    b = ids(world, {"social_value": {"top_percent": 10}})
    assert ids(world, {"role": "leader", "social_value": {"top_percent": 10}}) == a & b
    assert ids(world, {"any": [{"role": "leader"}, {"social_value": {"top_percent": 10}}]}) == a | b
    everyone = ids(world, {"opted_out": False})
    assert ids(world, {"not": {"role": "leader"}}) == everyone - a


def test_follower_facts_match_the_store(world: World) -> None:
    f, t, ct, i = (m.__table__ for m in (Follow, Tag, CustomerTag, Interaction))  # type: ignore[attr-defined]
    with world.store.connect() as conn:
        follows = conn.execute(sa.select(f.c.customer_id, f.c.channel, f.c.unsubscribed_at)).all()
        tagged = conn.execute(sa.select(ct.c.customer_id, t.c.name).join(t, t.c.id == ct.c.tag_id)).all()
        last = dict(
            conn.execute(
                sa.select(i.c.customer_id, sa.func.max(i.c.occurred_at)).group_by(i.c.customer_id)
            ).all()
        )
        everyone = set(conn.execute(sa.select(Customer.__table__.c.id)).scalars())  # type: ignore[attr-defined]
    open_follow = {cid for cid, _, gone in follows if gone is None}
    assert ids(world, {"subscribed": True}) == open_follow
    assert ids(world, {"subscribed": False}) == everyone - open_follow
    kol = {cid for cid, ch, gone in follows if gone is None and ch.startswith("kol_")}
    assert kol and ids(world, {"channel": {"like": "kol_*"}}) == kol
    tag = sorted({name for _, name in tagged})[0]
    with_tag = {cid for cid, name in tagged if name == tag}
    assert ids(world, {"tags": [tag]}) == with_tag
    assert ids(world, {"tags": {"none": [tag]}}) == everyone - with_tag
    recent = {cid for cid, at in last.items() if at >= world.now - timedelta(days=7)}
    assert recent and ids(world, {"last_interaction": {"within_days": 7}}) == recent
    assert ids(world, {"last_interaction": {"before_days": 7}}) == everyone - recent


def test_values_are_bound_parameters_never_sql(world: World) -> None:
    hostile = "x' OR '1'='1"
    assert ids(world, {"channel": hostile}) == set()
    seg = parse_segment({"where": {"channel": hostile}}, source="s.toml")
    assert hostile not in str(seg.query(1))


@pytest.mark.parametrize(
    ("body", "line", "message"),
    [
        ('[segment.where]\nrole = "leader"\nsocial_valu = { gte = 3 }\n', 4, "unknown field 'social_valu'"),
        ("[segment.where]\nsocial_value = { top_percnt = 5 }\n", 3, "unknown operator 'top_percnt'"),
        ('[segment.where]\nstage = { in = "active" }\n', 3, "give a non-empty list"),
        ('[segment.where]\nrole = "captain"\n', 3, "give one of leader, bridge, member"),
        (
            '[segment.where]\n\nany = [\n  { stage = "new" },\n  { social = 1 },\n]\n',
            6,
            "unknown field 'social'",
        ),
    ],
)
def test_bad_segment_files_name_file_and_line(tmp_path: Path, body: str, line: int, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[segment]\n" + body, encoding="utf-8")
    with pytest.raises(CampaignError) as info:
        load_segment(path)
    assert f"{path}, line {line}: " in str(info.value)
    assert message in str(info.value)


def test_preview_and_its_command(world: World, runner: CliRunner) -> None:
    path = world.folder / "leaders.toml"
    path.write_text('[segment]\nname = "leaders"\n[segment.where]\nrole = "leader"\n', encoding="utf-8")
    count, sample = preview(world.store, load_segment(path), sample=5)
    assert count == len(ids(world, {"role": "leader"}))
    values = [s["social_value"] for s in sample]
    assert len(sample) == 5 and values == sorted(values, reverse=True)  # type: ignore[type-var]
    result = runner.invoke(cli, ["--config", str(world.config), "segment", "preview", str(path), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["count"] == count and data["sample"][0] == sample[0]
