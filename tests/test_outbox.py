"""Handoffs survive an unreachable database: outbox, restart, delivery exactly once."""

from pathlib import Path

import pytest
from rasa_sdk.executor import CollectingDispatcher

from actions.handoff import ActionHandoff
from bot.handoff.outbox import Outbox, packet_from_json, packet_to_json
from bot.handoff.packet import HandoffPacket, Turn
from bot.store.database import make_engine
from bot.store.queue import Queue

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
    import bot.handoff.delivery as delivery_module
    from sqlalchemy.exc import OperationalError

    def refuse():  # type: ignore[no-untyped-def]
        raise OperationalError("connect", {}, Exception("connection refused"))

    monkeypatch.setattr(delivery_module, "configured_queue", refuse)
    outbox = Outbox(tmp_path / "outbox.jsonl")
    dispatcher = CollectingDispatcher()
    ActionHandoff(None, outbox).run(dispatcher, make_tracker("人と話したい", "request_human"), {})
    (message,) = dispatcher.messages
    assert message["custom"]["route"] == "handoff" and message["custom"]["ticket_id"] is None
    assert len(outbox.pending()) == 1


def test_background_delivery_empties_the_outbox_once_the_database_is_back(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import time


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

    outbox = Outbox(tmp_path / "outbox.jsonl")
    outbox.put(HandoffPacket("c1:1", "c1", ["anger"], [Turn("customer", "ふざけるな")]))
    with (tmp_path / "outbox.jsonl").open("a", encoding="utf-8") as handle:
        handle.write('{"idempotency_key": "c2:1", "conversation_id": "c2", "reas')  # crash mid-write
    queue = Queue(make_engine(f"sqlite:///{tmp_path / 'q.db'}"))
    assert outbox.drain(queue) == 1
    assert [t.conversation_id for t in queue.open_tickets()] == ["c1"]
    assert "c2:1" in (tmp_path / "outbox.bad").read_text(encoding="utf-8")


# --- issue #11: nothing unmasked reaches disk, files are private, .bad does not grow -------

CARD = "4111 1111 1111 1111"


def _digits_only(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


def test_handoff_with_database_down_writes_only_masked_private_files(make_tracker, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import os
    import stat

    old_umask = os.umask(0o022)
    try:
        outbox_file = tmp_path / "outbox.jsonl"
        tracker = make_tracker(f"カード番号は{CARD}です、ふざけるな", "complaint", handoff_reason="anger")
        ActionHandoff(down_queue(), Outbox(outbox_file)).run(CollectingDispatcher(), tracker, {})
        text = outbox_file.read_text(encoding="utf-8")
        assert CARD not in text and "4111111111111111" not in _digits_only(text)
        assert "**** **** **** 1111" in text
        assert stat.S_IMODE(outbox_file.stat().st_mode) == 0o600

        # A raw line written by an older version, torn by a crash, is set aside masked and private.
        with outbox_file.open("a", encoding="utf-8") as handle:
            handle.write('{"idempotency_key": "old:1", "transcript": [{"text": "' + CARD + '"')
        Outbox(outbox_file).pending()
        bad = tmp_path / "outbox.bad"
        assert "old:1" in bad.read_text(encoding="utf-8")
        assert CARD not in bad.read_text(encoding="utf-8")
        assert stat.S_IMODE(bad.stat().st_mode) == 0o600
    finally:
        os.umask(old_umask)


def test_outbox_masks_a_packet_it_is_given_raw_and_keeps_mode_after_drain(tmp_path: Path) -> None:
    import os
    import stat

    old_umask = os.umask(0o022)
    try:
        path = tmp_path / "o.jsonl"
        path.write_text("", encoding="utf-8")
        os.chmod(path, 0o644)  # a file left by an older version
        outbox = Outbox(path)
        for i in range(2):
            outbox.put(HandoffPacket(f"c{i}:1", f"c{i}", ["anger"], [Turn("customer", f"番号 {CARD}")],
                                     summary=f"お客さま: {CARD}", customer={"note": CARD}))
        assert CARD not in path.read_text(encoding="utf-8")
        assert stat.S_IMODE(path.stat().st_mode) == 0o600

        class OneThenDown:
            def __init__(self) -> None:
                self.calls = 0

            def enqueue(self, packet):  # type: ignore[no-untyped-def]
                from sqlalchemy.exc import OperationalError

                self.calls += 1
                if self.calls > 1:
                    raise OperationalError("insert", {}, Exception("down"))

        assert outbox.drain(OneThenDown()) == 1  # type: ignore[arg-type]
        assert len(outbox.pending()) == 1 and stat.S_IMODE(path.stat().st_mode) == 0o600
    finally:
        os.umask(old_umask)


def test_a_torn_line_seen_again_is_not_set_aside_twice(tmp_path: Path) -> None:
    path = tmp_path / "outbox.jsonl"
    path.write_text('{"idempotency_key": "c2:1", "conv\n', encoding="utf-8")
    outbox = Outbox(path)
    for _ in range(5):  # the retry thread reads the outbox again and again while the database is down
        assert outbox.pending() == []
    assert (tmp_path / "outbox.bad").read_text(encoding="utf-8").count("c2:1") == 1


def test_bad_file_keeps_only_the_newest_lines(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import bot.handoff.outbox as outbox_module

    monkeypatch.setattr(outbox_module, "BAD_MAX_LINES", 3)
    path = tmp_path / "outbox.jsonl"
    outbox = Outbox(path)
    for i in range(5):
        path.write_text(f'{{"torn": {i}\n', encoding="utf-8")
        outbox.pending()
    lines = (tmp_path / "outbox.bad").read_text(encoding="utf-8").splitlines()
    assert lines == ['{"torn": 2', '{"torn": 3', '{"torn": 4']


def test_bad_file_stays_under_its_byte_limit(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import bot.handoff.outbox as outbox_module

    monkeypatch.setattr(outbox_module, "BAD_MAX_BYTES", 300)
    path = tmp_path / "outbox.jsonl"
    outbox = Outbox(path)
    for i in range(10):
        path.write_text(f'{{"torn": {i}, "pad": "{"x" * 80}"\n', encoding="utf-8")
        outbox.pending()
    bad = (tmp_path / "outbox.bad").read_text(encoding="utf-8")
    assert len(bad.encode("utf-8")) <= 300 and '{"torn": 9' in bad and '{"torn": 0' not in bad


def test_a_packet_the_database_refuses_is_set_aside_with_its_reason(tmp_path: Path) -> None:
    """A repeatable SQL error (a category longer than its column on PostgreSQL) is not an outage."""
    import json

    from sqlalchemy.exc import DataError

    outbox = Outbox(tmp_path / "o.jsonl")
    for i in range(3):
        outbox.put(HandoffPacket(f"c{i}:1", f"c{i}", ["complaint"], []))
    up = Queue(make_engine(f"sqlite:///{tmp_path / 'q.db'}"))

    class RefusesC1:
        def enqueue(self, packet: HandoffPacket):  # type: ignore[no-untyped-def]
            if packet.conversation_id == "c1":
                raise DataError("INSERT …", {}, Exception("value too long for type character varying(100)"))
            return up.enqueue(packet)

    assert outbox.drain(RefusesC1()) == 3  # type: ignore[arg-type]
    assert outbox.pending() == []
    assert [t.conversation_id for t in up.open_tickets()] == ["c0", "c2"]  # later packets not blocked
    (line,) = (tmp_path / "o.bad").read_text(encoding="utf-8").splitlines()
    aside = json.loads(line)
    assert aside["set_aside"].startswith("DataError") and aside["packet"]["conversation_id"] == "c1"


def test_the_action_server_delivers_an_earlier_runs_outbox_at_start(tmp_path: Path) -> None:
    import time

    from actions.handoff import resume_pending_deliveries

    left = Outbox(tmp_path / "o.jsonl")
    left.put(HandoffPacket("c0:1", "c0", ["complaint"], []))
    up = Queue(make_engine(f"sqlite:///{tmp_path / 'q.db'}"))
    started = Outbox(tmp_path / "o.jsonl")  # the new process, before any handoff
    assert resume_pending_deliveries(started, connect=lambda: up) is True
    deadline = time.monotonic() + 10
    while started.pending() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [t.conversation_id for t in up.open_tickets()] == ["c0"]
    assert resume_pending_deliveries(Outbox(tmp_path / "empty.jsonl"), connect=lambda: up) is False


# --- issue #12: nothing blocks the drain, nothing is swallowed, .bad is written once -------

GOOD = HandoffPacket("good:1", "good", ["anger"], [Turn("customer", "ふざけるな")])


@pytest.mark.parametrize(("broken", "reason"), [
    # Valid JSON and packet shape, refused by a NOT NULL column: an integrity error that is
    # not a repeated key (the old code looked the key up, found nothing and said NoResultFound).
    ({"transcript": [{"sender": None, "text": "x"}]}, "IntegrityError"),
    # A value the queue cannot even turn into a row: not a database error at all.
    ({"customer": None}, "AttributeError"),
])
def test_a_packet_refused_for_another_reason_than_its_key_is_set_aside(tmp_path: Path, broken: dict,
                                                                        reason: str) -> None:
    import json

    path = tmp_path / "o.jsonl"
    line = json.loads(packet_to_json(HandoffPacket("bad:1", "bad", ["anger"], [])))
    path.write_text(json.dumps({**line, **broken}, ensure_ascii=False) + "\n", encoding="utf-8")
    outbox = Outbox(path)
    outbox.put(GOOD)
    up = Queue(make_engine(f"sqlite:///{tmp_path / 'q.db'}"))
    assert outbox.drain(up) == 2  # the bad packet does not block the good one, now or ever
    assert outbox.pending() == [] and [t.conversation_id for t in up.open_tickets()] == ["good"]
    (aside,) = [json.loads(x) for x in (tmp_path / "o.bad").read_text(encoding="utf-8").splitlines()]
    assert aside["set_aside"].startswith(reason) and aside["packet"]["idempotency_key"] == "bad:1"


def test_a_torn_last_line_does_not_swallow_the_next_packet(tmp_path: Path) -> None:
    path = tmp_path / "o.jsonl"
    path.write_text('{"idempotency_key": "torn:1", "conversation_id": "torn", "reas', encoding="utf-8")  # crash
    outbox = Outbox(path)
    outbox.put(GOOD)  # fsynced: it must survive the torn line before it
    assert outbox.pending() == [GOOD]
    assert "torn:1" in (tmp_path / "o.bad").read_text(encoding="utf-8")


def test_bad_lines_are_set_aside_once_while_the_database_stays_down(tmp_path: Path, monkeypatch, caplog) -> None:  # type: ignore[no-untyped-def]
    """More unreadable lines than .bad keeps: the retry loop must not rewrite .bad every second."""
    import logging

    import bot.handoff.outbox as outbox_module

    monkeypatch.setattr(outbox_module, "BAD_MAX_LINES", 3)
    path = tmp_path / "o.jsonl"
    path.write_text("".join(f'{{"torn": {i}\n' for i in range(5)), encoding="utf-8")
    outbox = Outbox(path)
    outbox.put(GOOD)
    bad = tmp_path / "o.bad"
    with caplog.at_level(logging.ERROR, logger="bot.handoff.outbox"):
        assert outbox.drain(down_queue()) == 0
        first = bad.read_text(encoding="utf-8")
        for _ in range(5):  # the retry thread, once a second, while the database is down
            assert outbox.drain(down_queue()) == 0 and outbox.pending() == [GOOD]
    assert bad.read_text(encoding="utf-8") == first
    assert sum("set aside" in r.getMessage() for r in caplog.records) == 1
    assert "torn" not in path.read_text(encoding="utf-8")  # moved out of the outbox, not copied again


def _put_many(path: str, writer: int, count: int) -> None:
    outbox = Outbox(Path(path))
    for i in range(count):
        outbox.put(HandoffPacket(f"w{writer}-{i}:1", f"w{writer}-{i}", ["anger"], [Turn("customer", "x" * 2000)]))


def test_processes_sharing_the_outbox_file_lose_and_duplicate_nothing(tmp_path: Path) -> None:
    """Action servers on one machine share var/outbox.jsonl: puts and drains of several processes at once."""
    import multiprocessing

    path = tmp_path / "o.jsonl"
    up = Queue(make_engine(f"sqlite:///{tmp_path / 'q.db'}"))
    context = multiprocessing.get_context("spawn")
    writers = [context.Process(target=_put_many, args=(str(path), w, 40)) for w in range(3)]
    for process in writers:
        process.start()
    outbox = Outbox(path)
    while any(p.is_alive() for p in writers):
        outbox.drain(up)
    for process in writers:
        process.join()
        assert process.exitcode == 0
    outbox.drain(up)
    keys = [t.idempotency_key for t in up.tickets("all", limit=500)]
    assert len(keys) == 120 and len(set(keys)) == 120
    assert outbox.pending() == [] and not (tmp_path / "o.bad").exists()
