"""個人情報の削除 in a real browser (Debian's Chromium via Playwright; #14 item 5).

One bot server (uvicorn in a thread, SQLite, a Rasa stand-in never asked) holding two
customers, the first named with HTML. sato (an admin) opens the page from the desk, looks the
first up by conversation id with the keyboard, reads the name as text in the dry run, is
refused a confirmation that differs, then types the id again and deletes: the page shows the
counts, the database holds nothing of that customer and all of the other's, the audit log has
the line. An unknown id is answered in Japanese; suzuki (an agent) gets no link and is refused
the page. axe-core finds no WCAG 2.1 AA violation.
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
from sqlalchemy import bindparam, text  # noqa: E402

from test_browser_desk import XSS_NAME, assert_accessible, browser, console, server  # noqa: E402,F401

FIRST, OTHER = "c-erase-me", "c-keep-me"


def seed(services: Any, conversation_id: str, name: str) -> None:
    """A widget conversation with two messages and a resolved handoff."""
    from bot.handoff.packet import HandoffPacket, Turn
    from bot.store.chat_log import NewMessage

    services.stores.chat_log.start_conversation(conversation_id, {"name": name, "email": f"{conversation_id}@example.jp"})
    services.stores.chat_log.add(NewMessage(conversation_id, "customer", "退会したいです", client_id="m1"))
    services.stores.chat_log.add(NewMessage(conversation_id, "bot", "担当者におつなぎします"))
    queue = services.stores.queue
    ticket, _ = queue.enqueue(HandoffPacket(f"{conversation_id}:1", conversation_id, ["human_request"],
                                            [Turn("customer", "退会したいです")], customer={"name": name}))
    queue.claim(ticket.id, "sato")
    queue.resolve(ticket.id, agent="sato")


def rows(services: Any, conversation_id: str) -> dict[str, int]:
    with services.stores.engine.connect() as connection:
        return {table: int(connection.execute(text(f"SELECT count(*) FROM {table} WHERE {column} = :id"),
                                              {"id": conversation_id}).scalar_one())
                for table, column in (("conversations", "id"), ("chat_messages", "conversation_id"),
                                      ("tickets", "conversation_id"))}


def wait_until_announced(services: Any, *conversation_ids: str, deadline: float = 15.0) -> None:
    """The server's ticket watcher announces the seeded tickets on its own schedule and writes to
    their chats when it does: wait for it, so a snapshot of a conversation's rows stays valid."""
    import time

    end = time.monotonic() + deadline
    query = text("SELECT count(*) FROM tickets WHERE announced_at IS NULL AND conversation_id IN :ids")
    query = query.bindparams(bindparam("ids", expanding=True))
    while True:
        with services.stores.engine.connect() as connection:
            waiting = int(connection.execute(query, {"ids": list(conversation_ids)}).scalar_one())
        if not waiting:
            return
        assert time.monotonic() < end, f"{waiting} seeded tickets still not announced after {deadline} s"
        time.sleep(0.1)


def test_an_admin_deletes_a_conversation_from_the_page(browser: Browser, server: tuple[str, Any]) -> None:  # noqa: F811
    url, services = server
    seed(services, FIRST, XSS_NAME)
    seed(services, OTHER, "佐藤花子")
    wait_until_announced(services, FIRST, OTHER)
    kept = rows(services, OTHER)
    assert rows(services, FIRST)["chat_messages"] >= 2 and kept["tickets"] == 1

    sato = console(browser, url, "sato")
    expect(sato.locator("#desk-erasure-link")).to_be_visible(timeout=10_000)
    sato.click("#desk-erasure-link")
    expect(sato.locator("#erasure-view")).to_be_visible(timeout=10_000)
    assert_accessible(sato)

    # Unknown: the server's Japanese message, nothing else shown.
    sato.fill("#erasure-value", "c-nobody")
    sato.press("#erasure-value", "Enter")
    expect(sato.locator("#alert")).to_contain_text("会話 ID「c-nobody」のお客さまのデータは見つかりません。", timeout=10_000)
    expect(sato.locator("#erasure-review")).to_be_hidden()

    # The keyboard alone: type the id, Enter; focus goes to the dry run.
    sato.fill("#erasure-value", FIRST)
    sato.focus("#erasure-value")
    sato.keyboard.press("Tab")
    expect(sato.locator("#erasure-preview")).to_be_focused()
    sato.keyboard.press("Enter")
    expect(sato.locator("#erasure-review-heading")).to_be_focused(timeout=10_000)
    expect(sato.locator("#alert")).to_be_hidden()
    expect(sato.locator("#erasure-summary")).to_have_text(f"会話 ID「{FIRST}」: 会話 1 件")
    found = sato.locator("#erasure-conversations tr")
    expect(found).to_have_count(1)
    expect(found.locator("td").nth(0)).to_have_text(FIRST)
    expect(found.locator("td").nth(1)).to_have_text(XSS_NAME)  # text, never markup
    assert sato.evaluate("() => window.__xss") is None
    held = rows(services, FIRST)  # the customer's, the bot's and the server's own lines (the handoff, the end)
    expect(sato.locator('#erasure-counts tr[data-kind="chat_messages"] td').nth(1)).to_have_text(
        f"{held['chat_messages']} 件")
    expect(sato.locator('#erasure-counts tr[data-kind="conversations"] td').nth(1)).to_have_text("1 件")
    expect(sato.locator('#erasure-counts tr[data-kind="tickets"] td').nth(1)).to_have_text("1 件")
    expect(sato.locator("#erasure-confirm-label")).to_have_text("確認のため、同じ会話 IDをもう一度入力してください")
    assert_accessible(sato)

    # A confirmation that differs is refused; nothing is deleted.
    sato.fill("#erasure-confirm", OTHER)
    sato.press("#erasure-confirm", "Enter")
    expect(sato.locator("#alert")).to_contain_text("確認の入力が削除するお客さまの会話 IDと一致しません。", timeout=10_000)
    assert rows(services, FIRST)["conversations"] == 1

    sato.fill("#erasure-confirm", FIRST)
    sato.press("#erasure-confirm", "Enter")
    expect(sato.locator("#erasure-done-heading")).to_be_focused(timeout=10_000)
    expect(sato.locator("#erasure-done-summary")).to_contain_text(f"削除しました（会話 ID「{FIRST}」: 会話 1 件）。")
    expect(sato.locator('#erasure-done-counts tr[data-kind="chat_messages"] td').nth(1)).to_have_text(
        f"{held['chat_messages']} 件")
    expect(sato.locator("#erasure-review")).to_be_hidden()
    expect(sato.locator("#alert")).to_be_hidden()
    assert rows(services, FIRST) == {"conversations": 0, "chat_messages": 0, "tickets": 0}
    assert rows(services, OTHER) == kept
    from bot.store.audit import AuditFilter

    [line] = services.stores.audit.page(AuditFilter(action="data.deleted"))[0]
    assert line.actor == "sato" and FIRST not in str(line.detail) and FIRST not in (line.target or "")
    assert sato.evaluate("() => window.__xss") is None

    suzuki = console(browser, url, "suzuki")
    expect(suzuki.locator("#desk-erasure-link")).to_be_hidden()
    suzuki.goto(url + "/console/erasure.html")
    expect(suzuki.locator("#alert")).to_have_text("この操作は管理者だけが行えます。管理者に依頼してください。",
                                                  timeout=10_000)
    expect(suzuki.locator("#erasure-view")).to_be_hidden()
