"""The generated streams of a population: follower actions, share reads, shop orders.

Each function takes the population's columns and the seeded generator and returns records in time
order; :func:`~connectors.wechat_sim.population.generate_population` calls them in a fixed order, so
the same seed gives the same streams.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from connectors.wechat_sim import _content as content

__all__ = ["DAY", "Action", "Order", "ShareRead", "actions", "orders", "share_reads"]

DAY = 86_400


class Action(NamedTuple):
    """One thing a follower did, as WeChat would push it to the account's callback URL.

    ``kind`` is ``text``, ``subscribe``, ``scan``, ``click`` or ``unsubscribe``; ``key`` is the event
    key (``qrscene_<scene>`` for a subscribe through a code, the scene for a scan, the menu key for a
    click); ``msgid`` is set for text messages only.
    """

    time: int
    openid: str
    kind: str
    content: str = ""
    key: str = ""
    msgid: int = 0


class ShareRead(NamedTuple):
    """A read of an article through a follower's tracked share link."""

    id: str
    article: str
    title: str
    sharer: str
    reader: str
    time: int


class Order(NamedTuple):
    """One order of the brand shop (amount in CNY, time in unix seconds)."""

    order_id: str
    amount: str
    time: int
    openid: str
    unionid: str
    phone: str


def actions(
    rng: np.random.Generator,
    openids: list[str],
    first: np.ndarray,
    unsub: np.ndarray,
    resub: np.ndarray,
    qr_scene: list[int],
    qr_scene_str: list[str],
    t0: int,
    t_end: int,
) -> list[Action]:
    """Subscribe events for everyone, then messages, clicks and scans while subscribed, in time order."""
    n = len(openids)
    # Activity rates are heavy-tailed: most followers are quiet, a few talk a lot.
    rate = rng.pareto(1.8, size=n) * 0.8
    lo = np.maximum(first, t0)
    hi = np.where(unsub > 0, unsub, t_end)
    span = np.maximum(hi - lo, 0)
    counts = [
        np.where(span > 0, rng.poisson(np.minimum(rate, 40.0)), 0),
        np.where(span > 0, rng.poisson(np.minimum(rate * 0.6, 20.0)), 0),
        np.where(span > 0, rng.poisson(0.05, size=n), 0),
    ]
    everyone = np.arange(n)
    acting = np.concatenate([np.repeat(everyone, c) for c in counts])
    left, back = np.nonzero(unsub)[0], np.nonzero(resub)[0]
    # kind codes: 0 subscribe, 1 unsubscribe, 2 subscribe again, 3 text, 4 click, 5 scan
    who = np.concatenate([everyone, left, back, acting])
    kind = np.repeat(np.arange(6, dtype=np.int64), [n, len(left), len(back), *(int(c.sum()) for c in counts)])
    when = np.concatenate(
        [
            first,
            unsub[left],
            resub[back],
            lo[acting] + (rng.random(len(acting)) * span[acting]).astype(np.int64),
        ]
    )
    pick = rng.integers(0, 1 << 30, size=len(who))
    order = np.lexsort((kind, who, when))
    msgid = 24_000_000_000_000_000 + int(rng.integers(0, 10**12)) * 1000
    out: list[Action] = []
    for k in order.tolist():
        i, t, code, r = int(who[k]), int(when[k]), int(kind[k]), int(pick[k])
        if code == 0:
            scene = qr_scene_str[i] or (str(qr_scene[i]) if qr_scene[i] else "")
            out.append(Action(t, openids[i], "subscribe", key=f"qrscene_{scene}" if scene else ""))
        elif code == 1:
            out.append(Action(t, openids[i], "unsubscribe"))
        elif code == 2:
            out.append(Action(t, openids[i], "subscribe"))
        elif code == 3:
            msgid += 1
            out.append(
                Action(
                    t, openids[i], "text", content=content.MESSAGES[r % len(content.MESSAGES)], msgid=msgid
                )
            )
        elif code == 4:
            out.append(Action(t, openids[i], "click", key=content.MENU_KEYS[r % len(content.MENU_KEYS)]))
        else:
            out.append(Action(t, openids[i], "scan", key=str(content.CHANNELS[r % len(content.CHANNELS)])))
    return out


def share_reads(
    rng: np.random.Generator,
    openids: list[str],
    first: np.ndarray,
    unsub: np.ndarray,
    community: np.ndarray,
    t0: int,
    t_end: int,
    seed: int,
) -> list[ShareRead]:
    """Article shares by heavy-tailed sharers; each brings reads, mostly inside the sharer's community."""
    n = len(openids)
    if n < 2:
        return []
    n_shares = max(1, int(n * 0.3))
    weight = rng.pareto(1.5, size=n) + 0.05
    sharers = rng.choice(n, size=n_shares, p=weight / weight.sum())
    lo = np.maximum(first[sharers], t0)
    hi = np.where(unsub[sharers] > 0, unsub[sharers], t_end)
    keep = hi > lo
    sharers, lo, hi = sharers[keep], lo[keep], hi[keep]
    when = lo + (rng.random(len(sharers)) * (hi - lo)).astype(np.int64)
    articles = rng.integers(0, len(content.ARTICLES), size=len(sharers))
    n_reads = np.minimum(rng.zipf(2.2, size=len(sharers)), 300)
    share = np.repeat(np.arange(len(sharers)), n_reads)
    sharer = sharers[share]
    # A reader from the sharer's community (85%) or anyone: members sorted by community, then offsets.
    by_comm = np.argsort(community, kind="stable")
    sizes = np.bincount(community)
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    c = community[sharer]
    inside = by_comm[offsets[c] + (rng.random(len(share)) * sizes[c]).astype(np.int64)]
    anyone = rng.integers(0, n, size=len(share))
    reader = np.where(rng.random(len(share)) < 0.85, inside, anyone)
    time = when[share] + rng.exponential(6 * 3600, size=len(share)).astype(np.int64)
    ok = (reader != sharer) & (time < t_end)
    time, sharer, reader, article = time[ok], sharer[ok], reader[ok], articles[share][ok]
    order = np.lexsort((article, reader, sharer, time))
    out = []
    for j, k in enumerate(order.tolist()):
        art_id, title = content.ARTICLES[int(article[k])]
        s, r = openids[int(sharer[k])], openids[int(reader[k])]
        out.append(ShareRead(f"sr_{seed:04d}_{j:09d}", art_id, title, s, r, int(time[k])))
    return out


def orders(
    rng: np.random.Generator,
    openids: list[str],
    unionids: list[str | None],
    phones: list[str | None],
    first: np.ndarray,
    t0: int,
    t_end: int,
    seed: int,
) -> list[Order]:
    """Orders of about a third of the followers; counts Pareto-tailed, amounts log-normal."""
    n = len(openids)
    buyers = np.nonzero(rng.random(n) < 0.35)[0]
    counts = np.minimum(1 + rng.pareto(1.6, size=len(buyers)).astype(np.int64), 80)
    who = np.repeat(buyers, counts)
    lo = np.maximum(first[who] - 60 * DAY, t0 - 180 * DAY)
    when = lo + (rng.random(len(who)) * (t_end - lo)).astype(np.int64)
    amounts = np.minimum(rng.lognormal(5.0, 0.8, size=len(who)), 30_000.0)
    key_roll = rng.random(len(who))
    order = np.lexsort((who, when))
    out = []
    for j, k in enumerate(order.tolist()):
        i, roll = int(who[k]), float(key_roll[k])
        openid, unionid, phone = openids[i], "", ""
        if roll < 0.15 and phones[i]:
            openid, phone = "", phones[i] or ""
        elif roll < 0.25 and unionids[i]:
            openid, unionid = "", unionids[i] or ""
        elif roll > 0.9:
            phone = phones[i] or ""
        out.append(Order(f"WX{seed:04d}{j:09d}", f"{amounts[k]:.2f}", int(when[k]), openid, unionid, phone))
    return out
