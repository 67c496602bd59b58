"""Campaign definitions: audience + action + message + schedule or trigger + experiment, from TOML files.

A campaign file in the campaigns folder (``[campaigns] folder``)::

    [campaign]
    name = "invite_leaders"                 # default: the file name
    action = "text"                         # text | template | mass | tag | untag
    template = "invite_influencers.txt.j2"  # message template (templates/messages or the folder)
    text = "Hi {{ name }}, ..."             # or the message itself, inline (Jinja, in the sandbox)
    template_id = "TPL_EVENT"               # template message: the action's, or text's fallback
    control_percent = 10                    # seeded random hold-out group
    seed = 7
    attribution_days = 7                    # replies and purchases counted this long after sending
    send_time_optimisation = false          # send at the hour each customer usually interacts
    segment = "leaders.toml"                # an audience file of the folder (or a saved segment's
                                            # name, for campaigns saved from the web), or [audience]
    tag = "vip"                             # tag / untag: the tag; mass: send to this tag (sendall)

    [campaign.fields]                       # template message fields (Jinja strings)
    first = "{{ name }}, you are invited"

    [[campaign.variants]]                   # A/B: name, weight, template or text (and fields) of each
    name = "a"

    [campaign.schedule]                     # cron = "0 10 * * mon" | interval_minutes = 60 | at = "..."
    [campaign.trigger]                      # event = stage_change (to) | churn_warning | subscribe
                                            # (channel) | purchase | keyword (keyword)

Variants and the control group are assigned per customer from a hash of (seed, campaign, customer):
the same customer lands in the same group at every run and on every machine.
"""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from campaigns.segments import Locator, Segment, load_segment, parse_segment, read_toml
from scrm.errors import CampaignError

__all__ = [
    "ACTIONS",
    "EVENTS",
    "Campaign",
    "Variant",
    "assign",
    "find_campaign",
    "load_campaign",
    "load_campaigns",
]

ACTIONS = ("text", "template", "mass", "tag", "untag")
EVENTS = ("stage_change", "churn_warning", "subscribe", "purchase", "keyword")
CONTROL = "control"
_CAMPAIGN_KEYS = {
    "name",
    "description",
    "account",
    "action",
    "template",
    "text",
    "template_id",
    "url",
    "fields",
    "tag",
    "control_percent",
    "seed",
    "attribution_days",
    "send_time_optimisation",
    "segment",
    "variants",
    "schedule",
    "trigger",
}
_SCHEDULE_KEYS = {"cron", "interval_minutes", "at"}
_TRIGGER_KEYS = {"event", "to", "channel", "keyword"}


@dataclass(frozen=True)
class Variant:
    """One arm of the experiment: its message (template and template fields) and its weight."""

    name: str
    template: str
    fields: Mapping[str, str] = field(default_factory=dict)
    weight: float = 1.0
    text: str = ""  # the message inline (Jinja source), instead of a template file


@dataclass(frozen=True)
class Campaign:
    """A validated campaign."""

    name: str
    action: str
    audience: Segment
    variants: tuple[Variant, ...]
    source: str = "<string>"
    folder: Path | None = None
    description: str = ""
    account: str | None = None
    template_id: str = ""
    url: str = ""
    tag: str = ""
    control_percent: float = 0.0
    seed: int = 0
    attribution_days: float = 7.0
    send_time_optimisation: bool = False
    schedule: Mapping[str, Any] | None = None
    trigger: Mapping[str, Any] | None = None

    @property
    def sends_messages(self) -> bool:
        return self.action in ("text", "template", "mass")


def _unit(*parts: object) -> float:
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def assign(campaign: Campaign, customer_id: int) -> str:
    """The customer's group: ``"control"`` or a variant's name (seeded, stable across runs).

    >>> from campaigns.segments import Node
    >>> c = Campaign("c", "text", Segment("s", Node("all")), (Variant("a", "t"), Variant("b", "t")),
    ...              control_percent=20, seed=1)
    >>> groups = [assign(c, i) for i in range(10_000)]
    >>> round(groups.count("control") / 10_000, 2), round(groups.count("a") / 10_000, 1)
    (0.2, 0.4)
    >>> assign(c, 42) == assign(c, 42)
    True
    """
    if campaign.control_percent and _unit(campaign.seed, campaign.name, "control", customer_id) < (
        campaign.control_percent / 100.0
    ):
        return CONTROL
    total = sum(v.weight for v in campaign.variants)
    x = _unit(campaign.seed, campaign.name, "variant", customer_id) * total
    for variant in campaign.variants:
        x -= variant.weight
        if x < 0:
            return variant.name
    return campaign.variants[-1].name


def _need(value: Any, kind: type | tuple[type, ...], key: str, loc: Locator, what: str) -> Any:
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise loc.error(key, f"{key}: give {what}, not {value!r}")
    return value


def _variants(data: Mapping[str, Any], action: str, loc: Locator) -> tuple[Variant, ...]:
    base_fields = data.get("fields", {})
    _need(base_fields, dict, "fields", loc, "a table of template fields")
    raw = data.get("variants") or [{"name": "main"}]
    _need(raw, list, "variants", loc, "a list of [[campaign.variants]]")
    variants: list[Variant] = []
    for item in raw:
        _need(item, dict, "variants", loc, "tables")
        unknown = set(item) - {"name", "template", "text", "fields", "weight"}
        if unknown:
            key = sorted(unknown)[0]
            raise loc.error(
                key, f"unknown key {key!r} in a variant (known: name, template, text, fields, weight)"
            )
        name = str(item.get("name") or f"v{len(variants) + 1}")
        if name == CONTROL:
            raise loc.error(
                "name", "a variant cannot be called 'control' (the hold-out group is)", near=f'"{name}"'
            )
        template = str(item.get("template", data.get("template", "")))
        text = str(_need(item.get("text", data.get("text", "")), str, "text", loc, "the message text"))
        if template and text:
            raise loc.error("text", f"variant {name}: give a template file or a text, not both")
        fields = {**base_fields, **_need(item.get("fields", {}), dict, "fields", loc, "a table")}
        weight = float(_need(item.get("weight", 1.0), (int, float), "weight", loc, "a number"))
        if weight <= 0:
            raise loc.error("weight", f"variant {name}: weight must be positive")
        if action in ("text", "mass") and not template and not text:
            raise loc.error(
                "template", f"variant {name}: a {action} campaign needs a message template or text"
            )
        if action == "template" and not fields and not template and not text:
            raise loc.error("fields", f"variant {name}: a template message needs [campaign.fields]")
        variants.append(Variant(name, template, {str(k): str(v) for k, v in fields.items()}, weight, text))
    if len({v.name for v in variants}) != len(variants):
        raise loc.error("variants", "variant names must differ")
    return tuple(variants)


def _table(data: Any, keys: set[str], key: str, loc: Locator) -> Mapping[str, Any] | None:
    if data is None:
        return None
    _need(data, dict, key, loc, "a table")
    unknown = set(data) - keys
    if unknown:
        bad = sorted(unknown)[0]
        raise loc.error(bad, f"unknown key {bad!r} in [campaign.{key}] (known: {', '.join(sorted(keys))})")
    return dict(data)


def parse_campaign(
    data: Mapping[str, Any],
    *,
    source: str,
    text: str = "",
    folder: Path | None = None,
    segments: Mapping[str, Segment] | None = None,
) -> Campaign:
    """A :class:`Campaign` from a parsed campaign file (``[campaign]`` and optionally ``[audience]``).

    ``segments``: audiences that ``segment = NAME`` may name besides the files of the folder (the
    segments saved from the web, for the campaigns saved there).
    """
    loc = Locator(source, text)
    unknown_top = set(data) - {"campaign", "audience"}
    if unknown_top:
        key = sorted(unknown_top)[0]
        raise loc.error(key, f"unknown table [{key}] (known: [campaign], [audience])")
    c = data.get("campaign")
    if not isinstance(c, Mapping):
        raise CampaignError(f"{source}: no [campaign] table")
    unknown = set(c) - _CAMPAIGN_KEYS
    if unknown:
        key = sorted(unknown)[0]
        raise loc.error(
            key, f"unknown key {key!r} in [campaign] (known: {', '.join(sorted(_CAMPAIGN_KEYS))})"
        )
    name = str(c.get("name") or Path(source).stem)
    action = c.get("action", "text")
    if action not in ACTIONS:
        raise loc.error("action", f"unknown action {action!r} (known: {', '.join(ACTIONS)})")
    if "segment" in c and "audience" in data:
        raise loc.error("segment", "give either segment = FILE or an [audience] table, not both")
    if "segment" in c and segments is not None and str(c["segment"]) in segments:
        audience = segments[str(c["segment"])]
    elif "segment" in c:
        seg_path = Path(str(c["segment"]))
        if not seg_path.is_absolute():
            seg_path = (folder or Path(source).parent) / seg_path
        audience = load_segment(seg_path)
    elif "audience" in data:
        audience = parse_segment({"name": name, "where": data["audience"]}, source=source, text=text)
    else:
        raise CampaignError(f"{source}: no audience: add an [audience] table or segment = FILE")
    if action in ("tag", "untag") and not c.get("tag"):
        raise loc.error("action", f"a {action} campaign needs tag = NAME")
    if (
        action == "mass"
        and c.get("tag")
        and (len(c.get("variants") or [None]) > 1 or c.get("control_percent"))
    ):
        raise loc.error(
            "tag",
            "a mass send to a tag reaches the whole tag: no variants, no control group (use an audience)",
        )
    template_id = str(c.get("template_id", ""))
    if action == "template" and not template_id:
        raise loc.error("action", "a template campaign needs template_id")
    control = float(_need(c.get("control_percent", 0), (int, float), "control_percent", loc, "a number"))
    if not 0 <= control < 100:
        raise loc.error("control_percent", "control_percent must be in [0, 100)")
    schedule = _table(c.get("schedule"), _SCHEDULE_KEYS, "schedule", loc)
    if schedule is not None and len(schedule) != 1:
        raise loc.error("schedule", "give exactly one of cron, interval_minutes, at")
    trigger = _table(c.get("trigger"), _TRIGGER_KEYS, "trigger", loc)
    if trigger is not None and trigger.get("event") not in EVENTS:
        raise loc.error(
            "event", f"unknown trigger event {trigger.get('event')!r} (known: {', '.join(EVENTS)})"
        )
    return Campaign(
        name=name,
        action=action,
        audience=audience,
        variants=_variants(c, action, loc) if action not in ("tag", "untag") else (Variant("main", ""),),
        source=source,
        folder=folder,
        description=str(c.get("description", "")),
        account=str(c["account"]) if c.get("account") else None,
        template_id=template_id,
        url=str(c.get("url", "")),
        tag=str(c.get("tag", "")),
        control_percent=control,
        seed=int(_need(c.get("seed", 0), int, "seed", loc, "an integer")),
        attribution_days=float(
            _need(c.get("attribution_days", 7), (int, float), "attribution_days", loc, "days")
        ),
        send_time_optimisation=bool(c.get("send_time_optimisation", False)),
        schedule=schedule,
        trigger=trigger,
    )


def load_campaign(path: str | Path) -> Campaign:
    """Read and validate one campaign file."""
    path = Path(path)
    data, text = read_toml(path)
    return parse_campaign(data, source=str(path), text=text, folder=path.parent)


def load_campaigns(folder: str | Path) -> dict[str, Campaign]:
    """Every campaign file (``*.toml`` with a ``[campaign]`` table) of ``folder``, by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CampaignError(f"campaigns folder {folder} does not exist (set [campaigns] folder)")
    found: dict[str, Campaign] = {}
    for path in sorted(folder.glob("*.toml")):
        try:
            is_campaign = "campaign" in tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError):
            is_campaign = True  # let load_campaign say what is wrong
        if not is_campaign:
            continue  # a segment file
        campaign = load_campaign(path)
        if campaign.name in found:
            raise CampaignError(
                f"{path}: campaign {campaign.name!r} is also defined in {found[campaign.name].source}"
            )
        found[campaign.name] = campaign
    return found


def find_campaign(folder: str | Path, name: str) -> Campaign:
    """The campaign called ``name`` (or in the file ``name``) of the folder."""
    path = Path(name)
    if path.suffix == ".toml" and path.is_file():
        return load_campaign(path)
    campaigns = load_campaigns(folder)
    if name not in campaigns:
        known = ", ".join(sorted(campaigns)) or "none"
        raise CampaignError(f"no campaign {name!r} in {folder} (found: {known})")
    return campaigns[name]
