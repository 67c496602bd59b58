"""Trying and running campaigns from the web: audience count, rendered preview, dry run, runs, report.

:func:`start_run` plans the run in the caller's thread (so a paused campaign, a template that fails
for everyone or a missing account is answered at once) and sends in a background thread: the API
answers ``202 Accepted`` and :func:`list_runs` shows the progress. The run key is
``NAME@api:KEY`` with the caller's idempotency ``KEY``: the same key again runs nothing new (a run
still sending is helped along, each delivery still sent once, see :mod:`campaigns.dispatch`).
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from campaigns.campaign import Campaign
from campaigns.dispatch import run_counts
from campaigns.messages import Messages
from campaigns.planner import Recipient, gather
from campaigns.report import campaign_report
from campaigns.runner import campaign_account, open_run, run_campaign
from campaigns.saved import get_campaign, load_definitions, parse_saved_campaign
from campaigns.scheduler import ConnectorFactory, build_trigger, connector_factory
from campaigns.segments import latest_run, preview
from campaigns.state import is_paused
from scrm.access import audit
from scrm.config import Settings
from scrm.errors import CampaignError, Conflict, NotFound
from scrm.models import Account, CampaignRun, Customer, utcnow
from scrm.store import Store

__all__ = [
    "active_runs",
    "audience_count",
    "dry_run",
    "join_runs",
    "list_runs",
    "render_preview",
    "report",
    "start_run",
]

log = logging.getLogger(__name__)
run_t = CampaignRun.__table__  # type: ignore[attr-defined]
account_t = Account.__table__  # type: ignore[attr-defined]
customer_t = Customer.__table__  # type: ignore[attr-defined]
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
_active: dict[str, tuple[threading.Thread, threading.Event]] = {}
_lock = threading.Lock()


def _draft(store: Store, settings: Settings, definition: Mapping[str, Any]) -> Campaign:
    """A definition being built (its name may still be missing), validated like a saved one."""
    if not isinstance(definition, Mapping) or not isinstance(definition.get("campaign"), Mapping):
        raise CampaignError("a campaign definition is a JSON object with a `campaign` table")
    body = {**definition["campaign"]}
    body.setdefault("name", "preview")
    defs = load_definitions(store, settings)
    campaign = parse_saved_campaign({**definition, "campaign": body}, settings, defs.segments)
    if campaign.schedule:
        build_trigger(campaign, settings.scrm.tz)
    return campaign


def audience_count(store: Store, settings: Settings, definition: Mapping[str, Any]) -> int:
    """How many customers the audience of a campaign definition selects now (nothing is saved)."""
    count, _ = preview(store, _draft(store, settings, definition).audience, sample=0)
    return count


def render_preview(
    store: Store, settings: Settings, definition: Mapping[str, Any], customer_id: int | None = None
) -> dict[str, Any]:
    """Each variant's message rendered (in the sandbox) for one customer: ``customer_id``, else the
    audience's first by social value, else an example with empty fields. Nothing is saved.

    Returns ``{"campaign", "audience", "customer_id", "name", "messages": [{"variant", "channel",
    "text" and/or "fields"}]}``; a template that fails raises :class:`~scrm.errors.TemplateError`.
    """
    campaign = _draft(store, settings, definition)
    count, sample = preview(store, campaign.audience, sample=1)
    chosen = customer_id if customer_id is not None else (sample[0]["customer_id"] if sample else None)
    person = Recipient(0, name="")
    if chosen is not None:
        _, appid = campaign_account(settings, campaign)
        now = utcnow()
        with store.connect() as conn:
            account_id = conn.execute(
                sa.select(account_t.c.id).where(account_t.c.external_id == appid)
            ).scalar()
            one = sa.select(customer_t.c.id).where(customer_t.c.id == chosen)
            people = gather(
                conn,
                one,
                account_id=int(account_id or 0),
                appid=appid,
                run_id=latest_run(store),
                now=now,
                tz=settings.scrm.tz,
            )
        if not people:
            raise NotFound(f"no customer {chosen}")
        person = people[0]
    messages = Messages(campaign)
    channel = {"text": "text", "template": "template", "mass": "mass"}.get(campaign.action)
    rendered: list[dict[str, Any]] = []
    for variant in campaign.variants if channel else ():
        context = {"campaign": campaign.name} if channel == "mass" else person.context()
        payload = json.loads(messages.render(variant, context, str(channel)))
        rendered.append({"variant": variant.name, "channel": channel, **payload})
    return {
        "campaign": campaign.name,
        "audience": count,
        "customer_id": chosen,
        "name": person.name,
        "messages": rendered,
    }


def dry_run(store: Store, settings: Settings, name: str, *, sample: int = 3) -> dict[str, Any]:
    """Plan and render campaign ``name`` without storing or sending: counts by outcome, variant,
    channel and skip reason, and ``sample`` rendered messages."""
    campaign = get_campaign(store, settings, name)
    return run_campaign(store, settings, campaign, None, dry_run=True, samples=sample).as_dict()


def _send(
    store: Store,
    settings: Settings,
    c: Campaign,
    key: str,
    connectors: ConnectorFactory,
    stop: threading.Event,
) -> None:
    try:
        with connectors(c) as connector:
            result = run_campaign(store, settings, c, connector, key=key, stop=stop)
        log.info("campaign run %s: %s%s", key, result.counts.status, " (paused)" if result.paused else "")
    except Exception:
        log.exception("campaign run %s failed", key)
    finally:
        with _lock:
            _active.pop(key, None)


def start_run(
    store: Store,
    settings: Settings,
    name: str,
    key: str,
    actor: str,
    *,
    connectors: ConnectorFactory | None = None,
) -> dict[str, Any]:
    """Start (or, with a key already used, go on with) a run of campaign ``name`` now.

    Plans it here, sends in a background thread. Returns ``{"run_key", "run_id", "created",
    "status", "sending"}`` (``sending``: a thread of this process is sending it).
    """
    if not isinstance(key, str) or not _KEY.match(key):
        raise CampaignError("run_key: 1 to 64 letters, digits, '_', '.', ':' or '-'")
    campaign = get_campaign(store, settings, name)
    run_key = f"{campaign.name}@api:{key}"
    with store.connect() as conn:
        if is_paused(conn, campaign.name):
            raise Conflict(f"campaign {campaign.name} is paused: resume it first")
        row = conn.execute(sa.select(run_t.c.id, run_t.c.status).where(run_t.c.run_key == run_key)).first()
    if row is None:
        now = utcnow()
        run_id, created = open_run(store, settings, campaign, run_key, now, now, None)
    else:
        run_id, created = int(row.id), False
    with store.connect() as conn:
        status = conn.execute(sa.select(run_t.c.status).where(run_t.c.id == run_id)).scalar_one()
        audit(conn, actor, "campaign.run", campaign.name, {"run_key": run_key, "created": created})
    with _lock:
        busy = run_key in _active
        if status == "sending" and not busy:
            stop = threading.Event()
            thread = threading.Thread(
                target=_send,
                args=(store, settings, campaign, run_key, connectors or connector_factory(settings), stop),
                name=f"scrm-run-{run_id}",
                daemon=True,
            )
            _active[run_key] = (thread, stop)
            thread.start()
            busy = True
    return {"run_key": run_key, "run_id": run_id, "created": created, "status": status, "sending": busy}


def active_runs() -> list[str]:
    """Run keys being sent by background threads of this process."""
    with _lock:
        return sorted(_active)


def join_runs(timeout: float = 60.0, *, stop: bool = False) -> bool:
    """Wait for the background runs of this process to end; return whether they all did.

    ``stop``: first tell them to claim nothing more (the web app does at shutdown): each ends after
    the messages in flight, the rest stays planned for the next run of its key (``scrm serve``'s
    trigger check resumes it), so nothing is cut off mid-send and left in doubt.
    """
    with _lock:
        running = list(_active.values())
    for _, event in running if stop else ():
        event.set()
    deadline = time.monotonic() + timeout
    for thread, _ in running:
        thread.join(max(0.0, deadline - time.monotonic()))
    return not any(t.is_alive() for t, _ in running)


def list_runs(
    store: Store, name: str, *, limit: int = 50, offset: int = 0
) -> tuple[int, list[dict[str, Any]]]:
    """(how many, a page of) the runs of campaign ``name``, newest first, with their counts."""
    r = run_t.c
    with store.connect() as conn:
        total = int(conn.execute(sa.select(sa.func.count()).where(r.campaign == name)).scalar_one())
        rows = conn.execute(
            sa.select(r.id, r.run_key, r.status, r.scheduled_for, r.started_at, r.finished_at, r.summary)
            .where(r.campaign == name)
            .order_by(r.id.desc())
            .limit(limit)
            .offset(offset)
        ).all()
        items = []
        for row in rows:
            counts = (
                run_counts(conn, row.id).as_dict() if row.status == "sending" else json.loads(row.summary)
            )
            items.append(
                {
                    "id": row.id,
                    "run_key": row.run_key,
                    "status": row.status,
                    "scheduled_for": row.scheduled_for,
                    "started_at": row.started_at,
                    "finished_at": row.finished_at,
                    "counts": {k: counts.get(k, {}) for k in ("status", "reasons", "channels", "variants")},
                }
            )
    return total, items


def report(store: Store, settings: Settings, name: str) -> dict[str, Any]:
    """Per variant and the control group of campaign ``name``: sent, failed, replied, purchased, and
    the uplift over control with 95 % Newcombe intervals (:func:`campaigns.report.campaign_report`)."""
    campaign = get_campaign(store, settings, name)
    groups = campaign_report(store, campaign.name, campaign.attribution_days)
    return {
        "campaign": campaign.name,
        "attribution_days": campaign.attribution_days,
        "groups": [g.as_dict() for g in groups],
    }
