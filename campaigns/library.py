"""The campaign library: segments and campaigns saved from the web beside those of the folder.

What the API (``scrm/web/api/segments.py``, ``campaigns.py``) and the dashboard call. Definitions come
from the files of ``[campaigns] folder`` or from the store (see :mod:`campaigns.saved`); only saved ones
are changed here, and a saved one may not take a name the folder already uses (:class:`Conflict`).
Every change is written to the audit log (:func:`scrm.access.audit`) in the change's transaction.

Running, previews and reports are in :mod:`campaigns.launch` and re-exported here: :func:`dry_run`,
:func:`audience_count`, :func:`render_preview`, :func:`start_run`, :func:`list_runs`, :func:`report`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from campaigns import state
from campaigns.campaign import Campaign
from campaigns.launch import audience_count, dry_run, list_runs, render_preview, report, start_run
from campaigns.saved import (
    Definitions,
    check_name,
    get_campaign,
    load_definitions,
    parse_saved_campaign,
    parse_saved_segment,
)
from campaigns.scheduler import build_trigger, describe_timing, latest_runs
from campaigns.segments import Segment, preview, read_toml
from scrm.access import audit
from scrm.config import Settings
from scrm.errors import CampaignError, Conflict, NotFound
from scrm.models import CampaignRun, utcnow
from scrm.models_web import SavedCampaign, SavedSegment
from scrm.store import Store

__all__ = [
    "CampaignInfo",
    "SegmentInfo",
    "audience_count",
    "campaign_info",
    "delete_campaign",
    "delete_segment",
    "dry_run",
    "get_campaign",
    "get_segment",
    "is_paused",
    "list_campaigns",
    "list_runs",
    "list_segments",
    "render_preview",
    "report",
    "save_campaign",
    "save_segment",
    "segment_preview",
    "set_paused",
    "set_schedule",
    "start_run",
]

segment_t = SavedSegment.__table__  # type: ignore[attr-defined]
saved_t = SavedCampaign.__table__  # type: ignore[attr-defined]
run_t = CampaignRun.__table__  # type: ignore[attr-defined]


@dataclass
class SegmentInfo:
    """A segment as listed: ``source`` is ``file`` or ``saved``; ``definition`` its table."""

    name: str
    source: str
    description: str
    definition: dict[str, Any]
    file: str | None = None
    created_by: str = ""
    updated_at: Any = None
    segment: Segment | None = field(default=None, repr=False)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("segment")
        return out


@dataclass
class CampaignInfo:
    """A campaign as listed: where it is defined, how it starts, whether paused, its latest run."""

    name: str
    source: str
    action: str = ""
    description: str = ""
    when: str = ""
    schedule: dict[str, Any] | None = None
    trigger: dict[str, Any] | None = None
    paused: bool = False
    variants: list[str] = field(default_factory=list)
    control_percent: float = 0.0
    latest_run: dict[str, Any] | None = None
    file: str | None = None
    created_by: str = ""
    updated_at: Any = None
    error: str = ""  # a saved campaign that no longer validates: why
    definition: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- segments ----------------------------------------------------------------------------------------


def _segment_info(defs: Definitions, name: str) -> SegmentInfo:
    key = f"segment:{name}"
    meta = defs.meta.get(key, {})
    seg = defs.segments[name]
    if defs.source[key] == "file":
        data, _ = read_toml(Path(meta["file"]))
        raw = {k: v for k, v in data["segment"].items() if k != "name"}
    else:
        raw = defs.raw[key]
    return SegmentInfo(
        name,
        defs.source[key],
        seg.description,
        raw,
        meta.get("file"),
        meta.get("created_by", ""),
        meta.get("updated_at"),
        seg,
    )


def list_segments(store: Store, settings: Settings) -> list[SegmentInfo]:
    """Every segment, of the folder and saved, by name."""
    defs = load_definitions(store, settings)
    return [_segment_info(defs, name) for name in sorted(defs.segments)]


def get_segment(store: Store, settings: Settings, name: str) -> SegmentInfo:
    """The segment called ``name`` (:class:`NotFound` if none)."""
    defs = load_definitions(store, settings)
    if name not in defs.segments:
        raise NotFound(f"no segment {name!r} (scrm segments are files of the folder or saved from the web)")
    return _segment_info(defs, name)


def _upsert(conn: Connection, table: Any, name: str, definition: Mapping[str, Any], actor: str) -> bool:
    """Insert or replace the saved row ``name``; return whether it was created."""
    now = utcnow()
    text = json.dumps(definition, ensure_ascii=False)
    done = conn.execute(
        table.update().where(table.c.name == name).values(definition=text, updated_at=now)
    ).rowcount
    if not done:
        try:
            with conn.begin_nested():
                conn.execute(
                    table.insert().values(
                        name=name, definition=text, created_by=actor[:120], created_at=now, updated_at=now
                    )
                )
        except sa.exc.IntegrityError:
            raise Conflict(f"{name!r} was saved by someone else at the same moment: try again") from None
    return not done


def _exists(conn: Connection, table: Any, name: str) -> bool:
    return conn.execute(sa.select(table.c.id).where(table.c.name == name)).first() is not None


def save_segment(
    store: Store,
    settings: Settings,
    name: str,
    definition: Mapping[str, Any],
    actor: str,
    *,
    create_only: bool = False,
) -> Segment:
    """Validate and save segment ``name`` (``{"where": {...}, "description": ...}``); create or replace.

    :class:`Conflict` when a segment file has the name (or, with ``create_only``, a saved one does).
    """
    check_name(name, "segment")
    seg = parse_saved_segment(name, definition)
    defs = load_definitions(store, settings)
    if defs.source.get(f"segment:{name}") == "file":
        raise Conflict(f"segment {name!r} is defined by the file {defs.meta[f'segment:{name}']['file']}")
    stored = {k: v for k, v in definition.items() if k != "name"}
    with store.connect() as conn:
        if create_only and _exists(conn, segment_t, name):
            raise Conflict(f"segment {name!r} exists already: replace it with PUT, or choose another name")
        created = _upsert(conn, segment_t, name, stored, actor)
        audit(conn, actor, "segment.create" if created else "segment.update", name, stored)
    return seg


def delete_segment(store: Store, settings: Settings, name: str, actor: str) -> None:
    """Delete saved segment ``name``; refused (:class:`Conflict`) while a saved campaign uses it."""
    defs = load_definitions(store, settings)
    if defs.source.get(f"segment:{name}") == "file":
        raise Conflict(
            f"segment {name!r} is the file {defs.meta[f'segment:{name}']['file']}: delete the file"
        )
    users = sorted(
        n
        for n, src in defs.source.items()
        if src == "saved" and not n.startswith("segment:") and defs.raw[n]["campaign"].get("segment") == name
    )
    if users:
        raise Conflict(f"segment {name!r} is the audience of campaign(s) {', '.join(users)}")
    with store.connect() as conn:
        if not conn.execute(segment_t.delete().where(segment_t.c.name == name)).rowcount:
            raise NotFound(f"no saved segment {name!r}")
        audit(conn, actor, "segment.delete", name, {})


def segment_preview(
    store: Store, settings: Settings, definition: Mapping[str, Any] | str, *, sample: int = 10
) -> dict[str, Any]:
    """Size and sample of a segment: a saved or file segment's name, or a definition (not saved)."""
    if isinstance(definition, str):
        seg = get_segment(store, settings, definition).segment
        assert seg is not None
    else:
        seg = parse_saved_segment(str(definition.get("name") or "preview"), definition)
    count, rows = preview(store, seg, sample=sample)
    return {"segment": seg.name, "count": count, "sample": rows}


# -- campaigns ---------------------------------------------------------------------------------------


def _campaign_info(defs: Definitions, name: str, runs: dict[str, Any], paused: set[str]) -> CampaignInfo:
    meta = defs.meta.get(name, {})
    info = CampaignInfo(
        name,
        defs.source[name],
        paused=name in paused,
        latest_run=runs.get(name),
        file=meta.get("file"),
        created_by=meta.get("created_by", ""),
        updated_at=meta.get("updated_at"),
        error=defs.broken.get(name, ""),
    )
    c = defs.campaigns.get(name)
    if c is not None:
        info.action, info.description, info.when = c.action, c.description, describe_timing(c)
        info.schedule = dict(c.schedule) if c.schedule else None
        info.trigger = dict(c.trigger) if c.trigger else None
        info.variants, info.control_percent = [v.name for v in c.variants], c.control_percent
    return info


def list_campaigns(store: Store, settings: Settings) -> list[CampaignInfo]:
    """Every campaign, of the folder and saved, by name, with its latest run and whether it is paused."""
    defs = load_definitions(store, settings)
    runs = latest_runs(store)
    with store.connect() as conn:
        paused = state.paused_campaigns(conn)
    names = sorted(n for n in defs.source if not n.startswith("segment:"))
    return [_campaign_info(defs, n, runs, paused) for n in names]


def campaign_info(store: Store, settings: Settings, name: str) -> CampaignInfo:
    """One campaign as listed, with its ``definition`` (the saved JSON, or the file's tables)."""
    defs = load_definitions(store, settings)
    if name not in defs.source or name.startswith("segment:"):
        raise NotFound(f"no campaign {name!r}")
    with store.connect() as conn:
        paused = state.paused_campaigns(conn)
    info = _campaign_info(defs, name, latest_runs(store), paused)
    info.definition = defs.raw[name] if info.source == "saved" else read_toml(Path(str(info.file)))[0]
    return info


def save_campaign(
    store: Store,
    settings: Settings,
    definition: Mapping[str, Any],
    actor: str,
    *,
    name: str | None = None,
    create_only: bool = False,
) -> Campaign:
    """Validate a campaign definition (a campaign file as JSON) and save it: create or replace.

    ``name``: the name it must have (the definition's ``campaign.name`` is set from it when absent).
    :class:`CampaignError` with the parser's message when invalid; :class:`Conflict` when a file
    campaign has the name (or, with ``create_only``, a saved one does).
    """
    defs = load_definitions(store, settings)
    campaign = parse_saved_campaign(definition, settings, defs.segments, name=name)
    if campaign.schedule:
        build_trigger(campaign, settings.scrm.tz)  # a bad cron or date is refused now, not at start
    if defs.source.get(campaign.name) == "file":
        raise Conflict(
            f"campaign {campaign.name!r} is defined by the file {defs.meta[campaign.name]['file']}"
        )
    stored = {**definition, "campaign": {**definition["campaign"], "name": campaign.name}}
    with store.connect() as conn:
        if create_only and _exists(conn, saved_t, campaign.name):
            raise Conflict(f"campaign {campaign.name!r} exists already: replace it with PUT")
        created = _upsert(conn, saved_t, campaign.name, stored, actor)
        audit(conn, actor, "campaign.create" if created else "campaign.update", campaign.name, stored)
    return campaign


def _saved_definition(store: Store, settings: Settings, name: str) -> dict[str, Any]:
    defs = load_definitions(store, settings)
    source = defs.source.get(name)
    if source is None or name.startswith("segment:"):
        raise NotFound(f"no campaign {name!r}")
    if source == "file":
        raise Conflict(f"campaign {name!r} is defined by the file {defs.meta[name]['file']}: edit the file")
    return defs.raw[name]


def delete_campaign(store: Store, settings: Settings, name: str, actor: str) -> None:
    """Delete saved campaign ``name`` (its runs stay, for the reports); not while a run is sending."""
    _saved_definition(store, settings, name)
    with store.connect() as conn:
        sending = conn.execute(
            sa.select(run_t.c.run_key).where(run_t.c.campaign == name, run_t.c.status == "sending").limit(1)
        ).scalar()
        if sending is not None:
            raise Conflict(
                f"campaign {name!r} has a run sending ({sending}): pause it and let it finish first"
            )
        conn.execute(saved_t.delete().where(saved_t.c.name == name))
        conn.execute(state.state_t.delete().where(state.state_t.c.campaign == name))
        audit(conn, actor, "campaign.delete", name, {})


def set_schedule(
    store: Store, settings: Settings, name: str, schedule: Mapping[str, Any] | None, actor: str
) -> Campaign:
    """Set (one of ``cron``, ``interval_minutes``, ``at``) or remove (None, ``{}``) a saved campaign's
    schedule. ``scrm serve`` picks the change up at its next trigger check."""
    definition = _saved_definition(store, settings, name)
    body = {k: v for k, v in definition["campaign"].items() if k != "schedule"}
    if schedule:
        body["schedule"] = dict(schedule)
    return save_campaign(store, settings, {**definition, "campaign": body}, actor, name=name)


def is_paused(store: Store, name: str) -> bool:
    """Whether campaign ``name`` is paused."""
    with store.connect() as conn:
        return state.is_paused(conn, name)


def set_paused(store: Store, settings: Settings, name: str, paused: bool, actor: str) -> bool:
    """Pause or resume campaign ``name`` (a file or a saved one); return whether it changed.

    Paused: its schedule and triggers do nothing, a new run is refused, a run sending stops at its
    next chunk. Resumed: the unfinished run goes on (``scrm serve``, or ``scrm campaign run NAME``).
    """
    defs = load_definitions(store, settings)
    if name not in defs.source or name.startswith("segment:"):
        raise NotFound(f"no campaign {name!r}")
    if not isinstance(paused, bool):
        raise CampaignError("paused: give true or false")
    return state.set_paused(store, name, paused, actor)
