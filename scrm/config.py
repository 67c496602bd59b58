"""Settings: ``config.toml`` validated into typed objects.

Where the file comes from, first match wins: the ``path`` argument (``scrm --config PATH``), the
``SCRM_CONFIG`` environment variable, ``./config.toml``. With no file at all, every default applies.

Single keys are overridden by environment variables named ``SCRM_<SECTION>__<KEY>`` (two underscores
between levels), for example ``SCRM_DATABASE__URL`` or ``SCRM_ACCOUNTS__DEMO__SECRET``. That is how
secrets are kept out of the file in production.

An unknown key, a wrong type or a missing credential raises :class:`~scrm.errors.ConfigError` naming the
key and the file. Secrets are :class:`pydantic.SecretStr`: they print as ``**********``.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from scrm.bot_settings import BotSettings
from scrm.errors import ConfigError

__all__ = [
    "ENV_PREFIX",
    "MastodonAccount",
    "Settings",
    "WeChatAccount",
    "WeComAccount",
    "WebSettings",
    "load_settings",
]

ENV_PREFIX = "SCRM_"
#: environment variables starting with SCRM_ that are not config overrides
_NOT_OVERRIDES = {"SCRM_CONFIG", "SCRM_TEST_DATABASE_URL", "SCRM_REQUIRE_POSTGRES", "SCRM_REQUIRE_BROWSER"}
WECHAT_API_BASE = "https://api.weixin.qq.com"
WECOM_API_BASE = "https://qyapi.weixin.qq.com"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GeneralSettings(_Section):
    timezone: str = "Asia/Shanghai"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r} (use an IANA name such as 'Asia/Shanghai')"
            ) from None
        return value

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class DatabaseSettings(_Section):
    url: str = "sqlite:///scrm.db"
    echo: bool = False


class ImportSettings(_Section):
    default_currency: str = Field("CNY", pattern=r"^[A-Z]{3}$")
    phone_region: str = Field("CN", pattern=r"^[A-Z]{2}$")
    batch_size: int = Field(50_000, ge=100, le=1_000_000)
    reader_process: Literal["auto", "always", "never"] = "auto"


class ScoringWeights(_Section):
    influence: float = Field(0.35, ge=0)
    reach: float = Field(0.15, ge=0)
    community: float = Field(0.10, ge=0)
    lifetime_value: float = Field(0.40, ge=0)


class ScoringKinds(_Section):
    """Weight of one tie of each kind in the relationship graph (before the time decay)."""

    referred_by: float = Field(3.0, ge=0)
    share_read: float = Field(1.0, ge=0)
    reply: float = Field(0.5, ge=0)
    mention: float = Field(0.5, ge=0)
    boost: float = Field(0.5, ge=0)
    message_to: float = Field(0.25, ge=0)
    invited_to_group: float = Field(1.0, ge=0)
    group_member: float = Field(0.2, ge=0)


class ScoringSettings(_Section):
    half_life_days: float = Field(90.0, gt=0)
    pagerank_alpha: float = Field(0.85, gt=0, lt=1)
    community_method: Literal["leiden", "louvain"] = "leiden"
    community_resolution: float = Field(1.0, gt=0)
    community_seed: int = Field(42, ge=0)
    leaders_per_community: int = Field(3, ge=1, le=100)
    p_alive_threshold: float = Field(0.5, ge=0, le=1)
    silent_gap_factor: float = Field(3.0, gt=1)
    churn_days: float = Field(365.0, gt=0)
    clv_horizon_days: float = Field(365.0, gt=0)
    keep_snapshots: int = Field(30, ge=1)
    kinds: ScoringKinds = ScoringKinds()
    weights: ScoringWeights = ScoringWeights()


class CampaignSettings(_Section):
    max_messages_per_week: int = Field(2, ge=0)
    quiet_hours_start: str = Field("22:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    quiet_hours_end: str = Field("08:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    folder: str = "campaigns.d"
    concurrency: int = Field(8, ge=1, le=64)
    template_quota_per_day: int = Field(100_000, ge=0)
    mass_per_follower_month: int = Field(4, ge=0)
    send_retries: int = Field(3, ge=0, le=20)
    backoff_seconds: float = Field(0.5, ge=0, le=600)
    lease_seconds: float = Field(300.0, gt=0)
    misfire_grace_seconds: int = Field(3600, ge=1)
    trigger_interval_seconds: int = Field(60, ge=1)


class SyncSettings(_Section):
    concurrency: int = Field(4, ge=1, le=64)
    max_token_refreshes: int = Field(3, ge=1, le=20)
    rate_limit_retries: int = Field(5, ge=0, le=50)
    backoff_seconds: float = Field(1.0, ge=0, le=600)
    timeout_seconds: float = Field(30.0, gt=0, le=600)
    batch_size: int = Field(2_000, ge=100, le=20_000)
    # read in a child process while this one writes: "auto" when 2+ CPUs and 10+ batches are left
    reader_process: Literal["auto", "always", "never"] = "auto"


class WebSettings(_Section):
    """The dashboard: its session cookie and the secret that signs it."""

    # signs the session cookies; "" = generated once and kept in secret_key_file (mode 0600)
    secret_key: SecretStr = SecretStr("")
    secret_key_file: str = "scrm-web-secret.key"  # relative to the config file's folder
    session_minutes: int = Field(480, ge=1, le=60 * 24 * 30)  # idle: signed out after this long unused
    session_max_hours: int = Field(24, ge=1, le=24 * 90)  # absolute: signed out this long after login
    secure_cookies: bool = False  # send the session cookie over HTTPS only (set true behind TLS)
    login_attempts: int = Field(5, ge=1, le=100)  # failed logins per username in login_window_minutes
    login_window_minutes: int = Field(15, ge=1, le=24 * 60)
    page_size: int = Field(50, ge=5, le=500)  # rows per page of the leaderboard and lists
    map_nodes: int = Field(300, ge=10, le=5000)  # customers drawn on the community map at most


class WeChatAccount(_Section):
    """A WeChat Official Account we own."""

    platform: Literal["wechat"]
    appid: str = Field(min_length=1)
    secret: SecretStr
    token: SecretStr | None = None
    encoding_aes_key: SecretStr | None = None
    api_base: str = WECHAT_API_BASE
    share_reads_url: str = ""
    display_name: str = ""

    @field_validator("encoding_aes_key")
    @classmethod
    def _aes_key_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) != 43:
            raise ValueError("an EncodingAESKey has 43 characters")
        return value


class WeComAccount(_Section):
    """A WeCom (企业微信) corp whose external contacts and customer groups we sync."""

    platform: Literal["wecom"]
    corpid: str = Field(min_length=1)
    secret: SecretStr  # the customer-contact (客户联系) secret
    api_base: str = WECOM_API_BASE
    events_url: str = ""
    display_name: str = ""

    @property
    def appid(self) -> str:
        """The corpid: the account's key in the store (``account.external_id``, identity scope)."""
        return self.corpid


class MastodonAccount(_Section):
    """The brand's account on a Mastodon instance (followers, mentions, replies and boosts)."""

    platform: Literal["mastodon"]
    api_base_url: str = Field(min_length=1)  # https://social.example
    access_token: SecretStr
    handle: str = Field(pattern=r"^[A-Za-z0-9_]+@[A-Za-z0-9.-]+$")  # brand@social.example
    display_name: str = ""

    @property
    def appid(self) -> str:
        """The handle: the account's key in the store (``account.external_id``)."""
        return self.handle

    @property
    def domain(self) -> str:
        """The instance's domain: the scope of its people's ``mastodon`` identities."""
        return self.handle.split("@", 1)[1]


Account = Annotated[WeChatAccount | WeComAccount | MastodonAccount, Field(discriminator="platform")]


class Settings(_Section):
    """All of scrm's settings; ``source`` is the file they came from (None: defaults only)."""

    scrm: GeneralSettings = GeneralSettings()
    database: DatabaseSettings = DatabaseSettings()
    imports: ImportSettings = Field(ImportSettings(), alias="import")
    scoring: ScoringSettings = ScoringSettings()
    campaigns: CampaignSettings = CampaignSettings()
    sync: SyncSettings = SyncSettings()
    bot: BotSettings = BotSettings()
    web: WebSettings = WebSettings()
    accounts: dict[str, Account] = {}
    source: Path | None = Field(None, exclude=True)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @property
    def base_dir(self) -> Path:
        """Relative paths (such as a SQLite file) are taken from the config file's folder."""
        return self.source.parent if self.source else Path.cwd()

    @property
    def database_url(self) -> str:
        """The database URL with a relative SQLite path made absolute against :attr:`base_dir`."""
        url = self.database.url
        prefix = "sqlite:///"
        if url.startswith(prefix) and url != "sqlite:///:memory:":
            path = Path(url[len(prefix) :])
            if not path.is_absolute():
                return prefix + str((self.base_dir / path).resolve())
        return url


def _config_path(path: str | os.PathLike[str] | None, environ: Mapping[str, str]) -> Path | None:
    if path is not None:
        chosen, why = Path(path), "given with --config"
    elif environ.get("SCRM_CONFIG"):
        chosen, why = Path(environ["SCRM_CONFIG"]), "named by SCRM_CONFIG"
    else:
        default = Path("config.toml")
        return default.resolve() if default.is_file() else None
    if not chosen.is_file():
        raise ConfigError(f"config file {chosen} ({why}) does not exist")
    return chosen.resolve()


def _apply_env(data: dict[str, Any], environ: Mapping[str, str]) -> dict[str, str]:
    """Merge SCRM_<SECTION>__<KEY> variables into ``data``; return {dotted key: variable name}."""
    origins: dict[str, str] = {}
    for name, value in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or name in _NOT_OVERRIDES or "__" not in name:
            continue
        parts = [p.lower() for p in name[len(ENV_PREFIX) :].split("__")]
        if any(not p for p in parts):
            raise ConfigError(f"environment variable {name}: empty key part (use SCRM_SECTION__KEY)")
        node = data
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"environment variable {name}: {part!r} is not a table")
            node = child
        node[parts[-1]] = value
        origins[".".join(parts)] = name
    return origins


def _describe(error: ValidationError, source: str, origins: dict[str, str]) -> str:
    lines = []
    for item in error.errors():
        # drop the discriminator tag
        loc = [str(p) for p in item["loc"] if p not in ("wechat", "wecom", "mastodon")]
        key = ".".join(loc) or "(top level)"
        where = f"environment variable {origins[key]}" if key in origins else source
        kind = item["type"]
        if kind == "extra_forbidden":
            msg = "unknown key (check the spelling against the commented config.toml)"
        elif kind == "missing":
            msg = "missing (required)"
        elif kind == "union_tag_invalid":
            msg = "unknown platform (supported: 'wechat', 'wecom', 'mastodon')"
        elif kind == "union_tag_not_found":
            msg = "missing key 'platform' (for example platform = \"wechat\")"
        else:
            msg = item["msg"].removeprefix("Value error, ")
        lines.append(f"{where}: {key}: {msg}")
    return "invalid configuration:\n  " + "\n  ".join(lines)


def load_settings(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Read, merge and validate the settings.

    Raises
    ------
    ConfigError
        The file is missing (when named), is not valid TOML, or holds an unknown key or a bad value.
    """
    environ = os.environ if environ is None else environ
    source = _config_path(path, environ)
    data: dict[str, Any] = {}
    if source is not None:
        try:
            data = tomllib.loads(source.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{source}: not valid TOML: {exc}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{source}: cannot be read: {exc}") from None
    origins = _apply_env(data, environ)
    try:
        return Settings.model_validate({**data, "source": source})
    except ValidationError as exc:
        raise ConfigError(_describe(exc, str(source or "(no config file)"), origins)) from None
