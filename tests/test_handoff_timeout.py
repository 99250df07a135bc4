"""Issue #12: the gateway gave up on Rasa (RASA_TIMEOUT_SECONDS) while a handoff was on its way.

Rasa's REST channel is a real HTTP stand-in on loopback that does what Rasa does with a turn:
it runs our action server's handoff (:func:`actions.handoff.hand_off`, on the bot server's
database) and answers like the REST channel, keeping the turn in its tracker only when it
finished (Rasa cancels a turn whose client went away and saves nothing, not even the pause).
The bot server's real :class:`~bot.server.rasa_client.RasaClient` gives up after 0.5 s. What
the stand-in does with a turn:

- ``late``: files the ticket at once but answers after the timeout (Rasa overloaded);
- ``slow database``: the action files the ticket only after the bot server gave up;
- ``cancelled``: the turn is cancelled before the action runs: no ticket.

Whatever happened, the customer who asked for a person either gets one ticket and is told
they wait for it, or is told that the request may not have gone through and can be sent again.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import pytest
from starlette.testclient import TestClient

from bot.handoff.outbox import Outbox
from bot.launcher import free_port
from bot.server import rasa_client
from bot.server.app import Services, create_app, stores_for
from bot.server.gateway import TEXT
from bot.server.rasa_client import RasaClient
from bot.server.tokens import ConversationTokens
from conftest import OFFLINE_NOW
from test_gateway_durability import wait_for
from test_server import SECRET, frames_until

TIMEOUT = 0.5  # the bot server's RASA_TIMEOUT_SECONDS in these tests
ASK = "人と話したい"


class RasaStandIn(ThreadingHTTPServer):
    """Rasa's REST channel and tracker API on loopback; every turn runs the real handoff action."""

    daemon_threads = True

    def __init__(self, outbox: Outbox) -> None:
        super().__init__(("127.0.0.1", free_port()), _Handler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self.services: Services | None = None  # the bot server whose database the action files tickets in
        self.outbox = outbox
        self.modes: list[str] = []  # how the next turns go (then "prompt")
        self.now: dt.datetime | None = None  # the action's clock (None: BOT_NOW, staffed)
        self.turns: list[str] = []
        self.trackers: dict[str, list[dict[str, Any]]] = {}  # the events of finished turns only
        self.lock = threading.Lock()

    def turn(self, conversation_id: str, text: str, metadata: dict[str, Any]) -> list[dict[str, Any]] | None:
        """One customer turn; what the REST channel answers (None: cut off, the client left)."""
        from rasa_sdk import Tracker
        from rasa_sdk.executor import CollectingDispatcher

        from actions.handoff import hand_off

        with self.lock:
            mode = self.modes.pop(0) if self.modes else "prompt"
            self.turns.append(mode)
            events = list(self.trackers.get(conversation_id, []))
        if mode == "cancelled":  # Rasa cancels the turn (client gone) before the action server is called
            time.sleep(TIMEOUT * 3)
            return None
        if mode == "slow database":  # the action waits for the database until after the client gave up
            time.sleep(TIMEOUT * 3)
        parse = {"text": text, "intent": {"name": "request_human", "confidence": 0.99},
                 "intent_ranking": [], "entities": [], "metadata": metadata, "message_id": uuid.uuid4().hex}
        user = {"event": "user", "text": text, "parse_data": parse, "message_id": parse["message_id"],
                "metadata": metadata}
        tracker = Tracker(conversation_id, {}, parse, [*events, user], False, None, {}, "action_listen")
        dispatcher = CollectingDispatcher()
        assert self.services is not None
        queue = self.services.stores.queue
        pause = hand_off(dispatcher, tracker, "human_request", queue, self.outbox, now=self.now,
                         reconnect=lambda: queue)
        if mode == "late":
            time.sleep(TIMEOUT * 3)  # Rasa is slow to answer: the client has gone, the turn is not saved
            return None
        if mode != "prompt":
            return None
        out: list[dict[str, Any]] = []
        for message in dispatcher.messages:
            out.append({"recipient_id": conversation_id, "text": message["text"], "buttons": message["buttons"]})
            out.append({"recipient_id": conversation_id, "custom": message["custom"]})
        with self.lock:
            self.trackers[conversation_id] = [*events, user, {"event": "action", "name": "action_handoff"},
                                              *({"event": "bot", "text": m["text"]} for m in dispatcher.messages),
                                              *pause]
        return out

    def tracker(self, conversation_id: str) -> dict[str, Any]:
        with self.lock:
            events = list(self.trackers.get(conversation_id, []))
        pauses = [e.get("event") for e in events if e.get("event") in ("pause", "resume")]
        return {"sender_id": conversation_id, "events": events, "paused": bool(pauses) and pauses[-1] == "pause"}

    def add_events(self, conversation_id: str, events: list[dict[str, Any]]) -> None:
        with self.lock:
            self.trackers.setdefault(conversation_id, []).extend(events)


class _Handler(BaseHTTPRequestHandler):
    server: RasaStandIn

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
        pass

    def _answer(self, body: Any) -> None:
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:  # the client gave up
            pass

    def _body(self) -> Any:
        return json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"null")

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self._body()
        if self.path.startswith("/webhooks/rest/webhook"):
            answer = self.server.turn(body["sender"], body["message"], body.get("metadata") or {})
            if answer is None:
                self.close_connection = True
                return
            self._answer(answer)
        else:  # /conversations/<id>/tracker/events
            self.server.add_events(self.path.split("/")[2], body)
            self._answer({})

    def do_GET(self) -> None:  # noqa: N802
        self._answer(self.server.tracker(self.path.split("?")[0].split("/")[2]))


@contextlib.contextmanager
def slow_rasa(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *modes: str
              ) -> Iterator[tuple[str, Services, RasaStandIn, Any]]:
    """A bot server whose Rasa is the stand-in (its next turns go as ``modes``) and a customer's open chat:
    the conversation, the services, the stand-in and the customer's WebSocket."""
    monkeypatch.setattr(rasa_client, "RASA_TIMEOUT_SECONDS", TIMEOUT)
    stores = stores_for(f"sqlite:///{tmp_path / 'bot.db'}")
    standin = RasaStandIn(Outbox(tmp_path / "outbox.jsonl"))
    services = Services(stores, RasaClient(standin.url, token="t" * 40), ConversationTokens(SECRET))
    standin.services = services
    standin.modes.extend(modes)
    thread = threading.Thread(target=standin.serve_forever, daemon=True)
    thread.start()
    try:
        with TestClient(create_app(services, SECRET, watch_interval=0.05)) as client:
            token = client.post("/api/chat/sessions", json={"customer": {"name": "山田"}}).json()["token"]
            with client.websocket_connect(f"/ws/chat?token={token}") as ws:
                assert ws.receive_json()["type"] == "history"
                yield str(services.tokens.conversation_of(token)), services, standin, ws
    finally:
        standin.shutdown()
        standin.server_close()
        stores.engine.dispose()


def system_texts(frames: list[dict[str, Any]]) -> list[str]:
    return [f["message"]["text"] for f in frames if f["type"] == "message" and f["message"]["sender"] == "system"]


def send(ws: Any, text: str, client_id: str) -> list[dict[str, Any]]:
    """Send as the customer; the frames up to and including the system line saying Rasa did not answer."""
    ws.send_json({"type": "message", "text": text, "client_id": client_id})
    return frames_until(ws, lambda f: bool(system_texts([f])))


def until_echo(ws: Any, text: str, client_id: str) -> list[dict[str, Any]]:
    """Send as the customer; every frame before the message's echo (what reached the chat meanwhile)."""
    ws.send_json({"type": "message", "text": text, "client_id": client_id})
    frames = frames_until(ws, lambda f: f["type"] == "message" and f["message"].get("client_id") == client_id)
    return frames[:-1]


@pytest.mark.parametrize("mode", ["late", "slow database"])
def test_a_handoff_filed_after_the_gateway_gave_up_tells_the_customer_they_wait(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    """The customer saw "the AI chat cannot answer" but the action filed the ticket: when the ticket
    arrives they are told a person takes over (benchmark: customers never told they waited)."""
    with slow_rasa(tmp_path, monkeypatch, mode) as (conversation_id, services, standin, ws):
        queue = services.stores.queue
        (said,) = system_texts(send(ws, ASK, "1"))
        assert said == TEXT["bot_slow"]
        ticket = wait_for(lambda: queue.latest_for(conversation_id))
        wait_for(lambda: queue.unannounced() == [])
        meanwhile = until_echo(ws, "まだですか", "2")  # the frames sent when the ticket arrived come first
        states = [f["state"] for f in meanwhile if f["type"] == "state"]
        assert states and states[-1]["mode"] == "waiting" and states[-1]["ticket_id"] == ticket.id, meanwhile
        assert system_texts(meanwhile) == [TEXT["handoff_after_timeout"]], meanwhile
        (only,) = queue.tickets("all")  # one ticket; the next message went into it, not to Rasa
        texts = [e.text for e in queue.get(only.id).entries]
        assert texts.count(ASK) == 1 and texts[-1] == "まだですか", texts
        assert standin.turns == [mode]
        wait_for(lambda: all(m.routed_at is not None for m in services.stores.chat_log.history(conversation_id)
                             if m.sender == "customer"))  # "まだですか" is marked just after its echo


def test_an_offline_handoff_filed_after_the_gateway_gave_up_offers_the_contact_form(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Outside staffed hours the ticket is an offline one (the bot keeps answering): the customer is told
    it was filed and the widget offers the contact form (state ``offline``)."""
    with slow_rasa(tmp_path, monkeypatch, "late") as (conversation_id, services, standin, ws):
        standin.now = dt.datetime.fromisoformat(OFFLINE_NOW)
        (said,) = system_texts(send(ws, ASK, "1"))
        assert said == TEXT["bot_slow"]
        (ticket,) = wait_for(lambda: services.stores.queue.tickets("all"))
        assert ticket.offline
        told = TEXT["handoff_after_timeout_offline"]
        wait_for(lambda: services.stores.chat_log.history(conversation_id)[-1].text == told)
        frames = frames_until(ws, lambda f: f["type"] == "state")
        assert system_texts(frames) == [told], frames
        state = frames[-1]["state"]
        assert state["offline"] is True and state["ticket_id"] == ticket.id, state


def test_a_handoff_cancelled_with_the_timeout_is_told_to_send_again_and_the_retry_files_one_ticket(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rasa cancelled the turn before the action ran: no ticket will come. The customer is told the
    request for a person may not have gone through and to send it again; the retry files one ticket."""
    with slow_rasa(tmp_path, monkeypatch, "cancelled") as (_, services, standin, ws):
        queue = services.stores.queue
        (said,) = system_texts(send(ws, ASK, "1"))
        assert said == TEXT["bot_slow"] and "担当者" in said and "もう一度" in said
        time.sleep(TIMEOUT * 4)  # the stand-in's turn is over: nothing was filed
        assert queue.tickets("all") == []
        ws.send_json({"type": "message", "text": ASK, "client_id": "2"})
        state = frames_until(ws, lambda f: f["type"] == "state")[-1]["state"]
        assert state["mode"] == "waiting" and state["ticket_id"] is not None
        (ticket,) = queue.tickets("all")
        assert standin.turns == ["cancelled", "prompt"]
        wait_for(lambda: queue.unannounced() == [])
        meanwhile = until_echo(ws, "まだですか", "3")
        assert system_texts(meanwhile) == [], meanwhile  # told once, by the handoff reply
        assert [t.id for t in queue.tickets("all")] == [ticket.id]

