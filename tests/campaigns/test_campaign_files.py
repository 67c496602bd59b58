"""Campaign files: what a bad one says (file and line), and the seeded assignment to groups."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from campaigns.campaign import assign, load_campaign, load_campaigns
from scrm.errors import CampaignError

GOOD = """[campaign]
name = "spring"
action = "text"
template = "hello.txt.j2"
control_percent = 10
seed = 4

[[campaign.variants]]
name = "a"
weight = 3

[[campaign.variants]]
name = "b"

[audience]
stage = "active"
"""


@pytest.mark.parametrize(
    ("change", "line", "message"),
    [
        (("control_percent = 10", "control_pct = 10"), 5, "unknown key 'control_pct' in [campaign]"),
        (('action = "text"', 'action = "sms"'), 3, "unknown action 'sms'"),
        (("weight = 3", "weight = 3\ncolour = 1"), 11, "unknown key 'colour' in a variant"),
        (('stage = "active"', 'stage = { is = "active" }'), 16, "unknown operator 'is' for stage"),
        (('stage = "active"', "stag = 1"), 16, "unknown field 'stag'"),
        (
            ("seed = 4", 'seed = 4\n[campaign.trigger]\nevent = "birthday"'),
            8,
            "unknown trigger event 'birthday'",
        ),
        (
            ("seed = 4", 'seed = 4\n[campaign.schedule]\ncron = "0 9 * * *"\nat = "2026-01-01"'),
            7,
            "exactly one",
        ),
        (('name = "b"', 'name = "control"'), 13, "cannot be called 'control'"),
    ],
)
def test_bad_campaign_files_name_file_and_line(
    tmp_path: Path, change: tuple[str, str], line: int, message: str
) -> None:
    path = tmp_path / "spring.toml"
    path.write_text(GOOD.replace(*change), encoding="utf-8")
    with pytest.raises(CampaignError) as info:
        load_campaign(path)
    assert str(info.value).startswith(f"{path}, line {line}: ")
    assert message in str(info.value)


def test_groups_are_seeded_weighted_and_stable(tmp_path: Path) -> None:
    (tmp_path / "spring.toml").write_text(GOOD, encoding="utf-8")
    (tmp_path / "segment.toml").write_text('[segment.where]\nrole = "leader"\n', encoding="utf-8")
    campaigns = load_campaigns(tmp_path)  # the segment file is not a campaign
    assert list(campaigns) == ["spring"]
    c = campaigns["spring"]
    groups = Counter(assign(c, i) for i in range(20_000))
    assert groups["control"] == pytest.approx(2_000, rel=0.08)
    assert groups["a"] / groups["b"] == pytest.approx(3.0, rel=0.08)
    other = load_campaign(tmp_path / "spring.toml")
    assert [assign(other, i) for i in range(500)] == [assign(c, i) for i in range(500)]
    reseeded = type(c)(**{**c.__dict__, "seed": 5})
    assert [assign(reseeded, i) for i in range(500)] != [assign(c, i) for i in range(500)]
