"""The Mastodon connector: the brand account's followers and the interactions between people on its
instance, through the official library Mastodon.py against a configurable ``api_base_url``.

Why Mastodon (and Mastodon.py) rather than Bluesky (atproto): Mastodon.py is at a stable major
version (2.x; 2.3.3 of October 2026) after a release history reaching back to 2016 (1.0.x through
1.8, 2.0 to 2.3), covers the whole REST API and is maintained by one long-standing author, while
atproto, also released in October 2026, is still 0.0.x (73 pre-1.0 releases: its API may change in
any release). Mastodon's REST paging (``Link`` headers with ``max_id``/``min_id``) also resumes from
a stored id, which the sync's checkpoints need.

What is read:

* :meth:`MastodonConnector.follower_accounts`: pages of the brand's followers as
  :class:`SocialProfile` (``followers`` and ``profiles`` give the same through the common interface;
  the followers list already carries whole profiles);
* :meth:`MastodonConnector.posts`: the instance's public local timeline after a stored status id, as
  :class:`SocialInteraction` records: ``reply`` (author → the account replied to), ``mention``
  (author → each other account mentioned) and ``boost`` (booster → the boosted post's author).

Contact fields: a profile field whose value is an email address or phone number becomes a strong key
(``email``/``phone`` identity, which merges customers) only when Mastodon marks the field verified
(``verified_at``); otherwise it is kept as ``email_unverified``/``phone_unverified``, which only feeds
merge *suggestions*. (Mastodon verifies links by ``rel="me"``; a plain email field is in practice
never verified, so in practice such fields only suggest.)

Errors: 401 → :class:`~scrm.errors.TokenRejected`; 429 → wait until ``X-RateLimit-Reset`` (at most
``[sync] rate_limit_retries`` times, then :class:`~scrm.errors.RateLimited`); 5xx and network errors
→ retried with exponential backoff the same bounded number of times; anything else → ConnectorError.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from mastodon import Mastodon
from mastodon.errors import (
    MastodonError,
    MastodonNetworkError,
    MastodonRatelimitError,
    MastodonServerError,
    MastodonUnauthorizedError,
)

from connectors.base import FollowerPage, FollowerProfile, InteractionPage, ReadOnlyConnector, TagInfo
from scrm.config import MastodonAccount, Settings, SyncSettings
from scrm.errors import ConfigError, ConnectorError, RateLimited, TokenRejected

__all__ = [
    "MastodonConnector",
    "PostPage",
    "SocialInteraction",
    "SocialProfile",
    "contact_keys",
    "interactions_of",
]

T = TypeVar("T")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")
_PHONE = re.compile(r"^\+?[0-9][0-9 ()-]{6,}$")
_TAG = re.compile(r"<[^>]+>")


@dataclass(frozen=True)
class SocialProfile:
    """A person's account: its id on the instance, ``acct`` as ``user@domain``, name and contact keys."""

    id: str
    acct: str
    display_name: str
    created_at: datetime | None
    #: (kind, value): ``email``/``phone`` when verified, ``email_unverified``/``phone_unverified`` if not
    contacts: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class SocialInteraction:
    """``author`` replied to, mentioned or boosted ``target`` (both ``user@domain``) in a status."""

    id: str  # unique per interaction: "reply:<status>", "mention:<status>:<account>", "boost:<status>"
    kind: str
    status_id: str
    author: str
    target: str
    time: datetime
    content: str = ""
    author_name: str = ""  # the author's display name (a mention carries only the other's handle)


@dataclass(frozen=True)
class PostPage:
    """Interactions of one page of statuses; ``next_cursor`` (a status id) resumes after it."""

    items: tuple[SocialInteraction, ...]
    next_cursor: str
    statuses: int


def contact_keys(fields: Sequence[Mapping[str, Any]]) -> tuple[tuple[str, str], ...]:
    """The email and phone keys of profile fields: strong kinds only when the field is verified.

    >>> contact_keys([{"name": "Email", "value": "a@b.example", "verified_at": None},
    ...               {"name": "Phone", "value": "+86 138 0013 8000", "verified_at": "2026-01-01"}])
    (('email_unverified', 'a@b.example'), ('phone', '+8613800138000'))
    """
    keys = []
    for item in fields:
        value = _TAG.sub("", str(item.get("value") or "")).strip()
        verified = bool(item.get("verified_at"))
        if _EMAIL.match(value):
            keys.append(("email" if verified else "email_unverified", value.lower()))
        elif _PHONE.match(value):
            digits = "+" + re.sub(r"\D", "", value) if value.startswith("+") else re.sub(r"\D", "", value)
            keys.append(("phone" if verified else "phone_unverified", digits))
    return tuple(keys)


def _full_acct(acct: str, domain: str) -> str:
    return acct if "@" in acct else f"{acct}@{domain}"


def _profile(data: Mapping[str, Any], domain: str) -> SocialProfile:
    return SocialProfile(
        id=str(data["id"]),
        acct=_full_acct(str(data["acct"]), domain),
        display_name=str(data.get("display_name") or ""),
        created_at=data.get("created_at"),
        contacts=contact_keys(data.get("fields") or ()),
    )


def interactions_of(status: Mapping[str, Any], domain: str) -> list[SocialInteraction]:
    """The replies, mentions and boosts one status makes (self-references skipped)."""
    sid = str(status["id"])
    author = _full_acct(str(status["account"]["acct"]), domain)
    at: datetime = status["created_at"].astimezone(UTC)
    name = str(status["account"].get("display_name") or "")
    reblog = status.get("reblog")
    if reblog:
        target = _full_acct(str(reblog["account"]["acct"]), domain)
        return (
            []
            if target == author
            else [SocialInteraction(f"boost:{sid}", "boost", sid, author, target, at, "", name)]
        )
    text = _TAG.sub("", str(status.get("content") or ""))[:500]
    mentioned = {str(m["id"]): _full_acct(str(m["acct"]), domain) for m in status.get("mentions") or ()}
    out = []
    reply_to = status.get("in_reply_to_account_id")
    replied = mentioned.get(str(reply_to)) if reply_to is not None else None
    if replied and replied != author:
        out.append(SocialInteraction(f"reply:{sid}", "reply", sid, author, replied, at, text, name))
    for account_id, acct in mentioned.items():
        if acct not in (author, replied):
            out.append(
                SocialInteraction(f"mention:{sid}:{account_id}", "mention", sid, author, acct, at, text, name)
            )
    return out


class MastodonConnector(ReadOnlyConnector):
    """One Mastodon account (the brand's), read through Mastodon.py; sending is not offered."""

    platform = "mastodon"
    profile_batch_size = 40  # GET /api/v1/accounts?id[]= takes at most 40

    def __init__(self, account: MastodonAccount, sync: SyncSettings | None = None) -> None:
        self.account = account
        self.sync = sync or SyncSettings()
        self.domain = account.domain
        self.client = Mastodon(
            access_token=account.access_token.get_secret_value(),
            api_base_url=account.api_base_url,
            ratelimit_method="throw",
            request_timeout=self.sync.timeout_seconds,
            version_check_mode="none",
        )
        self._brand: Mapping[str, Any] | None = None

    @classmethod
    def from_settings(
        cls, settings: Settings, account_name: str | None = None
    ) -> tuple[str, MastodonConnector]:
        """The connector of a configured Mastodon account (``account_name``, or the only one)."""
        found = {n: a for n, a in settings.accounts.items() if isinstance(a, MastodonAccount)}
        if account_name is None and len(found) == 1:
            account_name = next(iter(found))
        if account_name not in found:
            raise ConfigError(
                f"no Mastodon account {account_name!r} in the config (have: {', '.join(found) or 'none'}); "
                'add [accounts.NAME] with platform = "mastodon"'
            )
        return account_name, cls(found[account_name], settings.sync)

    def close(self) -> None:
        session = getattr(self.client, "session", None)
        if session is not None:
            session.close()

    # -- calls ------------------------------------------------------------------------------------

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        """One API call with bounded retries: rate limits wait for the reset, 5xx back off."""
        tries = self.sync.rate_limit_retries
        for attempt in range(tries + 1):
            try:
                return fn()
            except MastodonUnauthorizedError as exc:
                raise TokenRejected(f"Mastodon rejected the access token ({what}): {exc.args[-1]}") from None
            except MastodonRatelimitError:
                if attempt == tries:
                    raise RateLimited(
                        f"Mastodon: rate limited on {what} {tries + 1} times; try later"
                    ) from None
                reset = float(getattr(self.client, "ratelimit_reset", 0) or 0)
                time.sleep(min(max(reset - time.time(), 0.05), 300.0))
            except (MastodonServerError, MastodonNetworkError) as exc:
                if attempt == tries:
                    raise ConnectorError(f"Mastodon: {what} failed {tries + 1} times: {exc}") from None
                time.sleep(self.sync.backoff_seconds * 2**attempt)
            except MastodonError as exc:
                raise ConnectorError(f"Mastodon: {what} failed: {exc}") from None
        raise AssertionError("unreachable")

    def brand(self) -> Mapping[str, Any]:
        """The brand's own account (verify_credentials), read once."""
        if self._brand is None:
            self._brand = self._call("verify_credentials", self.client.account_verify_credentials)
        return self._brand

    # -- reading ----------------------------------------------------------------------------------

    def follower_accounts(
        self, cursor: str | None = None
    ) -> Iterator[tuple[list[SocialProfile], str | None]]:
        """Pages of followers, newest first: (profiles, the cursor after this page or None at the end)."""
        brand_id = self.brand()["id"]
        while True:
            page = self._call(
                "followers",
                lambda c=cursor: self.client.account_followers(brand_id, max_id=c, limit=80),  # type: ignore[misc]
            )
            if not page:
                return
            following = getattr(page, "_pagination_next", None) or {}
            # a short page is the last one (Mastodon links a "next" page that would be empty)
            cursor = str(following["max_id"]) if "max_id" in following and len(page) == 80 else None
            yield [_profile(a, self.domain) for a in page], cursor
            if cursor is None:
                return

    def followers(self, cursor: str | None = None) -> Iterator[FollowerPage]:
        total = int(self.brand().get("followers_count") or 0)
        for profiles, next_cursor in self.follower_accounts(cursor):
            yield FollowerPage(tuple(p.id for p in profiles), next_cursor, total)

    def accounts(self, ids: Sequence[str]) -> Iterator[list[SocialProfile]]:
        """Profiles of account ids, 40 a request, in order (an unknown id is left out)."""
        for start in range(0, len(ids), self.profile_batch_size):
            chunk = list(ids[start : start + self.profile_batch_size])
            found = {
                str(a["id"]): _profile(a, self.domain)
                for a in self._call("accounts", lambda c=chunk: self.client.accounts(c))  # type: ignore[misc]
            }
            yield [found[i] for i in chunk if i in found]

    def profiles(self, ids: Sequence[str]) -> Iterator[list[FollowerProfile]]:
        """Mastodon keeps no follow time or scene; ``remark`` is the ``user@domain`` handle."""
        for batch in self.accounts(ids):
            yield [FollowerProfile(p.id, None, True, None, remark=p.acct) for p in batch]

    def posts(self, cursor: str = "", *, limit: int = 40) -> Iterator[PostPage]:
        """Pages of interactions from the public local timeline, oldest first, after status ``cursor``."""
        while True:
            statuses = self._call(
                "public timeline",
                lambda c=cursor: self.client.timeline_public(  # type: ignore[misc]
                    min_id=c or "0", limit=limit, local=True
                ),
            )
            if not statuses:
                return
            ordered = sorted(statuses, key=lambda s: int(s["id"]))
            items = tuple(i for s in ordered for i in interactions_of(s, self.domain))
            cursor = str(ordered[-1]["id"])
            yield PostPage(items, cursor, len(ordered))

    def tags(self) -> list[TagInfo]:
        """Mastodon has no tags on followers."""
        return []

    def interactions(self, cursor: str = "") -> Iterator[InteractionPage]:
        """No share reads on Mastodon: its interactions come from :meth:`posts`."""
        return iter(())
