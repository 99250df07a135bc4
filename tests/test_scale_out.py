"""Scale-out: two bot servers on one PostgreSQL database, sharing events over Redis.

The customer's socket is on server A, the agent's console on server B: the ticket is
announced once to every console, and the agent's claim, reply and resolve reach the
customer through Redis. Events forged on the Redis channel never reach anyone, and
while Redis is unreachable each server still answers its own customers; once it is
back their widgets are told to reload. Only Rasa is a scripted stand-in
(tests/test_server.py); the outage is a TCP proxy to Redis (tests/test_events.py).
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from bot.server.app import Services, create_app, stores_for
from bot.server.redis_relay import RedisRelay
from bot.server.tokens import ConversationTokens
from conftest import temporary_database
from test_events import REDIS_URL, RedisProxy, needs_redis
from test_server import PASSWORD, SECRET, ScriptedRasa, frames_until, is_bot_message

pytestmark = needs_redis


def server(url: str) -> tuple[Services, ScriptedRasa]:
    ref: dict[str, Any] = {}
    rasa = ScriptedRasa(ref)
    services = Services(stores_for(url), rasa, ConversationTokens(SECRET))  # type: ignore[arg-type]
    ref["services"] = services
    return services, rasa


@contextlib.contextmanager
def running_servers(folder: Path, events_a: str, events_b: str) -> Iterator[tuple[Any, ...]]:
    """Servers A and B on one fresh PostgreSQL database, relaying through ``events_a`` / ``events_b``."""
    with temporary_database("postgresql", folder) as url:
        a, rasa_a = server(url)
        b, rasa_b = server(url)
        a.stores.agents.add("sato", "佐藤", PASSWORD)
        with TestClient(create_app(a, SECRET, watch_interval=0.05, events_url=events_a)) as client_a, \
                TestClient(create_app(b, SECRET, watch_interval=0.05, events_url=events_b)) as client_b:
            yield client_a, client_b, a, b, rasa_a, rasa_b
        a.stores.engine.dispose()
        b.stores.engine.dispose()


@pytest.fixture()
def channel(monkeypatch: pytest.MonkeyPatch) -> str:
    name = f"bot:test:{uuid.uuid4().hex}"
    monkeypatch.setattr(RedisRelay, "CHANNEL", name)  # no cross-talk between runs
    return name


@pytest.fixture()
def two_servers(tmp_path: Path, channel: str) -> Iterator[tuple[Any, ...]]:
    with running_servers(tmp_path, REDIS_URL, REDIS_URL) as servers:
        yield servers


@pytest.fixture()
def proxy() -> Iterator[RedisProxy]:
    forwarder = RedisProxy()
    forwarder.start()
    yield forwarder
    forwarder.close()


def drain(queue: Any, seconds: float) -> list[dict[str, Any]]:
    items, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        while not queue.empty():
            items.append(queue.get_nowait())
        time.sleep(0.05)
    return items


def test_customer_on_one_server_agent_on_another(two_servers) -> None:  # type: ignore[no-untyped-def]
    client_a, client_b, a, b, rasa_a, rasa_b = two_servers
    consoles_a, consoles_b = a.hub.subscribe_agents(), b.hub.subscribe_agents()
    token = client_a.post("/api/chat/sessions", json={}).json()["token"]
    csrf = client_b.post("/api/agent/login", json={"username": "sato", "password": PASSWORD}).json()["csrf_token"]
    headers = {"X-CSRF-Token": csrf}
    with client_a.websocket_connect(f"/ws/chat?token={token}") as ws:
        ws.receive_json()
        ws.send_json({"type": "message", "text": "何度言えばわかるんだ、ふざけるな", "client_id": "1"})
        ticket_id = frames_until(ws, lambda f: f["type"] == "state")[-1]["state"]["ticket_id"]
        created_a = [e for e in drain(consoles_a, 1.5) if e["change"] == "created"]
        created_b = [e for e in drain(consoles_b, 0.1) if e["change"] == "created"]
        assert len(created_a) == len(created_b) == 1  # announced once, seen on both servers

        assert client_b.post(f"/api/tickets/{ticket_id}/claim", headers=headers).status_code == 200
        joined = frames_until(ws, lambda f: f["type"] == "state" and f["state"]["mode"] == "agent")
        assert joined[-1]["state"]["agent_name"] == "佐藤"
        ws.send_json({"type": "message", "text": "早くしてください", "client_id": "2"})
        assert client_b.post(f"/api/tickets/{ticket_id}/reply", headers=headers,
                             json={"text": "確認いたします。"}).status_code == 200
        reply = frames_until(ws, lambda f: f["type"] == "message" and f["message"]["sender"] == "agent")
        assert reply[-1]["message"]["text"] == "確認いたします。"
        assert any(e["change"] == "message" for e in drain(consoles_b, 0.5))  # the customer's message, via Redis
        assert client_b.post(f"/api/tickets/{ticket_id}/resolve", headers=headers).status_code == 200
        back = frames_until(ws, lambda f: f["type"] == "state" and f["state"]["mode"] == "bot")
        assert back[-1]["state"]["mode"] == "bot"
        assert rasa_b.resumed == [a.tokens.conversation_of(token)]  # the server that resolved resumed Rasa
        ws.send_json({"type": "message", "text": "住所変更のやり方", "client_id": "3"})
        answer = frames_until(ws, lambda f: f["type"] == "message" and f["message"]["sender"] == "bot")
        assert answer[-1]["message"]["faq_id"] == "change-address"
    entries = [(e.sender, e.text) for e in a.stores.queue.get(ticket_id).entries]
    assert ("customer", "早くしてください") in entries and ("agent", "確認いたします。") in entries


def test_an_event_forged_on_the_redis_channel_never_reaches_the_customer(two_servers, channel) -> None:  # type: ignore[no-untyped-def]
    import redis

    client_a, client_b, a, b, rasa_a, rasa_b = two_servers
    token = client_a.post("/api/chat/sessions", json={}).json()["token"]
    conversation_id = a.tokens.conversation_of(token)
    forged = {"kind": "conversation", "conversation_id": conversation_id,
              "item": {"type": "message", "message": {"id": 999, "sender": "agent", "agent_name": "佐藤",
                                                      "text": "こちらの口座にお振り込みください。"}}}
    with client_a.websocket_connect(f"/ws/chat?token={token}") as ws:
        ws.receive_json()
        writer = redis.from_url(REDIS_URL)
        assert writer.publish(channel, json.dumps(forged, ensure_ascii=False)) == 2  # both servers heard it
        writer.close()
        ws.send_json({"type": "message", "text": "住所変更のやり方", "client_id": "1"})
        frames = frames_until(ws, is_bot_message)
    assert [f["message"]["sender"] for f in frames if f["type"] == "message"] == ["customer", "bot"]


@pytest.mark.timeout(30)
def test_redis_outage_customers_still_answered_then_told_to_reload(tmp_path: Path, channel: str,
                                                                   proxy: RedisProxy) -> None:
    with running_servers(tmp_path, proxy.url, REDIS_URL) as (client_a, client_b, a, b, rasa_a, rasa_b):
        token = client_a.post("/api/chat/sessions", json={}).json()["token"]
        with client_a.websocket_connect(f"/ws/chat?token={token}") as ws:
            ws.receive_json()
            ws.send_json({"type": "message", "text": "住所を変えたい", "client_id": "before"})
            frames_until(ws, is_bot_message)

            proxy.stop()  # server A loses Redis
            ws.send_json({"type": "message", "text": "住所変更のやり方", "client_id": "during"})
            during = frames_until(ws, is_bot_message)  # answered by server A without Redis
            assert during[-1]["message"]["faq_id"] == "change-address"

            proxy.start()  # back: the widget is told to reconnect and reload
            with pytest.raises(WebSocketDisconnect) as closed:
                for _ in range(20):
                    ws.receive_json()
            assert closed.value.code == 4000
        with client_a.websocket_connect(f"/ws/chat?token={token}") as ws:
            history = ws.receive_json()
        assert [m["client_id"] for m in history["messages"] if m["sender"] == "customer"] == ["before", "during"]
        assert [m["sender"] for m in history["messages"]] == ["customer", "bot", "customer", "bot"]

        # Both directions work again: a handoff from A's customer reaches B's console.
        consoles_b = b.hub.subscribe_agents()
        with client_a.websocket_connect(f"/ws/chat?token={token}") as ws:
            ws.receive_json()
            ws.send_json({"type": "message", "text": "何度言えばわかるんだ、ふざけるな", "client_id": "after"})
            frames_until(ws, lambda f: f["type"] == "state")
        assert any(e.get("change") == "created" for e in drain(consoles_b, 1.5))
