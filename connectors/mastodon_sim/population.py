"""A seeded Mastodon population: the brand account, its followers in communities, and their posts.

Accounts are people on one instance (``domain``); most follow the brand. Each belongs to a community
and mostly replies to, mentions and boosts people of its own community, so the graph built from
their posts has the planted structure. Some profiles carry contact fields (an email or a phone):
a few verified (``verified_at`` set), most not. Everything follows from ``seed``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

__all__ = ["SimAccount", "SimPopulation", "SimStatus", "generate_population"]

GIVEN = ["Lei", "Meimei", "Wei", "Fang", "Jing", "Min", "Tao", "Yan", "Hui", "Jun", "Ling", "Qiang"]
FAMILY = ["Li", "Han", "Wang", "Zhang", "Liu", "Chen", "Yang", "Zhao", "Huang", "Zhou"]


@dataclass
class SimAccount:
    id: str
    username: str
    display_name: str
    created_at: datetime
    community: int
    follows_brand: bool
    #: profile fields: (name, value, verified)
    fields: list[tuple[str, str, bool]] = field(default_factory=list)


@dataclass(frozen=True)
class SimStatus:
    id: str
    account_id: str
    created_at: datetime
    content: str
    in_reply_to_id: str | None = None
    in_reply_to_account_id: str | None = None
    mentions: tuple[str, ...] = ()
    reblog_of: str | None = None  # the boosted status's id


@dataclass
class SimPopulation:
    domain: str
    brand: SimAccount
    accounts: dict[str, SimAccount]
    statuses: list[SimStatus]  # in id (= time) order
    #: follow relationship id -> account id, in the order they followed (the followers list pages on it)
    follows: list[tuple[int, str]]
    now: datetime


def generate_population(
    accounts: int = 200,
    *,
    communities: int = 4,
    statuses: int = 600,
    seed: int = 1,
    domain: str = "social.example",
    start: datetime = datetime(2026, 9, 1, tzinfo=UTC),
) -> SimPopulation:
    """A reproducible population of ``accounts`` people posting ``statuses`` times over 60 days."""
    rng = random.Random(seed)
    brand = SimAccount("100", "brand", "Brand", start - timedelta(days=400), -1, False)
    people: dict[str, SimAccount] = {}
    for i in range(accounts):
        given, family = rng.choice(GIVEN), rng.choice(FAMILY)
        username = f"{given.lower()}_{family.lower()}{i}"
        account = SimAccount(
            id=str(1000 + i),
            username=username,
            display_name=f"{family} {given}",
            created_at=start - timedelta(days=rng.randint(1, 300)),
            community=i % communities,
            follows_brand=rng.random() < 0.85,
        )
        roll = rng.random()
        if roll < 0.08:
            account.fields.append(("Email", f"{username}@mail.example", True))
        elif roll < 0.2:
            account.fields.append(("Phone", f"+86138{rng.randint(0, 99_999_999):08d}", False))
        elif roll < 0.3:
            account.fields.append(("Website", f"https://{username}.example", True))
        people[account.id] = account
    by_community: dict[int, list[str]] = {}
    for account in people.values():
        by_community.setdefault(account.community, []).append(account.id)
    ids = list(people)
    posts: list[SimStatus] = []
    last_post: dict[str, SimStatus] = {}
    at = start
    for n in range(statuses):
        at += timedelta(seconds=rng.randint(60, 60 * 60 * 4))
        author = rng.choice(ids)
        mates = by_community[people[author].community]
        other = rng.choice(mates if rng.random() < 0.85 else ids)
        sid = str(10_000_000 + n)
        roll = rng.random()
        earlier = last_post.get(other)
        if roll < 0.25 or other == author or earlier is None:
            posts.append(SimStatus(sid, author, at, f"post {n}"))
            last_post[author] = posts[-1]
        elif roll < 0.5:
            posts.append(SimStatus(sid, author, at, f"reply {n}", earlier.id, other, (other,)))
        elif roll < 0.75:
            posts.append(SimStatus(sid, author, at, f"hello @{people[other].username}", mentions=(other,)))
        else:
            posts.append(SimStatus(sid, author, at, "", reblog_of=earlier.id))
    order = [a for a in ids if people[a].follows_brand]
    rng.shuffle(order)
    follows = [(50_000 + k, a) for k, a in enumerate(order)]
    return SimPopulation(domain, brand, people, posts, follows, at + timedelta(hours=1))
