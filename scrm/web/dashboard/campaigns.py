"""``/campaigns``: the list, the builder (live audience count and rendered preview), dry run, run,
pause and the results with the uplift over the control group.

Everything goes through :mod:`campaigns.library`; a viewer sees the campaigns and their results, a
marketer or an admin also builds, dry-runs, runs and pauses them (their POSTs answer 403 to a viewer).
The builder makes a campaign definition like the API's (``{"campaign": {...}, "audience": {...}}``):
the audience is a saved or file segment, or conditions written as in a segment file's ``[where]``.
"""

from __future__ import annotations

import contextlib
import secrets
import tomllib
from typing import Any

from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from campaigns import library
from scrm.errors import CampaignError, Conflict, NoScores, TemplateError
from scrm.web.dashboard.base import Ctx, page

__all__ = ["routes"]

ACTIONS = ("text", "mass")
DEFAULT_AUDIENCE = 'subscribed = true\nopted_out = false\nrole = "leader"\n'
DEFAULT_TEXT = "Hi {{ name or 'there' }}, you are invited to our community meetup!"


@page()
def campaigns(ctx: Ctx) -> Response:
    """Every campaign, of the folder and saved, with its latest run and whether it is paused."""
    return ctx.render("campaigns.html", items=library.list_campaigns(ctx.store, ctx.settings))


def _number(ctx: Ctx, name: str, default: float, low: float, high: float) -> float:
    raw = ctx.field(name) or str(default)
    try:
        value = float(raw)
    except ValueError:
        raise CampaignError(f"{name}: give a number from {low:g} to {high:g}") from None
    if not low <= value <= high:
        raise CampaignError(f"{name}: give a number from {low:g} to {high:g}")
    return value


def _definition(ctx: Ctx) -> dict[str, Any]:
    """The campaign definition the builder's form describes (:class:`CampaignError` when it cannot)."""
    action = ctx.field("action") or "text"
    if action not in ACTIONS:
        raise CampaignError(f"action: one of {', '.join(ACTIONS)}")
    body: dict[str, Any] = {"action": action}
    for key in ("name", "description", "template_id"):
        if ctx.field(key):
            body[key] = ctx.field(key)
    body["control_percent"] = _number(ctx, "control_percent", 10, 0, 99)
    body["attribution_days"] = _number(ctx, "attribution_days", 7, 1, 365)
    texts = [t for t in (ctx.field("text_a"), ctx.field("text_b")) if t]
    if len(texts) == 2:
        body["variants"] = [{"name": "a", "text": texts[0]}, {"name": "b", "text": texts[1]}]
    elif texts:
        body["text"] = texts[0]
    if ctx.field("segment"):
        known = {s.name for s in library.list_segments(ctx.store, ctx.settings)}
        if ctx.field("segment") not in known:  # a name, never a path to read
            raise CampaignError(
                f"segment: no segment {ctx.field('segment')!r} (known: {', '.join(sorted(known))})"
            )
        body["segment"] = ctx.field("segment")
        return {"campaign": body}
    try:
        where = tomllib.loads(ctx.field("audience"))
    except tomllib.TOMLDecodeError as exc:
        raise CampaignError(f"audience: not valid TOML ({exc})") from None
    if not where:
        raise CampaignError("audience: choose a segment or write at least one condition")
    return {"campaign": body, "audience": where}


def _form(ctx: Ctx) -> dict[str, str]:
    """The builder's fields as sent (to show the form again), or their defaults."""
    keys = ("name", "description", "action", "segment", "audience", "text_a", "text_b", "template_id")
    values = {k: ctx.field(k) for k in keys}
    if ctx.form is None:
        values.update(audience=DEFAULT_AUDIENCE, text_a=DEFAULT_TEXT, action="text")
    values["control_percent"] = ctx.field("control_percent") or "10"
    values["attribution_days"] = ctx.field("attribution_days") or "7"
    return values


def _builder(ctx: Ctx, status: int = 200, error: str = "") -> Response:
    segments = library.list_segments(ctx.store, ctx.settings)
    return ctx.render(
        "campaign_new.html", status=status, form=_form(ctx), segments=segments, actions=ACTIONS, error=error
    )


@page("write")
def new(ctx: Ctx) -> Response:
    """The builder (GET) and saving the campaign it describes (POST; then its page)."""
    if ctx.request.method == "GET":
        return _builder(ctx)
    try:
        definition = _definition(ctx)
        if "name" not in definition["campaign"]:
            raise CampaignError("name: give the campaign a name")
        # what the preview refuses (a template that fails) is not saved either; an audience that
        # needs scores can be saved before the first `scrm score`
        with contextlib.suppress(NoScores):
            library.render_preview(ctx.store, ctx.settings, definition)
        user = ctx.user
        assert user is not None
        saved = library.save_campaign(ctx.store, ctx.settings, definition, user.actor, create_only=True)
    except (CampaignError, TemplateError, Conflict) as exc:
        return _builder(ctx, status=409 if isinstance(exc, Conflict) else 422, error=str(exc))
    return RedirectResponse(f"/campaigns/{saved.name}", status_code=303)


@page("write")
def preview(ctx: Ctx) -> Response:
    """The builder's live part: the audience count and each variant rendered for its first customer."""
    try:
        shown = library.render_preview(ctx.store, ctx.settings, _definition(ctx))
    except NoScores:
        return ctx.render(
            "fragments/campaign_preview.html",
            status=409,
            error=ctx.gettext("There are no scores yet: run `scrm score` first."),
        )
    except (CampaignError, TemplateError) as exc:
        return ctx.render("fragments/campaign_preview.html", status=422, error=str(exc))
    return ctx.render("fragments/campaign_preview.html", shown=shown)


def _name(ctx: Ctx) -> library.CampaignInfo:
    """The campaign of the URL (:class:`NotFound` unless the folder or the store defines it)."""
    return library.campaign_info(ctx.store, ctx.settings, str(ctx.request.path_params["name"]))


@page()
def detail(ctx: Ctx) -> Response:
    """One campaign: its definition, runs, and results per variant with the uplift over control."""
    info = _name(ctx)
    total, runs = library.list_runs(ctx.store, info.name, limit=20)
    try:
        results: dict[str, Any] | None = library.report(ctx.store, ctx.settings, info.name)
    except CampaignError:  # a saved campaign that no longer validates (info.error says why)
        results = None
    return ctx.render(
        "campaign.html",
        info=info,
        runs=runs,
        total_runs=total,
        results=results,
        run_key=secrets.token_hex(8),
        started=ctx.field("started"),
    )


@page("write")
def dry_run(ctx: Ctx) -> Response:
    """Plan and render the campaign without storing or sending anything (a fragment)."""
    info = _name(ctx)
    template = "fragments/dry_run.html" if ctx.htmx else "dry_run.html"  # a page without JavaScript
    try:
        result = library.dry_run(ctx.store, ctx.settings, info.name, sample=3)
    except (CampaignError, TemplateError) as exc:
        return ctx.render(template, status=422, error=str(exc), name=info.name)
    return ctx.render(template, result=result, name=info.name)


@page("write")
def run(ctx: Ctx) -> Response:
    """Start a run now (sent in the background); the form's key makes a second click run nothing new."""
    info = _name(ctx)
    if ctx.field("confirm") != "yes":
        raise CampaignError(ctx.gettext("Tick the box to confirm that the messages may be sent."))
    user = ctx.user
    assert user is not None
    started = library.start_run(ctx.store, ctx.settings, info.name, ctx.field("run_key"), user.actor)
    return RedirectResponse(f"/campaigns/{info.name}?started={started['run_key']}", status_code=303)


@page("write")
def pause(ctx: Ctx) -> Response:
    """Pause (``paused=1``) or resume (``paused=0``) the campaign."""
    info = _name(ctx)
    user = ctx.user
    assert user is not None
    library.set_paused(ctx.store, ctx.settings, info.name, ctx.field("paused") == "1", user.actor)
    return RedirectResponse(f"/campaigns/{info.name}", status_code=303)


routes = [
    Route("/campaigns", campaigns),
    Route("/campaigns/new", new, methods=["GET", "POST"]),
    Route("/campaigns/preview", preview, methods=["POST"]),
    Route("/campaigns/{name}", detail),
    Route("/campaigns/{name}/dry-run", dry_run, methods=["POST"]),
    Route("/campaigns/{name}/run", run, methods=["POST"]),
    Route("/campaigns/{name}/pause", pause, methods=["POST"]),
]
