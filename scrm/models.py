"""The data model: SQLModel tables that every part of scrm writes to.

One person is a :class:`Customer`; everything we know them by is an :class:`Identity` (an openid of one
of our accounts, a WeChat unionid, a phone number, an email). Two customers who turn out to share a strong
key are merged, and the merge is kept as a :class:`CustomerMerge` with its reason, so it can be explained
and undone. Facts about people are append-only history: a :class:`Follow` row per subscribe period (an
unsubscribe closes it, never deletes it), :class:`Interaction` rows with a unique external id per
platform, :class:`Purchase` rows with a unique order id per source. Re-importing the same data therefore
adds nothing twice.

All times are stored in UTC and returned as timezone-aware datetimes; money as integer minor units
(fen, cents) so sums are exact.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlmodel import Field, SQLModel

__all__ = [
    "Account",
    "CampaignRun",
    "ChurnWarning",
    "Community",
    "Customer",
    "CustomerGroup",
    "CustomerMerge",
    "CustomerScore",
    "CustomerTag",
    "Delivery",
    "Follow",
    "FollowerActivity",
    "GroupMembership",
    "Identity",
    "IdentityKind",
    "InboundMessage",
    "Interaction",
    "MergeMovedRow",
    "MergeSuggestion",
    "Purchase",
    "Relation",
    "ScoreRun",
    "StaffContact",
    "StageChange",
    "SyncCheckpoint",
    "Tag",
    "UTCDateTime",
    "utcnow",
]


# Named constraints, so that later migrations (SQLite batch mode included) can address them.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(sa.TypeDecorator[datetime]):
    """A timestamp stored in UTC on every backend and always read back timezone-aware.

    SQLite keeps no offset, so values are converted to UTC before writing and tagged UTC on reading;
    PostgreSQL stores ``timestamptz``. A naive datetime is refused: its meaning would be a guess.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: give a timezone-aware time")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _time(*, nullable: bool = False, index: bool = False, default: bool = False) -> Any:
    column: sa.Column[datetime] = sa.Column(UTCDateTime(), nullable=nullable, index=index)
    if default:
        return Field(default_factory=utcnow, sa_column=column)
    return Field(default=None, sa_column=column) if nullable else Field(sa_column=column)


def _fk(target: str, *, nullable: bool = False, index: bool = True, ondelete: str = "CASCADE") -> Any:
    column = sa.Column(sa.Integer, sa.ForeignKey(target, ondelete=ondelete), nullable=nullable, index=index)
    return Field(default=None, sa_column=column)


class IdentityKind(enum.StrEnum):
    """What an identity key is. openids are scoped to one account; the others are global."""

    OPENID = "openid"
    UNIONID = "unionid"
    PHONE = "phone"
    EMAIL = "email"
    #: a WeCom external_userid, scoped to the corpid (like an openid to its appid)
    WECOM_EXTERNAL = "wecom_external"
    #: a Mastodon handle ``user@domain``, scoped to the instance's domain
    MASTODON = "mastodon"
    #: a phone or email a profile shows but the platform did not verify (scope: the profile's handle);
    #: never merges, only feeds merge suggestions
    PHONE_UNVERIFIED = "phone_unverified"
    EMAIL_UNVERIFIED = "email_unverified"


class Account(SQLModel, table=True):
    """An account we own on a platform (a WeChat Official Account, keyed by its appid)."""

    __table_args__ = (sa.UniqueConstraint("platform", "external_id"),)

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, max_length=100)
    platform: str = Field(max_length=32)
    external_id: str = Field(max_length=128)  # WeChat: appid
    display_name: str = Field(default="", max_length=200)
    created_at: datetime = _time(default=True)


class Customer(SQLModel, table=True):
    """One person, however many platforms and accounts we know them on."""

    id: int | None = Field(default=None, primary_key=True)
    display_name: str = Field(default="", max_length=200, index=True)
    created_at: datetime = _time(default=True)
    opted_out_at: datetime | None = _time(nullable=True)
    #: set when this customer was merged into another; its rows then point to that one
    merged_into_id: int | None = _fk("customer.id", nullable=True, ondelete="SET NULL")


class Identity(SQLModel, table=True):
    """A key a customer is known by. ``scope`` is the account's appid for openids, '' otherwise."""

    __table_args__ = (sa.UniqueConstraint("kind", "scope", "value"),)

    id: int | None = Field(default=None, primary_key=True)
    customer_id: int = _fk("customer.id")
    kind: str = Field(max_length=16)
    scope: str = Field(default="", max_length=128)
    value: str = Field(max_length=255)
    platform: str = Field(default="", max_length=32)
    account_id: int | None = _fk("account.id", nullable=True)
    source: str = Field(default="", max_length=64)  # where we learnt it: "import:shop", "sync:wechat"
    created_at: datetime = _time(default=True)


class CustomerMerge(SQLModel, table=True):
    """Why two customer records became one: the shared key and when it was seen."""

    __tablename__ = "customer_merge"

    id: int | None = Field(default=None, primary_key=True)
    kept_id: int = _fk("customer.id")
    merged_id: int = _fk("customer.id")
    key_kind: str = Field(max_length=16)
    key_value: str = Field(max_length=255)
    reason: str = Field(max_length=500)
    created_at: datetime = _time(default=True)
    undone_at: datetime | None = _time(nullable=True)
    #: JSON: how it was decided (``by``: auto/manual), the key and where each side's key was learnt
    evidence: str = Field(default="{}", sa_column=sa.Column(sa.Text, nullable=False, default="{}"))


class MergeMovedRow(SQLModel, table=True):
    """A row a merge moved from the merged customer to the kept one, so the merge can be undone.

    ``action`` is ``moved`` (the row now points at the kept customer through ``column_name``; for
    ``customer_tag`` ``row_id`` is the tag id) or ``dropped`` (the kept customer had the same
    unique row already: the merged customer's row was deleted and ``data`` keeps it as JSON).
    """

    __tablename__ = "merge_moved_row"
    __table_args__ = (sa.Index("ix_merge_moved_row_merge_table", "merge_id", "table_name"),)

    id: int | None = Field(default=None, primary_key=True)
    merge_id: int = _fk("customer_merge.id", index=False)
    table_name: str = Field(max_length=32)
    column_name: str = Field(max_length=32)
    row_id: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    action: str = Field(default="moved", max_length=8)
    data: str = Field(default="", sa_column=sa.Column(sa.Text, nullable=False, default=""))


class MergeSuggestion(SQLModel, table=True):
    """Two customers that may be one person on weaker evidence than a shared strong key.

    ``customer_a`` < ``customer_b``; ``evidence`` is JSON (each clue with its weight); ``status`` is
    ``open``, ``accepted`` (merged by ``scrm merge``) or ``rejected``.
    """

    __tablename__ = "merge_suggestion"
    __table_args__ = (sa.UniqueConstraint("customer_a", "customer_b"),)

    id: int | None = Field(default=None, primary_key=True)
    customer_a: int = _fk("customer.id", index=False)
    customer_b: int = _fk("customer.id")
    score: float = Field(sa_column=sa.Column(sa.Float, nullable=False))
    evidence: str = Field(default="[]", sa_column=sa.Column(sa.Text, nullable=False, default="[]"))
    status: str = Field(default="open", max_length=16, index=True)
    created_at: datetime = _time(default=True)
    decided_at: datetime | None = _time(nullable=True)


class Follow(SQLModel, table=True):
    """One subscribe period of a customer to one of our accounts. Unsubscribing closes it."""

    __table_args__ = (sa.UniqueConstraint("account_id", "customer_id", "subscribed_at"),)

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = _fk("account.id")
    customer_id: int = _fk("customer.id")
    subscribed_at: datetime = _time()
    unsubscribed_at: datetime | None = _time(nullable=True)
    scene: str = Field(default="", max_length=64)  # WeChat subscribe_scene, e.g. ADD_SCENE_QR_CODE
    channel: str = Field(default="", max_length=128, index=True)  # qr_scene_str of a channel QR code


class Relation(SQLModel, table=True):
    """A directed tie between two customers: ``source`` was referred by / interacts with ``target``."""

    __table_args__ = (sa.UniqueConstraint("kind", "source_id", "target_id"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=32)  # referred_by, interacts_with
    source_id: int = _fk("customer.id")
    target_id: int = _fk("customer.id")
    weight: float = 1.0
    count: int = 1
    first_at: datetime = _time()
    last_at: datetime = _time()


class Interaction(SQLModel, table=True):
    """Something a customer did: a message, reply, mention, share, click, scan, (un)subscribe."""

    __table_args__ = (
        sa.UniqueConstraint("platform", "external_id"),
        sa.Index("ix_interaction_customer_time", "customer_id", "occurred_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    platform: str = Field(max_length=32)
    external_id: str = Field(max_length=255)
    kind: str = Field(max_length=32)
    customer_id: int = _fk("customer.id", index=False)
    target_customer_id: int | None = _fk("customer.id", nullable=True)
    account_id: int | None = _fk("account.id", nullable=True)
    occurred_at: datetime = _time(index=True)
    content: str = Field(default="", sa_column=sa.Column(sa.Text, nullable=False, default=""))
    channel: str = Field(default="", max_length=128)


class Purchase(SQLModel, table=True):
    """An order. ``amount_minor`` is in the currency's minor unit (fen for CNY)."""

    __table_args__ = (
        sa.UniqueConstraint("source", "order_id"),
        sa.Index("ix_purchase_customer_time", "customer_id", "occurred_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(max_length=64)
    order_id: str = Field(max_length=128)
    customer_id: int = _fk("customer.id", index=False)
    amount_minor: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    currency: str = Field(max_length=3)
    occurred_at: datetime = _time()


class Tag(SQLModel, table=True):
    """A label on customers; ``external_id`` is the platform's tag id when mirrored from one."""

    __table_args__ = (sa.UniqueConstraint("account_id", "name"),)

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=64)
    account_id: int | None = _fk("account.id", nullable=True)
    external_id: str = Field(default="", max_length=64)


class CustomerTag(SQLModel, table=True):
    """A tag on a customer."""

    __tablename__ = "customer_tag"

    customer_id: int = Field(
        sa_column=sa.Column(sa.ForeignKey("customer.id", ondelete="CASCADE"), primary_key=True)
    )
    tag_id: int = Field(sa_column=sa.Column(sa.ForeignKey("tag.id", ondelete="CASCADE"), primary_key=True))
    created_at: datetime = _time(default=True)


class SyncCheckpoint(SQLModel, table=True):
    """Where a sync of one account stopped, so that a sync killed at any point resumes there.

    ``state`` is the connector's own JSON (for WeChat: the run's start time, the openid paging
    cursor, what was already stored); ``finished_at`` is set when the run completed, and the next
    sync then starts a new run.
    """

    __tablename__ = "sync_checkpoint"
    __table_args__ = (sa.UniqueConstraint("account_id", "kind"),)

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = _fk("account.id")
    kind: str = Field(max_length=32)  # followers, shares, ...
    state: str = Field(default="{}", sa_column=sa.Column(sa.Text, nullable=False, default="{}"))
    started_at: datetime = _time(default=True)
    updated_at: datetime = _time(default=True)
    finished_at: datetime | None = _time(nullable=True)


class ScoreRun(SQLModel, table=True):
    """One rescore (``scrm score``): when, with which settings, and what it found.

    ``status`` is ``running`` while it computes, ``done`` once its snapshot is committed (in the same
    transaction as the snapshot's rows), ``failed`` when it stopped with an error (``summary`` then
    holds the error). Readers use the latest ``done`` run; a crashed run leaves the previous snapshot
    as the current one.
    """

    __tablename__ = "score_run"

    id: int | None = Field(default=None, primary_key=True)
    started_at: datetime = _time(default=True)
    finished_at: datetime | None = _time(nullable=True)
    as_of: datetime = _time()  # the "now" of the scores (decay, recency, ages)
    status: str = Field(default="running", max_length=16, index=True)
    parameters: str = Field(default="{}", sa_column=sa.Column(sa.Text, nullable=False, default="{}"))
    summary: str = Field(default="{}", sa_column=sa.Column(sa.Text, nullable=False, default="{}"))


def _score_column(kind: Any = sa.Float, *, nullable: bool = False) -> Any:
    return Field(default=None, sa_column=sa.Column(kind, nullable=nullable))


class CustomerScore(SQLModel, table=True):
    """One customer's scores in one run: a dated snapshot row (one per customer and run).

    Kept lean, without foreign keys or a second index (the pipeline writes a million rows per run in
    one bulk insert and deletes a pruned run's rows itself; one customer's history is read through
    the primary key, run by run). ``n_*`` are the components of the social value
    normalised to 0..1 (percentile ranks); points are ``n_* x weight x 100`` with the run's weights.
    """

    __tablename__ = "customer_score"

    run_id: int = Field(sa_column=sa.Column(sa.Integer, primary_key=True, autoincrement=False))
    customer_id: int = Field(sa_column=sa.Column(sa.Integer, primary_key=True, autoincrement=False))
    influence: float = _score_column()  # weighted PageRank, sums to 1 over the run
    reach_direct: int = _score_column(sa.Integer)
    reach_two_hop: int = _score_column(sa.Integer)
    referral_reach: int = _score_column(sa.Integer)
    community_id: int | None = _score_column(sa.Integer, nullable=True)
    is_leader: bool = _score_column(sa.Boolean)
    is_bridge: bool = _score_column(sa.Boolean)
    bridge_score: float = _score_column()
    recency_days: float | None = _score_column(nullable=True)  # days since the last purchase
    frequency: int = _score_column(sa.Integer)  # repeat purchases (distinct days - 1)
    monetary_minor: int = _score_column(sa.BigInteger)  # total spend, default currency
    rfm: str = Field(default="", max_length=3)
    p_alive: float | None = _score_column(nullable=True)
    expected_purchases: float | None = _score_column(nullable=True)
    clv_minor: int = _score_column(sa.BigInteger)
    n_influence: float = _score_column()
    n_reach: float = _score_column()
    n_community: float = _score_column()
    n_value: float = _score_column()
    social_value: float = _score_column()  # 0..100
    stage: str = Field(default="", max_length=16)


class Community(SQLModel, table=True):
    """A community found by one run: its size, share of the modularity, leaders and label."""

    run_id: int = Field(sa_column=sa.Column(sa.Integer, primary_key=True, autoincrement=False))
    community_id: int = Field(sa_column=sa.Column(sa.Integer, primary_key=True, autoincrement=False))
    size: int
    bridges: int = 0
    modularity_share: float = 0.0
    leaders: str = Field(default="[]", sa_column=sa.Column(sa.Text, nullable=False, default="[]"))
    label: str = Field(default="", max_length=200)


class StageChange(SQLModel, table=True):
    """A customer entering a lifecycle stage (``from_stage`` empty: first scored)."""

    __tablename__ = "stage_change"
    __table_args__ = (sa.Index("ix_stage_change_customer_time", "customer_id", "changed_at"),)

    id: int | None = Field(default=None, primary_key=True)
    customer_id: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    from_stage: str = Field(default="", max_length=16)
    to_stage: str = Field(max_length=16)
    changed_at: datetime = _time()
    run_id: int = Field(sa_column=sa.Column(sa.Integer, nullable=False, index=True))
    reason: str = Field(default="", max_length=500)


class ChurnWarning(SQLModel, table=True):
    """A customer found at risk; open (``resolved_at`` empty) until they leave the at-risk stage."""

    __tablename__ = "churn_warning"

    id: int | None = Field(default=None, primary_key=True)
    customer_id: int = Field(sa_column=sa.Column(sa.Integer, nullable=False, index=True))
    run_id: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    created_at: datetime = _time()
    reasons: str = Field(default="[]", sa_column=sa.Column(sa.Text, nullable=False, default="[]"))
    resolved_at: datetime | None = _time(nullable=True, index=True)
    resolved_run_id: int | None = Field(default=None, sa_column=sa.Column(sa.Integer, nullable=True))


class InboundMessage(SQLModel, table=True):
    """A message or event a platform pushed to our bot, stored once and with the reply it got.

    ``dedup_key`` is unique per account (WeChat: ``msg:<MsgId>`` for messages, ``event:<openid>:<CreateTime>``
    for events), so however many server processes receive a retried message, one handles it and every
    retry is answered with the stored ``reply``. ``status`` is ``replied`` (answered in the callback),
    ``deferred`` (answered ``success``; the reply goes out as a customer-service message), ``sent``,
    ``failed`` (the deferred reply could not be delivered) or ``none`` (nothing to answer).
    """

    __tablename__ = "inbound_message"
    __table_args__ = (sa.UniqueConstraint("account_id", "dedup_key"),)

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = _fk("account.id", index=False)
    dedup_key: str = Field(max_length=128)
    customer_id: int = _fk("customer.id")
    kind: str = Field(max_length=32)
    rule: str = Field(default="", max_length=100)
    status: str = Field(default="replied", max_length=16)
    reply: str = Field(default="", sa_column=sa.Column(sa.Text, nullable=False, default=""))
    received_at: datetime = _time(default=True)


class FollowerActivity(SQLModel, table=True):
    """A follower's last own action on one account (for the platform's customer-service window).

    WeChat allows service messages for 48 hours after a follower's message (5 at most) and for one
    minute after a click, follow or scan (3 at most); ``last_action_kind`` tells which window is open.
    An ``unsubscribe`` is kept too: nobody messages a follower whose last action was leaving.
    """

    __tablename__ = "follower_activity"

    account_id: int = Field(
        sa_column=sa.Column(sa.ForeignKey("account.id", ondelete="CASCADE"), primary_key=True)
    )
    customer_id: int = Field(
        sa_column=sa.Column(sa.ForeignKey("customer.id", ondelete="CASCADE"), primary_key=True)
    )
    last_action_at: datetime = _time()
    last_action_kind: str = Field(max_length=32)


class CampaignRun(SQLModel, table=True):
    """One run of a campaign, unique by ``run_key`` (the campaign's name and its scheduled time or event).

    Two processes firing the same run meet on the key: one inserts it (and its planned deliveries, in
    the same transaction), the other finds it. ``status``: ``sending`` while deliveries are due or in
    flight, ``done`` when none is left. ``summary`` is JSON (counts per outcome, trigger cursor).
    """

    __tablename__ = "campaign_run"

    id: int | None = Field(default=None, primary_key=True)
    run_key: str = Field(max_length=200, unique=True)
    campaign: str = Field(max_length=100, index=True)
    scheduled_for: datetime = _time()
    started_at: datetime = _time(default=True)
    finished_at: datetime | None = _time(nullable=True)
    status: str = Field(default="sending", max_length=16)
    summary: str = Field(default="{}", sa_column=sa.Column(sa.Text, nullable=False, default="{}"))


class Delivery(SQLModel, table=True):
    """One customer in one campaign run: planned, then sent once (or skipped, failed, held out).

    Unique per (run, customer). ``status``: ``planned`` (due at ``due_at``), ``sending`` (claimed by a
    dispatcher, the request may be in flight), ``sent``, ``unknown`` (was ``sending`` when its
    dispatcher died: maybe delivered, never sent again automatically), ``failed``, ``skipped``
    (``reason`` says why), ``control`` (held out). ``channel``: ``text`` (customer-service message),
    ``template``, ``mass``, ``tag``, ``untag``. ``payload`` is the rendered message (JSON); ``batch``
    groups the deliveries of one mass send (its clientmsgid is derived from run key and batch).
    """

    __table_args__ = (
        sa.UniqueConstraint("run_id", "customer_id"),
        sa.Index("ix_delivery_run_status", "run_id", "status"),
        sa.Index("ix_delivery_customer_sent", "customer_id", "sent_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = _fk("campaign_run.id", index=False)
    customer_id: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    openid: str = Field(default="", max_length=128)
    variant: str = Field(default="", max_length=32)
    channel: str = Field(default="", max_length=16)
    status: str = Field(default="planned", max_length=16)
    reason: str = Field(default="", max_length=64)
    error: str = Field(default="", sa_column=sa.Column(sa.Text, nullable=False, default=""))
    errcode: int | None = Field(default=None, sa_column=sa.Column(sa.Integer, nullable=True))
    payload: str = Field(default="", sa_column=sa.Column(sa.Text, nullable=False, default=""))
    batch: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False, default=0))
    msg_id: str = Field(default="", max_length=64)
    attempts: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False, default=0))
    owner: str = Field(default="", max_length=128)
    due_at: datetime = _time()
    claimed_at: datetime | None = _time(nullable=True)
    sent_at: datetime | None = _time(nullable=True)


class CustomerGroup(SQLModel, table=True):
    """A customer group (WeCom 客户群) of one of our accounts: a community run by a staff member.

    ``external_id`` is the platform's id (WeCom ``chat_id``), ``owner`` the staff member's userid,
    ``created_at`` when the group was made on the platform, ``dismissed_at`` when it was last seen gone.
    """

    __tablename__ = "customer_group"
    __table_args__ = (sa.UniqueConstraint("account_id", "external_id"),)

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = _fk("account.id", index=False)
    platform: str = Field(max_length=32)
    external_id: str = Field(max_length=128)
    name: str = Field(default="", max_length=200)
    owner: str = Field(default="", max_length=128)
    created_at: datetime = _time()
    dismissed_at: datetime | None = _time(nullable=True)


class GroupMembership(SQLModel, table=True):
    """One stay of a customer in a customer group: joined, and left (history kept, like a follow).

    ``join_scene`` is the platform's code (WeCom: 1 invited directly, 2 by link, 3 by QR code);
    who invited them is ``invited_by_id`` when the inviter is a customer, ``invited_by_staff`` (a
    userid) when it is a staff member.
    """

    __tablename__ = "group_membership"
    __table_args__ = (sa.UniqueConstraint("group_id", "customer_id", "joined_at"),)

    id: int | None = Field(default=None, primary_key=True)
    group_id: int = _fk("customer_group.id", index=False)
    customer_id: int = _fk("customer.id")
    joined_at: datetime = _time()
    left_at: datetime | None = _time(nullable=True)
    join_scene: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False, default=0))
    invited_by_id: int | None = _fk("customer.id", nullable=True, index=False, ondelete="SET NULL")
    invited_by_staff: str = Field(default="", max_length=128)


class StaffContact(SQLModel, table=True):
    """A staff member of one of our accounts who has the customer as a contact (WeCom 外部联系人).

    ``add_way`` is how they were added (the platform's code), ``state`` the channel (WeCom: the
    ``state`` of the contact-way QR code scanned). ``removed_at`` / ``removed_by`` (``staff`` or
    ``customer``) when either side deleted the other; a later re-add is a new row.
    """

    __tablename__ = "staff_contact"
    __table_args__ = (sa.UniqueConstraint("account_id", "customer_id", "staff", "added_at"),)

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = _fk("account.id", index=False)
    customer_id: int = _fk("customer.id")
    staff: str = Field(max_length=128)
    added_at: datetime = _time()
    add_way: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False, default=0))
    state: str = Field(default="", max_length=128, index=True)
    removed_at: datetime | None = _time(nullable=True)
    removed_by: str = Field(default="", max_length=16)
