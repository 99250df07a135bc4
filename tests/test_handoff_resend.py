"""Issue #12: a resend while the first handoff's packet still waits in the action server's outbox.

The bot server gave up on Rasa (RASA_TIMEOUT_SECONDS) while the ``hand_off`` action could not
reach the queue database: the packet waits in the outbox, the customer reads that the request may
not have gone through (``bot_slow``) and sends it again. The resend's packet has its own key (the
latest message's id), so before the fix both packets became tickets. Now a conversation has at
most one open ticket of a kind (staffed or offline): a later packet is folded into it.

The chats reuse the Rasa stand-in of tests/test_handoff_timeout.py (the real ``hand_off`` action);
the action server's way to the database is cut by making the queue's ``enqueue`` fail as an
unreachable database does. The queue tests run on SQLite and PostgreSQL (127.0.0.1:5432).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from sqlalchemy.exc import OperationalError

from bot.handoff.packet import HandoffPacket, Turn
from bot.server.gateway import TEXT
from bot.settings import Limits
from bot.store.chat_log import ChatLog
from bot.store.database import make_engine
from bot.store.queue import Queue
from conftest import temporary_database
from test_gateway_durability import wait_for
from test_handoff_timeout import ASK, send, slow_rasa, system_texts, until_echo
from test_server import frames_until

HANDOFF_TEXT = "担当者におつなぎします"  # part of the staffed handoff reply


class ActionDatabase:
    """The action server's way to the queue database: ``enqueue`` fails as an unreachable database does
    while ``down`` (the bot server's own reads go on)."""

    def __init__(self, queue: Queue, monkeypatch: pytest.MonkeyPatch) -> None:
        self.down = True
        enqueue = queue.enqueue

        def cut_or_through(packet: Any) -> Any:
            if self.down:
                raise OperationalError("INSERT INTO tickets", {}, ConnectionRefusedError("database unreachable"))
            return enqueue(packet)

        monkeypatch.setattr(queue, "enqueue", cut_or_through)


def handoff_replies(frames: list[dict[str, Any]]) -> list[str]:
    return [f["message"]["text"] for f in frames if f["type"] == "message" and f["message"]["sender"] == "bot"
            and HANDOFF_TEXT in f["message"]["text"]]


def test_a_resend_reaching_the_database_while_the_first_packet_is_in_the_outbox_files_one_ticket(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The database is back when the resend's action runs: it delivers the first packet (the outbox
    goes first), then its own, which joins that ticket. The customer reads the handoff reply once
    and waits for the one ticket; their next message goes into it."""
    with slow_rasa(tmp_path, monkeypatch, "late") as (conversation_id, services, standin, ws):
        queue = services.stores.queue
        database = ActionDatabase(queue, monkeypatch)
        assert system_texts(send(ws, ASK, "1")) == [TEXT["bot_slow"]]
        wait_for(lambda: len(standin.outbox.pending()) == 1)  # the first handoff's packet waits

        turn = standin.turn

        def database_back_then(*args: Any) -> Any:
            database.down = False
            return turn(*args)

        monkeypatch.setattr(standin, "turn", database_back_then)
        ws.send_json({"type": "message", "text": ASK, "client_id": "2"})
        frames = frames_until(ws, lambda f: f["type"] == "state")
        assert len(handoff_replies(frames)) == 1, frames
        state = frames[-1]["state"]
        assert state["mode"] == "waiting" and state["ticket_id"] is not None, state
        wait_for(lambda: standin.outbox.pending() == [] and queue.unannounced() == [])
        assert [t.id for t in queue.tickets("all")] == [state["ticket_id"]]  # one ticket for one request

        meanwhile = until_echo(ws, "まだですか", "3")
        assert [f for f in meanwhile if f["type"] == "error"] == [], meanwhile
        assert system_texts(meanwhile) == [], meanwhile  # told once, by the handoff reply
        ticket = queue.get(state["ticket_id"])
        assert ticket.status == "waiting" and [e.text for e in ticket.entries][-1] == "まだですか"
        assert ASK in [e.text for e in ticket.entries if e.sender == "customer"]
        assert standin.turns == ["late", "prompt"]


def test_a_resend_whose_packet_also_waits_in_the_outbox_joins_the_first_ones_ticket(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The database is still away for the resend: both packets wait, the customer waits for the
    second (a pending mark with its key). When the outbox drains, the first packet opens the ticket
    and the second joins it; the ticket is the one the customer waits for (not cancelled as another
    handoff's), with what they wrote meanwhile."""
    with slow_rasa(tmp_path, monkeypatch, "late") as (conversation_id, services, standin, ws):
        queue = services.stores.queue
        database = ActionDatabase(queue, monkeypatch)
        assert system_texts(send(ws, ASK, "1")) == [TEXT["bot_slow"]]
        ws.send_json({"type": "message", "text": ASK, "client_id": "2"})
        frames = frames_until(ws, lambda f: f["type"] == "state")
        assert frames[-1]["state"]["mode"] == "waiting" and frames[-1]["state"]["ticket_id"] is None, frames
        assert len(standin.outbox.pending()) == 2
        until_echo(ws, "まだですか", "3")  # kept for the ticket

        # The watcher looks only once the outbox has drained: both packets delivered, in order.
        unannounced = queue.unannounced
        monkeypatch.setattr(queue, "unannounced", lambda limit=500: [])
        database.down = False
        wait_for(lambda: standin.outbox.pending() == [])
        monkeypatch.setattr(queue, "unannounced", unannounced)

        frames = frames_until(ws, lambda f: f["type"] == "state" and f["state"]["ticket_id"] is not None, 40)
        state = frames[-1]["state"]
        (ticket,) = queue.tickets("all")
        assert state["mode"] == "waiting" and state["ticket_id"] == ticket.id, state
        assert ticket.status == "waiting" and ticket.resolution is None
        assert services.stores.pending.get(conversation_id) is None
        assert "まだですか" in [e.text for e in queue.get(ticket.id).entries]
        assert [f for f in frames if f["type"] == "error"] == [], frames


# --- the queue: at most one open ticket per conversation (and kind) -----------------------------

@pytest.fixture(params=["sqlite", "postgresql"])
def queue(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Queue]:
    with temporary_database(request.param, tmp_path) as url:
        engine = make_engine(url)
        try:
            yield Queue(engine, Limits())
        finally:
            engine.dispose()


HISTORY = [Turn("customer", "住所を変更したい", "faq/change-address", 0.93, 1_700_000_000.0),
           Turn("bot", "住所はマイページから変更できます。", at=1_700_000_001.0)]


def request_packet(conversation_id: str, message: str, at: float, offline: bool = False,
                   reasons: list[str] | None = None) -> HandoffPacket:
    """A handoff asked for by ``message`` at ``at``, after the conversation's common history."""
    return HandoffPacket(f"{conversation_id}:m:{message}", conversation_id, reasons or ["human_request"],
                         [*HISTORY, Turn("customer", ASK, "request_human", 0.99, at)], offline=offline)


def at_once(*calls: Callable[[], Any]) -> list[Any]:
    """Run ``calls`` in threads released together (two action servers handing off at once)."""
    start = threading.Barrier(len(calls))

    def run(call: Callable[[], Any]) -> Any:
        start.wait()
        return call()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


def test_two_concurrent_handoffs_of_one_conversation_make_one_ticket(queue: Queue) -> None:
    """Two replicas of the action server file handoffs of one conversation at the same moment:
    one ticket, holding the common history once and both requests; a retry of either packet finds
    it and adds nothing."""
    for round_ in range(6):
        conversation_id = f"c-{round_}"
        first = request_packet(conversation_id, "first", 1_700_000_010.0)
        second = request_packet(conversation_id, "second", 1_700_000_020.0, reasons=["anger"])
        results = at_once(lambda: queue.enqueue(first), lambda: queue.enqueue(second))
        assert len({ticket.id for ticket, _ in results}) == 1, results
        assert sorted(created for _, created in results) == [False, True]
        (ticket,) = queue.tickets("all")[:1]
        loaded = queue.get(ticket.id)
        assert [e.text for e in loaded.entries] == [HISTORY[0].text, HISTORY[1].text, ASK, ASK]
        assert [e.position for e in loaded.entries] == [0, 1, 2, 3] and loaded.entry_count == 4
        assert set(loaded.reasons) == {"human_request", "anger"} and loaded.priority == second.priority
        for retry in (first, second):
            again, created = queue.enqueue(retry)
            assert (again.id, created, queue.get(ticket.id).entry_count) == (ticket.id, False, 4)
    assert len(queue.tickets("all")) == 6


def test_a_later_handoff_opens_a_new_ticket_once_the_first_is_resolved_and_kinds_stay_apart(queue: Queue) -> None:
    """Only an open ticket takes a later packet: after the agent resolved it, the next request opens
    a new one. An offline ticket (out of hours) and a staffed one are not folded into each other."""
    offline, _ = queue.enqueue(request_packet("c", "night", 1_700_000_010.0, offline=True))
    staffed, created = queue.enqueue(request_packet("c", "morning", 1_700_000_020.0))
    assert created and staffed.id != offline.id
    joined, created = queue.enqueue(request_packet("c", "again", 1_700_000_030.0))
    assert (joined.id, created) == (staffed.id, False)
    queue.resolve(staffed.id)
    later, created = queue.enqueue(request_packet("c", "later", 1_700_000_040.0))
    assert created and later.id not in (staffed.id, offline.id)
    assert queue.enqueue(request_packet("c", "again", 1_700_000_030.0))[0].id == staffed.id  # its retry


def test_a_packet_joining_an_open_ticket_is_not_refused_by_the_open_ticket_limit(queue: Queue) -> None:
    """The limit counts open tickets; a packet that joins the conversation's open ticket opens none,
    so it is never turned into a ``limited`` ticket (the customer is told they wait for a person)."""
    limited = Queue(queue.engine, Limits(open_tickets_per_customer=1))
    ChatLog(queue.engine).start_conversation("c", {}, address_key="one-address")
    first, _ = limited.enqueue(request_packet("c", "first", 1_700_000_010.0))
    joined, created = limited.enqueue(request_packet("c", "second", 1_700_000_020.0))
    assert (joined.id, created, joined.status, joined.resolution) == (first.id, False, "waiting", None)


def test_a_ticket_met_as_another_handoffs_is_cancelled_unless_that_handoff_joined_it(queue: Queue) -> None:
    """The bot server cancels a ticket that arrives while the customer waits for another handoff
    (an earlier one, cancelled while its packet was in the outbox). Decided under the conversation's
    lock: if the awaited handoff's packet joined the ticket first, it stays (it is that handoff's);
    otherwise it is cancelled and the awaited packet, arriving after, opens its own."""
    first, _ = queue.enqueue(request_packet("c", "first", 1_700_000_010.0))
    awaited = request_packet("c", "second", 1_700_000_020.0)
    queue.enqueue(awaited)
    assert queue.holds(first.id, awaited.idempotency_key)
    assert queue.cancel_unless_joined(first.id, awaited.idempotency_key) is None
    assert queue.get(first.id).status == "waiting"

    stray, _ = queue.enqueue(request_packet("d", "stray", 1_700_000_010.0))
    later = request_packet("d", "later", 1_700_000_020.0)
    cancelled = queue.cancel_unless_joined(stray.id, later.idempotency_key)
    assert cancelled is not None and (cancelled.status, cancelled.resolution) == ("resolved", "cancelled")
    own, created = queue.enqueue(later)
    assert created and own.id != stray.id and queue.holds(own.id, later.idempotency_key)
