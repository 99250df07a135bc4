"""The widget while the bot server's database is down (issue #17), in a real browser.

The server side is tested in tests/test_gateway_edges.py: an ``error`` frame with code
``unavailable`` and no ``client_id``, then a 1013 close, and ``503`` on HTTP. This checks what
the customer then sees and that the widget keeps the message and sends it again (same client
id) once the server is back, without a click. No servers: the test answers the page, the
widget's files, the session API and the WebSocket itself, so it takes seconds.
"""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from bot.server.outage import customer_text
from bot.settings import PROJECT_ROOT
from conftest import chromium
from test_browser import bot_messages, send

from playwright.sync_api import Browser, Page, expect  # noqa: E402  (test_browser skips without Chromium)

pytestmark = [pytest.mark.browser]

SHOP = "http://shop.example.test"
WIDGET = PROJECT_ROOT / "bot" / "server" / "static" / "widget"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


class FlakyServer:
    """The bot server as the widget sees it, with a database the test takes away and gives back.

    While ``down``: sockets get the ``unavailable`` error frame and a 1013 close (as
    bot/server/chat_api.py does) and ``GET /api/chat/history`` answers 503.
    """

    def __init__(self, page: Page) -> None:
        self.down = False
        self.refused = 0  # sockets refused while down
        self.frames: list[dict[str, Any]] = []  # what the widget sent
        self.messages: list[dict[str, Any]] = []  # the conversation as stored
        self.lock = threading.Lock()
        page.route(f"{SHOP}/api/chat/sessions", lambda route: route.fulfill(
            status=201, content_type="application/json", body=json.dumps({"conversation_id": "c1", "token": "t1"})))
        page.route(f"{SHOP}/api/chat/history", self._history)
        page.route_web_socket(re.compile(r".*/ws/chat.*"), self._connect)

    def _history(self, route: Any) -> None:
        if self.down:
            route.fulfill(status=503, content_type="application/json", headers={"Retry-After": "5"},
                          body=json.dumps({"error": customer_text(), "code": "unavailable"}))
        else:
            route.fulfill(status=200, content_type="application/json",
                          body=json.dumps({"conversation_id": "c1", "state": {"mode": "bot"},
                                           "messages": self.messages}))

    def _refuse(self, ws: Any) -> None:
        ws.send(json.dumps({"type": "error", "code": "unavailable", "message": customer_text()}))
        ws.close(code=1013, reason="database unavailable")

    def _connect(self, ws: Any) -> None:
        def received(message: str | bytes) -> None:
            frame = json.loads(message)
            with self.lock:
                self.frames.append(frame)
            if frame.get("type") == "auth":
                if self.down:
                    self.refused += 1
                    self._refuse(ws)
                else:
                    ws.send(json.dumps({"type": "history", "state": {"mode": "bot"}, "messages": self.messages}))
            elif frame.get("type") == "message":
                if self.down:  # the database went away while the message was on its way
                    self._refuse(ws)
                    return
                for sender, text in [("customer", frame["text"]), ("bot", "住所はマイページから変更できます。")]:
                    message = {"id": len(self.messages) + 1, "sender": sender, "text": text,
                               "at": "2026-11-24T01:00:00+00:00",
                               "client_id": frame["client_id"] if sender == "customer" else None}
                    self.messages.append(message)
                    ws.send(json.dumps({"type": "message", "message": message}))

        ws.on_message(received)

    def sent(self, text: str) -> list[dict[str, Any]]:
        with self.lock:
            return [f for f in self.frames if f.get("type") == "message" and f.get("text") == text]


def shop_page(browser: Browser) -> Page:
    page = browser.new_context(viewport={"width": 1280, "height": 800}, locale="ja-JP").new_page()
    html = ("<!doctype html><html lang='ja'><head><meta charset='utf-8'><title>テスト商店</title>"
            "<link rel='stylesheet' href='/widget/widget.css'></head><body><h1>テスト商店</h1>"
            "<script>window.SupportChatConfig = {};</script><script src='/widget/widget.js' defer></script></body></html>")
    page.route(f"{SHOP}/", lambda route: route.fulfill(status=200, content_type="text/html; charset=utf-8", body=html))
    for name, kind in (("widget.js", "text/javascript"), ("widget.css", "text/css")):
        page.route(f"{SHOP}/widget/{name}", serve(WIDGET / name, kind))
    return page


def serve(path: Path, kind: str) -> Callable[[Any], None]:
    body = path.read_text(encoding="utf-8")
    return lambda route: route.fulfill(status=200, content_type=kind, body=body)


def test_a_message_sent_while_the_database_is_down_is_kept_and_sent_again_when_it_is_back(browser: Browser) -> None:
    page = shop_page(browser)
    server = FlakyServer(page)
    page.goto(f"{SHOP}/")
    page.click("#supportchat-launcher")
    send(page, "こんにちは")  # starts the conversation; answered while the database is up
    expect(bot_messages(page)).to_have_count(1, timeout=10_000)

    server.down = True
    send(page, "住所を変えたい")
    notice = page.locator("#supportchat-messages .sc-notice .sc-bubble").last
    expect(notice).to_have_text(customer_text(), timeout=10_000)  # the server's own Japanese words
    pending = page.locator("#supportchat-messages .sc-pending")
    expect(pending).to_have_count(1)
    expect(pending).not_to_have_class(re.compile(r"\bsc-failed\b"))  # kept to be sent again, no click needed
    expect(page.locator("#supportchat-status")).not_to_have_text("", timeout=10_000)  # reconnecting is shown
    wait_until(page, lambda: server.refused >= 1)  # a reconnection was refused too: still down

    server.down = False  # the database is back: the next reconnection gets a history
    expect(pending).to_have_count(0, timeout=20_000)
    expect(page.locator("#supportchat-status")).to_have_text("")
    expect(page.locator("#supportchat-messages .sc-msg-customer .sc-bubble")).to_have_text(["こんにちは", "住所を変えたい"])
    expect(bot_messages(page)).to_have_count(2)
    first, again = server.sent("住所を変えたい")  # refused once, sent again by itself, never a third time
    assert first["client_id"] == again["client_id"]


def wait_until(page: Page, condition: Any, seconds: float = 15.0) -> None:
    """Wait for ``condition`` while the page runs (Playwright handles routes only inside its calls)."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        page.wait_for_timeout(50)
