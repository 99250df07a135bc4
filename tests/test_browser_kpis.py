"""The KPI section of the analytics page in Chromium: figures, definitions, tables, CSAT, axe-core.

The bot server of tests/test_browser_canned.py (uvicorn, SQLite, no Rasa); tickets are written
with the stores at moments relative to now, so they fall in the page's 「直近 30 日」.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from bot.settings import PROJECT_ROOT
from bot.store.csat import Surveys
from test_analytics_kpis import Desk
from test_browser_canned import AXE, PASSWORD, browser, server  # noqa: F401 - fixtures

from playwright.sync_api import Browser, expect  # noqa: E402 (after the skip of test_browser_canned)

pytestmark = [pytest.mark.browser]

COMMENT = '<img src=x onerror="window.__xss=1">説明がわかりやすかったです'


def seed(services: Any) -> None:
    """Three conversations: the bot answers one; 佐藤 answers one in 3 min and resolves it 8 min
    after claiming (the customer rates it 4, with a comment holding HTML); the third customer
    stops waiting after 2 min."""
    now = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=1)
    at = lambda minutes: now - dt.timedelta(minutes=minutes)  # noqa: E731
    desk = Desk(services.stores.engine)
    desk.customer("kpi-bot", at(30))
    desk.customer("kpi-agent", at(30))
    answered = desk.handoff("kpi-agent", at(20))
    desk.claim(answered, "sato", at(18))
    desk.reply(answered, "佐藤", at(17))
    desk.resolve(answered, at(10), "sato")
    Surveys(services.stores.engine).record("kpi-agent", answered, 4, COMMENT)
    desk.customer("kpi-left", at(30))
    left = desk.handoff("kpi-left", at(9))
    desk.resolve(left, at(7), resolution="cancelled")


def test_kpis_with_definitions_on_the_analytics_page(browser: Browser, server: tuple[str, Any]) -> None:  # noqa: F811
    url, services = server
    seed(services)
    page = browser.new_context(viewport={"width": 1280, "height": 1000}, locale="ja-JP", bypass_csp=True).new_page()
    page.goto(url + "/console/")
    page.fill("#login-username", "sato")
    page.fill("#login-password", PASSWORD)
    page.click("#login-submit")
    expect(page.locator("#agent-name")).to_be_visible(timeout=10_000)
    page.goto(url + "/console/analytics.html")
    cards = page.locator("#kpi-cards .card")
    expect(cards).to_have_count(9, timeout=10_000)  # 解決率 (resolution) joined the eight

    def card(key: str) -> Any:
        return page.locator(f'#kpi-cards .card[data-kpi="{key}"]')

    expect(card("first_response").locator("dt")).to_have_text("初回応答時間")
    expect(card("first_response").locator("dd")).to_contain_text("3分00秒")
    expect(card("first_response").locator(".definition")).to_have_text(
        "引き継ぎ（受付時間内）から担当者の最初の返信までの時間。")
    expect(card("handling").locator("dd")).to_contain_text("8分00秒")
    expect(card("bot_resolution").locator("dd")).to_contain_text("33.3%")
    expect(card("bot_resolution").locator(".sub")).to_have_text("1 / 3 会話")
    expect(card("agent_resolution").locator("dd")).to_contain_text("50.0%")
    expect(card("handoff").locator("dd")).to_contain_text("66.7%")
    expect(card("abandonment").locator("dd")).to_contain_text("1 件")
    expect(card("abandonment").locator(".sub")).to_have_text("50.0%・待ち時間 平均 2分00秒")
    agents = page.locator("#kpi-agents-table tbody tr")
    expect(agents).to_have_count(1)
    expect(agents.first.locator("td")).to_have_text(["佐藤", "1", "3分00秒", "1", "8分00秒"])
    expect(card("csat").locator("dt")).to_have_text("満足度（CSAT）")
    expect(card("csat").locator("dd")).to_contain_text("4.00")
    expect(card("csat").locator(".sub")).to_have_text("1 件・1:0 / 2:0 / 3:0 / 4:1 / 5:0")
    expect(card("csat_response").locator("dd")).to_contain_text("100.0%")
    expect(page.locator("#kpi-csat-table tbody tr").first.locator("td")).to_have_text(
        ["佐藤", "1", "1", "100.0%", "4.00", "1:0 / 2:0 / 3:0 / 4:1 / 5:0"])
    categories = page.locator("#kpi-csat-categories-table tbody tr")  # next to the per-agent table
    expect(categories).to_have_count(1)
    expect(categories.first.locator("td")).to_have_text(  # the ticket has no category
        ["未分類", "1", "1", "100.0%", "4.00", "1:0 / 2:0 / 3:0 / 4:1 / 5:0"])
    expect(page.locator("#kpi-csat-categories-table th").first).to_have_text("カテゴリ")
    comment = page.locator("#kpi-csat-comments tbody tr").first.locator("td")
    expect(comment.nth(3)).to_have_text(COMMENT)  # as text: the customer's HTML is never rendered
    assert page.evaluate("() => window.__xss") is None
    today = page.locator("#kpi-daily-table tbody tr").first  # newest day first
    expect(today.locator("td").nth(3)).to_have_text("2")  # two handoffs today

    if AXE.exists():
        from test_accessibility import axe_violations

        assert axe_violations(page) == []
    script = (PROJECT_ROOT / "bot" / "server" / "static" / "console" / "analytics_kpis.js").read_text(encoding="utf-8")
    assert ".innerHTML" not in script and "insertAdjacentHTML" not in script
