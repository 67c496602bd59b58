"""The dashboard in real headless Chromium: sign in, the leaderboard, a customer, a campaign built and
dry-run, the Chinese interface; on SQLite and PostgreSQL, nothing requested outside 127.0.0.1.

Each page's screenshot (full page, 1280x800 viewport) is taken on every run, into a temporary folder;
with ``SCRM_SCREENSHOTS=1`` the SQLite run writes them to ``docs/screenshots/<page>.png`` instead (the
README shows them): ``SCRM_SCREENSHOTS=1 python3 scripts/test.py tests/e2e -k browser``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import Dashboard, Offsite

SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture
def shots(dashboard: Dashboard, tmp_path: Path) -> Path:
    """Where this run's screenshots go: docs/screenshots from SQLite with SCRM_SCREENSHOTS=1, else tmp."""
    if dashboard.backend == "sqlite" and os.environ.get("SCRM_SCREENSHOTS") == "1":
        SHOTS.mkdir(parents=True, exist_ok=True)
        return SHOTS
    return tmp_path


def _shot(page: Page, folder: Path, name: str) -> None:
    page.wait_for_load_state("networkidle")
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000  # a rendered page, not a blank one


def _sign_in(page: Page, dashboard: Dashboard, role: str, folder: Path | None = None) -> None:
    page.goto(dashboard.url + "/leaderboard")
    expect(page).to_have_url(re.compile(r"/login"))  # signed out: the login page, then back here
    if folder is not None:
        _shot(page, folder, "login")
    name, password = dashboard.user(role)
    page.get_by_test_id("login-username").fill(name)
    page.get_by_test_id("login-password").fill(password)
    page.get_by_test_id("login-submit").click()
    expect(page.get_by_test_id("current-user")).to_contain_text(name)


def test_sign_in_leaderboard_and_a_customer(
    page: Page, dashboard: Dashboard, shots: Path, offsite: Offsite
) -> None:
    page.goto(dashboard.url + "/login")
    page.get_by_test_id("login-username").fill("e2e-viewer")
    page.get_by_test_id("login-password").fill("not the password")
    page.get_by_test_id("login-submit").click()
    expect(page.get_by_test_id("login-error")).to_be_visible()  # a wrong password is refused

    _sign_in(page, dashboard, "viewer", shots)
    expect(page).to_have_url(re.compile(r"/leaderboard$"))
    page.get_by_test_id("nav-overview").click()
    expect(page.get_by_test_id("overview-tiles")).to_be_visible()
    customers = int(page.get_by_test_id("tile-customers").inner_text().replace(",", ""))
    assert customers == dashboard.world.count("customer", "WHERE merged_into_id IS NULL")
    _shot(page, shots, "overview")

    page.get_by_test_id("nav-leaderboard").click()
    board = page.get_by_test_id("leaderboard")
    expect(board).to_be_visible()
    links = board.get_by_test_id("customer-link")
    assert links.count() >= 10
    first_name = links.first.inner_text()
    _shot(page, shots, "leaderboard")

    links.first.click()
    expect(page).to_have_url(re.compile(r"/customers/\d+$"))
    expect(page.get_by_test_id("customer-name")).to_contain_text(first_name)
    expect(page.get_by_test_id("customer-social-value")).not_to_have_text("–")  # the top one is scored
    expect(page.get_by_test_id("identities")).to_be_visible()
    _shot(page, shots, "customer")

    for nav, name in (("nav-communities", "communities"), ("nav-funnel", "funnel")):
        page.get_by_test_id(nav).click()
        expect(page.locator("main h1")).to_be_visible()
        _shot(page, shots, name)
    assert offsite.none_left_local(), (offsite.urls, offsite.seen)


def test_build_and_dry_run_a_campaign(
    page: Page, dashboard: Dashboard, shots: Path, offsite: Offsite
) -> None:
    world = dashboard.world
    _sign_in(page, dashboard, "marketer")
    page.get_by_test_id("nav-campaigns").click()
    expect(page.locator("main h1")).to_be_visible()
    _shot(page, shots, "campaigns")
    page.goto(dashboard.url + "/campaigns/new")
    name = f"e2e_invite_{dashboard.backend}"
    page.get_by_test_id("builder-name").fill(name)
    page.get_by_test_id("builder-description").fill("Invite the community leaders (e2e)")
    page.get_by_test_id("builder-text-a").fill("Hi {{ name or 'there' }}, join our meetup!")
    page.get_by_test_id("builder-template-id").fill("TPL_MEETUP_E2E")  # outside the 48-hour window
    count = page.get_by_test_id("audience-count")  # the live preview (htmx) follows the form
    expect(count).to_be_visible()
    expect(page.get_by_test_id("preview").first).to_contain_text("join our meetup")
    audience = int(count.get_attribute("data-count") or "0")
    assert audience > 0
    _shot(page, shots, "campaign_new")

    runs_before, deliveries_before = world.count("campaign_run"), world.count("delivery")
    page.get_by_test_id("builder-save").click()
    expect(page).to_have_url(re.compile(rf"/campaigns/{name}$"))
    expect(page.get_by_test_id("campaign-name")).to_contain_text(name)
    page.get_by_test_id("dry-run-button").click()
    result = page.get_by_test_id("dry-run-result")
    expect(result).to_contain_text("nothing was stored or sent")
    planned = sum(
        int(row.locator("td").nth(1).inner_text().replace(",", ""))
        for row in result.get_by_test_id("dry-run-status").all()
    )
    assert planned == audience  # every customer of the audience has an outcome
    expect(result.get_by_test_id("dry-run-sample").first).to_contain_text("join our meetup")
    _shot(page, shots, "campaign_dry_run")
    # a dry run stores nothing and sends nothing
    assert world.count("campaign_run") == runs_before and world.count("delivery") == deliveries_before
    assert world.count("saved_campaign", "WHERE name = :n", n=name) == 1
    assert offsite.none_left_local(), (offsite.urls, offsite.seen)


def test_the_interface_in_chinese(page: Page, dashboard: Dashboard, shots: Path, offsite: Offsite) -> None:
    _sign_in(page, dashboard, "viewer")
    english = page.get_by_test_id("nav-leaderboard").inner_text()
    page.get_by_test_id("lang-zh").click()
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    chinese = page.get_by_test_id("nav-leaderboard").inner_text()
    assert chinese != english and CJK.search(chinese), chinese
    expect(page.get_by_test_id("leaderboard")).to_be_visible()
    _shot(page, shots, "leaderboard_zh")
    page.get_by_test_id("leaderboard").get_by_test_id("customer-link").first.click()
    expect(page.locator("main")).to_contain_text(CJK)  # the customer page is in Chinese too
    _shot(page, shots, "customer_zh")
    page.get_by_test_id("lang-en").click()
    expect(page.get_by_test_id("nav-leaderboard")).to_have_text(english)
    assert offsite.none_left_local(), (offsite.urls, offsite.seen)


def test_the_guard_refuses_a_request_leaving_the_machine(page: Page, offsite: Offsite) -> None:
    """The check the tests above rely on: a page asking another host is refused and recorded."""
    page.set_content('<img src="http://203.0.113.9/pixel.png" alt="">')
    page.wait_for_load_state("networkidle")
    assert offsite.urls == ["http://203.0.113.9/pixel.png"]
    assert not offsite.none_left_local()
