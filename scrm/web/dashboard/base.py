"""What every dashboard page shares: the session, the language, the CSRF check, roles and rendering.

A page is a plain function ``handler(ctx) -> Response`` wrapped by :func:`page`, which

1. reads the session cookie and the language (:mod:`~scrm.web.dashboard.sessions`, :mod:`~.i18n`);
2. sends a visitor who is not signed in (or whose session expired) to ``/login`` (htmx requests get
   an ``HX-Redirect`` header instead);
3. on POST (any method but GET, HEAD, OPTIONS), checks the CSRF token (form field ``csrf_token``
   or header ``X-CSRF-Token``): 403 otherwise;
4. checks the user's role (read: everyone; write: marketer and admin): 403 otherwise;
5. runs the handler in a worker thread (the store is synchronous) and renders library errors as pages
   (404 not found, 409 no scores yet, 422 invalid);
6. sends the renewed session cookie and the security headers (a Content-Security-Policy that allows
   nothing from other hosts).
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from babel.support import NullTranslations
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from scrm import access, web_sessions
from scrm.access import Permission, Principal
from scrm.config import Settings
from scrm.errors import (
    CampaignError,
    ConfigError,
    Conflict,
    NoScores,
    NotFound,
    PermissionDenied,
    TemplateError,
)
from scrm.store import Store
from scrm.web.dashboard.i18n import LANG_COOKIE, LANGUAGES, Formats, choose_language, load_translations
from scrm.web.dashboard.sessions import COOKIE, Session, SessionCodec

__all__ = ["TEMPLATES", "Ctx", "Dashboard", "page", "pages"]

TEMPLATES = Path(__file__).resolve().parents[3] / "templates" / "web"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'self'; object-src 'none'"
)
Handler = Callable[["Ctx"], Response]
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})  # every other method needs the CSRF token


class Dashboard:
    """The dashboard's shared state: settings, store, session codec and one template set per language."""

    def __init__(self, settings: Settings, store: Store, templates: Path = TEMPLATES) -> None:
        self.settings = settings
        self.store = store
        self.codec = SessionCodec(settings)
        self.kept: dict[Any, tuple[float, Any]] = {}  # figures a page keeps a while: key -> (when, value)
        translations = load_translations(templates / "locale")
        self.translations = {lang: translations.get(lang, NullTranslations()) for lang in LANGUAGES}
        self.envs = {lang: self._environment(templates, lang, translations) for lang in LANGUAGES}

    def _environment(self, folder: Path, lang: str, translations: dict[str, NullTranslations]) -> Environment:
        env = Environment(
            loader=FileSystemLoader(folder),
            autoescape=select_autoescape(default=True, default_for_string=True),
            extensions=["jinja2.ext.i18n"],
        )
        env.install_gettext_translations(translations.get(lang, NullTranslations()), newstyle=True)  # type: ignore[attr-defined]
        env.filters.update(Formats(lang, self.settings.scrm.tz).filters())
        env.filters["tojson_attr"] = lambda value: json.dumps(value, ensure_ascii=False)
        env.filters["pretty"] = lambda value: json.dumps(value, ensure_ascii=False, indent=2, default=str)
        env.globals["lang"] = lang
        return env


@dataclass
class Ctx:
    """One request to a page: who asks, in which language, the form (on POST), and how to answer."""

    request: Request
    dash: Dashboard
    session: Session
    lang: str
    user: Principal | None
    form: FormData | None = None
    new_session: Session | None = None  # set by the login and the logout
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def store(self) -> Store:
        return self.dash.store

    @property
    def settings(self) -> Settings:
        return self.dash.settings

    @property
    def can_write(self) -> bool:
        return self.user is not None and access.allowed(self.user.role, "write")

    @property
    def htmx(self) -> bool:
        return self.request.headers.get("hx-request") == "true"

    def gettext(self, text: str, **values: Any) -> str:
        """``text`` translated into the page's language (for messages made in Python)."""
        translated = self.dash.translations[self.lang].gettext(text)
        return translated % values if values else translated

    def field(self, name: str, default: str = "") -> str:
        """A form field (POST) or query parameter (GET), stripped."""
        source: Any = self.form if self.form is not None else self.request.query_params
        value = source.get(name, default)
        return value.strip() if isinstance(value, str) else default

    def int_param(self, name: str, default: int, low: int = 0, high: int = 10_000_000) -> int:
        """An integer query parameter, clamped to ``low..high`` (a malformed one is the default)."""
        try:
            value = int(self.request.query_params.get(name, default))
        except ValueError:
            return default
        return max(low, min(high, value))

    def path_id(self, name: str) -> int:
        """An id of the URL's path; :class:`NotFound` beyond what the store's ids can be."""
        value = int(self.request.path_params[name])
        if value > 2**31 - 1:
            raise NotFound(f"there is no {name.removesuffix('_id')} {value}")
        return value

    def lang_url(self, lang: str) -> str:
        params = dict(self.request.query_params)
        params["lang"] = lang
        return f"{self.request.url.path}?{urlencode(params)}"

    def render(self, template: str, status: int = 200, **values: Any) -> HTMLResponse:
        env = self.dash.envs[self.lang]
        html = env.get_template(template).render(
            user=self.user,
            can_write=self.can_write,
            csrf=self.session.csrf,
            path=self.request.url.path,
            lang_urls={lang: self.lang_url(lang) for lang in LANGUAGES},
            **values,
        )
        return HTMLResponse(html, status_code=status, headers=self.headers)


def pages(total: int, size: int, number: int) -> dict[str, Any]:
    """A pager: page ``number`` (1-based, at most the last) of ``total`` items, ``size`` a page."""
    last = max(1, -(-total // size))
    number = max(1, min(number, last))
    return {"number": number, "last": last, "total": total, "size": size, "offset": (number - 1) * size}


def _problem(ctx: Ctx, status: int, message: str) -> Response:
    template = "fragments/error.html" if ctx.htmx else "error.html"
    return ctx.render(template, status=status, status_code=status, message=message)


def _run(handler: Handler, ctx: Ctx) -> Response:
    try:
        return handler(ctx)
    except NoScores:
        return _problem(ctx, 409, ctx.gettext("There are no scores yet: run `scrm score` first."))
    except NotFound as exc:
        return _problem(ctx, 404, str(exc))
    except Conflict as exc:
        return _problem(ctx, 409, str(exc))
    except PermissionDenied:
        return _problem(ctx, 403, ctx.gettext("Your role may not do this."))
    except (CampaignError, TemplateError, ConfigError) as exc:
        return _problem(ctx, 422, str(exc))


def _to_login(request: Request, expired: bool) -> Response:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.headers.get("hx-request") == "true" or request.method != "GET":  # back to the page, not
        here = urlsplit(request.headers.get("hx-current-url", "")).path or "/overview"  # to a fragment
    target = "/login?" + urlencode({"next": here, **({"expired": "1"} if expired else {})})
    if request.headers.get("hx-request") == "true":
        return Response(status_code=401, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


async def _handle(request: Request, handler: Handler, permission: Permission | None) -> Response:
    dash: Dashboard = request.app.state.dashboard
    now = time.time()
    session, state = dash.codec.load(request.cookies.get(COOKIE), now)
    send = None if state == "ok" else session
    asked = request.query_params.get("lang")
    lang = choose_language(
        asked, request.cookies.get(LANG_COOKIE), request.headers.get("accept-language", "")
    )
    user = (
        await run_in_threadpool(web_sessions.session_principal, dash.store, session.user, session.sid)
        if session.user
        else None
    )
    if session.user and user is None:  # signed out (this cookie copied?), disabled or deleted since
        session = send = Session.anonymous()
        state = "expired"
    expired = state == "expired"
    ctx = Ctx(request, dash, session, lang, user)
    response: Response
    if permission is not None and user is None:
        response = _to_login(request, expired)
    elif request.method not in SAFE_METHODS and not session.csrf_ok(await _csrf_token(request, ctx)):
        response = _problem(
            ctx,
            403,
            ctx.gettext("The form expired or did not come from this site: reload the page and try again."),
        )
    elif permission is not None and user is not None and not access.allowed(user.role, permission):
        response = _problem(ctx, 403, ctx.gettext("Your role may not do this."))
    else:
        response = await run_in_threadpool(_run, handler, ctx)
    send = ctx.new_session or send or dash.codec.touch(session, now)
    if send is not None:
        response.set_cookie(COOKIE, dash.codec.dump(send), **dash.codec.cookie_options())
    if asked in LANGUAGES:
        response.set_cookie(LANG_COOKIE, asked, max_age=365 * 86400, samesite="lax", path="/")
    _secure(response)
    return response


async def _csrf_token(request: Request, ctx: Ctx) -> str | None:
    ctx.form = await request.form()
    value = ctx.form.get("csrf_token")
    return value if isinstance(value, str) else request.headers.get("x-csrf-token")


def _secure(response: Response) -> None:
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("Cache-Control", "no-store")


def page(
    permission: Permission | None = "read",
) -> Callable[[Handler], Callable[[Request], Awaitable[Response]]]:
    """Make ``handler(ctx)`` a Starlette endpoint; ``permission`` None: open to visitors (the login)."""

    def wrap(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            return await _handle(request, handler, permission)

        endpoint.__name__ = handler.__name__
        endpoint.__doc__ = handler.__doc__
        return endpoint

    return wrap
