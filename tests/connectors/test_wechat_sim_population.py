"""The simulator's generated population: reproducible, heavy-tailed referrals, clustered shares."""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pytest

from connectors.wechat_sim import Population, generate_population

OPENID = re.compile(r"^o[A-Za-z0-9_-]{27}$")


@pytest.fixture(scope="module")
def big() -> Population:
    return generate_population(10_000, seed=3)


def test_same_seed_same_population_other_seed_other() -> None:
    a, b, c = (generate_population(300, seed=s) for s in (7, 7, 8))
    assert a.openids == b.openids and a.unionids == b.unionids and a.phones == b.phones
    assert a.actions == b.actions and a.share_reads == b.share_reads and a.orders == b.orders
    assert np.array_equal(a.referrer, b.referrer) and np.array_equal(a.unsubscribe, b.unsubscribe)
    assert not set(a.openids) & set(c.openids)
    assert a.actions != c.actions and a.orders != c.orders


def test_identifiers_have_wechat_shapes(big: Population) -> None:
    assert all(OPENID.match(o) for o in big.openids)
    assert len(set(big.openids)) == len(big)
    unionids = [u for u in big.unionids if u]
    assert all(OPENID.match(u) for u in unionids) and len(set(unionids)) == len(unionids)
    assert 0.55 < len(unionids) / len(big) < 0.65
    phones = [p for p in big.phones if p]
    assert len(set(phones)) == len(phones) and all(re.match(r"^1\d{10}$", p) for p in phones)


def test_referral_forest_is_heavy_tailed(big: Population) -> None:
    referrer = big.referrer
    referred = np.nonzero(referrer >= 0)[0]
    assert np.all(referrer[referred] < referred)  # a referrer followed first: a forest, no cycles
    invited = big.invitees()
    assert (invited == 0).mean() > 0.8  # most invite no one
    mean = invited.sum() / len(big)
    # A Poisson count with this mean would almost never exceed 10; a few invite over a hundred.
    assert invited.max() > 100 and invited.max() > 200 * mean
    top = np.sort(invited)[::-1][: len(big) // 100].sum() / invited.sum()
    assert top > 0.3  # the top 1% of inviters brought in over 30% of the referred
    for i in referred[:50]:
        assert big.qr_scene_str[i] == "ref_" + big.openids[referrer[i]]
        assert big.scene[i] == "ADD_SCENE_QR_CODE"


def test_channels_and_scenes(big: Population) -> None:
    channels = Counter(s for s in big.qr_scene_str if s and not s.startswith("ref_"))
    assert {"poster_mall_sh", "store_bj_01", "kol_xiaohong"} <= set(channels)
    scenes = Counter(big.scene)
    assert scenes.most_common(1)[0][0] == "ADD_SCENE_QR_CODE"
    assert {"ADD_SCENE_SEARCH", "ADD_SCENE_PROFILE_CARD", "ADD_SCENE_ACCOUNT_MIGRATION"} <= set(scenes)


def test_share_reads_cluster_in_communities(big: Population) -> None:
    comm = big.community
    pairs = [(comm[big.index[r.sharer]], comm[big.index[r.reader]]) for r in big.share_reads]
    inside = np.mean([a == b for a, b in pairs])
    sizes = np.bincount(comm) / len(big)
    chance = float((sizes**2).sum())  # share of pairs inside one community if readers were random
    assert 10 <= len(sizes) <= 30
    assert inside > 0.75 > 3 * chance
    assert [r.id for r in big.share_reads] == sorted(r.id for r in big.share_reads)
    assert [r.time for r in big.share_reads] == sorted(r.time for r in big.share_reads)
    assert all(r.sharer != r.reader for r in big.share_reads)


def test_actions_unsubscribes_and_returns(big: Population) -> None:
    kinds = Counter(a.kind for a in big.actions)
    assert {"text", "click", "scan", "subscribe", "unsubscribe"} == set(kinds)
    assert 0.03 < kinds["unsubscribe"] / len(big) < 0.07
    back = np.nonzero(big.resubscribe)[0]
    assert len(back) > 0 and np.all(big.resubscribe[back] > big.unsubscribe[back])
    end = int(big.end.timestamp())
    assert all(a.time < end for a in big.actions)
    texts = [a for a in big.actions if a.kind == "text"]
    assert any(re.search(r"[\u4e00-\u9fff]", a.content) for a in texts)
    assert any(re.fullmatch(r"[ -~]+", a.content) for a in texts)
    assert len({a.msgid for a in texts}) == len(texts)
    # Nobody acts while unsubscribed.
    for a in big.actions:
        if a.kind in ("text", "click", "scan"):
            assert big.subscribed_mask(a.time)[big.index[a.openid]]


def test_orders_are_heavy_tailed_and_keyed(big: Population) -> None:
    per_buyer = Counter(o.openid or o.phone or o.unionid for o in big.orders)
    counts = np.array(sorted(per_buyer.values(), reverse=True))
    assert 0.25 < len(per_buyer) / len(big) < 0.45
    assert np.median(counts) <= 2 and counts.max() >= 20
    assert all(o.openid or o.phone or o.unionid for o in big.orders)
    assert any(not o.openid and o.phone for o in big.orders)
    assert any(not o.openid and o.unionid for o in big.orders)
    assert [o.time for o in big.orders] == sorted(o.time for o in big.orders)
    assert len({o.order_id for o in big.orders}) == len(big.orders)


def test_predefined_tags(big: Population) -> None:
    assert set(big.tags.values()) >= {"VIP", "新客"}
    assert all(members for members in big.tag_members.values())
