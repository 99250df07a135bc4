"""The 監査ログ page in a real browser (Debian's Chromium via Playwright; #14 item 6).

One bot server (uvicorn in a thread, SQLite, a Rasa stand-in never asked): a failed login
under a name with HTML, sato's (the admin's) change of suzuki's cap, a claim, a reply and a
note (without their text) are listed newest first with Japanese labels; the name stays text;
filtering by action narrows the list and the CSV link carries the filter; suzuki (an agent)
sees no link and is refused the page in Japanese. axe-core finds no WCAG 2.1 AA violation.
"""

from __future__ import annotations

from typing import Any

import pytest

from conftest import CHROMIUM, missing_service

pytestmark = [pytest.mark.browser]

if not CHROMIUM.exists():
    missing_service("!!! BROWSER TESTS SKIPPED: /usr/bin/chromium is missing. Run `make browser` "
                    "(as root with apt-get) to install Debian's Chromium. !!!", module_level=True)

from playwright.sync_api import Browser, expect  # noqa: E402

from test_browser_desk import XSS_NAME, assert_accessible, browser, console, file_ticket, server  # noqa: E402,F401


def test_audit_log_page_lists_filters_and_is_admin_only(browser: Browser, server: tuple[str, Any]) -> None:  # noqa: F811
    url, services = server
    sato = console(browser, url, "sato")
    sato.evaluate("""async (name) => {
        await fetch('/api/agent/login', {method: 'POST', headers: {'Content-Type': 'application/json'},
                                         body: JSON.stringify({username: name, password: 'wrong'})});
    }""", XSS_NAME)
    sato.goto(url + "/console/")  # the failed attempt left sato's session as it was
    services.stores.desk.update("suzuki", max_chats=4, changed_by="sato")
    ticket_id = file_ticket(services, "c-audit")
    services.stores.queue.claim(ticket_id, "sato")
    services.stores.queue.add_entry(ticket_id, "agent", "<b>返信の本文</b>", "佐藤", actor="sato")
    services.stores.queue.add_entry(ticket_id, "note", "<b>メモの本文</b>", "佐藤", actor="sato")

    expect(sato.locator("#desk-audit-link")).to_be_visible(timeout=10_000)
    sato.click("#desk-audit-link")
    rows = sato.locator("#audit-rows tr")
    expect(rows.first).to_be_visible(timeout=10_000)
    for row, label in enumerate(("内部メモの追加", "お客さまへの返信", "対応開始")):
        expect(rows.nth(row).locator("td").nth(2)).to_have_text(label)
        expect(rows.nth(row).locator("td").nth(3)).to_have_text(f"ticket:{ticket_id}")
    expect(sato.locator("#audit-rows")).not_to_contain_text("本文")  # never the reply's or the note's text
    expect(rows.nth(3).locator("td").nth(2)).to_have_text("担当者の設定変更")
    expect(rows.nth(3).locator("td").nth(4)).to_have_text("max_chats: 3 → 4")
    failed = sato.locator("#audit-rows tr", has_text="ログイン失敗")
    expect(failed.locator("td").nth(1)).to_have_text(XSS_NAME)  # text, never markup
    assert sato.evaluate("() => window.__xss") is None
    expect(sato.locator("#audit-count")).to_contain_text("件中 1–")
    assert_accessible(sato)

    sato.select_option("#filter-action", "auth.login_failed")
    sato.click("#filter-submit")
    expect(rows).to_have_count(1, timeout=10_000)
    expect(sato.locator("#audit-count")).to_have_text("1 件中 1–1 件目")
    assert "action=auth.login_failed" in (sato.locator("#audit-csv").get_attribute("href") or "")
    sato.fill("#filter-since", "2000-01-01")
    sato.fill("#filter-until", "2000-01-31")
    sato.click("#filter-submit")
    expect(sato.locator("#audit-count")).to_have_text("条件に合う記録はありません。", timeout=10_000)

    suzuki = console(browser, url, "suzuki")
    expect(suzuki.locator("#desk-audit-link")).to_be_hidden()
    suzuki.goto(url + "/console/audit.html")
    expect(suzuki.locator("#alert")).to_have_text("この操作は管理者だけが行えます。管理者に依頼してください。",
                                                  timeout=10_000)
    expect(suzuki.locator("#audit-view")).to_be_hidden()
