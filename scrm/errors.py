"""The one exception tree of scrm.

Every error that scrm raises on purpose derives from :class:`ScrmError`, so a caller (the CLI, the web
shell, a script) can catch one class and show its message, which always says what was wrong and what to
do about it::

    ScrmError
    ├── ConfigError                 config.toml or an SCRM_* variable is wrong (names the key and file)
    ├── StoreError                  the database cannot be reached or used
    │   └── SchemaOutOfDate         the schema is older than the code: run `scrm init`
    ├── ImportFileError(ValueError) an import file cannot be read at all (bad rows are reported, not raised)
    ├── ModelFitError(ValueError)   a statistical model (BG/NBD, Gamma-Gamma) cannot be fitted to the data
    ├── GraphError(ValueError)      a relationship graph's input is invalid (ids, weights, engine)
    │   └── NotConverged            an iterative graph algorithm (PageRank) did not reach its tolerance
    ├── NotFound(LookupError)       a customer, account ... that does not exist
    │   └── NoScores                no score snapshot yet: run `scrm score`
    ├── TemplateError               a message template cannot be rendered (syntax, undefined, sandbox)
    ├── CampaignError(ValueError)   a campaign or segment file is invalid (names file and line)
    ├── Conflict                    clashes with the current state: a name taken, a run sending (409)
    ├── AccessError                 the web: no valid credentials (401)
    │   ├── PermissionDenied        the role may not do this (403)
    │   └── LoginThrottled          too many failed logins: wait (429)
    └── ConnectorError              a platform answered with an error
        ├── TokenRejected           credentials or access token refused
        ├── RateLimited             a quota or frequency limit was hit (retry later)
        ├── RecipientRefused        not a follower, or an invalid recipient id
        ├── OutsideWindow           a service message outside the follower's window
        └── CallbackRejected(ValueError)  a callback with bad XML, too large, for another appid (400)
            └── SignatureRejected       a callback's signature is missing or wrong (403)
"""

from __future__ import annotations

__all__ = [
    "AccessError",
    "CallbackRejected",
    "CampaignError",
    "ConfigError",
    "Conflict",
    "ConnectorError",
    "GraphError",
    "ImportFileError",
    "LoginThrottled",
    "MergeRefused",
    "ModelFitError",
    "NoScores",
    "NotConverged",
    "NotFound",
    "OutsideWindow",
    "PermissionDenied",
    "RateLimited",
    "RecipientRefused",
    "SchemaOutOfDate",
    "ScrmError",
    "SignatureRejected",
    "StoreError",
    "TemplateError",
    "TokenRejected",
]


class ScrmError(Exception):
    """Base class of every error scrm raises on purpose."""


class ConfigError(ScrmError):
    """The configuration is invalid: an unknown key, a wrong type, a missing credential."""


class StoreError(ScrmError):
    """The store (database) cannot be reached or used."""


class SchemaOutOfDate(StoreError):
    """The database schema is missing or older than this version of scrm."""


class ImportFileError(ScrmError, ValueError):
    """An import file cannot be read at all (missing, unknown format, no usable header)."""


class ModelFitError(ScrmError, ValueError):
    """A statistical model cannot be fitted: too few customers, inconsistent data, or no convergence."""


class NotFound(ScrmError, LookupError):
    """The thing asked for does not exist."""


class NoScores(NotFound):
    """Scores were asked for before any score run finished: run ``scrm score`` first."""


class ConnectorError(ScrmError):
    """A platform (or its simulator) answered with an error."""

    def __init__(self, message: str, *, errcode: int | None = None) -> None:
        super().__init__(message)
        self.errcode = errcode


class TokenRejected(ConnectorError):
    """The platform refused our credentials or access token."""


class RateLimited(ConnectorError):
    """A platform quota or frequency limit was hit; the call may succeed later."""


class RecipientRefused(ConnectorError):
    """The platform will not deliver to this recipient: not a follower, or an invalid id (43004, 40003)."""


class OutsideWindow(ConnectorError):
    """A service message outside the window after the follower's last action (WeChat 45015, 45047)."""


class GraphError(ScrmError, ValueError):
    """A relationship graph's input is invalid: unknown customer ids, bad weights, an unknown engine."""


class NotConverged(GraphError):
    """An iterative graph algorithm did not reach its tolerance within its iteration budget."""


class CallbackRejected(ConnectorError, ValueError):
    """A platform callback was refused before anything was stored: malformed or hostile XML, a body too
    large, a message for another appid (answered 400)."""


class SignatureRejected(CallbackRejected):
    """A callback's signature (or msg_signature) is missing or wrong (answered 403)."""


class TemplateError(ScrmError):
    """A message template cannot be rendered: unknown, bad syntax, an undefined name, a sandbox violation."""


class CampaignError(ScrmError, ValueError):
    """A campaign or segment file is invalid (names the file and line), or a campaign cannot run."""


class Conflict(ScrmError):
    """A change that clashes with the current state: a name already taken, a paused campaign run, a
    campaign deleted while a run of it is sending."""


class MergeRefused(ScrmError, ValueError):
    """A merge or unmerge that cannot be done (already undone, customer merged away, merged with itself)."""


class AccessError(ScrmError):
    """No valid credentials: a missing, unknown or revoked API token, a wrong password, no session."""


class PermissionDenied(AccessError):
    """The caller's role may not do this (a viewer changing a campaign, a marketer creating tokens)."""


class LoginThrottled(AccessError):
    """Too many failed logins for this user or address lately; ``retry_after`` seconds to wait."""

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after
