"""Every dashboard page answers with its data, in English and Chinese, and loads nothing from elsewhere."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from datetime import timedelta
from html.parser import HTMLParser
from urllib.parse import urlsplit

import httpx
import pytest

from campaigns import library
from graph.pipeline import rescore
from graph.reports import community_report, explain_customer, funnel_report, top_customers
from graph.views import scored_count
from scrm.models import Customer
from scrm.queries import list_customers
from scrm.web.dashboard.base import CSP
from tests.web.dashboard_env import signed_in
from tests.web.world import WebWorld

PAGES = ["/overview", "/leaderboard", "/communities", "/funnel", "/customers", "/campaigns"]


class _Links(HTMLParser):
    """Every src, href and action of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href", "action", "hx-get", "hx-post", "data-src") and value is not None:
                self.urls.append(value)


def _urls(html: str) -> list[str]:
    parser = _Links()
    parser.feed(html)
    return parser.urls


@pytest.fixture(scope="module")
def viewer(web_world: WebWorld) -> Iterator[httpx.Client]:
    with signed_in(web_world, "viewer") as client:
        yield client


def test_every_page_and_asset_is_served_by_scrm_itself(web_world: WebWorld, viewer: httpx.Client) -> None:
    top = top_customers(web_world.store, limit=1)[1][0]["customer_id"]
    assets: set[str] = set()
    for path in [*PAGES, f"/customers/{top}", "/campaigns/invite_leaders", f"/leaderboard/explain/{top}"]:
        page = viewer.get(path)
        assert page.status_code == 200, (path, page.text[:300])
        assert page.headers["content-security-policy"] == CSP  # the browser loads nothing else either
        for url in _urls(page.text):
            parts = urlsplit(url)
            assert not parts.scheme and not parts.netloc, f"{path} links to another host: {url}"
            if parts.path.startswith("/static/"):
                assets.add(parts.path)
        assert not re.search(r"<script(?![^>]*\bsrc=)(?![^>]*application/json)[^>]*>", page.text), path
    assert {
        "/static/vendor/htmx/htmx.min.js",
        "/static/vendor/echarts/echarts.min.js",
        "/static/app.js",
    } <= assets
    for asset in assets:
        answer = viewer.get(asset)
        assert answer.status_code == 200 and len(answer.content) > 200, asset
    assert viewer.get("/static/vendor/htmx/LICENSE").status_code == 200
    assert viewer.get("/static/../../config.toml").status_code == 404


def test_the_leaderboard_ranks_pages_and_explains(web_world: WebWorld, viewer: httpx.Client) -> None:
    size = web_world.settings.web.page_size
    _, first = top_customers(web_world.store, limit=size)
    _, second = top_customers(web_world.store, limit=size, offset=size)
    page = viewer.get("/leaderboard").text
    ids = [int(i) for i in re.findall(r'data-testid="leaderboard-row" data-customer-id="(\d+)"', page)]
    assert ids == [r["customer_id"] for r in first]
    page2 = viewer.get("/leaderboard", params={"page": 2}).text
    assert [int(i) for i in re.findall(r'data-customer-id="(\d+)"', page2)][: len(second)] == [
        r["customer_id"] for r in second
    ]
    assert 'rel="prev"' in page2
    total = scored_count(web_world.store)
    assert f"({total:,} in all)" in page and f"Page 1 of {-(-total // size)} " in page
    last = viewer.get("/leaderboard", params={"page": 10_000}).text  # past the end: the last page
    assert f"Page {-(-total // size)} of" in last and 'data-testid="leaderboard-row"' in last
    by_clv = viewer.get("/leaderboard", params={"by": "clv"}).text
    _, clv = top_customers(web_world.store, by="clv", limit=1)
    assert re.search(rf'data-customer-id="{clv[0]["customer_id"]}"', by_clv)
    for bad in ({"by": "nonsense"}, {"page": "x"}, {"page": "-4"}, {"community": "zz"}):
        assert viewer.get("/leaderboard", params=bad).status_code == 200
    x = explain_customer(web_world.store, first[0]["customer_id"])
    fragment = viewer.get(f"/leaderboard/explain/{x['customer_id']}", headers={"HX-Request": "true"})
    assert fragment.status_code == 200 and "<html" not in fragment.text
    assert fragment.text.count('data-testid="explain-component"') == 4
    assert f"{x['social_value']:.1f} of 100" in fragment.text
    assert viewer.get("/leaderboard/explain/99999999").status_code == 404


def test_communities_and_their_map(web_world: WebWorld, viewer: httpx.Client) -> None:
    _, report = community_report(web_world.store)
    page = viewer.get("/communities").text
    assert page.count('data-testid="community-row"') == min(len(report), web_world.settings.web.page_size)
    leader = report[0]["leaders"][0]["id"]
    assert f'href="/customers/{leader}"' in page
    data = viewer.get("/communities/map.json").json()
    nodes = {n["id"]: n for n in data["nodes"]}
    assert 0 < len(nodes) <= web_world.settings.web.map_nodes
    assert nodes[leader]["leader"] is True
    assert all(link["source"] in nodes and link["target"] in nodes for link in data["links"])
    assert data["links"], "the drawn customers have ties between them"
    assert {n["category"] for n in nodes.values()} <= set(range(len(data["categories"])))


def test_the_funnel_shows_stages_conversion_and_churn_warnings(
    web_world: WebWorld, viewer: httpx.Client
) -> None:
    report = funnel_report(web_world.store)
    page = viewer.get("/funnel").text
    for stage in report["stages"]:
        row = re.search(rf'data-stage="{stage["stage"]}"><td>[^<]*</td><td class="num">([\d,]+)<', page)
        assert row and int(row.group(1).replace(",", "")) == stage["customers"]
    assert page.count('data-testid="conversion"') == len(report["conversion"])
    assert "Churn warnings (" in page


def test_the_customer_page_has_scores_and_a_timeline(web_world: WebWorld, viewer: httpx.Client) -> None:
    top = top_customers(web_world.store, limit=1)[1][0]
    page = viewer.get(f"/customers/{top['customer_id']}").text
    assert f'data-testid="customer-social-value">{top["social_value"]:.1f}<' in page
    kinds = set(re.findall(r'data-testid="timeline-item" data-kind="(\w+)"', page))
    assert {"follow", "purchase"} <= kinds or {"follow", "interaction"} <= kinds
    times = re.findall(r'<time datetime="([^"]+)"', page)
    assert times == sorted(times, reverse=True)  # newest first
    assert viewer.get("/customers/99999999").status_code == 404
    assert viewer.get("/customers/99999999999999999999999").status_code == 404  # beyond any id: no 500
    for bad in ({"page": "99999999999"}, {"page": "abc"}, {"sort": "password"}):
        assert viewer.get("/customers", params=bad).status_code == 200
    _total, (top, *_rest) = list_customers(web_world.store, sort="spent", limit=1)
    part = top.keys[0].split(":", 1)[1][1:8]  # part of a key (3+ characters: anywhere)
    found = viewer.get("/customers", params={"q": part.upper(), "sort": "spent"})
    assert found.status_code == 200 and f'href="/customers/{top.id}"' in found.text
    assert viewer.get("/customers", params={"q": "%_' OR 1=1 --"}).status_code == 200


def test_the_overview_shows_followers_and_activity(web_world: WebWorld, viewer: httpx.Client) -> None:
    page = viewer.get("/overview", params={"days": 90}).text
    followers = web_world.count("follow", "WHERE unsubscribed_at IS NULL")
    assert f'data-testid="tile-followers">{followers:,}<' in page
    assert '<script type="application/json" id="chart-data">' in page
    active = [
        c.name for c in library.list_campaigns(web_world.store, web_world.settings) if c.schedule or c.trigger
    ]
    assert f'data-testid="tile-active" title="{", ".join(active)}">{len(active)}<' in page
    name = f"weekly_{secrets.token_hex(3)}"
    definition = {
        "campaign": {"action": "text", "text": "Hi", "schedule": {"cron": "0 10 * * mon"}},
        "audience": {"subscribed": True},
    }
    library.save_campaign(web_world.store, web_world.settings, definition, "test", name=name)
    shown = viewer.get("/overview", params={"days": 90}).text
    assert 'data-testid="tile-active" title="' in shown and name in shown
    library.set_paused(web_world.store, web_world.settings, name, True, "test")
    assert name not in viewer.get("/overview", params={"days": 90}).text  # paused: not active


@pytest.mark.parametrize(
    ("path", "english", "chinese"),
    [
        ("/overview", "New followers", "新增粉丝"),
        ("/leaderboard", "Influencer leaderboard", "影响力排行榜"),
        ("/communities", "Community map", "社群图谱"),
        ("/funnel", "Conversion between stages", "阶段间转化"),
        ("/customers", "No customer matches.", "搜索"),
        ("/campaigns", "Campaigns", "营销活动"),
    ],
)
def test_pages_speak_english_and_chinese(
    web_world: WebWorld, viewer: httpx.Client, path: str, english: str, chinese: str
) -> None:
    page = viewer.get(path, params={"lang": "en"})
    assert chinese not in page.text and (english in page.text or path == "/customers")
    assert 'lang="en"' in page.text
    zh = viewer.get(path, params={"lang": "zh"})
    assert chinese in zh.text and 'lang="zh-CN"' in zh.text
    assert zh.cookies.get("scrm_lang") == "zh" or "scrm_lang=zh" in zh.headers.get("set-cookie", "")
    again = viewer.get(path)  # the cookie remembers the choice
    assert chinese in again.text
    viewer.get(path, params={"lang": "en"})


def test_the_browser_language_is_followed_without_a_choice(web_world: WebWorld) -> None:
    with signed_in(web_world, "viewer", lang="zh-CN,zh;q=0.9,en;q=0.5") as client:
        page = client.get("/funnel")
        assert "生命周期漏斗" in page.text
        assert re.search(r"评分截至 \d{4}年\d{1,2}月\d{1,2}日", page.text)  # dates formatted by Babel
    with signed_in(web_world, "viewer", lang="fr-FR") as client:
        assert "Lifecycle funnel" in client.get("/funnel").text


def test_the_funnel_kept_by_a_worker_follows_a_new_score_run(fresh_web_world: WebWorld) -> None:
    world = fresh_web_world
    with signed_in(world, "viewer") as client:
        before = client.get("/funnel").text
        later = world.now + timedelta(days=30)
        rescore(world.store, world.settings, now=later)
        after = client.get("/funnel").text
        assert after != before
        local = later.astimezone(world.settings.scrm.tz)
        assert f"{local:%b} {local.day}, {local.year}" in after  # the new run's "as of"
        report = funnel_report(world.store)
        for stage in report["stages"]:
            row = re.search(rf'data-stage="{stage["stage"]}"><td>[^<]*</td><td class="num">([\d,]+)<', after)
            assert row and int(row.group(1).replace(",", "")) == stage["customers"]


def test_names_from_the_data_are_escaped(web_world: WebWorld, viewer: httpx.Client) -> None:
    top = top_customers(web_world.store, limit=1)[1][0]["customer_id"]
    hostile = "<script>alert('x')</script>\" onmouseover=\"alert(1)"
    customers = Customer.__table__  # type: ignore[attr-defined]
    with web_world.store.connect() as conn:
        conn.execute(customers.update().where(customers.c.id == top).values(display_name=hostile))
    for path in ("/leaderboard", f"/customers/{top}", f"/leaderboard/explain/{top}", "/communities"):
        page = viewer.get(path).text
        assert "<script>alert" not in page and '" onmouseover="' not in page, path
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in viewer.get(f"/customers/{top}").text
