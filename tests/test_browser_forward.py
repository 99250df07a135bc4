"""Department hand-off without chat in a real browser (Debian's Chromium via Playwright; #15 item 4).

One bot server (uvicorn in a thread, SQLite, a Rasa stand-in never asked) mailing through a local
aiosmtpd, with tests/test_forward.py's departments; setup as in tests/test_browser_escalation.py.
A customer chats in the widget; suzuki claims, opens 「部署に引き継ぐ」 with the keyboard, is
refused an empty note (nothing lost), then forwards to 経理部 with a note holding HTML. The widget
shows the department's promise once and never the note (DOM and history API); 対応の記録 shows the
step; the department's mail arrives. Then tanaka (an agent) claims another chat: ito (an agent)
opening it gets no 「部署に引き継ぐ」, kato (a supervisor) does and forwards it, and 対応の記録
names kato.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest

from bot import wording
from test_browser_desk import browser, console  # noqa: F401 - fixture; skips without Chromium

from playwright.sync_api import Browser, expect  # noqa: E402 (after the skip of test_browser_desk)

from test_browser_canned import SilentRasa  # noqa: E402
from test_browser_escalation import XSS, claim, customer, open_ticket, system_lines  # noqa: E402
from test_forward import DEPARTMENTS_YML  # noqa: E402
from test_fuzz_inputs import uvicorn_server  # noqa: E402
from test_server import PASSWORD, SECRET  # noqa: E402
from test_transcript_mail import Inbox, free_port  # noqa: E402

pytestmark = [pytest.mark.browser]

PROMISE = wording.FORWARD_TEXT["customer"].format(department="経理部",
                                                  promise="経理部の担当者から2営業日以内にメールでご連絡します。")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any, Inbox]]:
    from aiosmtpd.controller import Controller

    from bot.server.app import Services, stores_for
    from bot.server.tokens import ConversationTokens
    from bot.settings import Limits, SmtpSettings

    folder: Path = tmp_path_factory.mktemp("forward-browser")
    (folder / "departments.yml").write_text(DEPARTMENTS_YML, encoding="utf-8")
    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    smtp = SmtpSettings(host="127.0.0.1", port=port, sender="support@example.jp", security="none", timeout=5)
    services = Services(stores_for(f"sqlite:///{folder / 'bot.db'}"), SilentRasa(),  # type: ignore[arg-type]
                        ConversationTokens(SECRET), escalate_after_seconds=0, smtp=smtp, webhooks=None,
                        limits=Limits(sessions_per_address_per_hour=0, open_tickets_per_customer=0))
    services.gateway.departments_file = folder / "departments.yml"
    services.stores.agents.add("suzuki", "鈴木", PASSWORD)  # the first agent: an admin
    services.stores.desk.update("suzuki", status="available")
    for username, name in (("tanaka", "田中"), ("ito", "伊藤"), ("kato", "加藤")):
        services.stores.agents.add(username, name, PASSWORD)
    services.stores.desk.update("kato", role="supervisor")
    try:
        with uvicorn_server(services) as server_port:
            yield f"http://127.0.0.1:{server_port}", services, inbox
    finally:
        controller.stop()


def test_forward_to_a_department_the_customer_reads_the_promise_not_the_note(
        server: tuple[str, Any, Inbox], browser: Browser) -> None:  # noqa: F811
    url, services, inbox = server
    widget, ticket_id, token = customer(browser, url, services)
    suzuki = console(browser, url, "suzuki")
    claim(suzuki, ticket_id)
    expect(system_lines(widget)).to_have_count(1, timeout=10_000)

    opener = suzuki.locator("#forward-open")
    expect(opener).to_be_visible()
    opener.focus()
    suzuki.keyboard.press("Enter")  # keyboard only
    expect(suzuki.locator("#forward-form")).to_be_visible(timeout=10_000)
    expect(suzuki.locator("#forward-department")).to_be_focused()
    expect(suzuki.locator("#forward-department option")).to_contain_text(["部署を選んでください", "経理部",
                                                                          "広報部（引き継げません）"])
    suzuki.select_option("#forward-department", "accounting")
    expect(suzuki.locator("#forward-promise")).to_contain_text("経理部の担当者から2営業日以内")
    suzuki.locator("#forward-send").focus()
    suzuki.keyboard.press("Enter")  # no note yet: refused, the choice kept
    expect(suzuki.locator("#alert")).to_contain_text("内部メモ", timeout=10_000)
    assert suzuki.input_value("#forward-department") == "accounting"
    note = XSS + "返金の可否を確認してください"
    suzuki.fill("#forward-note", note)
    suzuki.locator("#forward-send").focus()
    suzuki.keyboard.press("Enter")

    expect(suzuki.locator("#reply-form")).to_be_hidden(timeout=10_000)
    expect(suzuki.locator("#detail-status")).to_contain_text("部署に引き継ぎ")
    history = suzuki.locator("#history-list")
    expect(history).to_contain_text("部署に引き継ぎ", timeout=10_000)
    expect(history).to_contain_text("→ 経理部")
    expect(history).to_contain_text(note)  # as text
    expect(suzuki.locator("#forward-open")).to_be_hidden()

    expect(system_lines(widget)).to_have_count(2, timeout=10_000)
    expect(system_lines(widget).last).to_contain_text(PROMISE)
    assert "返金の可否" not in widget.locator("#supportchat-messages").inner_text()
    history_api = widget.evaluate(
        "async (t) => (await fetch('/api/chat/history', {headers: {Authorization: 'Bearer ' + t}})).text()", token)
    assert "返金の可否" not in history_api and "経理部の担当者から2営業日以内" in history_api
    for page in (suzuki, widget):
        assert page.evaluate("() => window.__xss") is None
    _, rcpt_tos, raw = inbox.wait()[0]
    assert rcpt_tos == ["keiri@example.jp"] and "返金の可否".encode() not in raw.split(b"\r\n\r\n", 1)[0]


def test_a_supervisor_forwards_an_agents_chat_another_agent_cannot(
        server: tuple[str, Any, Inbox], browser: Browser) -> None:  # noqa: F811
    url, services, inbox = server
    widget, ticket_id, _ = customer(browser, url, services)
    tanaka, ito, kato = (console(browser, url, name) for name in ("tanaka", "ito", "kato"))
    claim(tanaka, ticket_id)
    expect(tanaka.locator("#forward-open")).to_be_visible(timeout=10_000)
    open_ticket(ito, ticket_id)
    expect(ito.locator("#detail-status")).to_contain_text("対応中")
    expect(ito.locator("#forward-open")).to_be_hidden()

    open_ticket(kato, ticket_id)
    opener = kato.locator("#forward-open")
    expect(opener).to_be_visible(timeout=10_000)
    opener.click()
    kato.select_option("#forward-department", "accounting")
    kato.fill("#forward-note", "田中さんの件、返金の確認をお願いします")
    kato.click("#forward-send")
    expect(kato.locator("#detail-status")).to_contain_text("部署に引き継ぎ", timeout=10_000)
    history = kato.locator("#history-list")
    expect(history).to_contain_text("部署に引き継ぎ", timeout=10_000)
    expect(history).to_contain_text("加藤")
    expect(tanaka.locator("#detail-status")).to_contain_text("部署に引き継ぎ", timeout=10_000)
    expect(system_lines(widget).last).to_contain_text(PROMISE, timeout=10_000)
    step = [e for e in services.stores.escalations.history(ticket_id, "kato", True) if e.kind == "forwarded"]
    assert [(e.actor, e.target) for e in step] == [("kato", "accounting")]
