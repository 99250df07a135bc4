"""Handoff end to end with real processes: Rasa server, action server, bot server, on SQLite and PostgreSQL.

A customer (WebSocket, as the widget) asks an FAQ, then writes an angry message that also
matches an FAQ; an agent (HTTP + SSE, as the console) sees exactly one ticket whose
transcript matches the chat, claims it, replies; the bot stays silent meanwhile; resolving
gives the conversation back to the bot, which answers the next FAQ.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
import websockets

from bot.dialogue.replies import HANDOFF_TEXT
from conftest import AGENT_PASSWORD, full_stack, temporary_database

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ANGRY = "二回も住所変更したのに反映されてない、ふざけるな"
# What the widget passes when the page knows the customer (SupportChatConfig.customer) and where they chat.
CUSTOMER = {"name": "山田 太郎", "email": "taro@example.jp", "page_url": "https://www.example.jp/mypage?order=1#top"}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def stack(request: pytest.FixtureRequest, trained_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    folder = tmp_path_factory.mktemp(f"handoff-{request.param}")
    with temporary_database(request.param, folder) as url, full_stack(trained_model, folder, url) as running:
        running.database_url = url
        yield running


class Customer:
    """The widget's side of the protocol."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.frames: list[dict[str, Any]] = []

    async def send(self, text: str) -> None:
        await self.ws.send(json.dumps({"type": "message", "text": text, "client_id": uuid.uuid4().hex}))

    async def until(self, predicate: Any, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            frame = json.loads(await asyncio.wait_for(self.ws.recv(), max(0.1, deadline - time.monotonic())))
            self.frames.append(frame)
            if predicate(frame):
                return frame

    async def quiet_for(self, seconds: float) -> list[dict[str, Any]]:
        """Frames that arrive within ``seconds`` (to prove the bot stays silent)."""
        seen = []
        try:
            while True:
                seen.append(json.loads(await asyncio.wait_for(self.ws.recv(), seconds)))
        except asyncio.TimeoutError:
            return seen


def from_sender(sender: str) -> Any:
    return lambda f: f["type"] == "message" and f["message"]["sender"] == sender


async def read_sse(response: httpx.Response, events: list[tuple[float, dict[str, Any]]]) -> None:
    kind = ""
    async for line in response.aiter_lines():
        if line.startswith("event:"):
            kind = line.split(":", 1)[1].strip()
        elif line.startswith("data:") and kind == "ticket":
            events.append((time.monotonic(), json.loads(line.split(":", 1)[1])))


async def conversation(stack: Any) -> dict[str, Any]:
    base = stack.server_url
    async with httpx.AsyncClient(base_url=base, timeout=60) as agent, \
            httpx.AsyncClient(base_url=base, timeout=60) as public:
        login = await agent.post("/api/agent/login", json={"username": "sato", "password": AGENT_PASSWORD})
        headers = {"X-CSRF-Token": login.json()["csrf_token"]}
        # Available: the customer's position and estimate count only available agents.
        await agent.post("/api/desk/status", headers=headers, json={"status": "available"})
        sse_events: list[tuple[float, dict[str, Any]]] = []
        async with agent.stream("GET", "/api/events") as sse:
            reader = asyncio.create_task(read_sse(sse, sse_events))
            token = (await public.post("/api/chat/sessions", json={"customer": CUSTOMER})).json()["token"]
            ws_url = base.replace("http://", "ws://") + f"/ws/chat?token={token}"
            async with websockets.connect(ws_url) as ws:
                customer = Customer(ws)
                await customer.until(lambda f: f["type"] == "history")
                await customer.send("住所を変更したいです")
                faq = await customer.until(from_sender("bot"))
                sent_at = time.monotonic()
                await customer.send(ANGRY)
                mark = len(customer.frames)
                waiting = await customer.until(lambda f: f["type"] == "state")
                # The apology (Rasa's reply) and the waiting state (the ticket's announcement) travel
                # separately and may arrive in either order: wait for both.
                if not any(from_sender("bot")(f) for f in customer.frames[mark:]):
                    await customer.until(from_sender("bot"))
                handoff_text = next(f["message"]["text"] for f in customer.frames[::-1] if from_sender("bot")(f))
                for _ in range(100):  # the console learns about the ticket from the SSE stream
                    if any(e["change"] == "created" for _, e in sse_events):
                        break
                    await asyncio.sleep(0.05)
                created = [(at, e) for at, e in sse_events if e["change"] == "created"]
                ticket_id = waiting["state"]["ticket_id"]
                claim = await agent.post(f"/api/tickets/{ticket_id}/claim", headers=headers)
                joined = await customer.until(lambda f: f["type"] == "state" and f["state"]["mode"] != "waiting")
                await customer.send("まだですか")
                await customer.until(from_sender("customer"))
                silent = await customer.quiet_for(3)
                reply = await agent.post(f"/api/tickets/{ticket_id}/reply", headers=headers,
                                         json={"text": "お待たせしました。住所の反映を確認します。"})
                agent_message = await customer.until(from_sender("agent"))
                resolved = await agent.post(f"/api/tickets/{ticket_id}/resolve", headers=headers)
                back = await customer.until(lambda f: f["type"] == "state" and f["state"]["mode"] != "agent")
                await customer.send("営業時間を教えて")
                after = await customer.until(from_sender("bot"))
            reader.cancel()
        ticket = (await agent.get(f"/api/tickets/{ticket_id}")).json()["ticket"]
        all_tickets = (await agent.get("/api/tickets?status=all")).json()["tickets"]
    return locals()


def test_angry_message_to_agent_and_back_to_the_bot(stack: Any) -> None:
    run = asyncio.run(conversation(stack))
    assert run["faq"]["message"]["faq_id"] == "change-address"
    # Anger wins over the FAQ the message also matches: one ticket, high priority, apology.
    assert run["waiting"]["state"]["mode"] == "waiting" and run["waiting"]["state"]["position"] == 1
    mine = [t for t in run["all_tickets"] if t["conversation_id"] == run["ticket"]["conversation_id"]]
    assert len(mine) == 1 and mine[0]["priority"] == 1 and mine[0]["reasons"] == ["anger"]
    assert run["handoff_text"] in {HANDOFF_TEXT[reason] for reason in mine[0]["reasons"]}  # the apology for it
    (at, event), = run["created"]
    assert event["ticket"]["id"] == run["ticket_id"]
    assert at - run["sent_at"] < 5  # message → console, including the bot's own reply time
    # The transcript is the conversation as it happened, then the turns with the agent.
    entries = [(e["sender"], e["text"]) for e in run["ticket"]["entries"]]
    assert entries[0] == ("customer", "住所を変更したいです")
    assert entries[1][0] == "bot" and entries[1][1] == run["faq"]["message"]["text"]
    assert entries[2] == ("customer", ANGRY)
    assert entries[3] == ("bot", run["handoff_text"])
    assert entries[4:] == [("customer", "まだですか"), ("agent", "お待たせしました。住所の反映を確認します。")]
    assert run["ticket"]["entries"][0]["intent"] == "faq_change_address"
    # The details the widget sent with the session reach the agent's ticket (page URL without query/fragment).
    assert run["ticket"]["customer"] == {"name": "山田 太郎", "email": "taro@example.jp",
                                         "page_url": "https://www.example.jp/mypage"}
    assert mine[0]["customer"]["name"] == "山田 太郎"  # also in the queue list the console shows
    # The agent joins, the bot stays silent, the agent's reply arrives with their name.
    assert run["claim"].status_code == 200 and run["joined"]["state"]["agent_name"] == "佐藤"
    assert not [f for f in run["silent"] if f["type"] == "message" and f["message"]["sender"] == "bot"]
    assert run["agent_message"]["message"]["agent_name"] == "佐藤"
    # Resolve: back to the bot, which answers the next FAQ.
    assert run["resolved"].status_code == 200 and run["back"]["state"]["mode"] == "bot"
    assert run["after"]["message"]["faq_id"] == "hours"
