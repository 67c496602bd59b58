"""The delivery planner: for each customer of an audience, whether, how and when to message them.

Rules, in order (the first that applies decides; its name is the skip reason):

1. ``no_openid``: we know no openid of the customer on the campaign's account;
   ``opted_out``: the customer asked not to be contacted; ``unsubscribed``: not following now;
   ``invalid_openid``: WeChat refused the openid before (40003);
2. ``frequency_cap``: messages already sent to the customer in the last 7 days, by any campaign,
   reached ``[campaigns] max_messages_per_week`` (tag changes are not messages);
3. the channel, by the platform's rules. ``text`` (a customer-service message) only inside the
   follower's window: 48 hours and 5 messages after a message from them, 1 minute and 3 messages after
   a menu click, a follow or a scan (their last action is kept by the bot in ``follower_activity``);
   outside it a ``template`` message when the campaign has a ``template_id``, else ``outside_window``.
   ``mass``: at most ``mass_per_follower_month`` a calendar month (``mass_monthly_cap``).
   ``template``: at most ``template_quota_per_day`` a day over all campaigns (``template_quota``);
4. the remaining customers are split into the control group (not sent, compared in the report) and the
   variants, so that both halves went through the same rules;
5. the time: messages due in the quiet hours (``quiet_hours_start`` to ``quiet_hours_end``, local
   time) wait until they end; with ``send_time_optimisation`` a customer is messaged at the hour of
   the day at which they most often interacted in the last 90 days (the next such hour).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from campaigns.campaign import CONTROL, Campaign, assign
from scrm.config import CampaignSettings
from scrm.models import (
    Customer,
    CustomerScore,
    CustomerTag,
    Delivery,
    Follow,
    FollowerActivity,
    Identity,
    IdentityKind,
    Interaction,
    Tag,
)

__all__ = ["Decision", "Recipient", "Rules", "decide", "gather", "in_quiet_hours", "next_send_time"]

customer_t = Customer.__table__  # type: ignore[attr-defined]
identity_t = Identity.__table__  # type: ignore[attr-defined]
follow_t = Follow.__table__  # type: ignore[attr-defined]
activity_t = FollowerActivity.__table__  # type: ignore[attr-defined]
delivery_t = Delivery.__table__  # type: ignore[attr-defined]
score_t = CustomerScore.__table__  # type: ignore[attr-defined]
tag_t = Tag.__table__  # type: ignore[attr-defined]
ctag_t = CustomerTag.__table__  # type: ignore[attr-defined]
inter_t = Interaction.__table__  # type: ignore[attr-defined]

TEXT_WINDOW, TEXT_LIMIT = timedelta(hours=48), 5
EVENT_WINDOW, EVENT_LIMIT = timedelta(minutes=1), 3
EVENT_KINDS = frozenset({"click", "subscribe", "scan"})
#: deliveries that count as a message sent (in doubt included: it may have arrived)
COUNTED = ("sent", "sending", "unknown")
MESSAGES = ("text", "template", "mass")
BEIJING = ZoneInfo("Asia/Shanghai")  # WeChat counts days and months in Beijing time
SCORE_FIELDS = ("social_value", "influence", "reach_two_hop", "clv_minor", "p_alive", "rfm", "stage")


@dataclass
class Recipient:
    """What the planner knows of one customer of the audience."""

    customer_id: int
    name: str = ""
    openid: str = ""
    opted_out: bool = False
    subscribed: bool = False
    channel: str = ""
    last_action_at: datetime | None = None
    last_action_kind: str = ""
    texts_since_action: int = 0
    week_messages: int = 0
    month_mass: int = 0
    invalid_openid: bool = False
    usual_hour: int | None = None
    community: int | None = None
    role: str = "member"
    scores: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)

    def context(self) -> dict[str, Any]:
        """What a message template sees of the customer."""
        return {
            "customer_id": self.customer_id,
            "name": self.name,
            "openid": self.openid,
            "channel": self.channel,
            "community": self.community,
            "role": self.role,
            "stage": self.scores.get("stage", ""),
            "scores": dict(self.scores),
            "tags": list(self.tags),
            "referral_scene": f"ref_{self.openid}",
        }


@dataclass
class Rules:
    """The settings the planner applies, with the counters shared across one plan."""

    settings: CampaignSettings
    tz: ZoneInfo
    template_quota_left: int


@dataclass(frozen=True)
class Decision:
    """``status`` is ``planned``, ``control`` or ``skipped`` (``reason``); ``due_at`` when to send."""

    status: str
    channel: str = ""
    variant: str = ""
    reason: str = ""
    due_at: datetime | None = None


def _hm(text: str) -> time:
    h, m = text.split(":")
    return time(int(h), int(m))


def in_quiet_hours(moment: datetime, settings: CampaignSettings, tz: ZoneInfo) -> bool:
    """Whether ``moment`` falls in the quiet hours (local time; the span may wrap midnight).

    >>> s = CampaignSettings(quiet_hours_start="22:00", quiet_hours_end="08:00")
    >>> tz = ZoneInfo("Asia/Shanghai")
    >>> in_quiet_hours(datetime(2026, 5, 1, 15, 0, tzinfo=UTC), s, tz)   # 23:00 in Shanghai
    True
    >>> in_quiet_hours(datetime(2026, 5, 1, 2, 0, tzinfo=UTC), s, tz)    # 10:00
    False
    """
    start, end = _hm(settings.quiet_hours_start), _hm(settings.quiet_hours_end)
    if start == end:
        return False
    local = moment.astimezone(tz).time()
    return start <= local < end if start < end else (local >= start or local < end)


def next_send_time(
    now: datetime, settings: CampaignSettings, tz: ZoneInfo, usual_hour: int | None = None
) -> datetime:
    """When a message planned at ``now`` goes out: now, the customer's usual hour, after quiet hours.

    >>> s = CampaignSettings(quiet_hours_start="22:00", quiet_hours_end="08:00")
    >>> tz = ZoneInfo("Asia/Shanghai")
    >>> next_send_time(datetime(2026, 5, 1, 15, 0, tzinfo=UTC), s, tz).astimezone(tz).isoformat()
    '2026-05-02T08:00:00+08:00'
    >>> next_send_time(datetime(2026, 5, 1, 2, 0, tzinfo=UTC), s, tz, usual_hour=19).astimezone(tz).hour
    19
    """
    due = now
    if usual_hour is not None:
        local = now.astimezone(tz)
        candidate = local.replace(hour=usual_hour, minute=0, second=0, microsecond=0)
        if candidate < local - timedelta(minutes=30):  # this hour's slot is (well) past: tomorrow's
            candidate += timedelta(days=1)
        due = max(now, candidate.astimezone(UTC))
    if in_quiet_hours(due, settings, tz):
        local = due.astimezone(tz)
        end = _hm(settings.quiet_hours_end)
        candidate = local.replace(hour=end.hour, minute=end.minute, second=0, microsecond=0)
        if candidate <= local:
            candidate += timedelta(days=1)
        due = candidate.astimezone(UTC)
    return due


def window_open(r: Recipient, now: datetime) -> bool:
    """Whether a customer-service message to ``r`` is allowed at ``now`` (WeChat's 45015 rule)."""
    if r.last_action_at is None or r.last_action_kind == "unsubscribe":
        return False
    age = now - r.last_action_at
    if r.last_action_kind in EVENT_KINDS:
        return age <= EVENT_WINDOW and r.texts_since_action < EVENT_LIMIT
    return age <= TEXT_WINDOW and r.texts_since_action < TEXT_LIMIT


def decide(campaign: Campaign, r: Recipient, rules: Rules, now: datetime) -> Decision:
    """The decision for one customer (see the module docstring); updates the shared template quota."""
    settings = rules.settings
    for reason, applies in (
        ("no_openid", not r.openid),
        ("opted_out", r.opted_out),
        ("unsubscribed", not r.subscribed),
        ("invalid_openid", r.invalid_openid),
    ):
        if applies:
            return Decision("skipped", reason=reason)
    if campaign.sends_messages and r.week_messages >= settings.max_messages_per_week:
        return Decision("skipped", reason="frequency_cap")
    action = campaign.action
    if action == "text":
        if window_open(r, now):
            channel = "text"
        elif campaign.template_id:
            channel = "template"
        else:
            return Decision("skipped", reason="outside_window")
    elif action == "mass":
        if r.month_mass >= settings.mass_per_follower_month:
            return Decision("skipped", reason="mass_monthly_cap")
        channel = "mass"
    else:
        channel = action
    if channel == "template":
        if rules.template_quota_left <= 0:
            return Decision("skipped", reason="template_quota")
        rules.template_quota_left -= 1
    group = assign(campaign, r.customer_id)
    if group == CONTROL:
        return Decision("control", channel=channel, variant=CONTROL, due_at=now)
    if not campaign.sends_messages or channel == "mass":
        due = now  # tag changes are silent; a mass send goes out to its whole batch at once
    else:
        usual = r.usual_hour if campaign.send_time_optimisation else None
        due = next_send_time(now, settings, rules.tz, usual)
    return Decision("planned", channel=channel, variant=group, due_at=due)


# -- what the store knows -----------------------------------------------------------------------------


def _month_start(now: datetime) -> datetime:
    local = now.astimezone(BEIJING)
    return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)


def _day_start(now: datetime) -> datetime:
    local = now.astimezone(BEIJING)
    return local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)


def templates_sent_today(conn: Connection, now: datetime) -> int:
    """Template messages sent (or in doubt) since midnight Beijing time, by every campaign."""
    d = delivery_t.c
    query = sa.select(sa.func.count()).where(
        d.channel == "template", d.status.in_(COUNTED), d.sent_at >= _day_start(now)
    )
    return int(conn.execute(query).scalar_one())


def gather(
    conn: Connection,
    audience: sa.Select[Any],
    *,
    account_id: int,
    appid: str,
    run_id: int,
    now: datetime,
    tz: ZoneInfo,
    usual_hours: bool = False,
) -> list[Recipient]:
    """Everything :func:`decide` and the templates need, for the whole audience in a few set queries."""
    ids = audience.subquery()
    c = customer_t.c
    rows = conn.execute(
        sa.select(
            c.id,
            c.display_name,
            c.opted_out_at,
            score_t.c.community_id,
            score_t.c.is_leader,
            score_t.c.is_bridge,
            *(score_t.c[f] for f in SCORE_FIELDS),
        )
        .select_from(
            customer_t.join(ids, ids.c.id == c.id).outerjoin(
                score_t, sa.and_(score_t.c.customer_id == c.id, score_t.c.run_id == run_id)
            )
        )
        .order_by(c.id)
    ).all()
    people: dict[int, Recipient] = {}
    for row in rows:
        scores = {f: row[6 + k] for k, f in enumerate(SCORE_FIELDS) if row[6 + k] is not None}
        role = "leader" if row[4] else "bridge" if row[5] else "member"
        people[row[0]] = Recipient(
            row[0], row[1] or "", opted_out=row[2] is not None, community=row[3], role=role, scores=scores
        )
    if not people:
        return []
    i = identity_t.c
    for cid, openid in conn.execute(
        sa.select(i.customer_id, i.value)
        .join(ids, ids.c.id == i.customer_id)
        .where(i.kind == IdentityKind.OPENID.value, i.scope == appid)
        .order_by(i.id)
    ):
        people[cid].openid = people[cid].openid or openid
    f = follow_t.c
    for cid, channel in conn.execute(
        sa.select(f.customer_id, f.channel)
        .join(ids, ids.c.id == f.customer_id)
        .where(f.account_id == account_id, f.unsubscribed_at.is_(None))
    ):
        people[cid].subscribed, people[cid].channel = True, channel or ""
    a = activity_t.c
    for cid, at, kind in conn.execute(
        sa.select(a.customer_id, a.last_action_at, a.last_action_kind)
        .join(ids, ids.c.id == a.customer_id)
        .where(a.account_id == account_id)
    ):
        people[cid].last_action_at, people[cid].last_action_kind = at, kind
    _count_messages(conn, ids, people, now)
    for cid, name in conn.execute(
        sa.select(ctag_t.c.customer_id, tag_t.c.name)
        .join(tag_t, tag_t.c.id == ctag_t.c.tag_id)
        .join(ids, ids.c.id == ctag_t.c.customer_id)
        .order_by(tag_t.c.name)
    ):
        people[cid].tags.append(name)
    if usual_hours:
        _usual_hours(conn, ids, people, now, tz)
    return list(people.values())


def _count_messages(conn: Connection, ids: Any, people: dict[int, Recipient], now: datetime) -> None:
    d = delivery_t.c
    since = min(now - timedelta(days=7), _month_start(now))
    rows = conn.execute(
        sa.select(d.customer_id, d.channel, d.sent_at, d.errcode, d.openid)
        .join(ids, ids.c.id == d.customer_id)
        .where(
            sa.or_(
                sa.and_(d.status.in_(COUNTED), d.channel.in_(MESSAGES), d.sent_at >= since),
                d.errcode == 40003,
            )
        )
    )
    week, month = now - timedelta(days=7), _month_start(now)
    for cid, channel, sent_at, errcode, openid in rows:
        r = people[cid]
        if errcode == 40003:
            r.invalid_openid = r.invalid_openid or openid == r.openid
            continue
        if sent_at is None:
            continue
        if sent_at >= week:
            r.week_messages += 1
        if channel == "mass" and sent_at >= month:
            r.month_mass += 1
        if channel == "text" and r.last_action_at is not None and sent_at >= r.last_action_at:
            r.texts_since_action += 1


def _usual_hours(
    conn: Connection, ids: Any, people: dict[int, Recipient], now: datetime, tz: ZoneInfo
) -> None:
    t = inter_t.c
    hours: dict[int, Counter[int]] = defaultdict(Counter)
    rows = conn.execute(
        sa.select(t.customer_id, t.occurred_at)
        .join(ids, ids.c.id == t.customer_id)
        .where(t.occurred_at >= now - timedelta(days=90), t.occurred_at <= now)
    )
    for cid, at in rows:
        hours[cid][at.astimezone(tz).hour] += 1
    for cid, counter in hours.items():
        people[cid].usual_hour = min(counter.items(), key=lambda kv: (-kv[1], kv[0]))[0]
