"""The waiting banner in a real browser: the honest note, then the position and estimate (#14 item 1).

The server side (what ``state`` holds) is tested in tests/test_queue_place.py. Here the test
answers the page, the widget's files, the session API and the WebSocket itself (as
tests/test_browser_widget_more.py does), so it takes seconds.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from bot.server.gateway_base import TEXT
from test_browser import send
from test_browser_widget_more import SHOP, browser, shop_page  # noqa: F401 - fixture

from playwright.sync_api import Browser, expect  # noqa: E402  (test_browser skips without Chromium)

pytestmark = [pytest.mark.browser]


def waiting(position: int | None, estimate: int | None, note: str | None) -> dict[str, Any]:
    return {"type": "state", "state": {"mode": "waiting", "ticket_id": 1, "position": position,
                                       "estimate_minutes": estimate, "wait_note": note}}


def test_the_banner_shows_the_note_instead_of_figures_then_the_figures(browser: Browser) -> None:
    page = shop_page(browser)
    sockets: list[Any] = []
    page.route(f"{SHOP}/api/chat/sessions", lambda route: route.fulfill(
        status=201, content_type="application/json", body=json.dumps({"conversation_id": "c1", "token": "t1"})))

    def connect(ws: Any) -> None:
        def received(message: str | bytes) -> None:
            frame = json.loads(message)
            if frame.get("type") == "auth":
                ws.send(json.dumps({"type": "history", "state": {"mode": "bot"}, "messages": []}))
            elif frame.get("type") == "message":
                ws.send(json.dumps({"type": "message", "message": {
                    "id": 1, "sender": "customer", "text": frame["text"], "at": "2026-11-24T01:00:00+00:00",
                    "client_id": frame["client_id"]}}))
                ws.send(json.dumps(waiting(None, None, TEXT["no_agent_for_category"])))

        sockets.append(ws)
        ws.on_message(received)

    page.route_web_socket(re.compile(r".*/ws/chat.*"), connect)
    page.goto(f"{SHOP}/")
    page.click("#supportchat-launcher")
    send(page, "料金の返金について担当者と話したい")
    banner = page.locator("#supportchat-banner")
    expect(banner).to_contain_text(TEXT["no_agent_for_category"], timeout=10_000)
    expect(banner).to_contain_text("担当者におつなぎしています。")
    expect(banner).not_to_contain_text("番目")  # no position, no estimate
    # An agent who takes the category came back: the next state has figures and no note.
    sockets[-1].send(json.dumps(waiting(2, 10, None)))
    expect(banner).to_contain_text("担当者におつなぎしています（順番: 2番目、目安: 約10分）", timeout=10_000)
    expect(banner).not_to_contain_text(TEXT["no_agent_for_category"])
