"""Suggested merges: pairs of customers that may be one person, on evidence too weak to merge alone.

Automatic merges happen only on strong keys (:mod:`scrm.identity`: an openid's unionid, a verified
phone or email). Weaker clues are scored here and stored as ``merge_suggestion`` rows for a person to
accept (``scrm merge A B --reason ...``) or leave:

========================  ======  ===========================================================
clue                      weight  what it is
========================  ======  ===========================================================
``same_unverified``       0.60    a phone or email one customer shows but that was not verified
                                  (identity kinds ``phone_unverified`` / ``email_unverified``)
                                  equals the other's (verified or not)
``same_name``             0.35    the same display name after normalising (case, spaces, punctuation)
``similar_handle``        0.30    a social handle's user part equals the other's name or handle
``same_channel``          0.25    both first came through the same channel (first follow's channel)
``same_group``            0.25    both are members of the same customer group
========================  ======  ===========================================================

Clues combine like independent pieces of evidence (noisy-or): ``score = 1 - prod(1 - weight)``, so a
name alone (0.35) is no suggestion at the default threshold 0.5, a name and a channel (0.51) is.
Candidate pairs come only from blocks that share a normalised name or an unverified contact value
(no all-pairs comparison); blocks larger than ``max_block`` (a very common name) are skipped.

References
----------
Fellegi, I. P. and Sunter, A. B. (1969). A theory for record linkage. JASA 64(328), 1183-1210 (the
blocking and weighted-agreement scheme, simplified here to fixed weights).
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from scrm.identity import in_values, insert_ignoring_conflicts
from scrm.models import Customer, Follow, GroupMembership, Identity, MergeSuggestion, utcnow

__all__ = [
    "HANDLE_KINDS",
    "UNVERIFIED_KINDS",
    "WEIGHTS",
    "Suggestion",
    "combine",
    "compute_suggestions",
    "list_suggestions",
    "normalise_name",
]

WEIGHTS = {
    "same_unverified": 0.60,
    "same_name": 0.35,
    "similar_handle": 0.30,
    "same_channel": 0.25,
    "same_group": 0.25,
}
#: identity kinds of contact details a profile shows but the platform did not verify -> the strong kind
UNVERIFIED_KINDS = {"phone_unverified": "phone", "email_unverified": "email"}
#: identity kinds whose value is a social handle ``user@domain``
HANDLE_KINDS = ("mastodon",)

customer_t = Customer.__table__  # type: ignore[attr-defined]
identity_t = Identity.__table__  # type: ignore[attr-defined]
suggestion_t = MergeSuggestion.__table__  # type: ignore[attr-defined]
_CHUNK = 5_000


def normalise_name(text: str) -> str:
    """Lower case letters and digits only (NFKC first), for comparing names and handles.

    Examples
    --------
    >>> normalise_name("Li  Lei!")
    'lilei'
    >>> normalise_name("li_lei@social.example".split("@")[0])
    'lilei'
    >>> normalise_name("ＬＩ Lei")
    'lilei'
    """
    return re.sub(r"[\W_]+", "", unicodedata.normalize("NFKC", text).casefold())


def combine(weights: Iterable[float]) -> float:
    """Noisy-or of independent clues: ``1 - prod(1 - w)``.

    Examples
    --------
    >>> round(combine([0.35, 0.25]), 4)
    0.5125
    >>> combine([])
    0.0
    """
    miss = 1.0
    for weight in weights:
        miss *= 1.0 - weight
    return 1.0 - miss


@dataclass(frozen=True)
class Suggestion:
    id: int
    customer_a: int
    customer_b: int
    score: float
    evidence: list[dict[str, Any]]
    status: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "customer_a": self.customer_a,
            "customer_b": self.customer_b,
            "score": round(self.score, 4),
            "evidence": self.evidence,
            "status": self.status,
            "accept": f"scrm merge {self.customer_a} {self.customer_b} --reason '...'",
        }


def _chunks(ids: list[int]) -> Iterable[list[int]]:
    for start in range(0, len(ids), _CHUNK):
        yield ids[start : start + _CHUNK]


def _first_channels(conn: Connection, ids: list[int]) -> dict[int, str]:
    f = Follow.__table__.c  # type: ignore[attr-defined]
    first: dict[int, tuple[Any, str]] = {}
    for chunk in _chunks(ids):
        for cid, at, channel in conn.execute(
            sa.select(f.customer_id, f.subscribed_at, f.channel).where(f.customer_id.in_(chunk))
        ):
            if cid not in first or at < first[cid][0]:
                first[cid] = (at, channel)
    return {cid: channel for cid, (_, channel) in first.items() if channel}


def _groups(conn: Connection, ids: list[int]) -> dict[int, set[int]]:
    g = GroupMembership.__table__.c  # type: ignore[attr-defined]
    out: dict[int, set[int]] = defaultdict(set)
    for chunk in _chunks(ids):
        for cid, group_id in conn.execute(
            sa.select(g.customer_id, g.group_id).where(g.customer_id.in_(chunk))
        ):
            out[cid].add(group_id)
    return out


def compute_suggestions(conn: Connection, *, min_score: float = 0.5, max_block: int = 50) -> int:
    """Score candidate pairs and store those at ``min_score`` or above; return how many were stored.

    New pairs are inserted ``open``; an ``open`` pair gets its new score and evidence; pairs already
    ``accepted`` or ``rejected`` are left as they are.
    """
    c, i = customer_t.c, identity_t.c
    names = {
        cid: normalise_name(name)
        for cid, name in conn.execute(
            sa.select(c.id, c.display_name).where(c.merged_into_id.is_(None), c.display_name != "")
        )
    }
    live = sa.select(c.id).where(c.merged_into_id.is_(None))
    handles: dict[int, set[str]] = defaultdict(set)
    blocks: dict[tuple[str, str], set[int]] = defaultdict(set)
    for cid, key in names.items():
        if key:
            blocks[("name", key)].add(cid)
    for cid, value in conn.execute(
        sa.select(i.customer_id, i.value).where(i.kind.in_(HANDLE_KINDS), i.customer_id.in_(live))
    ):
        user = normalise_name(value.split("@")[0])
        if user:
            handles[cid].add(user)
            blocks[("name", user)].add(cid)
    unverified: dict[int, set[tuple[str, str]]] = defaultdict(set)
    for cid, kind, value in conn.execute(
        sa.select(i.customer_id, i.kind, i.value).where(i.kind.in_(UNVERIFIED_KINDS), i.customer_id.in_(live))
    ):
        strong = (UNVERIFIED_KINDS[kind], value)
        unverified[cid].add(strong)
        blocks[("contact", f"{strong[0]}:{value}")].add(cid)
    for strong_kind in set(UNVERIFIED_KINDS.values()):
        values = sorted({v for pairs in unverified.values() for k, v in pairs if k == strong_kind})
        for start in range(0, len(values), _CHUNK):
            query = sa.select(i.customer_id, i.value).where(
                i.kind == strong_kind, in_values(conn, i.value, values[start : start + _CHUNK])
            )
            for cid, value in conn.execute(query):
                blocks[("contact", f"{strong_kind}:{value}")].add(cid)
    pairs: dict[tuple[int, int], set[str]] = defaultdict(set)
    for (block_kind, _), members in blocks.items():
        if 1 < len(members) <= max_block:
            for a, b in combinations(sorted(members), 2):
                pairs[(a, b)].add(block_kind)
    if not pairs:
        return 0
    involved = sorted({cid for pair in pairs for cid in pair})
    channels = _first_channels(conn, involved)
    groups = _groups(conn, involved)
    now = utcnow()
    rows = []
    for (a, b), why in pairs.items():
        clues: list[dict[str, Any]] = []
        if "contact" in why:
            clues.append({"clue": "same_unverified", "detail": "a contact detail not verified on one side"})
        if names.get(a) and names.get(a) == names.get(b):
            clues.append({"clue": "same_name", "detail": names[a]})
        similar = (handles[a] & (handles[b] | {names.get(b, "")})) | (handles[b] & {names.get(a, "")})
        if similar:
            clues.append({"clue": "similar_handle", "detail": sorted(similar)[0]})
        if channels.get(a) and channels.get(a) == channels.get(b):
            clues.append({"clue": "same_channel", "detail": channels[a]})
        shared = groups.get(a, set()) & groups.get(b, set())
        if shared:
            clues.append({"clue": "same_group", "detail": f"group {min(shared)}"})
        for clue in clues:
            clue["weight"] = WEIGHTS[clue["clue"]]
        score = combine(clue["weight"] for clue in clues)
        if score >= min_score:
            rows.append((a, b, score, json.dumps(clues, ensure_ascii=False)))
    s = suggestion_t.c
    for a, b, score, evidence in rows:
        pair = (s.customer_a == a) & (s.customer_b == b) & (s.status == "open")
        conn.execute(sa.update(suggestion_t).where(pair).values(score=score, evidence=evidence))
    if rows:
        conn.execute(
            insert_ignoring_conflicts(conn, suggestion_t),
            [
                {"customer_a": a, "customer_b": b, "score": score, "evidence": evidence}
                | {"status": "open", "created_at": now}
                for a, b, score, evidence in rows
            ],
        )
    return len(rows)


def list_suggestions(conn: Connection, *, status: str = "open", limit: int = 100) -> list[Suggestion]:
    """Stored suggestions of one status, the highest score first."""
    s = suggestion_t.c
    query = (
        sa.select(s.id, s.customer_a, s.customer_b, s.score, s.evidence, s.status)
        .where(s.status == status)
        .order_by(s.score.desc(), s.id)
        .limit(limit)
    )
    return [
        Suggestion(row.id, row.customer_a, row.customer_b, row.score, json.loads(row.evidence), row.status)
        for row in conn.execute(query)
    ]
