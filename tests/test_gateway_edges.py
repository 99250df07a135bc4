"""Issue #17's gateway edges: a customer message while the ticket is being resolved, a cancel
while the handoff is pending, and the bot server's own database going down.

Rasa is the scripted stand-in of tests/test_server.py, extended to pause a conversation on a
handoff (what ``action_handoff``'s ConversationPaused does) and to hold a resume until the test
lets it go. The database outage is a real one: the bot server's PostgreSQL database refuses new
connections (``ALTER DATABASE … ALLOW_CONNECTIONS false``) and every open connection to it is
terminated (``pg_terminate_backend``); it is let back with ``ALLOW_CONNECTIONS true``.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterator

import anyio
import pytest
from sqlalchemy import create_engine, text
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from bot import wording
from bot.handoff.packet import HandoffPacket, Turn
from bot.server.app import Services, create_app, stores_for
from bot.server.gateway import TEXT
from bot.server.rasa_client import BotMessage
from bot.server.tokens import ConversationTokens
from conftest import PG_ADMIN_URL, temporary_database
from test_gateway_durability import wait_for
from test_server import PASSWORD, SECRET, ScriptedRasa, frames_until, is_bot_message, login, new_conversation

HELD = "保留になるほど怒ってる、ふざけるな"  # the stand-in's handoff whose packet waits in the outbox
QUESTION = "住所の変更方法も教えて"  # the stand-in answers it with the FAQ change-address


class GatedRasa(ScriptedRasa):
    """The scripted Rasa, paused by a staffed handoff, with a log of sends and resumes in order.

    ``hold_resume`` (cleared) keeps a resume waiting; ``resuming`` is set when one starts;
    ``on_send`` is called with each text before it is answered.
    """

    def __init__(self, services_ref: dict[str, Any]) -> None:
        super().__init__(services_ref)
        self.log: list[tuple[str, str]] = []
        self.hold_resume = threading.Event()
        self.hold_resume.set()
        self.resuming = threading.Event()
        self.on_send: Callable[[str], None] | None = None

    async def send(self, conversation_id: str, text: str, metadata: dict[str, Any]) -> list[BotMessage]:
        self.log.append(("send", text))
        if self.on_send is not None:
            self.on_send(text)
        replies = await super().send(conversation_id, text, metadata)
        if any(r.custom.get("route") == "handoff" and r.custom.get("staffed") is not False for r in replies):
            self.paused.add(conversation_id)
        return replies

    async def resume(self, conversation_id: str) -> None:
        self.resuming.set()
        await anyio.to_thread.run_sync(self.hold_resume.wait)
        self.log.append(("resume", conversation_id))
        await super().resume(conversation_id)


def build_services(url: str) -> tuple[Services, GatedRasa]:
    ref: dict[str, Any] = {}
    rasa = GatedRasa(ref)
    services = Services(stores_for(url), rasa, ConversationTokens(SECRET))  # type: ignore[arg-type]
    ref["services"] = services
    services.stores.agents.add("sato", "佐藤", PASSWORD)
    return services, rasa


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[tuple[TestClient, GatedRasa, Services]]:
    services, rasa = build_services(f"sqlite:///{tmp_path / 'bot.db'}")
    with TestClient(create_app(services, SECRET, watch_interval=0.05)) as client:
        yield client, rasa, services
    services.stores.engine.dispose()


def chat_texts(frames: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(f["message"]["sender"], f["message"]["text"]) for f in frames if f["type"] == "message"]


def claimed_ticket(client: TestClient, ws: Any, headers: dict[str, str]) -> int:
    """Hand the open chat to a person and let the agent claim it; the ticket id."""
    ws.send_json({"type": "message", "text": "ふざけるな", "client_id": "angry"})
    ticket_id = int(frames_until(ws, lambda f: f["type"] == "state")[-1]["state"]["ticket_id"])
    assert client.post(f"/api/tickets/{ticket_id}/claim", headers=headers).status_code == 200
    frames_until(ws, lambda f: f["type"] == "state" and f["state"]["mode"] == "agent")
    return ticket_id


# --- a customer message while the ticket is being resolved ------------------------------------

def test_a_message_sent_while_the_agent_resolves_waits_and_is_answered_by_the_resumed_bot(server) -> None:  # type: ignore[no-untyped-def]
    """The agent's resolve holds the conversation: the customer's message goes neither into the
    closed ticket nor to a still-paused Rasa; it is answered by the bot after the closing line."""
    client, rasa, services = server
    headers = {"X-CSRF-Token": login(client)}
    token = new_conversation(client)
    conversation_id = services.tokens.conversation_of(token)
    with client.websocket_connect(f"/ws/chat?token={token}") as ws:
        ws.receive_json()
        ticket_id = claimed_ticket(client, ws, headers)

        rasa.hold_resume.clear()
        with ThreadPoolExecutor(1) as pool:
            resolving = pool.submit(client.post, f"/api/tickets/{ticket_id}/resolve", headers=headers)
            assert rasa.resuming.wait(10)  # the ticket is resolved in the database, Rasa not yet resumed
            ws.send_json({"type": "message", "text": QUESTION, "client_id": "late"})
            # The message waits for the conversation (an asyncio.Lock's waiters: the one way to see
            # that it has arrived and is held, not merely not handled yet).
            try:
                wait_for(lambda: getattr(services.gateway._locks.get(conversation_id), "_waiters", None))
            finally:
                rasa.hold_resume.set()
            assert resolving.result(timeout=10).status_code == 200
        frames = frames_until(ws, lambda f: is_bot_message(f) and f["message"]["sender"] == "bot")
    assert chat_texts(frames) == [("system", TEXT["resolved"]), ("customer", QUESTION),
                                  ("bot", "住所はマイページから変更できます。")]
    assert rasa.log[-2:] == [("resume", conversation_id), ("send", QUESTION)]  # never sent to a paused bot
    entries = services.stores.queue.get(ticket_id).entries
    assert QUESTION not in [e.text for e in entries]


def test_a_message_that_meets_a_ticket_resolved_by_another_server_goes_to_the_bot(server, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Another bot server resolves the ticket between this server reading it and adding the
    message (no shared lock): the message is answered by the bot, not refused or lost."""
    client, rasa, services = server
    headers = {"X-CSRF-Token": login(client)}
    token = new_conversation(client)
    conversation_id = services.tokens.conversation_of(token)
    queue = services.stores.queue
    add_entry = queue.add_entry

    def resolved_by_the_other_server_first(ticket_id: int, sender: str, text_: str, *args: Any) -> Any:
        if sender == "customer" and text_ == QUESTION:
            queue.resolve(ticket_id, "resolved", "sato")  # server A commits; it resumes Rasa later
        return add_entry(ticket_id, sender, text_, *args)

    with client.websocket_connect(f"/ws/chat?token={token}") as ws:
        ws.receive_json()
        ticket_id = claimed_ticket(client, ws, headers)
        monkeypatch.setattr(queue, "add_entry", resolved_by_the_other_server_first)
        ws.send_json({"type": "message", "text": QUESTION, "client_id": "late"})
        frames = frames_until(ws, lambda f: f["type"] == "error" or (is_bot_message(f)
                                                                    and f["message"]["sender"] == "bot"))
    assert chat_texts(frames) == [("customer", QUESTION), ("bot", "住所はマイページから変更できます。")]
    # Rasa was still paused (server A had not resumed it): this server resumed it and asked again.
    assert rasa.log[-3:] == [("send", QUESTION), ("resume", conversation_id), ("send", QUESTION)]
    assert QUESTION not in [e.text for e in queue.get(ticket_id).entries]
    (message,) = [m for m in services.stores.chat_log.history(conversation_id) if m.text == QUESTION]
    assert message.routed_at is not None


# --- a cancel while the handoff is pending ------------------------------------------------------

def test_a_cancel_while_the_handoff_is_pending_returns_to_the_bot_and_cancels_the_ticket_on_arrival(server) -> None:  # type: ignore[no-untyped-def]
    """The packet waits in the action server's outbox; the customer stops waiting. The next
    message is answered by the bot (not kept for the ticket), and the ticket, when it arrives,
    is cancelled at once: the customer's chat stays with the bot."""
    client, rasa, services = server
    token = new_conversation(client)
    conversation_id = services.tokens.conversation_of(token)
    agents = services.hub.subscribe_agents()
    with client.websocket_connect(f"/ws/chat?token={token}") as ws:
        ws.receive_json()
        ws.send_json({"type": "message", "text": HELD, "client_id": "1"})
        state = frames_until(ws, lambda f: f["type"] == "state")[-1]["state"]
        assert state["mode"] == "waiting" and state["ticket_id"] is None  # pending: no ticket yet
        ws.send_json({"type": "cancel_handoff"})
        frames = frames_until(ws, lambda f: f["type"] == "state")
        assert ("system", TEXT["cancelled"]) in chat_texts(frames) and frames[-1]["state"]["mode"] == "bot"
        assert rasa.log[-1] == ("resume", conversation_id)

        ws.send_json({"type": "message", "text": QUESTION, "client_id": "2"})
        frames = frames_until(ws, lambda f: is_bot_message(f) and f["message"]["sender"] in ("bot", "system"))
        assert chat_texts(frames)[-1] == ("bot", "住所はマイページから変更できます。")  # not 「準備しています」

        # The outbox delivers the packet; the watcher announces it, cancelled.
        services.stores.queue.enqueue(HandoffPacket(f"{conversation_id}:1", conversation_id, ["anger"],
                                                    [Turn("customer", HELD)]))
        wait_for(lambda: services.stores.queue.unannounced() == [])
        ticket = services.stores.queue.latest_for(conversation_id)
        assert ticket.status == "resolved" and ticket.resolution == "cancelled"
        history = client.get("/api/chat/history", headers={"Authorization": f"Bearer {token}"}).json()
        assert history["state"]["mode"] == "bot"
        ws.send_json({"type": "message", "text": "ありがとう、住所", "client_id": "3"})
        frames = frames_until(ws, lambda f: is_bot_message(f) and f["message"]["sender"] == "bot")
        assert all(f["state"]["mode"] == "bot" for f in frames if f["type"] == "state")
    assert [e.text for e in services.stores.queue.get(ticket.id).entries] == [HELD]  # nothing said after the cancel
    created = wait_for(lambda: agents.get_nowait() if not agents.empty() else None)
    assert created["change"] == "created" and created["ticket"]["status"] == "resolved"
    assert services.stores.pending.get(conversation_id) is None


class OutboxRasa(GatedRasa):
    """Every held handoff's reply carries its packet's key, as ``action_handoff`` sends it."""

    def __init__(self, services_ref: dict[str, Any]) -> None:
        super().__init__(services_ref)
        self.held_keys: list[str] = []

    async def send(self, conversation_id: str, text: str, metadata: dict[str, Any]) -> list[BotMessage]:
        replies = await super().send(conversation_id, text, metadata)
        for reply in replies:
            if reply.custom.get("route") == "handoff" and reply.custom.get("ticket_id") is None:
                self.held_keys.append(f"{conversation_id}:m:{len(self.held_keys) + 1}")
                reply.custom["handoff_key"] = self.held_keys[-1]
        return replies


def test_a_cancelled_handoffs_packet_arriving_after_a_new_request_is_cancelled_and_only_the_new_one_opens(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both packets wait in the action server's outbox: the customer cancelled the first handoff
    and asked for a person again. The first packet to arrive (the cancelled one) is cancelled,
    whether a customer message or the ticket watcher meets it first; the second opens the one
    ticket, with what the customer wrote while waiting for it."""
    ref: dict[str, Any] = {}
    rasa = OutboxRasa(ref)
    services = Services(stores_for(f"sqlite:///{tmp_path / 'bot.db'}"), rasa, ConversationTokens(SECRET))  # type: ignore[arg-type]
    ref["services"] = services
    queue = services.stores.queue

    def deliver(key: str) -> Any:  # the outbox, once the action server reaches the database again
        ticket, created = queue.enqueue(HandoffPacket(key, conversation_id, ["anger"], [Turn("customer", HELD)]))
        assert created
        return ticket

    with TestClient(create_app(services, SECRET, watch_interval=0.05)) as client:
        token = new_conversation(client)
        conversation_id = services.tokens.conversation_of(token)
        with client.websocket_connect(f"/ws/chat?token={token}") as ws:
            ws.receive_json()
            ws.send_json({"type": "message", "text": HELD, "client_id": "1"})
            assert frames_until(ws, lambda f: f["type"] == "state")[-1]["state"]["mode"] == "waiting"
            ws.send_json({"type": "cancel_handoff"})
            assert frames_until(ws, lambda f: f["type"] == "state")[-1]["state"]["mode"] == "bot"
            ws.send_json({"type": "message", "text": HELD, "client_id": "2"})  # a person again, please
            assert frames_until(ws, lambda f: f["type"] == "state")[-1]["state"]["mode"] == "waiting"
            first_key, second_key = rasa.held_keys

            # The cancelled handoff's packet arrives first; a customer message meets its ticket
            # before the watcher does (the watcher sees nothing for now).
            unannounced = queue.unannounced
            monkeypatch.setattr(queue, "unannounced", lambda: [])
            first = deliver(first_key)
            ws.send_json({"type": "message", "text": "まだですか", "client_id": "3"})
            chat_log = services.stores.chat_log
            wait_for(lambda: [m for m in chat_log.history(conversation_id) if m.client_id == "3" and m.routed_at])
            assert queue.get(first.id).resolution == "cancelled"
            assert chat_log.history(conversation_id)[-1].text == TEXT["pending"]  # kept for the new handoff
            monkeypatch.setattr(queue, "unannounced", unannounced)
            wait_for(lambda: queue.unannounced() == [])
            assert services.stores.pending.waiting(conversation_id) is not None  # still waiting for ours

            # The same with the watcher first: a second cancelled packet (another outbox) is cancelled too.
            stray = deliver(f"{conversation_id}:m:stray")
            wait_for(lambda: queue.unannounced() == [])
            assert queue.get(stray.id).resolution == "cancelled"
            assert services.stores.pending.waiting(conversation_id) is not None

            # The new handoff's packet opens the ticket the customer waits for.
            second = deliver(second_key)
            state = frames_until(ws, lambda f: f["type"] == "state" and f["state"]["ticket_id"] is not None, 60)
            assert state[-1]["state"]["mode"] == "waiting" and state[-1]["state"]["ticket_id"] == second.id
    assert queue.open_ticket_for(conversation_id).id == second.id  # type: ignore[union-attr]
    assert [t.id for t in (queue.get(first.id), queue.get(stray.id)) if t.status != "resolved"] == []
    assert [e.text for e in queue.get(first.id).entries] == [HELD]  # nothing said after the cancel
    texts = [e.text for e in queue.get(second.id).entries]
    assert texts[0] == HELD and "まだですか" in texts  # what the customer wrote while waiting
    assert services.stores.pending.get(conversation_id) is None
    services.stores.engine.dispose()


# --- the bot server's own database going down ---------------------------------------------------

class DatabaseCut:
    """Cuts the bot server off its PostgreSQL database (``with``), then lets it back.

    New connections are refused (``ALLOW_CONNECTIONS false`` applies to every role, the
    superuser too) and every open connection to the database is terminated, so the
    server's pooled connections die as in a network loss or a database restart.
    """

    def __init__(self, url: str) -> None:
        self.name = url.rsplit("/", 1)[1]
        self._admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")

    def cut(self) -> None:
        with self._admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS false'))
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"),
                         {"name": self.name})

    def restore(self) -> None:
        with self._admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS true'))

    def __enter__(self) -> "DatabaseCut":
        self.cut()
        return self

    def __exit__(self, *exc: object) -> None:
        self.restore()

    def close(self) -> None:
        self.restore()
        self._admin.dispose()


@pytest.fixture()
def pg_server(tmp_path: Path) -> Iterator[tuple[TestClient, GatedRasa, Services, DatabaseCut]]:
    with temporary_database("postgresql", tmp_path) as url:
        services, rasa = build_services(url)
        database = DatabaseCut(url)
        try:
            with TestClient(create_app(services, SECRET, watch_interval=0.05)) as client:
                yield client, rasa, services, database
        finally:
            database.close()
            services.stores.engine.dispose()


def unavailable_frame() -> dict[str, Any]:
    return {"type": "error", "code": "unavailable",
            "message": wording.CHAT_ERRORS["unavailable"].format(contact=wording.fallback_contact())}


def closed_with(ws: Any) -> int:
    with pytest.raises(WebSocketDisconnect) as closed:
        for _ in range(10):
            ws.receive_json()
    return int(closed.value.code)


def test_the_servers_database_going_down_is_said_in_japanese_loses_nothing_and_recovers(pg_server) -> None:  # type: ignore[no-untyped-def]
    client, rasa, services, database = pg_server
    agent = {"X-CSRF-Token": login(client)}
    token = new_conversation(client)
    bearer = {"Authorization": f"Bearer {token}"}
    conversation_id = services.tokens.conversation_of(token)
    customer_503 = wording.CHAT_ERRORS["unavailable"].format(contact=wording.fallback_contact())
    with client.websocket_connect(f"/ws/chat?token={token}") as ws:
        ws.receive_json()
        with database:
            # A message on an open socket: a Japanese error without the message's id (the widget
            # keeps it unconfirmed), then the socket closes with 1013 so the widget reconnects
            # with back-off and sends it again once it gets a history.
            ws.send_json({"type": "message", "text": QUESTION, "client_id": "during"})
            assert frames_until(ws, lambda f: f["type"] == "error")[-1] == unavailable_frame()
            assert closed_with(ws) == 1013
    with database:
        with client.websocket_connect(f"/ws/chat?token={token}") as ws:  # reconnecting meanwhile
            assert ws.receive_json() == unavailable_frame()
            assert closed_with(ws) == 1013
        for response in (client.post("/api/chat/sessions", json={}), client.get("/api/chat/history", headers=bearer)):
            assert response.status_code == 503 and response.json() == {"error": customer_503, "code": "unavailable"}
            assert int(response.headers["Retry-After"]) > 0
        for response in (client.get("/api/tickets"), client.post("/api/tickets/1/claim", headers=agent)):
            assert response.status_code == 503
            assert response.json() == {"error": wording.AGENT_UNAVAILABLE, "code": "unavailable"}

    # Back: the same socket frame (the widget's resend) is answered once.
    with client.websocket_connect(f"/ws/chat?token={token}") as ws:
        history = ws.receive_json()
        assert [m["text"] for m in history["messages"]] == []  # nothing half-stored
        ws.send_json({"type": "message", "text": QUESTION, "client_id": "during"})
        assert frames_until(ws, is_bot_message)[-1]["message"]["faq_id"] == "change-address"

        # Cut while the bot prepares its answer: the message is stored (and shown), the answer
        # cannot be. On the next connection the server routes the unanswered message itself
        # (the widget saw it in the history and will not send it again).
        rasa.on_send = lambda said: database.cut() if said == "住所を変えたい" else None
        ws.send_json({"type": "message", "text": "住所を変えたい", "client_id": "midway"})
        assert frames_until(ws, lambda f: f["type"] == "error")[-1] == unavailable_frame()
        assert closed_with(ws) == 1013
    rasa.on_send = None
    database.restore()
    with client.websocket_connect(f"/ws/chat?token={token}") as ws:
        history = ws.receive_json()
        assert [(m["sender"], m["text"]) for m in history["messages"]][-1] == ("customer", "住所を変えたい")
        wait_for(lambda: services.stores.chat_log.history(conversation_id, 1)[0].sender == "bot")
        answer = frames_until(ws, lambda f: is_bot_message(f))[-1]["message"]
        assert answer["sender"] == "bot" and answer["faq_id"] == "change-address"
    texts = [(m.sender, m.text) for m in services.stores.chat_log.history(conversation_id)]
    assert texts == [("customer", QUESTION), ("bot", "住所はマイページから変更できます。"),
                     ("customer", "住所を変えたい"), ("bot", "住所はマイページから変更できます。")]

    # The console and the ticket watcher are back too: a new handoff is announced.
    assert client.get("/api/tickets", headers=agent).status_code == 200
    with client.websocket_connect(f"/ws/chat?token={token}") as ws:
        ws.receive_json()
        ws.send_json({"type": "message", "text": "ふざけるな", "client_id": "angry"})
        frames_until(ws, lambda f: f["type"] == "state")
    wait_for(lambda: services.stores.queue.unannounced() == [] and services.stores.queue.open_tickets())
