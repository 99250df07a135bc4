"""「配信できなかった引き継ぎ」 in the console, in Chromium: badge, reasons, texts as text, retry, dismiss, axe-core.

The bot server of tests/test_browser_canned.py (uvicorn, SQLite, no Rasa). The action server's
side is played by an outbox drained into the same database: one packet the database refuses,
recorded there; one torn line found while the database was down, only in ``.bad``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from bot.handoff.outbox import Outbox
from bot.handoff.packet import HandoffPacket, Turn
from bot.settings import PROJECT_ROOT
from test_browser_canned import AXE, PASSWORD, browser, server  # noqa: F401 - fixtures

from playwright.sync_api import Browser, expect  # noqa: E402 (after the skip of test_browser_canned)

pytestmark = [pytest.mark.browser]

CARD = "4111 1111 1111 1111"
XSS = '<img src=x onerror="window.__xss=1">'


def seed(services: Any, folder: Path) -> Path:
    """A refused packet recorded in the database, a torn line left in ``.bad``; the outbox file."""
    refused = HandoffPacket("ui-long:1", "ui-long", ["anger"], [Turn(None, f"{XSS}カード {CARD}")],  # type: ignore[arg-type]
                            summary=f"理由: 怒り\nお客さま: {XSS}カード {CARD}", customer={"name": XSS + "山田"})
    outbox = Outbox(folder / "outbox.jsonl")
    outbox.put(refused)
    assert outbox.drain(services.stores.queue) == 1  # refused (no sender): set aside and recorded
    (folder / "outbox.jsonl").write_text('{"idempotency_key": "ui-torn:1", "conversation_id": "ui-torn", "tra\n',
                                         encoding="utf-8")
    outbox.pending()  # the database "down": the torn line goes to .bad only
    return folder / "outbox.jsonl"


def test_undelivered_handoffs_are_listed_retried_and_dismissed(browser: Browser, server: tuple[str, Any],  # noqa: F811
                                                               tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.settings import get_settings

    url, services = server
    monkeypatch.setenv("BOT_OUTBOX", str(seed(services, tmp_path)))  # the bot server lists this .bad too
    get_settings.cache_clear()
    page = browser.new_context(viewport={"width": 1280, "height": 1000}, locale="ja-JP", bypass_csp=True).new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto(url + "/console/")
    page.fill("#login-username", "sato")
    page.fill("#login-password", PASSWORD)
    page.click("#login-submit")

    toggle = page.locator("#undelivered-toggle")
    expect(toggle).to_be_visible(timeout=10_000)
    expect(toggle).to_contain_text("配信できなかった引き継ぎ")
    expect(page.locator("#undelivered-count")).to_have_text("2")
    toggle.click()
    expect(page.locator("#undelivered-section")).to_be_visible()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    items = page.locator("#undelivered-list .undelivered-item")
    expect(items).to_have_count(2)
    refused = page.locator('.undelivered-item:has(.undelivered-retry)')
    torn = page.locator('.undelivered-item:not(:has(.undelivered-retry))')
    expect(refused).to_contain_text("データベースが受け付けませんでした")
    expect(refused).to_contain_text("IntegrityError")
    expect(refused).to_contain_text("**** **** **** 1111")
    expect(refused).to_contain_text(XSS)  # markup shown as text
    expect(refused.locator("dd").first).to_have_text(re.compile(r"^\d{1,2}/\d{1,2} \d{2}:\d{2}$"))  # 発生 (time)
    expect(torn).to_contain_text("読み取れませんでした")
    expect(torn).to_contain_text("ui-torn")
    section = page.locator("#undelivered-section").inner_text()
    assert CARD not in section and page.evaluate("() => window.__xss") is None
    assert page.locator("#undelivered-section img").count() == 0

    if AXE.exists():
        from test_accessibility import axe_violations

        assert axe_violations(page) == []

    # Still refused: the reason is shown, the record stays.
    refused.locator(".undelivered-retry").click()
    expect(page.locator("#undelivered-status")).to_contain_text("受け付けませんでした")
    expect(items).to_have_count(2)

    # The cause fixed (as a schema change or a fix would): sent again, it becomes a ticket in the queue.
    from sqlalchemy import update

    from bot.store.models import UndeliveredHandoff

    record = next(r for r in services.stores.undelivered.list() if r.kind == "refused")
    fixed = {**record.packet, "transcript": [{**t, "sender": "customer"} for t in record.packet["transcript"]]}
    with services.stores.engine.begin() as connection:
        connection.execute(update(UndeliveredHandoff).where(UndeliveredHandoff.id == record.id).values(packet=fixed))
    refused.locator(".undelivered-retry").click()
    expect(page.locator("#undelivered-status")).to_contain_text("一覧に追加されました")
    expect(items).to_have_count(1)
    expect(page.locator("#ticket-list")).to_contain_text(XSS + "山田", timeout=10_000)

    torn.locator(".undelivered-dismiss").click()
    expect(page.locator("#undelivered-status")).to_have_text("破棄しました。")
    expect(page.locator("#undelivered-list")).to_have_text("配信できなかった引き継ぎはありません。")
    expect(page.locator("#undelivered-count")).to_have_text("0")
    page.click("#undelivered-close")
    expect(page.locator("#undelivered-section")).to_be_hidden()
    expect(toggle).to_be_hidden()
    assert page.evaluate("() => window.__xss") is None
    assert services.stores.undelivered.count_open() == 0
    script = (PROJECT_ROOT / "bot" / "server" / "static" / "console" / "undelivered.js").read_text(encoding="utf-8")
    assert ".innerHTML" not in script and "insertAdjacentHTML" not in script
    get_settings.cache_clear()
