"""The one connector interface for every platform, and the plain records it yields.

A connector is an adapter to one account on one platform (a WeChat Official Account, later a WeCom
corp ...). It reads followers, their profiles, their tags and their interactions, and it sends
messages. It knows nothing of the database: :mod:`connectors.follower_sync` persists what it yields.

Everything a connector yields is a frozen dataclass of plain values (strings, ints, aware datetimes),
so records can be compared, hashed and sent between processes.

Paging is resumable: :meth:`Connector.followers` and :meth:`Connector.interactions` yield pages
that carry the cursor to pass to resume *after* that page, so a caller that stored the cursor of the
last page it finished can start again from there.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import ClassVar, NoReturn

from scrm.errors import ConnectorError

__all__ = [
    "Connector",
    "ContactEvent",
    "ContactEventPage",
    "ContactFollow",
    "ContactPage",
    "ExternalContact",
    "FollowerPage",
    "FollowerProfile",
    "GroupConnector",
    "GroupInfo",
    "GroupMember",
    "GroupPage",
    "InteractionPage",
    "ReadOnlyConnector",
    "SendResult",
    "ShareRead",
    "TagInfo",
]


@dataclass(frozen=True)
class FollowerPage:
    """One page of follower ids; ``next_cursor`` resumes after it (None: this was the last page)."""

    ids: tuple[str, ...]
    next_cursor: str | None
    total: int


@dataclass(frozen=True)
class FollowerProfile:
    """What the platform tells about one follower.

    ``subscribed`` is False for someone who unfollowed since the list was read (the platform then
    returns only the ids). ``scene`` is how they subscribed (WeChat ``subscribe_scene``, e.g.
    ``ADD_SCENE_QR_CODE``), ``qr_scene_str`` the scene string of the channel QR code they scanned.
    """

    openid: str
    unionid: str | None
    subscribed: bool
    subscribe_time: datetime | None
    scene: str = ""
    qr_scene_str: str = ""
    tag_ids: tuple[int, ...] = ()
    remark: str = ""


@dataclass(frozen=True)
class TagInfo:
    """A tag of the account: the platform's id, its name and how many followers carry it."""

    id: int
    name: str
    count: int = 0


@dataclass(frozen=True)
class ShareRead:
    """A read of an article through a follower's tracked share link: ``sharer`` → ``reader``."""

    id: str
    sharer: str
    reader: str
    article: str
    time: datetime


@dataclass(frozen=True)
class InteractionPage:
    """One page of interactions; ``next_cursor`` resumes after it."""

    items: tuple[ShareRead, ...]
    next_cursor: str
    has_more: bool


@dataclass(frozen=True)
class SendResult:
    """What a send did: the platform's message id, and for mass sends how it was addressed."""

    msg_id: str
    recipients: int = 1
    raw: Mapping[str, object] = field(default_factory=dict, compare=False, hash=False)


class Connector(ABC):
    """An adapter to one account on one platform.

    Implementations raise only :class:`scrm.errors.ConnectorError` and its subclasses
    (``TokenRejected``, ``RateLimited``, ``RecipientRefused``, ``OutsideWindow``) for platform
    errors. Use as a context manager, or call :meth:`close`.
    """

    #: the platform's name as stored in the database (``identity.platform``, ``interaction.platform``)
    platform: ClassVar[str]
    #: the most ids one :meth:`profiles` request carries on this platform
    profile_batch_size: ClassVar[int]

    # -- reading ----------------------------------------------------------------------------------

    @abstractmethod
    def followers(self, cursor: str | None = None) -> Iterator[FollowerPage]:
        """Pages of follower ids, from the start or from ``cursor`` (a page's ``next_cursor``)."""

    @abstractmethod
    def profiles(self, ids: Sequence[str]) -> Iterator[list[FollowerProfile]]:
        """Profiles of ``ids``, one list per request of at most :attr:`profile_batch_size`, in order.

        Several requests may be in flight at once; the lists still come in the order of ``ids``.
        """

    @abstractmethod
    def tags(self) -> list[TagInfo]:
        """Every tag of the account."""

    @abstractmethod
    def interactions(self, cursor: str = "") -> Iterator[InteractionPage]:
        """Pages of interactions recorded after ``cursor`` (empty: from the start)."""

    # -- sending ----------------------------------------------------------------------------------

    @abstractmethod
    def send_text(self, recipient: str, text: str) -> SendResult:
        """A customer-service text message to one follower (inside the platform's window)."""

    @abstractmethod
    def send_template(
        self, recipient: str, template_id: str, data: Mapping[str, str], url: str | None = None
    ) -> SendResult:
        """A template message to one follower."""

    @abstractmethod
    def send_mass_text(
        self,
        text: str,
        *,
        recipients: Sequence[str] | None = None,
        tag_id: int | None = None,
        client_msg_id: str,
    ) -> SendResult:
        """A mass text to a list of followers, to a tag, or (neither given) to all followers.

        ``client_msg_id`` makes it idempotent: the same id sends nothing twice.
        """

    # -- tags -------------------------------------------------------------------------------------

    @abstractmethod
    def create_tag(self, name: str) -> TagInfo:
        """Create a tag on the platform."""

    @abstractmethod
    def tag_followers(self, tag_id: int, ids: Sequence[str]) -> None:
        """Put a tag on followers (any number; split into the platform's batch size)."""

    @abstractmethod
    def untag_followers(self, tag_id: int, ids: Sequence[str]) -> None:
        """Take a tag off followers."""

    # -- lifetime ---------------------------------------------------------------------------------

    def fresh_copy(self) -> Connector | None:
        """The same account with connections of its own, for a reader in a child process.

        A sync reads through the copy in a forked process (:mod:`connectors.child_reader`), so the
        copy must share nothing with this object that is not safe to share between processes (HTTP
        sessions, threads, locks). None (the default): this connector reads in threads only.
        """
        return None

    def close(self) -> None:  # noqa: B027  (optional hook, nothing to release by default)
        """Release connections and threads."""

    def __enter__(self) -> Connector:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


# -- groups and staff contacts (WeCom) -----------------------------------------------------------------


@dataclass(frozen=True)
class ContactFollow:
    """A staff member who has an external contact: since when, how (``add_way``), channel (``state``)."""

    staff: str
    added_at: datetime
    add_way: int = 0
    state: str = ""


@dataclass(frozen=True)
class ExternalContact:
    """A customer as a staff member's external contact; ``follows`` lists the staff members who have them."""

    id: str
    name: str
    unionid: str | None
    follows: tuple[ContactFollow, ...]


@dataclass(frozen=True)
class ContactPage:
    """One page of external contacts; ``next_cursor`` resumes after it (None: this was the last page)."""

    contacts: tuple[ExternalContact, ...]
    next_cursor: str | None


@dataclass(frozen=True)
class GroupMember:
    """A member of a customer group: a customer (their external id and unionid) or a staff member.

    ``invitor`` is who invited them (a staff userid or a customer's external id; empty: nobody).
    """

    id: str
    is_customer: bool
    joined_at: datetime
    join_scene: int = 0
    unionid: str | None = None
    invitor: str = ""


@dataclass(frozen=True)
class GroupInfo:
    """A customer group: its id, name, owner (a staff userid), creation time and current members."""

    id: str
    name: str
    owner: str
    created_at: datetime
    members: tuple[GroupMember, ...]


@dataclass(frozen=True)
class GroupPage:
    """One page of group ids; ``next_cursor`` resumes after it (None: this was the last page)."""

    ids: tuple[str, ...]
    next_cursor: str | None


@dataclass(frozen=True)
class ContactEvent:
    """A staff member deleted a customer (``staff_deleted_customer``) or the reverse.

    The reverse, a customer deleting a staff member, is ``customer_deleted_staff``.
    """

    id: str
    kind: str
    staff: str
    contact: str
    time: datetime


@dataclass(frozen=True)
class ContactEventPage:
    """One page of contact events; ``next_cursor`` resumes after it."""

    items: tuple[ContactEvent, ...]
    next_cursor: str
    has_more: bool


class GroupConnector(Connector):
    """A platform where staff members have customers as contacts and run customer groups (WeCom).

    Its followers are the external contacts; on top of :class:`Connector` it reads the staff, the
    contacts with the staff who have them, the groups and their members, and contact events.
    """

    @abstractmethod
    def staff(self) -> list[str]:
        """Every staff member's userid (whether or not they may have external contacts)."""

    @abstractmethod
    def contacts(self, cursor: str | None = None) -> Iterator[ContactPage]:
        """Pages of external contacts with the staff who have them, from the start or after ``cursor``.

        A contact whom several staff members have may come once per staff member.
        """

    @abstractmethod
    def groups(self, cursor: str | None = None) -> Iterator[GroupPage]:
        """Pages of customer group ids, from the start or after ``cursor``."""

    @abstractmethod
    def group_details(self, ids: Sequence[str]) -> Iterator[list[GroupInfo]]:
        """Details of groups ``ids`` in order, in lists (several requests may be in flight at once).

        A group that no longer exists is left out.
        """

    def contact_events(self, cursor: str = "") -> Iterator[ContactEventPage]:
        """Pages of contact events after ``cursor`` (none by default)."""
        return iter(())


class ReadOnlyConnector(Connector):
    """A connector that only reads: every send and tag call raises :class:`~scrm.errors.ConnectorError`
    saying so (``read_only_reason`` is added to the message)."""

    read_only_reason: ClassVar[str] = "it reads only"

    def _unsupported(self, what: str) -> NoReturn:
        raise ConnectorError(
            f"{self.platform}: {what} is not supported by this connector ({self.read_only_reason})"
        )

    def send_text(self, recipient: str, text: str) -> SendResult:
        self._unsupported("sending a message")

    def send_template(
        self, recipient: str, template_id: str, data: Mapping[str, str], url: str | None = None
    ) -> SendResult:
        self._unsupported("a template message")

    def send_mass_text(
        self,
        text: str,
        *,
        recipients: Sequence[str] | None = None,
        tag_id: int | None = None,
        client_msg_id: str,
    ) -> SendResult:
        self._unsupported("a mass message")

    def create_tag(self, name: str) -> TagInfo:
        self._unsupported("creating a tag")

    def tag_followers(self, tag_id: int, ids: Sequence[str]) -> None:
        self._unsupported("tagging")

    def untag_followers(self, tag_id: int, ids: Sequence[str]) -> None:
        self._unsupported("untagging")
