"""Campaigns: those of the campaigns folder and those saved from the web; create, try, schedule,
pause, run, report.

A saved campaign's definition is a campaign file as JSON, ``{"campaign": {...}, "audience": {...}}``
(or ``"segment": "NAME"`` in ``campaign`` naming a saved segment or a segment file), validated by the
file parser with its messages (422). Files and saved campaigns share one name space (409).

**Runs.** ``POST /campaigns/{name}/runs`` with an idempotency ``run_key`` plans the run at once (a
paused campaign is a 409, a template failing for everyone a 422) and answers ``202 Accepted`` while a
thread of the server sends; ``GET /campaigns/{name}/runs`` shows the progress. The same ``run_key``
again starts nothing new: the run is ``NAME@api:KEY`` and each delivery goes out once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from campaigns import library
from scrm.access import Principal
from scrm.errors import CampaignError
from scrm.web.api.deps import Page, PagingDep, SettingsDep, StoreDep, marketer, viewer
from scrm.web.api.models import DB_INT, NO_NUL

__all__ = ["router"]

router = APIRouter(prefix="/campaigns", tags=["campaigns"])
CampaignName = Annotated[str, Path(max_length=100, pattern=NO_NUL)]
EXAMPLE: dict[str, Any] = {
    "campaign": {
        "name": "spring_invite",
        "action": "template",
        "template_id": "TPL_EVENT",
        "segment": "leaders",
        "control_percent": 10,
        "fields": {"first": "{{ name }}, you are invited"},
    }
}


class CampaignDefinition(BaseModel):
    """A campaign file as JSON: the ``campaign`` table and, unless it names a segment, ``audience``."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"example": EXAMPLE})
    campaign: dict[str, Any]
    audience: dict[str, Any] | None = None


class Campaign(BaseModel):
    name: str
    source: str = Field(description="file (of the campaigns folder) or saved (from the web)")
    action: str
    description: str
    when: str = Field(description="how it starts: manual, cron ..., every N min, at ..., on EVENT")
    schedule: dict[str, Any] | None
    trigger: dict[str, Any] | None
    paused: bool
    variants: list[str]
    control_percent: float
    latest_run: dict[str, Any] | None
    file: str | None
    created_by: str
    updated_at: datetime | None
    error: str = Field(description="a saved campaign that no longer validates: why")


class CampaignDetail(Campaign):
    definition: dict[str, Any] | None


class Schedule(BaseModel):
    """One of ``cron`` (crontab), ``interval_minutes``, ``at`` (ISO time); none of them: no schedule."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": {"cron": "0 10 * * mon"}})
    cron: str | None = Field(None, max_length=200, pattern=NO_NUL)
    interval_minutes: int | float | None = Field(None, gt=0, le=366 * 24 * 60)
    at: str | None = Field(None, max_length=64, pattern=NO_NUL)


class Switch(BaseModel):
    name: str
    paused: bool
    changed: bool


class NewRun(BaseModel):
    run_key: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$",
        description="idempotency key: the same key again starts nothing new",
    )


class RunStarted(BaseModel):
    run_key: str
    run_id: int
    created: bool = Field(description="false: a run with this key existed already")
    status: str = Field(description="sending or done")
    sending: bool = Field(description="a thread of the server is sending it")


class Run(BaseModel):
    id: int
    run_key: str
    status: str
    scheduled_for: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    counts: dict[str, dict[str, int]]


def _definition(body: CampaignDefinition) -> dict[str, Any]:
    return body.model_dump(exclude_unset=True)


def _info(store: StoreDep, settings: SettingsDep, name: str) -> dict[str, Any]:
    return library.campaign_info(store, settings, name).as_dict()


@router.get("", response_model=Page[Campaign], summary="The campaigns: files and saved")
def campaigns(
    store: StoreDep, settings: SettingsDep, page: PagingDep, _caller: Annotated[Principal, viewer]
) -> Any:
    rows = [c.as_dict() for c in library.list_campaigns(store, settings)]
    return page.of(rows)


@router.post("", response_model=CampaignDetail, status_code=201, summary="Save a new campaign")
def create_campaign(
    body: CampaignDefinition, store: StoreDep, settings: SettingsDep, caller: Annotated[Principal, marketer]
) -> Any:
    """422 with the parser's message when invalid, 409 when the name is taken (file or saved)."""
    c = library.save_campaign(store, settings, _definition(body), caller.actor, create_only=True)
    return _info(store, settings, c.name)


@router.post("/preview", summary="Audience count and rendered messages of a definition")
def preview(
    body: CampaignDefinition,
    store: StoreDep,
    settings: SettingsDep,
    _caller: Annotated[Principal, viewer],
    customer_id: Annotated[int | None, Query(ge=1, le=DB_INT, description="render for this customer")] = None,
) -> dict[str, Any]:
    """How many customers the audience selects now, and each variant's message rendered for one of
    them (``customer_id``, else the first by social value); nothing is saved."""
    return library.render_preview(store, settings, _definition(body), customer_id)


@router.get("/{name}", response_model=CampaignDetail, summary="One campaign, with its definition")
def campaign(
    name: CampaignName, store: StoreDep, settings: SettingsDep, _caller: Annotated[Principal, viewer]
) -> Any:
    return _info(store, settings, name)


@router.put("/{name}", response_model=CampaignDetail, summary="Save (create or replace) a campaign")
def replace_campaign(
    name: CampaignName,
    body: CampaignDefinition,
    store: StoreDep,
    settings: SettingsDep,
    caller: Annotated[Principal, marketer],
) -> Any:
    """409 for a file campaign's name: files are edited in the folder."""
    library.save_campaign(store, settings, _definition(body), caller.actor, name=name)
    return _info(store, settings, name)


@router.delete("/{name}", status_code=204, summary="Delete a saved campaign (its runs stay)")
def delete_campaign(
    name: CampaignName, store: StoreDep, settings: SettingsDep, caller: Annotated[Principal, marketer]
) -> Response:
    """409 for a file campaign, or while a run of it is sending."""
    library.delete_campaign(store, settings, name, caller.actor)
    return Response(status_code=204)


@router.post("/{name}/dry-run", summary="Plan and render without storing or sending")
def dry_run(
    name: CampaignName,
    store: StoreDep,
    settings: SettingsDep,
    _caller: Annotated[Principal, marketer],
    sample: Annotated[int, Query(ge=0, le=50, description="rendered messages to show")] = 3,
) -> dict[str, Any]:
    """Counts by outcome (``would_send``, ``control``, ``skipped``), variant, channel and skip reason."""
    return library.dry_run(store, settings, name, sample=sample)


@router.put("/{name}/schedule", response_model=CampaignDetail, summary="Set or remove the schedule")
def schedule(
    name: CampaignName,
    body: Schedule,
    store: StoreDep,
    settings: SettingsDep,
    caller: Annotated[Principal, marketer],
) -> Any:
    """A saved campaign's ``[campaign.schedule]``; ``scrm serve`` follows within a trigger interval."""
    given = {k: v for k, v in body.model_dump().items() if v is not None}
    if len(given) > 1:
        raise CampaignError("schedule: give one of cron, interval_minutes, at (or none to remove it)")
    library.set_schedule(store, settings, name, given or None, caller.actor)
    return _info(store, settings, name)


def _switch(store: StoreDep, settings: SettingsDep, name: str, paused: bool, actor: str) -> dict[str, Any]:
    changed = library.set_paused(store, settings, name, paused, actor)
    return {"name": name, "paused": paused, "changed": changed}


@router.post("/{name}/pause", response_model=Switch, summary="Pause: schedule, triggers and sending stop")
def pause(
    name: CampaignName, store: StoreDep, settings: SettingsDep, caller: Annotated[Principal, marketer]
) -> Any:
    """A run that is sending stops at its next chunk; what is left stays planned for the resume."""
    return _switch(store, settings, name, True, caller.actor)


@router.post("/{name}/resume", response_model=Switch, summary="Resume a paused campaign")
def resume(
    name: CampaignName, store: StoreDep, settings: SettingsDep, caller: Annotated[Principal, marketer]
) -> Any:
    """``scrm serve`` sends what a paused run left at its next trigger check (or POST the run again)."""
    return _switch(store, settings, name, False, caller.actor)


@router.post("/{name}/runs", response_model=RunStarted, status_code=202, summary="Run the campaign now")
def start_run(
    name: CampaignName,
    body: NewRun,
    response: Response,
    store: StoreDep,
    settings: SettingsDep,
    caller: Annotated[Principal, marketer],
) -> Any:
    """202: planned, sending in the background; 200: a run with this key has already finished."""
    started = library.start_run(store, settings, name, body.run_key, caller.actor)
    if started["status"] == "done":
        response.status_code = 200
    return started


@router.get("/{name}/runs", response_model=Page[Run], summary="The campaign's runs, newest first")
def runs(name: CampaignName, store: StoreDep, page: PagingDep, _caller: Annotated[Principal, viewer]) -> Any:
    total, items = library.list_runs(store, name, limit=page.limit, offset=page.offset)
    return {**page.model_dump(), "total": total, "items": items}


@router.get("/{name}/report", summary="Per variant and control: sent, replies, purchases, uplift")
def report(
    name: CampaignName, store: StoreDep, settings: SettingsDep, _caller: Annotated[Principal, viewer]
) -> dict[str, Any]:
    """Uplift over the control group with 95 % Newcombe intervals (``[difference, low, high]``)."""
    return library.report(store, settings, name)
