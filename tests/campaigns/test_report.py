"""The campaign report: per variant and control, replies and purchases in the attribution window."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from campaigns.report import campaign_report, newcombe_interval
from scrm.cli import cli
from scrm.models import Delivery, Interaction, Purchase
from tests.campaigns.conftest import World

delivery_t = Delivery.__table__  # type: ignore[attr-defined]
AB = """
[campaign]
name = "ab"
action = "template"
template_id = "TPL_EVENT"
control_percent = 30
seed = 5
attribution_days = 7
[campaign.fields]
first = "Hello"
[[campaign.variants]]
name = "a"
[[campaign.variants]]
name = "b"
[audience]
subscribed = true
"""


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """SQLite only: what is tested here is logic, the storage paths run on both in test_dispatch."""
    return f"sqlite:///{tmp_path / 'scrm.db'}"


def test_report_counts_replies_and_purchases_in_the_window(world: World, runner: CliRunner) -> None:
    w = world
    w.campaign("ab", AB)
    w.run(w.campaign("ab", AB))
    with w.store.connect() as conn:
        rows = conn.execute(
            sa.select(delivery_t.c.customer_id, delivery_t.c.variant, delivery_t.c.status)
        ).all()
    groups: dict[str, list[int]] = {}
    for cid, variant, status in rows:
        if status in ("sent", "control"):
            groups.setdefault(variant, []).append(cid)
    assert set(groups) == {"a", "b", "control"}
    # a replies from a third of "a", a tenth of control; purchases: half of "b"; late ones do not count
    repliers = groups["a"][::3] + groups["control"][::10]
    buyers = groups["b"][::2]
    late = groups["a"][1::3]
    t = w.now + timedelta(days=1)
    i, p = Interaction.__table__, Purchase.__table__  # type: ignore[attr-defined]
    with w.store.connect() as conn:
        for n, cid in enumerate(repliers + late):
            at = t if cid in repliers else w.now + timedelta(days=8)
            conn.execute(
                sa.insert(i).values(
                    platform="wechat", external_id=f"r{n}", kind="text", customer_id=cid, occurred_at=at
                )
            )
        for n, cid in enumerate(buyers):
            conn.execute(
                sa.insert(p).values(
                    source="shop",
                    order_id=f"o{n}",
                    customer_id=cid,
                    amount_minor=100,
                    currency="CNY",
                    occurred_at=t,
                )
            )
    report = {g.group: g for g in campaign_report(w.store, "ab", 7)}
    assert [g for g in report] == ["a", "b", "control"]
    for name, members in groups.items():
        g = report[name]
        assert g.assigned == len(members)
        assert g.sent == (0 if name == "control" else len(members))
        assert g.replied == len(set(members) & set(repliers))
        assert g.purchased == len(set(members) & set(buyers))
    a, c = report["a"], report["control"]
    assert a.reply_uplift == pytest.approx(newcombe_interval(a.replied, a.assigned, c.replied, c.assigned))
    diff, low, high = a.reply_uplift  # type: ignore[misc]
    assert diff == pytest.approx(a.replied / a.assigned - c.replied / c.assigned) and low < diff < high
    assert low > 0  # a third against a tenth: significant at 95 %
    result = runner.invoke(cli, ["--config", str(w.config), "campaign", "report", "ab", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert [g["group"] for g in data["groups"]] == ["a", "b", "control"]
    assert data["groups"][1]["purchased"] == report["b"].purchased
    listing = runner.invoke(cli, ["--config", str(w.config), "campaign", "list", "--json"])
    assert listing.exit_code == 0, listing.output
    (item,) = json.loads(listing.output)
    assert item["name"] == "ab" and item["latest_run"]["status"] == "done" and item["variants"] == ["a", "b"]
    table = runner.invoke(cli, ["--config", str(w.config), "campaign", "report", "ab"])
    assert table.exit_code == 0 and "within 7 days" in table.output and "vs control: replies" in table.output


def test_cli_dry_run_then_run(world: World, runner: CliRunner) -> None:
    w = world
    w.campaign("ab", AB)
    base = ["--config", str(w.config), "campaign", "run", "ab"]
    dry = runner.invoke(cli, [*base, "--dry-run", "--json"])
    assert dry.exit_code == 0, dry.output
    planned = json.loads(dry.output)
    assert planned["dry_run"] and planned["status"]["would_send"] > 0 and w.sim.sent == []
    real = runner.invoke(cli, [*base, "--at", "2026-10-27 08:00", "--json"])
    assert real.exit_code == 0, real.output
    done = json.loads(real.output)
    assert done["status"]["sent"] + done["status"].get("skipped", 0) == planned["status"]["would_send"]
    assert done["run_key"] == "ab@2026-10-27T00:00:00Z"
    again = runner.invoke(cli, [*base, "--at", "2026-10-27 08:00", "--json"])
    assert json.loads(again.output)["sent_now"] == 0
    bad = runner.invoke(cli, ["--config", str(w.config), "campaign", "run", "nope"])
    assert bad.exit_code == 1 and "no campaign 'nope'" in bad.output
