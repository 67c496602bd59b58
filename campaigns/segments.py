"""Segments: declarative audiences in TOML, compiled to SQLAlchemy Core with bound parameters only.

A segment is a table of conditions, all of which must hold (``any``, ``all`` and ``not`` nest)::

    [segment]
    name = "top_leaders"
    [segment.where]
    role = "leader"                          # a plain value means "equal" (a list: "one of")
    social_value = { top_percent = 5 }       # the top 5% of the latest snapshot by social value
    stage = { in = ["active", "loyal"] }
    tags = { none = ["staff"] }
    last_interaction = { within_days = 30 }
    any = [ { channel = { like = "kol_*" } }, { purchases = { gte = 3 } } ]
    not = { opted_out = true }

Scores come from the latest finished score run (``scrm score``); percentiles are taken over everyone
scored in it, ties included. Fields and their operators are listed in :data:`FIELDS`; an unknown field or
operator is a :class:`~scrm.errors.CampaignError` naming the file and the line.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from scrm.errors import CampaignError
from scrm.models import (
    ChurnWarning,
    Customer,
    CustomerScore,
    CustomerTag,
    Follow,
    Interaction,
    Purchase,
    ScoreRun,
    Tag,
    utcnow,
)
from scrm.store import Store

__all__ = [
    "FIELDS",
    "Locator",
    "Segment",
    "latest_run",
    "load_segment",
    "parse_segment",
    "preview",
    "read_toml",
]

customer_t = Customer.__table__  # type: ignore[attr-defined]
score_t = CustomerScore.__table__  # type: ignore[attr-defined]
run_t = ScoreRun.__table__  # type: ignore[attr-defined]
follow_t = Follow.__table__  # type: ignore[attr-defined]
tag_t = Tag.__table__  # type: ignore[attr-defined]
ctag_t = CustomerTag.__table__  # type: ignore[attr-defined]
inter_t = Interaction.__table__  # type: ignore[attr-defined]
purchase_t = Purchase.__table__  # type: ignore[attr-defined]
churn_t = ChurnWarning.__table__  # type: ignore[attr-defined]

_NUMBER_OPS = {"eq", "ne", "lt", "lte", "gt", "gte", "between", "in", "not_in"}
_PERCENT_OPS = {"top_percent", "bottom_percent"}
_TEXT_OPS = {"eq", "ne", "in", "not_in", "like"}
_DAYS_OPS = {"within_days", "before_days", "never"}
_TAG_OPS = {"any", "all", "none"}
_BOOL_OPS = {"eq"}
_ROLES = ("leader", "bridge", "member")


@dataclass(frozen=True)
class _Env:
    """What a compiled condition refers to: the customer table, the score row, the run, now."""

    run_id: int
    now: datetime


@dataclass(frozen=True)
class FieldSpec:
    """A field a condition may use: its kind (which operators) and how to read it."""

    kind: str  # number, score, text, bool, days, tags, role
    help: str
    column: str = ""
    scale: float = 1.0  # stored value = given value x scale (money in minor units)


#: every field a segment may filter on
FIELDS: dict[str, FieldSpec] = {
    "social_value": FieldSpec("score", "combined social value, 0-100", "social_value"),
    "influence": FieldSpec("score", "weighted PageRank (sums to 1)", "influence"),
    "reach": FieldSpec("score", "distinct customers within two hops", "reach_two_hop"),
    "reach_direct": FieldSpec("score", "distinct customers who pay attention directly", "reach_direct"),
    "referral_reach": FieldSpec("score", "size of the referral tree started", "referral_reach"),
    "clv": FieldSpec("score", "lifetime value in major currency units", "clv_minor", 100.0),
    "p_alive": FieldSpec("score", "probability the customer is still active", "p_alive"),
    "expected_purchases": FieldSpec("score", "expected purchases over the horizon", "expected_purchases"),
    "frequency": FieldSpec("score", "repeat purchase days", "frequency"),
    "recency_days": FieldSpec("score", "days since the last purchase (scoring time)", "recency_days"),
    "monetary": FieldSpec("score", "total spend in major units (default currency)", "monetary_minor", 100.0),
    "community": FieldSpec("number", "community id of the latest run", "community_id"),
    "customer": FieldSpec("number", "customer id"),
    "rfm": FieldSpec("text", "RFM code such as 545 (like '5*')", "rfm"),
    "stage": FieldSpec("text", "lifecycle stage (prospect, new, active, loyal, at_risk, churned, won_back)"),
    "role": FieldSpec("role", "leader, bridge or member of the community"),
    "tags": FieldSpec("tags", "tag names (any / all / none of a list)"),
    "channel": FieldSpec("text", "acquisition channel: scene of the channel QR code of the open follow"),
    "scene": FieldSpec("text", "how they subscribed (ADD_SCENE_QR_CODE ...)"),
    "subscribed": FieldSpec("bool", "follows one of our accounts now"),
    "opted_out": FieldSpec("bool", "asked not to be contacted"),
    "churn_warning": FieldSpec("bool", "has an open churn warning"),
    "purchases": FieldSpec("number", "number of orders"),
    "spent": FieldSpec("number", "total of orders in major units", scale=100.0),
    "last_interaction": FieldSpec("days", "time of the latest interaction"),
    "last_purchase": FieldSpec("days", "time of the latest order"),
    "followed": FieldSpec("days", "time the open follow started"),
}


@dataclass(frozen=True)
class Cond:
    field: str
    op: str
    value: Any


@dataclass(frozen=True)
class Node:
    """``all`` / ``any`` of children, or ``not`` of one child."""

    kind: str
    children: tuple[Node | Cond, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Segment:
    """A parsed audience: its name, its condition tree, the file it came from."""

    name: str
    where: Node
    source: str = "<string>"
    description: str = ""

    def query(self, run_id: int, now: datetime | None = None) -> sa.Select[Any]:
        """``SELECT customer.id`` of the audience (merged-away customers excluded)."""
        env = _Env(run_id, now or utcnow())
        return (
            sa.select(customer_t.c.id)
            .select_from(customer_t.outerjoin(score_t, _score_join(env)))
            .where(customer_t.c.merged_into_id.is_(None), _compile(self.where, env))
        )


# -- parsing ----------------------------------------------------------------------------------------


class Locator:
    """Finds the line of a key in the file's text (tomllib gives no line numbers)."""

    def __init__(self, source: str, text: str) -> None:
        self.source, self.lines = source, text.splitlines()

    def error(self, key: str, message: str, *, near: str = "") -> CampaignError:
        """The error, at the first line setting ``key`` (containing ``near`` when given) or its table."""
        assignment = re.compile(rf"(^|[\s{{,\[]){re.escape(key)}\s*=")
        header = re.compile(rf"^\s*\[+[\w.]*\b{re.escape(key)}\]+")
        for pattern in (assignment, header):
            for number, line in enumerate(self.lines, 1):
                code = line.split("#", 1)[0]
                if pattern.search(code) and near in code:
                    return CampaignError(f"{self.source}, line {number}: {message}")
        return CampaignError(f"{self.source}: {message}")


def _ops_of(spec: FieldSpec) -> set[str]:
    return {
        "score": _NUMBER_OPS | _PERCENT_OPS,
        "number": _NUMBER_OPS,
        "text": _TEXT_OPS,
        "bool": _BOOL_OPS,
        "days": _DAYS_OPS,
        "tags": _TAG_OPS,
        "role": {"eq", "ne", "in", "not_in"},
    }[spec.kind]


def _check_value(name: str, spec: FieldSpec, op: str, value: Any, loc: Locator) -> Any:
    def bad(what: str) -> CampaignError:
        return loc.error(op if op != "eq" else name, f"{name} {op}: {what}, not {value!r}")

    def number(v: Any) -> bool:
        return isinstance(v, int | float) and not isinstance(v, bool)

    if op in ("in", "not_in", "any", "all", "none"):
        if not isinstance(value, list) or not value:
            raise bad("give a non-empty list")
        items = value
    elif op == "between":
        if not (isinstance(value, list) and len(value) == 2 and all(number(v) for v in value)):
            raise bad("give [low, high]")
        return value
    elif op == "never":
        if value is not True:
            raise bad("write never = true")
        return value
    else:
        items = [value]
    for item in items:
        if spec.kind in ("score", "number", "days"):
            ok = number(item) and (op not in _PERCENT_OPS or 0 < item <= 100)
            ok = ok and (spec.kind != "days" or item >= 0)
            if not ok:
                raise bad("give a number" + (" in (0, 100]" if op in _PERCENT_OPS else ""))
        elif spec.kind == "bool" and not isinstance(item, bool):
            raise bad("give true or false")
        elif spec.kind in ("text", "tags") and not isinstance(item, str):
            raise bad("give text")
        elif spec.kind == "role" and item not in _ROLES:
            raise bad(f"give one of {', '.join(_ROLES)}")
    return value


def _parse(table: Any, loc: Locator, where: str) -> Node:
    if not isinstance(table, Mapping) or not table:
        raise loc.error(where, f"{where}: give a table of conditions")
    children: list[Node | Cond] = []
    for key, value in table.items():
        if key in ("all", "any"):
            if not isinstance(value, list) or not value:
                raise loc.error(key, f"{key}: give a list of condition tables")
            children.append(Node(key, tuple(_parse(v, loc, key) for v in value)))
        elif key == "not":
            children.append(Node("not", (_parse(value, loc, key),)))
        elif key in FIELDS:
            spec = FIELDS[key]
            if isinstance(value, Mapping):
                if not value:
                    raise loc.error(key, f"{key}: empty condition")
                for op, operand in value.items():
                    if op not in _ops_of(spec):
                        raise loc.error(
                            op,
                            f"unknown operator {op!r} for {key} (known: {', '.join(sorted(_ops_of(spec)))})",
                        )
                    children.append(Cond(key, op, _check_value(key, spec, op, operand, loc)))
            else:
                op = "in" if isinstance(value, list) and spec.kind != "tags" else "eq"
                if spec.kind == "tags":
                    op, value = "any", value if isinstance(value, list) else [value]
                if spec.kind == "days":
                    raise loc.error(key, f"{key}: give {{ within_days = N }}, {{ before_days = N }} or never")
                children.append(Cond(key, op, _check_value(key, spec, op, value, loc)))
        else:
            raise loc.error(
                key, f"unknown field {key!r} (known: {', '.join(sorted(FIELDS))}; or all, any, not)"
            )
    return Node("all", tuple(children))


def parse_segment(data: Mapping[str, Any], *, source: str = "<string>", text: str = "") -> Segment:
    """A :class:`Segment` from the ``[segment]`` table (``name``, ``description``, ``where``)."""
    loc = Locator(source, text)
    unknown = set(data) - {"name", "description", "where"}
    if unknown:
        key = sorted(unknown)[0]
        raise loc.error(key, f"unknown key {key!r} in the segment (known: name, description, where)")
    if "where" not in data:
        raise loc.error("segment", "the segment has no `where` table of conditions")
    name = str(data.get("name") or Path(source).stem)
    return Segment(name, _parse(data["where"], loc, "where"), source, str(data.get("description", "")))


def read_toml(path: Path) -> tuple[dict[str, Any], str]:
    """(parsed content, text) of a TOML file, errors as :class:`CampaignError` naming the file."""
    try:
        text = path.read_text(encoding="utf-8")
        return tomllib.loads(text), text
    except OSError as exc:
        raise CampaignError(f"{path}: cannot be read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise CampaignError(f"{path}: not valid TOML: {exc}") from None


def load_segment(path: str | Path) -> Segment:
    """Read a segment file (a ``[segment]`` table) or the ``[audience]`` of a campaign file."""
    path = Path(path)
    data, text = read_toml(path)
    table = data.get("segment") or data.get("audience")
    if not isinstance(table, Mapping):
        raise CampaignError(f"{path}: no [segment] table")
    return parse_segment(table, source=str(path), text=text)


# -- compiling --------------------------------------------------------------------------------------


def _score_join(env: _Env) -> ColumnElement[bool]:
    return sa.and_(score_t.c.customer_id == customer_t.c.id, score_t.c.run_id == sa.literal(env.run_id))


def _compare(column: Any, op: str, value: Any, scale: float = 1.0) -> ColumnElement[bool]:
    def v(x: Any) -> Any:
        return x * scale if scale != 1.0 else x

    if op == "between":
        return sa.and_(column >= v(value[0]), column <= v(value[1]))
    if op == "in":
        return column.in_([v(x) for x in value])  # type: ignore[no-any-return]
    if op == "not_in":
        return column.not_in([v(x) for x in value])  # type: ignore[no-any-return]
    if op == "like":
        escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return column.like(escaped.replace("*", "%").replace("?", "_"), escape="\\")  # type: ignore[no-any-return]
    ops: dict[str, Callable[[Any, Any], ColumnElement[bool]]] = {
        "eq": lambda c, x: c == x,
        "ne": lambda c, x: c != x,
        "lt": lambda c, x: c < x,
        "lte": lambda c, x: c <= x,
        "gt": lambda c, x: c > x,
        "gte": lambda c, x: c >= x,
    }
    return ops[op](column, v(value))


def _percentile(column: str, op: str, value: float, env: _Env) -> ColumnElement[bool]:
    order = score_t.c[column].desc() if op == "top_percent" else score_t.c[column].asc()
    ranked = (
        sa.select(score_t.c.customer_id, sa.func.cume_dist().over(order_by=order).label("cd"))
        .where(score_t.c.run_id == env.run_id, score_t.c[column].is_not(None))
        .subquery()
    )
    chosen = sa.select(ranked.c.customer_id).where(ranked.c.cd <= value / 100.0)
    picked: ColumnElement[bool] = customer_t.c.id.in_(chosen)
    return picked


def _open_follow(*extra: ColumnElement[bool]) -> ColumnElement[bool]:
    f = follow_t.c
    return sa.exists().where(f.customer_id == customer_t.c.id, f.unsubscribed_at.is_(None), *extra)


def _days(column: Any, op: str, value: Any, env: _Env) -> ColumnElement[bool]:
    if op == "never":
        return column.is_(None)  # type: ignore[no-any-return]
    cutoff = env.now - timedelta(days=float(value))
    if op == "within_days":
        return column >= cutoff  # type: ignore[no-any-return]
    return sa.or_(column < cutoff, column.is_(None))


def _cond(c: Cond, env: _Env) -> ColumnElement[bool]:
    spec = FIELDS[c.field]
    cid = customer_t.c.id
    if spec.kind == "score" and c.op in _PERCENT_OPS:
        return _percentile(spec.column, c.op, float(c.value), env)
    if spec.column:
        return _compare(score_t.c[spec.column], c.op, c.value, spec.scale)
    name = c.field
    if name == "customer":
        return _compare(cid, c.op, c.value)
    if name == "stage":
        return _compare(score_t.c.stage, c.op, c.value)
    if name == "role":
        role = sa.case(
            (score_t.c.is_leader.is_(True), "leader"),
            (score_t.c.is_bridge.is_(True), "bridge"),
            else_="member",
        )
        return _compare(role, c.op, c.value)
    if name in ("channel", "scene"):
        column = follow_t.c[name]
        if c.op in ("ne", "not_in"):
            positive = "eq" if c.op == "ne" else "in"
            return sa.not_(_open_follow(_compare(column, positive, c.value)))
        return _open_follow(_compare(column, c.op, c.value))
    if name == "subscribed":
        return _open_follow() if c.value else sa.not_(_open_follow())
    if name == "opted_out":
        column = customer_t.c.opted_out_at
        flag: ColumnElement[bool] = column.is_not(None) if c.value else column.is_(None)
        return flag
    if name == "churn_warning":
        w = churn_t.c
        open_warning = sa.exists().where(w.customer_id == cid, w.resolved_at.is_(None))
        return open_warning if c.value else sa.not_(open_warning)
    if name == "tags":
        names = sorted(set(c.value))
        tagged = sa.select(ctag_t.c.customer_id).join(tag_t, tag_t.c.id == ctag_t.c.tag_id)
        if c.op == "all":
            having = sa.func.count(sa.distinct(tag_t.c.name)) == len(names)
            ids = tagged.where(tag_t.c.name.in_(names)).group_by(ctag_t.c.customer_id).having(having)
            every: ColumnElement[bool] = cid.in_(ids)
            return every
        member: ColumnElement[bool] = cid.in_(tagged.where(tag_t.c.name.in_(names)))
        return member if c.op == "any" else sa.not_(member)
    if name in ("purchases", "spent"):
        p = purchase_t.c
        agg = sa.func.count() if name == "purchases" else sa.func.coalesce(sa.func.sum(p.amount_minor), 0)
        value = sa.select(agg).where(p.customer_id == cid).scalar_subquery()
        return _compare(value, c.op, c.value, spec.scale)
    if name in ("last_interaction", "last_purchase"):
        t = inter_t if name == "last_interaction" else purchase_t
        latest = sa.select(sa.func.max(t.c.occurred_at)).where(t.c.customer_id == cid).scalar_subquery()
        return _days(latest, c.op, c.value, env)
    if name == "followed":
        f = follow_t.c
        latest = (
            sa.select(sa.func.max(f.subscribed_at))
            .where(f.customer_id == cid, f.unsubscribed_at.is_(None))
            .scalar_subquery()
        )
        return _days(latest, c.op, c.value, env)
    raise AssertionError(f"field {name} has no compiler")  # pragma: no cover - FIELDS and this agree


def _compile(node: Node | Cond, env: _Env) -> ColumnElement[bool]:
    if isinstance(node, Cond):
        return _cond(node, env)
    parts = [_compile(child, env) for child in node.children]
    if node.kind == "not":
        return sa.not_(parts[0])
    return sa.and_(*parts) if node.kind == "all" else sa.or_(*parts)


# -- running ----------------------------------------------------------------------------------------


def latest_run(store: Store) -> int:
    """Id of the latest finished score run; 0 when there is none (score conditions then match nobody)."""
    with store.connect() as conn:
        run = conn.execute(sa.select(sa.func.max(run_t.c.id)).where(run_t.c.status == "done")).scalar()
    return int(run or 0)


def preview(
    store: Store, segment: Segment, *, sample: int = 10, now: datetime | None = None
) -> tuple[int, list[dict[str, Any]]]:
    """(size of the audience, a sample of it, highest social value first).

    Each sample row has ``customer_id``, ``name``, ``social_value``, ``stage``, ``community``.
    """
    ids = segment.query(latest_run(store), now).subquery()
    env_run = latest_run(store)
    with store.connect() as conn:
        count = int(conn.execute(sa.select(sa.func.count()).select_from(ids)).scalar_one())
        join = customer_t.join(ids, ids.c.id == customer_t.c.id).outerjoin(
            score_t, sa.and_(score_t.c.customer_id == customer_t.c.id, score_t.c.run_id == env_run)
        )
        value = sa.func.coalesce(score_t.c.social_value, -1.0)
        rows = conn.execute(
            sa.select(
                customer_t.c.id,
                customer_t.c.display_name,
                score_t.c.social_value,
                score_t.c.stage,
                score_t.c.community_id,
            )
            .select_from(join)
            .order_by(value.desc(), customer_t.c.id)
            .limit(sample)
        ).all()
    return count, [
        {
            "customer_id": r[0],
            "name": r[1],
            "social_value": None if r[2] is None else round(float(r[2]), 2),
            "stage": r[3] or "",
            "community": r[4],
        }
        for r in rows
    ]
