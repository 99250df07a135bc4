"""LINE with two bot servers relaying events through Redis: each message goes out once.

The customer's webhook reaches server A; the agent works on server B. The channel sends
what a gateway publishes on its own server only, so B pushes the agent's reply and A,
which hears the same frame over Redis, does not.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest
from starlette.testclient import TestClient

from bot.server.app import Services, create_app, stores_for
from bot.server.gateway import TEXT as GATEWAY_TEXT
from bot.server.redis_relay import RedisRelay
from bot.server.tokens import ConversationTokens
from bot.settings import LineSettings
from line_standin import ACCESS_TOKEN, CHANNEL_SECRET, LineStandIn, serve, until
from test_events import REDIS_URL, needs_redis
from test_line import PASSWORD, SECRET, USER, ScriptedRasa

pytestmark = needs_redis


@pytest.fixture()
def two_servers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, ...]]:
    monkeypatch.setattr(RedisRelay, "CHANNEL", f"bot:test:{uuid.uuid4().hex}")  # no cross-talk between runs
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    standin = LineStandIn()
    standin.profiles[USER] = "山田 花子"
    servers = []
    for _ in range(2):
        rasa = ScriptedRasa()
        services = Services(stores_for(url), rasa, ConversationTokens(SECRET))  # type: ignore[arg-type]
        rasa.services = services
        servers.append(services)
    servers[0].stores.agents.add("sato", "佐藤", PASSWORD)
    with serve(standin) as api_url:
        line = LineSettings(channel_secret=CHANNEL_SECRET, access_token=ACCESS_TOKEN, api_url=api_url)
        apps = [create_app(s, SECRET, watch_interval=0.05, events_url=REDIS_URL, line=line) for s in servers]
        with TestClient(apps[0]) as client_a, TestClient(apps[1]) as client_b:
            yield client_a, client_b, servers[0], servers[1], standin


def test_agent_reply_on_the_other_server_is_pushed_once(two_servers: tuple[Any, ...]) -> None:
    client_a, client_b, a, b, standin = two_servers
    body, headers = standin.webhook([standin.event("text", USER, text="ふざけるな")])
    assert client_a.post("/line/webhook", content=body, headers=headers).status_code == 200
    ticket = until(lambda: a.stores.queue.open_ticket_for("line-" + USER))
    until(lambda: standin.of_kind("reply"))
    client_b.portal.call(b.gateway.claim, ticket.id, "sato")
    client_b.portal.call(b.gateway.agent_reply, ticket.id, "sato", "担当の佐藤です。確認します。")
    for client in (client_a, client_b):
        client.portal.call(client.app.state.line.drain)  # type: ignore[attr-defined]
    until(lambda: any("確認します" in t for c in standin.of_kind("push") for t in standin.texts(c)))
    time.sleep(1.0)  # a second push from server A would arrive by now
    pushed = [t for c in standin.of_kind("push") for t in standin.texts(c)]
    assert pushed.count("担当の佐藤です。確認します。") == 1
    assert pushed.count(GATEWAY_TEXT["agent_joined"].format(name="佐藤")) == 1
    assert len(standin.of_kind("reply")) == 1
