"""Escalation, transfers, whispers and the supervisor view in a real browser (Debian's Chromium
via Playwright; #15 items 1 and 2).

One bot server (uvicorn in a thread, SQLite, a Rasa stand-in never asked; automatic escalation
after 2 s) as in tests/test_browser_desk.py. A customer chats in the widget on the demo page;
suzuki (an agent) claims and escalates with a note holding HTML; kato (a supervisor) is rung
(badge and beep), opens the chat read-only on 責任者ビュー and joins; the customer reads one
system line and the chat is resolved. suzuki transfers a chat to ito (an over-long note refused
without losing a character); a whisper reaches suzuki's console and never the widget's DOM nor
the customer's history API; an anger ticket nobody claims is escalated by itself.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from bot import wording
from test_browser_desk import assert_accessible, browser, console  # noqa: F401 - fixture; skips without Chromium

from playwright.sync_api import Browser, Page, expect  # noqa: E402 (after the skip of test_browser_desk)

from test_browser_canned import SilentRasa  # noqa: E402
from test_fuzz_inputs import uvicorn_server  # noqa: E402
from test_server import PASSWORD, SECRET  # noqa: E402

pytestmark = [pytest.mark.browser]

XSS = '<img src=x onerror="window.__xss=1">'
GATEWAY = wording.GATEWAY_TEXT


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any]]:
    from bot.server.app import Services, stores_for
    from bot.server.tokens import ConversationTokens
    from bot.settings import Limits

    folder: Path = tmp_path_factory.mktemp("escalation-browser")
    services = Services(stores_for(f"sqlite:///{folder / 'bot.db'}"), SilentRasa(),  # type: ignore[arg-type]
                        ConversationTokens(SECRET), escalate_after_seconds=2,
                        limits=Limits(sessions_per_address_per_hour=0, open_tickets_per_customer=0))
    for username, name in (("sato", "佐藤"), ("suzuki", "鈴木"), ("kato", "加藤"), ("ito", "伊藤")):
        services.stores.agents.add(username, name, PASSWORD)
        services.stores.desk.update(username, status="available")
    services.stores.desk.update("kato", role="supervisor")
    with uvicorn_server(services) as port:
        yield f"http://127.0.0.1:{port}", services


def new_page(browser: Browser) -> Page:
    # axe-core is injected as an inline script: the test context bypasses the page's CSP.
    return browser.new_context(viewport={"width": 1280, "height": 1000}, locale="ja-JP", bypass_csp=True).new_page()


def customer(browser: Browser, url: str, services: Any, reasons: tuple[str, ...] = ("human_request",)) -> tuple[Page, int, str]:
    """The widget on the demo page with a ticket for its conversation: (page, ticket id, token)."""
    from bot.handoff.packet import HandoffPacket, Turn

    page = new_page(browser)
    page.goto(url + "/")
    page.click("#supportchat-launcher")
    expect(page.locator("#supportchat-input")).to_be_visible(timeout=10_000)
    page.wait_for_function("() => !!localStorage.getItem('supportchat.session')", timeout=10_000)
    session = json.loads(page.evaluate("() => localStorage.getItem('supportchat.session')"))
    packet = HandoffPacket(f"esc-{time.monotonic_ns()}", session["conversation_id"], list(reasons),
                           [Turn("customer", "担当者と話したい")], category="登録情報の変更")
    return page, services.stores.queue.enqueue(packet)[0].id, session["token"]


def open_ticket(page: Page, ticket_id: int) -> None:
    item = page.locator(f'#ticket-list [data-ticket-id="{ticket_id}"]')
    expect(item).to_be_visible(timeout=10_000)
    item.click()
    expect(page.locator("#detail-title")).to_have_text(f"お問い合わせ番号 {ticket_id}", timeout=10_000)


def claim(page: Page, ticket_id: int) -> None:
    open_ticket(page, ticket_id)
    page.click("#claim")
    expect(page.locator("#reply-form")).to_be_visible(timeout=10_000)


def system_lines(widget: Page) -> Any:
    return widget.locator("#supportchat-messages .sc-msg-system")


def test_escalate_notify_join_one_line_resolve(server: tuple[str, Any], browser: Browser) -> None:
    url, services = server
    widget, ticket_id, _ = customer(browser, url, services)
    suzuki = console(browser, url, "suzuki")
    kato = console(browser, url, "kato")
    expect(kato.locator("#supervisor-link")).to_be_visible(timeout=10_000)
    expect(suzuki.locator("#supervisor-link")).to_be_hidden()
    claim(suzuki, ticket_id)
    expect(system_lines(widget)).to_have_count(1, timeout=10_000)

    suzuki.click("#escalate-open")
    suzuki.fill("#escalate-note", XSS + "解約を強く求めています")
    suzuki.click("#escalate-send")
    expect(suzuki.locator("#detail-escalation")).to_have_text("責任者待ち", timeout=10_000)
    expect(suzuki.locator("#reply-form")).to_be_visible()  # the agent stays in the chat
    expect(suzuki.locator("#history-list")).to_contain_text(XSS + "解約を強く求めています")
    # The supervisor is told at once: the badge and a beep.
    expect(kato.locator("#escalation-count")).to_have_text("1", timeout=10_000)
    kato.wait_for_function("() => (sound.played || 0) >= 1", timeout=10_000)

    kato.goto(url + "/console/supervisor.html")
    row = kato.locator(f'#sv-tickets tr[data-ticket-id="{ticket_id}"]')
    expect(row).to_contain_text("責任者待ち", timeout=10_000)
    expect(row).to_contain_text("対応中（鈴木）")
    expect(kato.locator('#sv-agents tr[data-username="suzuki"]')).to_contain_text("1 / 3")
    row.get_by_role("button").click()
    expect(kato.locator("#sv-transcript")).to_contain_text("担当者と話したい", timeout=10_000)
    expect(kato.locator("#sv-history")).to_contain_text(XSS + "解約を強く求めています")
    assert_accessible(kato)
    kato.click("#sv-join")
    expect(kato.locator("#detail-title")).to_have_text(f"お問い合わせ番号 {ticket_id}", timeout=10_000)
    expect(kato.locator("#reply-form")).to_be_visible(timeout=10_000)

    expect(system_lines(widget)).to_have_count(2, timeout=10_000)
    expect(system_lines(widget).nth(1)).to_contain_text(GATEWAY["supervisor_joined"].format(name="加藤"))
    expect(suzuki.locator("#reply-form")).to_be_hidden(timeout=10_000)  # the agent left the chat
    kato.click("#resolve")
    expect(system_lines(widget)).to_have_count(3, timeout=10_000)
    expect(kato.locator("#history-list")).to_contain_text("解決", timeout=10_000)
    for page in (suzuki, kato, widget):
        assert page.evaluate("() => window.__xss") is None


def test_transfer_to_a_colleague(server: tuple[str, Any], browser: Browser) -> None:
    url, services = server
    widget, ticket_id, _ = customer(browser, url, services)
    suzuki = console(browser, url, "suzuki")
    claim(suzuki, ticket_id)
    suzuki.click("#transfer-open")
    expect(suzuki.locator("#transfer-form")).to_be_visible(timeout=10_000)
    suzuki.select_option("#transfer-target", "ito")
    long_note = "あ" * 1_001
    suzuki.fill("#transfer-note", long_note)
    suzuki.click("#transfer-send")
    expect(suzuki.locator("#alert")).to_contain_text("1,000 文字以内", timeout=10_000)
    assert suzuki.input_value("#transfer-note") == long_note  # nothing lost
    suzuki.fill("#transfer-note", XSS + "請求の件は伊藤さんが詳しい")
    suzuki.click("#transfer-send")
    expect(suzuki.locator("#reply-form")).to_be_hidden(timeout=10_000)
    expect(suzuki.locator("#history-list")).to_contain_text("転送", timeout=10_000)
    expect(system_lines(widget)).to_have_count(2, timeout=10_000)  # joined, then exactly one line for the transfer
    expect(system_lines(widget).last).to_contain_text(GATEWAY["agent_changed"].format(name="伊藤"))
    ito = console(browser, url, "ito")
    open_ticket(ito, ticket_id)
    expect(ito.locator("#reply-form")).to_be_visible()
    expect(ito.locator("#history-list")).to_contain_text(XSS + "請求の件は伊藤さんが詳しい")
    assert ito.evaluate("() => window.__xss") is None
    assert services.stores.queue.get(ticket_id, False).claimed_by == "ito"


def test_a_whisper_never_reaches_the_customer(server: tuple[str, Any], browser: Browser) -> None:
    url, services = server
    widget, ticket_id, token = customer(browser, url, services)
    suzuki = console(browser, url, "suzuki")
    claim(suzuki, ticket_id)
    kato = console(browser, url, "kato")
    kato.goto(url + "/console/supervisor.html")
    kato.locator(f'#sv-tickets tr[data-ticket-id="{ticket_id}"]').get_by_role("button").click()
    whisper = XSS + "まず謝罪してから状況を伺ってください"
    kato.fill("#sv-whisper-text", whisper)
    kato.click("#sv-whisper-send")
    expect(kato.locator("#sv-status")).to_have_text("ささやきを送りました。担当者の画面にだけ表示されます。", timeout=10_000)
    expect(kato.locator("#sv-history")).to_contain_text(whisper)
    expect(suzuki.locator("#whisper-note")).to_be_visible(timeout=10_000)
    expect(suzuki.locator("#history-list .history-whisper")).to_contain_text(whisper, timeout=10_000)
    suzuki.wait_for_function("() => (sound.played || 0) >= 1", timeout=10_000)
    # A reply sent after the whisper reaches the widget: anything the whisper sent would be there by now.
    suzuki.fill("#reply-text", "お待たせいたしました。")
    suzuki.click("#reply-send")
    expect(widget.locator("#supportchat-messages")).to_contain_text("お待たせいたしました。", timeout=10_000)
    assert "謝罪してから" not in widget.content()
    history = widget.request.get(url + "/api/chat/history", headers={"Authorization": f"Bearer {token}"})
    assert history.ok and "謝罪してから" not in history.text()
    for page in (suzuki, kato, widget):
        assert page.evaluate("() => window.__xss") is None


def test_an_unclaimed_anger_ticket_is_escalated_after_the_timeout(server: tuple[str, Any], browser: Browser) -> None:
    url, services = server
    kato = console(browser, url, "kato")
    expect(kato.locator("#supervisor-link")).to_be_visible(timeout=10_000)
    before = kato.evaluate("() => sound.played || 0")
    _, ticket_id, _ = customer(browser, url, services, ("anger",))
    expect(kato.locator(f'#ticket-list [data-ticket-id="{ticket_id}"] .badge-escalation')).to_have_text(
        "責任者待ち", timeout=15_000)
    kato.wait_for_function(f"() => (sound.played || 0) > {before}", timeout=10_000)
    open_ticket(kato, ticket_id)
    expect(kato.locator("#history-list")).to_contain_text("自動エスカレーション", timeout=10_000)
    expect(kato.locator("#join")).to_be_visible()


def test_the_supervisor_view_follows_every_chat_live(server: tuple[str, Any], browser: Browser) -> None:
    """No reload anywhere: a new anger chat appears with its mark and a ticking wait, a claim shows
    who took it, and the transcript kato has open grows with the customer's and the agent's lines."""
    url, services = server
    kato = console(browser, url, "kato")
    kato.goto(url + "/console/supervisor.html")
    expect(kato.locator("#sv-view")).to_be_visible(timeout=10_000)
    widget, ticket_id, _ = customer(browser, url, services, ("anger",))
    row = kato.locator(f'#sv-tickets tr[data-ticket-id="{ticket_id}"]')
    expect(row).to_be_visible(timeout=10_000)  # over SSE
    expect(row.locator(".badge-high")).to_have_text("怒りの表現")
    expect(row.locator(".status")).to_have_text("対応待ち")
    widget.fill("#supportchat-input", "まだですか？")
    widget.press("#supportchat-input", "Enter")
    since = row.locator(".sv-since")
    expect(since).to_have_text(re.compile(r"^\d+秒$"), timeout=10_000)
    first = int(since.inner_text().rstrip("秒"))
    expect(since).not_to_have_text(f"{first}秒", timeout=5_000)  # it ticks
    row.get_by_role("button").click()
    expect(kato.locator("#sv-transcript")).to_contain_text("まだですか？", timeout=10_000)

    suzuki = console(browser, url, "suzuki")
    claim(suzuki, ticket_id)
    expect(row.locator(".status")).to_have_text("対応中（鈴木）", timeout=10_000)
    suzuki.fill("#reply-text", "大変お待たせいたしました。鈴木です。")
    suzuki.click("#reply-send")
    expect(kato.locator("#sv-transcript")).to_contain_text("大変お待たせいたしました。鈴木です。", timeout=10_000)
    widget.fill("#supportchat-input", "よろしくお願いします")
    widget.press("#supportchat-input", "Enter")
    expect(kato.locator("#sv-transcript")).to_contain_text("よろしくお願いします", timeout=10_000)
    load = services.stores.desk.agent("suzuki")  # other tests of this module left chats of theirs
    expect(kato.locator('#sv-agents tr[data-username="suzuki"]')).to_contain_text(f"{load.chats} / {load.max_chats}")
    assert kato.evaluate("() => window.__xss") is None
