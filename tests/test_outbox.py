"""Handoffs survive an unreachable database: outbox, restart, delivery exactly once."""

from pathlib import Path

from rasa_sdk.executor import CollectingDispatcher

from actions.handoff import ActionHandoff
from bot.handoff.outbox import Outbox, packet_from_json, packet_to_json
from bot.store.queue import HandoffPacket, Queue, Turn, make_engine

DOWN = "postgresql://postgres@127.0.0.1:1/nothing?connect_timeout=1"  # nothing listens on port 1


def down_queue() -> Queue:
    from sqlalchemy import create_engine

    return Queue(create_engine(DOWN, future=True))  # no create_all: it would fail right here


def test_packet_round_trips_through_json() -> None:
    packet = HandoffPacket("c:1", "c", ["anger"], [Turn("customer", "ふざけるな", "complaint", 0.9, 1.0)], "要約")
    assert packet_from_json(packet_to_json(packet)) == packet


def test_handoff_while_database_is_down_is_delivered_later_exactly_once(make_tracker, tmp_path: Path) -> None:
    outbox_file = tmp_path / "outbox.jsonl"
    tracker = make_tracker("ふざけるな", "complaint", handoff_reason="anger")

    dispatcher = CollectingDispatcher()
    ActionHandoff(down_queue(), Outbox(outbox_file)).run(dispatcher, tracker, {})
    (message,) = dispatcher.messages
    assert message["custom"]["route"] == "handoff" and message["custom"]["ticket_id"] is None
    assert "申し訳ございません" in message["text"]  # the customer still gets the right message

    restarted = Outbox(outbox_file)  # a new process reads the same file
    assert len(restarted.pending()) == 1

    up = Queue(make_engine(f"sqlite:///{tmp_path / 'q.db'}"))
    other = make_tracker("人と話したい", "request_human")
    other.sender_id = "someone-else"
    dispatcher = CollectingDispatcher()
    ActionHandoff(up, restarted).run(dispatcher, other, {})  # next handoff drains the outbox first
    assert restarted.pending() == []
    tickets = up.open_tickets()
    assert sorted(t.conversation_id for t in tickets) == ["someone-else", "test-sender"]
    assert restarted.drain(up) == 0 and len(up.open_tickets()) == 2  # nothing delivered twice


def test_drain_stops_at_first_failure_and_keeps_the_rest(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.jsonl")
    for i in range(3):
        outbox.put(HandoffPacket(f"c{i}:1", f"c{i}", ["complaint"], []))
    assert outbox.drain(down_queue()) == 0
    assert len(outbox.pending()) == 3
    up = Queue(make_engine(f"sqlite:///{tmp_path / 'q.db'}"))
    assert outbox.drain(up) == 3
    assert [t.conversation_id for t in up.open_tickets()] == ["c0", "c1", "c2"]


def test_database_unreachable_at_first_connect_still_answers(make_tracker, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import actions.handoff as handoff_module
    from sqlalchemy.exc import OperationalError

    def refuse():  # type: ignore[no-untyped-def]
        raise OperationalError("connect", {}, Exception("connection refused"))

    monkeypatch.setattr(handoff_module, "default_queue", refuse)
    outbox = Outbox(tmp_path / "outbox.jsonl")
    dispatcher = CollectingDispatcher()
    ActionHandoff(None, outbox).run(dispatcher, make_tracker("人と話したい", "request_human"), {})
    (message,) = dispatcher.messages
    assert message["custom"]["route"] == "handoff" and message["custom"]["ticket_id"] is None
    assert len(outbox.pending()) == 1


def test_background_delivery_empties_the_outbox_once_the_database_is_back(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import time

    from bot.handoff.outbox import Outbox
    from bot.store.queue import HandoffPacket, Queue, Turn, make_engine

    outbox = Outbox(tmp_path / "outbox.jsonl")
    for n in range(3):
        outbox.put(HandoffPacket(f"c{n}:1", f"c{n}", ["anger"], [Turn("customer", "ふざけるな")]))
    queue = Queue(make_engine(f"sqlite:///{tmp_path / 'q.db'}"))
    up = {"at": time.monotonic() + 0.3}
    outbox.deliver_in_background(lambda: queue if time.monotonic() > up["at"] else None, retry_seconds=0.05)
    deadline = time.monotonic() + 5
    while outbox.pending() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert outbox.pending() == [] and sorted(t.conversation_id for t in queue.open_tickets()) == ["c0", "c1", "c2"]
    outbox.put(HandoffPacket("c9:1", "c9", ["anger"], [Turn("customer", "最悪")]))  # after the thread ended
    outbox.deliver_in_background(lambda: queue, retry_seconds=0.05)
    deadline = time.monotonic() + 5
    while outbox.pending() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert outbox.pending() == []


def test_a_torn_line_is_set_aside_and_never_blocks_delivery(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from bot.handoff.outbox import Outbox
    from bot.store.queue import HandoffPacket, Queue, Turn, make_engine

    outbox = Outbox(tmp_path / "outbox.jsonl")
    outbox.put(HandoffPacket("c1:1", "c1", ["anger"], [Turn("customer", "ふざけるな")]))
    with (tmp_path / "outbox.jsonl").open("a", encoding="utf-8") as handle:
        handle.write('{"idempotency_key": "c2:1", "conversation_id": "c2", "reas')  # crash mid-write
    queue = Queue(make_engine(f"sqlite:///{tmp_path / 'q.db'}"))
    assert outbox.drain(queue) == 1
    assert [t.conversation_id for t in queue.open_tickets()] == ["c1"]
    assert "c2:1" in (tmp_path / "outbox.bad").read_text(encoding="utf-8")
