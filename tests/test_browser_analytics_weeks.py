"""The analytics page in Chromium: the 日別 / 週別 switch by keyboard, the weekly chart and tables,
the resolution card, and the CSV export offered to admins only (agents read the page, 403 on export).

The bot server of tests/test_browser_canned.py (uvicorn, SQLite, no Rasa). Conversations are
written with the stores at moments relative to now (tests/test_analytics.py's Recorder), so they
fall in the page's 「直近 30 日」; the expected weeks (Monday to Sunday, Japan time) are worked out
here from the calendar, not with the code under test.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from bot import wording
from bot.analytics.report import JST
from bot.settings import PROJECT_ROOT
from test_analytics import Recorder
from test_browser_canned import AXE, PASSWORD, browser, server  # noqa: F401 - fixtures
from test_browser_desk import console

from playwright.sync_api import Browser, expect  # noqa: E402 (after the skip of test_browser_canned)

pytestmark = [pytest.mark.browser]

DAYS = 30


def seed(services: Any) -> list[dt.date]:
    """Conversations now, 3 days ago, 7 and 8 days ago and 20 days ago (the bot answers each); the
    Japan-time day of each."""
    now = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=1)
    recorder = Recorder(services.stores.engine)
    days = []
    for n, back in enumerate((0, 3, 7, 8, 20)):
        moment = now - dt.timedelta(days=back)
        recorder.start(f"week-{n}", moment)
        recorder.customer(f"week-{n}", "住所を変更したい", moment)
        recorder.bot(f"week-{n}", "マイページから変更できます。", moment, "answer", "faq_change_address", 0.9,
                     "change-address")
        days.append(moment.astimezone(JST).date())
    return days


def expected_weeks(seeded: list[dt.date]) -> list[tuple[str, int]]:
    """(label, conversations) of each week of the last 30 days, newest first."""
    today = dt.datetime.now(JST).date()
    first = today - dt.timedelta(days=DAYS - 1)
    rows = []
    monday = today - dt.timedelta(days=today.weekday())
    while monday + dt.timedelta(days=6) >= first:
        start, end = max(monday, first), min(monday + dt.timedelta(days=6), today)
        rows.append((f"{start.isoformat()} 〜 {end.isoformat()}", sum(start <= d <= end for d in seeded)))
        monday -= dt.timedelta(days=7)
    return rows


def test_weekly_switch_by_keyboard_and_exports_for_admins_only(
        browser: Browser, server: tuple[str, Any]) -> None:  # noqa: F811
    url, services = server
    services.stores.agents.add("suzuki", "鈴木", PASSWORD)  # an agent; sato (the first) is the admin
    seeded = seed(services)
    weeks = expected_weeks(seeded)

    page = console(browser, url, "sato")
    page.goto(url + "/console/analytics.html")
    expect(page.locator("#daily-table tbody tr")).to_have_count(DAYS, timeout=10_000)
    expect(page.locator("#csv-link")).to_be_visible()  # admin
    expect(page.locator("#csv-link")).to_have_attribute("href", f"/api/analytics.csv.zip?days={DAYS}")
    expect(page.locator("#daily-heading")).to_have_text("日別の会話数と引き継ぎ率")
    expect(page.locator("#unit-day")).to_be_checked()
    expect(page.locator('#kpi-cards .card[data-kpi="resolution"] dt')).to_have_text("解決率")
    expect(page.locator('#kpi-cards .card[data-kpi="resolution"] .definition')).to_contain_text("24 時間")

    # Keyboard only: Tab from the period reaches the radio group, → chooses 週別.
    page.focus("#days")
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.id") == "unit-day"
    page.keyboard.press("ArrowRight")
    expect(page.locator("#unit-week")).to_be_checked()
    assert page.evaluate("() => document.activeElement.id") == "unit-week"
    expect(page.locator("#daily-heading")).to_have_text("週別の会話数と引き継ぎ率")
    expect(page.locator("#kpi-period-heading")).to_have_text("週別")
    expect(page.locator(".daily-details summary")).to_have_text("週別の表を表示")
    expect(page.locator("#chart")).to_have_attribute("aria-label", "週別の会話数・引き継ぎ数（棒）と引き継ぎ率（線）のグラフ")
    assert "unit=week" in page.url

    volume = page.locator("#daily-table tbody tr")
    expect(volume).to_have_count(len(weeks))
    expect(page.locator("#daily-table th").first).to_have_text("週（月曜〜日曜）")
    expect(page.locator("#daily-table caption")).to_have_text("週別の件数")
    for index, (label, conversations) in enumerate(weeks):  # newest week first
        cells = volume.nth(index).locator("td")
        expect(cells.nth(0)).to_have_text(label)
        expect(cells.nth(2)).to_have_text(str(conversations))
    kpi_rows = page.locator("#kpi-daily-table tbody tr")
    expect(kpi_rows).to_have_count(len(weeks))
    expect(page.locator("#kpi-daily-table caption")).to_have_text("週別の指標")
    expect(kpi_rows.first.locator("td").nth(0)).to_have_text(weeks[0][0])
    expect(kpi_rows.first.locator("td").nth(1)).to_have_text(str(weeks[0][1]))
    # The chart: two bars per week, labelled by the week's first day in the period (oldest first).
    expect(page.locator("#chart svg rect")).to_have_count(2 * len(weeks))
    oldest = weeks[-1][0].split(" 〜 ")[0]
    month, day = (int(part) for part in oldest.split("-")[1:])
    expect(page.locator("#chart svg text").filter(has_text="〜").first).to_have_text(f"{month}/{day}〜")
    if AXE.exists():
        from test_accessibility import assert_accessible

        assert_accessible(page)

    page.reload()  # the unit stays in the address
    expect(page.locator("#unit-week")).to_be_checked(timeout=10_000)
    expect(page.locator("#daily-table tbody tr")).to_have_count(len(weeks))
    page.focus("#unit-week")
    page.keyboard.press("ArrowLeft")
    expect(page.locator("#unit-day")).to_be_checked()
    expect(page.locator("#daily-table tbody tr")).to_have_count(DAYS)
    expect(page.locator("#kpi-period-heading")).to_have_text("日別")

    # An agent reads the page but is offered no export, and the server refuses it.
    agent = console(browser, url, "suzuki")
    agent.goto(url + "/console/analytics.html")
    expect(agent.locator("#kpi-cards .card")).to_have_count(9, timeout=10_000)
    expect(agent.locator("#csv-link")).to_be_hidden()
    refused = agent.request.get(url + f"/api/analytics.csv.zip?days={DAYS}")
    assert refused.status == 403 and refused.json()["error"] == wording.DESK_TEXT["admin_only"]
    allowed = page.request.get(url + f"/api/analytics.csv.zip?days={DAYS}")
    assert allowed.status == 200 and allowed.headers["content-type"] == "application/zip"

    for name in ("analytics.js", "analytics_kpis.js"):
        script = (PROJECT_ROOT / "bot" / "server" / "static" / "console" / name).read_text(encoding="utf-8")
        assert ".innerHTML" not in script and "insertAdjacentHTML" not in script
