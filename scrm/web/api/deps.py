"""What the API's routers share: the caller, role checks, the store, pagination and error answers.

Every error has the same JSON shape, ``{"error": {"code": ..., "message": ...}}``: 401 without valid
credentials, 403 for a role that may not, 404 for what does not exist, 409 for a conflict, 422 for an
invalid request (FastAPI's validation details under ``"detail"``), 429 when throttled.
"""

from __future__ import annotations

from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from scrm import access
from scrm.access import Permission, Principal
from scrm.config import Settings
from scrm.errors import (
    AccessError,
    CampaignError,
    ConfigError,
    Conflict,
    ImportFileError,
    LoginThrottled,
    MergeRefused,
    NoScores,
    NotFound,
    PermissionDenied,
    ScrmError,
    TemplateError,
)
from scrm.store import Store

__all__ = [
    "Caller",
    "Page",
    "Paging",
    "StoreDep",
    "error_response",
    "install_error_handlers",
    "marketer",
    "paging",
    "viewer",
]

T = TypeVar("T")


def error_response(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}, **extra}, status_code=status)


_STATUS: list[tuple[type[ScrmError], int, str]] = [
    (LoginThrottled, 429, "throttled"),
    (PermissionDenied, 403, "forbidden"),
    (AccessError, 401, "unauthenticated"),
    (NoScores, 409, "no_scores"),
    (NotFound, 404, "not_found"),
    (MergeRefused, 409, "conflict"),
    (Conflict, 409, "conflict"),
    (CampaignError, 422, "invalid"),
    (TemplateError, 422, "invalid_template"),
    (ConfigError, 422, "invalid"),
    (ImportFileError, 422, "invalid_file"),
]


def _scrm_error(_request: Request, exc: Exception) -> JSONResponse:
    for kind, status, code in _STATUS:
        if isinstance(exc, kind):
            response = error_response(status, code, str(exc))
            if status == 401:
                response.headers["WWW-Authenticate"] = "Bearer"
            if isinstance(exc, LoginThrottled):
                response.headers["Retry-After"] = str(exc.retry_after)
            return response
    return error_response(400, "error", str(exc))


def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
        for e in exc.errors()
    ]
    first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
    where = ".".join(str(part) for part in first["loc"])
    return error_response(
        422, "invalid", f"{where}: {first['msg']}" if where else str(first["msg"]), detail=errors
    )


def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    codes = {401: "unauthenticated", 403: "forbidden", 404: "not_found", 405: "method_not_allowed"}
    response = error_response(exc.status_code, codes.get(exc.status_code, "error"), str(exc.detail))
    for name, value in (exc.headers or {}).items():
        response.headers[name] = value
    return response


def install_error_handlers(api: FastAPI) -> None:
    api.add_exception_handler(ScrmError, _scrm_error)
    api.add_exception_handler(RequestValidationError, _validation_error)
    api.add_exception_handler(StarletteHTTPException, _http_error)


def get_store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


StoreDep = Annotated[Store, Depends(get_store)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


def _principal(request: Request) -> Principal:
    """The caller, from ``Authorization: Bearer TOKEN`` only.

    The dashboard's session cookie is not accepted here: a cookie is sent by the browser on its own,
    so the API would need the dashboard's CSRF check too; a bearer token cannot be forged that way.
    """
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return access.authenticate_token(get_store(request), token.strip())
    raise AccessError("authenticate with Authorization: Bearer <token> (scrm token create)")


def _needs(permission: Permission) -> Any:
    def check(principal: Annotated[Principal, Depends(_principal)]) -> Principal:
        access.require(principal, permission)
        return principal

    return Depends(check)


Caller = Annotated[Principal, Depends(_principal)]
viewer = _needs("read")
"""A dependency: any valid caller (every role may read)."""
marketer = _needs("write")
"""A dependency: a marketer or an admin."""
admin = _needs("admin")
"""A dependency: an admin."""


class Paging(BaseModel):
    limit: int
    offset: int

    def of(self, rows: list[Any]) -> dict[str, Any]:
        """A :class:`Page` answer of a list held in memory (small lists: rules, tokens, definitions)."""
        items = rows[self.offset : self.offset + self.limit]
        return {**self.model_dump(), "total": len(rows), "items": items}


def paging(
    limit: Annotated[int, Query(ge=1, le=500, description="items per page")] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000, description="items to skip")] = 0,
) -> Paging:
    return Paging(limit=limit, offset=offset)


PagingDep = Annotated[Paging, Depends(paging)]


class Page(BaseModel, Generic[T]):
    """One page of a list: ``total`` items match, ``items`` holds ``limit`` of them from ``offset``."""

    total: int
    limit: int
    offset: int
    items: list[T]
