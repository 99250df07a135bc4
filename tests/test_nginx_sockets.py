"""nginx spreads customers' conversations over the bot servers, one conversation on one server.

Real parts: Debian's nginx with ``deploy/nginx/local.conf`` (started as ``make run-scaled``
starts it) in front of two real bot servers, each started from its systemd unit's command line
(``deploy/run_scaled.py``), on a fresh PostgreSQL database and the machine's Redis. No Rasa:
opening a conversation's socket (the ``auth`` frame, then the ``history`` frame) needs none.

Customers connect as the widget does (bot/server/static/widget/widget.js, ``socketUrl``): the
token in the first frame, the URL naming only the conversation. Many conversations must land
on both servers, while every reconnect of one conversation lands on the same server (the
gateway's ``route_unanswered`` relies on it: a conversation's lock is per server), and the
token never reaches nginx's access log. A browser test checks the widget opens exactly that URL.
"""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
import websockets

from bot.launcher import StartupError, free_port
from bot.server.tokens import load_secret_key
from conftest import CHROMIUM, chromium, missing_service, temporary_database
from deploy.run_scaled import Replica, ScaledStack, nginx_binary
from test_events import REDIS_URL, needs_redis

pytestmark = [needs_redis]

CONVERSATIONS = 24  # all on one server by chance: 2 in 2**24


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScaledStack]:
    try:
        nginx_binary()
    except StartupError as exc:
        missing_service(str(exc))
    folder = tmp_path_factory.mktemp("nginx-sockets")
    with temporary_database("postgresql", folder) as url:
        replicas = [Replica(i, free_port(), free_port(), free_port()) for i in (1, 2)]
        stack = ScaledStack(model=Path("unused"), replicas=replicas, nginx_port=free_port(), folder=folder / "run",
                            env={"DATABASE_URL": url, "BOT_EVENTS_URL": REDIS_URL})
        stack.logs.mkdir(parents=True)
        load_secret_key(stack.folder / "secret.key")  # one key for both bot servers
        stack.run_migrations()
        try:
            for replica in replicas:
                stack.start_process("bot", replica)
            stack.start_nginx()
            for replica in replicas:
                stack.wait("bot", replica, timeout=120)
            yield stack
        finally:
            stack.stop()


def widget_socket_url(base: str, conversation_id: str) -> str:
    """What widget.js's ``socketUrl`` opens for a conversation."""
    return base.replace("http://", "ws://") + "/ws/chat?conversation=" + urllib.parse.quote(conversation_id, safe="")


async def open_socket(base: str, session: dict[str, str]) -> str:
    """Connect as the widget does; the address of the bot server that sent the history."""
    async with websockets.connect(widget_socket_url(base, session["conversation_id"])) as ws:
        await ws.send(json.dumps({"type": "auth", "token": session["token"]}))
        frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert frame["type"] == "history", frame
        return str(ws.response_headers["X-Bot-Upstream"])


def test_conversations_spread_over_both_servers_and_each_sticks_to_one(stack: ScaledStack) -> None:
    servers = {f"127.0.0.1:{r.server_port}" for r in stack.replicas}

    async def run() -> None:
        async with httpx.AsyncClient(base_url=stack.url, timeout=10) as http:
            sessions = []
            for _ in range(CONVERSATIONS):
                response = await http.post("/api/chat/sessions", json={"customer": {}})
                assert response.status_code == 201, response.text
                sessions.append(response.json())
        first = [await open_socket(stack.url, s) for s in sessions]
        assert set(first) == servers  # spread over both
        # Reconnects (a reload, a lost network), three in a row per conversation: the same server.
        # (nginx's hash of an empty key falls back to round robin, which alternates.)
        again = [[await open_socket(stack.url, s) for _ in range(3)] for s in sessions]
        assert again == [[server] * 3 for server in first]
        # Both tabs of one conversation open at once: on one server.
        session = sessions[0]
        async with websockets.connect(widget_socket_url(stack.url, session["conversation_id"])) as tab:
            await tab.send(json.dumps({"type": "auth", "token": session["token"]}))
            assert json.loads(await asyncio.wait_for(tab.recv(), 10))["type"] == "history"
            assert await open_socket(stack.url, session) == tab.response_headers["X-Bot-Upstream"] == first[0]

        access_log = (stack.folder / "nginx" / "logs" / "access.log").read_text(encoding="utf-8")
        assert sessions[0]["conversation_id"] in access_log
        assert not any(s["token"] in access_log for s in sessions)  # the token never in a URL

        # An older client with the token in the URL (deprecated) meets the widget's sockets.
        for session, server in list(zip(sessions, first))[:6]:
            old_url = stack.url.replace("http://", "ws://") + "/ws/chat?token=" + urllib.parse.quote(session["token"])
            async with websockets.connect(old_url) as ws:
                assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "history"
                assert ws.response_headers["X-Bot-Upstream"] == server

    asyncio.run(run())


def test_the_widget_names_its_conversation_in_the_socket_url_and_never_the_token(stack: ScaledStack) -> None:
    """The widget on the demo page (served through nginx) opens the URL the test above uses,
    with the conversation of its stored session; a reload opens the same one."""
    if not CHROMIUM.exists():
        missing_service("!!! BROWSER TEST SKIPPED: /usr/bin/chromium is missing (make browser) !!!")
    from playwright.sync_api import expect

    with chromium() as browser:
        page = browser.new_page()
        sockets: list[str] = []
        page.on("websocket", lambda ws: sockets.append(ws.url))
        for visit in range(2):  # the first visit, then a reload: the same conversation
            if visit == 0:
                page.goto(stack.url + "/")
                page.click("#supportchat-launcher")
            else:
                page.reload()
            expect(page.locator("#supportchat-panel")).to_be_visible(timeout=15_000)
            for _ in range(150):
                if len(sockets) > visit:
                    break
                page.wait_for_timeout(100)
            stored: Any = page.evaluate("() => JSON.parse(localStorage.getItem('supportchat.session'))")
            assert sockets[visit] == widget_socket_url(stack.url, stored["conversation_id"])
            assert stored["token"] not in sockets[visit]
        assert sockets[0] == sockets[1]
