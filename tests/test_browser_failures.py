"""送信の失敗 in a real browser (Debian's Chromium via Playwright; #14 item 4, #15 item 3).

One bot server (uvicorn in a thread, SQLite, a Rasa stand-in never asked) whose mail server
is down (a closed port) and whose webhook receiver answers 500: a ticket's ``ticket.created``
webhook is dead-lettered and a transcript mail is given up, both by the server's own sender
loops. sato (an admin) opens the page from the desk link and finds both rows with their errors,
the address shown as text (an address with markup never becomes HTML). Both servers come back
(aiosmtpd on the mail port, the receiver answering 204) and sato replays each with 「再送する」:
the rows leave the lists, the mail and the event arrive, and the audit log has both lines. suzuki (an agent) gets no link and is refused the page. axe-core finds no
WCAG 2.1 AA violation.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from conftest import CHROMIUM, missing_service

pytestmark = [pytest.mark.browser]

if not CHROMIUM.exists():
    missing_service("!!! BROWSER TESTS SKIPPED: /usr/bin/chromium is missing. Run `make browser` "
                    "(as root with apt-get) to install Debian's Chromium. !!!", module_level=True)

from playwright.sync_api import Browser, expect  # noqa: E402

from test_browser_canned import SilentRasa  # noqa: E402
from test_browser_desk import XSS_NAME, assert_accessible, browser, console  # noqa: E402,F401
from test_fuzz_inputs import uvicorn_server  # noqa: E402
from test_server import PASSWORD, SECRET  # noqa: E402
from test_transcript_mail import SENDER, Inbox, free_port  # noqa: E402
from test_webhooks import Receiver, config_for  # noqa: E402

# The local part may hold almost anything (RFC 5322 quoted strings); the page must show it as text.
ODD_ADDRESS = '"<b>x</b>"@example.jp'


def wait_for(condition: Callable[[], bool], what: str, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"not seen within {seconds} s: {what}"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any, Receiver]]:
    from bot.server.app import Services, stores_for
    from bot.server.tokens import ConversationTokens
    from bot.settings import SmtpSettings, WebhookSettings

    folder: Path = tmp_path_factory.mktemp("failures-browser")
    receiver = Receiver()
    receiver.always_fail = True
    smtp = SmtpSettings(host="127.0.0.1", port=free_port(), sender=SENDER, security="none", timeout=2, attempts=1)
    services = Services(stores_for(f"sqlite:///{folder / 'bot.db'}"), SilentRasa(),  # type: ignore[arg-type]
                        ConversationTokens(SECRET), smtp=smtp,
                        webhooks=config_for(receiver.url, ["ticket.created"]),
                        webhook_settings=WebhookSettings(attempts=1, retry_seconds=0, timeout=1),
                        webhook_poll_seconds=0.05)
    services.gateway.configure_mail(smtp, retry_waits=(dt.timedelta(0),), poll_seconds=0.05)
    services.stores.agents.add("sato", "佐藤", PASSWORD)
    services.stores.agents.add("suzuki", XSS_NAME, PASSWORD)
    try:
        with uvicorn_server(services) as port:
            yield f"http://127.0.0.1:{port}", services, receiver
    finally:
        receiver.close()


def test_an_admin_sees_failed_mails_and_webhooks_and_sends_them_again(browser: Browser,  # noqa: F811
                                                                      server: tuple[str, Any, Receiver]) -> None:
    from aiosmtpd.controller import Controller

    from bot.handoff.packet import HandoffPacket, Turn

    url, services, receiver = server
    ticket, _ = services.stores.queue.enqueue(HandoffPacket("c-fail:1", "c-fail", ["human_request"],
                                                            [Turn("customer", "担当者と話したい")]))
    mails = services.gateway.mailer.mails
    mail = mails.enqueue(ticket.id, "c-fail", ODD_ADDRESS, "request")
    services.gateway.mailer.wake()
    deliveries = services.webhook_sender.deliveries
    wait_for(lambda: mails.get(mail.id).status == "failed", "the mail given up")
    wait_for(lambda: deliveries.count("dead") == 1, "the webhook dead-lettered")

    sato = console(browser, url, "sato")
    sato.click("#desk-failures-link")
    expect(sato.locator("#failures-view")).to_be_visible(timeout=10_000)
    mail_row = sato.locator(f'#mails-list tr[data-failure-id="{mail.id}"]')
    expect(mail_row).to_contain_text("お客さまの依頼（会話の記録）")
    expect(mail_row.locator(".failure-address")).to_have_text(ODD_ADDRESS)  # as text, not markup
    expect(mail_row.locator(".failure-error")).to_contain_text("ConnectionRefused")
    expect(sato.locator("#mails-count")).to_have_text("（1 件）")
    dead = deliveries.dead_letters()[0]
    hook_row = sato.locator(f'#webhooks-list tr[data-failure-id="{dead.id}"]')
    expect(hook_row).to_contain_text("ticket.created")
    expect(hook_row).to_contain_text(f"#{ticket.id}")
    assert sato.evaluate("document.querySelector('#mails-list b')") is None
    assert_accessible(sato)

    inbox = Inbox()  # both come back
    mail_server = Controller(inbox, hostname="127.0.0.1", port=services.gateway.mailer.settings.port)
    mail_server.start()
    receiver.always_fail = False
    try:
        mail_row.get_by_role("button", name="再送する").click()
        expect(sato.locator("#failures-status")).to_contain_text(f"メール {mail.id} を再送します")
        expect(sato.locator("#mails-empty")).to_be_visible()
        assert inbox.wait(1)[0][1] == [ODD_ADDRESS]
        hook_row.get_by_role("button", name="再送する").click()
        expect(sato.locator("#failures-status")).to_contain_text(f"Webhook {dead.id} を再送します")
        expect(sato.locator("#webhooks-empty")).to_have_text("届かなかった Webhook はありません。")
        wait_for(lambda: deliveries.get(dead.id).status == "delivered", "the replayed event delivered")
        assert [e["id"] for e in receiver.events()] == [dead.event_id, dead.event_id]  # the same event id
    finally:
        mail_server.stop()
    with services.stores.engine.connect() as connection:
        from sqlalchemy import text

        actions = [tuple(r) for r in connection.execute(text(
            "SELECT action, actor, target FROM audit_log WHERE action IN ('mail.retried', 'webhook.replayed') ORDER BY id"))]
    assert actions == [("mail.retried", "sato", f"mail:{mail.id}"), ("webhook.replayed", "sato", f"webhook:{dead.id}")]

    suzuki = console(browser, url, "suzuki")
    expect(suzuki.locator("#desk-failures-link")).to_be_hidden()
    suzuki.goto(url + "/console/failures.html")
    expect(suzuki.locator("#alert")).to_have_text("この操作は管理者だけが行えます。管理者に依頼してください。")
    expect(suzuki.locator("#failures-view")).to_be_hidden()
