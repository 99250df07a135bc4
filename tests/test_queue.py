"""Handoff queue on a real database: SQLite (default) and PostgreSQL (127.0.0.1:5432)."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

import pytest
from sqlalchemy import create_engine, text

from bot.handoff.packet import HandoffPacket, Turn
from bot.store.database import make_engine
from bot.store.queue import Queue, QueueError

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.fixture(params=["sqlite", "postgresql"])
def queue(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'queue.db'}")
        yield Queue(engine)
        engine.dispose()
        return
    name = f"bot_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine = make_engine(f"postgresql://postgres@127.0.0.1:5432/{name}")
    yield Queue(engine)
    engine.dispose()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()


def packet(key: str = "conv-1:1", reasons: list[str] | None = None) -> HandoffPacket:
    return HandoffPacket(
        idempotency_key=key,
        conversation_id=key.split(":")[0],
        reasons=reasons or ["anger"],
        transcript=[Turn("customer", "住所変更したのに反映されてない、ふざけるな", "complaint", 0.91),
                    Turn("bot", "ご不快な思いをおかけし、申し訳ございません。")],
        summary="怒り: 住所変更が反映されない",
        category="登録情報の変更",
        customer={"name": "山田", "note": "カード 4111 1111 1111 1111"},
    )


def test_retry_never_duplicates_a_ticket(queue: Queue) -> None:
    first, created = queue.enqueue(packet())
    again, created_again = queue.enqueue(packet())
    assert created and not created_again
    assert first.id == again.id
    assert len(queue.open_tickets()) == 1


def test_concurrent_retries_make_one_ticket(queue: Queue) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: queue.enqueue(packet("conv-9:1")), range(16)))
    assert len({ticket.id for ticket, _ in results}) == 1
    assert sum(created for _, created in results) == 1


def test_transcript_is_kept_in_order_and_masked(queue: Queue) -> None:
    ticket, _ = queue.enqueue(packet())
    loaded = queue.get(ticket.id)
    assert [e.sender for e in loaded.entries] == ["customer", "bot"]
    assert loaded.entries[0].intent == "complaint"
    assert loaded.customer["note"] == "カード **** **** **** 1111"


def test_priority_then_age(queue: Queue) -> None:
    calm, _ = queue.enqueue(packet("a:1", ["human_request"]))
    angry, _ = queue.enqueue(packet("b:1", ["anger"]))
    assert [t.id for t in queue.open_tickets()] == [angry.id, calm.id]


def test_state_changes_and_wrong_states(queue: Queue) -> None:
    ticket, _ = queue.enqueue(packet())
    assert queue.claim(ticket.id, "sato").status == "claimed"
    with pytest.raises(QueueError) as twice:
        queue.claim(ticket.id, "suzuki")
    assert twice.value.status == 409
    replied = queue.add_entry(ticket.id, "agent", "担当の佐藤です。確認いたします。")
    assert replied.entry_count == 3 and queue.get(ticket.id).entries[-1].sender == "agent"
    with pytest.raises(QueueError) as empty:
        queue.add_entry(ticket.id, "agent", "   ")
    assert empty.value.status == 422
    assert queue.resolve(ticket.id).status == "resolved"
    with pytest.raises(QueueError) as resolved_twice:
        queue.resolve(ticket.id)
    assert resolved_twice.value.status == 409
    assert queue.get(ticket.id).status == "resolved"  # nothing damaged
    assert queue.open_tickets() == []


def test_unknown_ticket_is_404(queue: Queue) -> None:
    for call in (lambda: queue.get(999), lambda: queue.claim(999, "x"), lambda: queue.resolve(999),
                 lambda: queue.add_entry(999, "agent", "hi")):
        with pytest.raises(QueueError) as info:
            call()
        assert info.value.status == 404


def test_migrations_match_the_models(queue: Queue) -> None:
    """The Alembic migrations build exactly the tables the models describe."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from bot.store.models import Base

    engine = queue._sessions.kw["bind"]
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []


def test_migrating_twice_is_harmless(queue: Queue) -> None:
    from bot.store.migrate import upgrade

    ticket, _ = queue.enqueue(packet())
    upgrade(queue._sessions.kw["bind"])
    assert queue.get(ticket.id).id == ticket.id


# ---- security review #11: bounded work per call, limits, take-over, no parameters in errors ----------

def count_loads(model: type) -> Any:
    """A context manager counting the ORM rows of ``model`` loaded inside it (``.n``)."""
    import contextlib

    from sqlalchemy import event

    @contextlib.contextmanager
    def counting() -> Iterator[Any]:
        box = type("Box", (), {"n": 0})()

        def loaded(target: Any, context: Any) -> None:
            box.n += 1

        event.listen(model, "load", loaded)
        try:
            yield box
        finally:
            event.remove(model, "load", loaded)

    return counting()


def test_add_entry_never_reloads_the_transcript(queue: Queue) -> None:
    from bot.store.models import TranscriptEntry

    ticket, _ = queue.enqueue(packet())
    for i in range(40):
        queue.add_entry(ticket.id, "customer" if i % 2 else "agent", f"発言 {i}", "佐藤")
    with count_loads(TranscriptEntry) as loads:
        queue.add_entry(ticket.id, "agent", "最後の返信", "佐藤")
    assert loads.n == 0  # before: every entry, twice
    entries = queue.get(ticket.id).entries
    assert [e.position for e in entries] == list(range(43)) and entries[-1].text == "最後の返信"


def test_concurrent_entries_get_distinct_positions(queue: Queue) -> None:
    ticket, _ = queue.enqueue(packet())
    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(lambda i: queue.add_entry(ticket.id, "customer", f"同時 {i}"), range(24)))
    loaded = queue.get(ticket.id)
    assert sorted(e.position for e in loaded.entries) == list(range(26)) and loaded.entry_count == 26


def test_position_is_one_count_not_the_whole_queue(queue: Queue) -> None:
    from bot.store.models import Ticket

    calm = [queue.enqueue(packet(f"calm{i}:1", ["human_request"]))[0] for i in range(3)]
    angry = [queue.enqueue(packet(f"angry{i}:1", ["anger"]))[0] for i in range(2)]
    queue.claim(angry[0].id, "sato")
    with count_loads(Ticket) as loads:
        positions = [queue.position(t.id) for t in [*angry, *calm]]
    assert positions == [0, 1, 2, 3, 4]  # claimed: 0; then high priority, then oldest
    assert loads.n <= 5  # one row per call (the ticket asked about), never the queue
    assert queue.position(999) == 0


def test_ticket_lists_are_paged(queue: Queue) -> None:
    made = [queue.enqueue(packet(f"p{i}:1", ["human_request"]))[0].id for i in range(5)]
    assert [t.id for t in queue.tickets("open", limit=2)] == made[:2]
    assert [t.id for t in queue.tickets("open", limit=2, offset=4)] == made[4:]
    for ticket_id in made[:3]:
        queue.resolve(ticket_id)
    assert [t.id for t in queue.tickets("resolved", limit=2)] == made[2:0:-1]  # newest first


def test_transcript_pages(queue: Queue) -> None:
    ticket, _ = queue.enqueue(packet())
    for i in range(8):
        queue.add_entry(ticket.id, "agent", f"返信 {i}")
    page, earlier = queue.entries(ticket.id, limit=4)
    assert [e.text for e in page] == [f"返信 {i}" for i in range(4, 8)] and earlier
    page, earlier = queue.entries(ticket.id, before=page[0].id, limit=4)
    assert [e.text for e in page] == [f"返信 {i}" for i in range(4)] and earlier
    page, earlier = queue.entries(ticket.id, before=page[0].id, limit=4)
    assert [e.sender for e in page] == ["customer", "bot"] and not earlier
    with pytest.raises(QueueError) as unknown:
        queue.entries(999)
    assert unknown.value.status == 404


def test_open_tickets_per_customer_and_entries_per_ticket_are_limited(queue: Queue) -> None:
    from bot.settings import Limits
    from bot.store.chat_log import ChatLog
    from bot.store.queue import TicketFull

    engine = queue._sessions.kw["bind"]
    limited = Queue(engine, Limits(open_tickets_per_customer=2, ticket_entries=4))
    log = ChatLog(engine)
    for conversation in ("a", "b", "c", "e"):
        log.start_conversation(conversation, {}, address_key="same-address")
    log.start_conversation("d", {}, address_key="another-address")
    first, _ = limited.enqueue(packet("a:1"))
    limited.enqueue(packet("b:1"))
    refused, created = limited.enqueue(packet("c:1"))
    assert created and (refused.status, refused.resolution) == ("resolved", "limited")
    assert refused.announced_at is not None  # never shown on the consoles
    assert limited.enqueue(packet("c:1"))[0].id == refused.id  # a retry finds it, still one ticket
    assert limited.enqueue(packet("d:1"))[0].status == "waiting"  # another customer
    limited.resolve(first.id)
    assert limited.enqueue(packet("c:2"))[0].status == "waiting"  # room again
    full, _ = limited.enqueue(packet("e:1"))  # (a b:2 would join b's open ticket: tests/test_handoff_resend.py)
    assert full.resolution == "limited"  # b's first ticket and c's second are open for that address

    ticket = limited.open_tickets()[0]
    while limited.get(ticket.id).entry_count < 4:
        limited.add_entry(ticket.id, "customer", "追加")
    with pytest.raises(TicketFull) as stop:
        limited.add_entry(ticket.id, "customer", "もう一通")
    assert stop.value.status == 429 and "上限" in str(stop.value)
    assert limited.add_entry(ticket.id, "agent", "担当者の返信", "佐藤").entry_count == 5  # agents always can
    assert [e.text for e in limited.get(ticket.id).entries].count("もう一通") == 0


def test_only_the_claimer_resolves_and_take_overs_are_recorded(queue: Queue) -> None:
    ticket, _ = queue.enqueue(packet())
    queue.claim(ticket.id, "sato")
    with pytest.raises(QueueError) as refused:
        queue.resolve(ticket.id, agent="suzuki")
    assert refused.value.status == 403
    taken, previous = queue.take_over(ticket.id, "suzuki", "鈴木さんが佐藤さんから対応を引き継ぎました。", "鈴木")
    assert previous == "sato" and taken.claimed_by == "suzuki"
    with pytest.raises(QueueError) as again:
        queue.take_over(ticket.id, "suzuki", "x")
    assert again.value.status == 409
    resolved = queue.resolve(ticket.id, agent="suzuki")
    assert (resolved.status, resolved.resolved_by) == ("resolved", "suzuki")
    last = queue.get(ticket.id).entries[-1]
    assert (last.sender, last.author) == ("system", "鈴木") and "引き継ぎ" in last.text


def test_database_errors_never_carry_customer_text(queue: Queue) -> None:
    from sqlalchemy.exc import IntegrityError

    from bot.store.models import Ticket

    engine = queue._sessions.kw["bind"]
    assert engine.hide_parameters
    queue.enqueue(packet("dup:1"))
    with pytest.raises(IntegrityError) as error, engine.begin() as connection:
        connection.execute(Ticket.__table__.insert().values(
            idempotency_key="dup:1", conversation_id="dup", status="waiting", priority=2, reasons=[],
            summary="秘密の注文番号 12345", customer={"name": "山田花子"}, offline=False, entry_count=0))
    assert "秘密の注文番号" not in str(error.value) and "山田花子" not in str(error.value)


def test_migration_0005_counts_existing_entries(tmp_path: Path) -> None:
    from sqlalchemy import create_engine as plain_engine

    from bot.store.migrate import upgrade

    engine = plain_engine(f"sqlite:///{tmp_path / 'old.db'}", future=True)
    upgrade(engine, "0004")
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO tickets (id, idempotency_key, conversation_id, status, priority, reasons, "
                                "summary, customer, created_at, offline) VALUES (1, 'k', 'c', 'waiting', 2, '[]', "
                                "'', '{}', '2026-01-01 00:00:00', 0)"))
        for position in (0, 1, 1, 2):  # two entries written at once on SQLite could share a position
            connection.execute(text("INSERT INTO transcript_entries (ticket_id, position, sender, text, at) "
                                    f"VALUES (1, {position}, 'customer', 'x', '2026-01-01 00:00:00')"))
    upgrade(engine)
    queue = Queue(engine)
    assert queue.get(1).entry_count == 3
    queue.add_entry(1, "agent", "新しい返信")
    assert queue.get(1).entries[-1].text == "新しい返信"  # after every old entry


def test_contact_details_for_a_resolved_ticket_are_refused_clearly_and_change_nothing(queue: Queue) -> None:
    from bot import wording
    from bot.store.queue import TicketResolved

    ticket, _ = queue.enqueue(packet("offline:1"))
    queue.resolve(ticket.id)
    with pytest.raises(TicketResolved) as refused:
        queue.set_contact(ticket.id, {"phone": "0312345678"})
    assert refused.value.status == 409 and refused.value.ticket_id == ticket.id
    # Customers may read it: no internal number, and what to do next.
    assert str(refused.value) == wording.STORE_CUSTOMER_TEXT["resolved"] and str(ticket.id) not in str(refused.value)
    assert "phone" not in queue.get(ticket.id, False).customer


def test_two_agents_claiming_at_the_same_moment_one_wins(queue: Queue) -> None:
    """Issue #17: concurrent claims on both databases — exactly one agent owns the ticket,
    every other claim gets a clear QueueError (409 in the API), none is lost silently."""
    import threading

    ticket, _ = queue.enqueue(packet("conv-race:1"))
    agents = [f"agent{i}" for i in range(8)]
    start = threading.Barrier(len(agents))

    def claim(agent: str) -> str:
        start.wait()  # every thread calls claim() at the same moment
        try:
            return queue.claim(ticket.id, agent).claimed_by or ""
        except QueueError:
            return ""

    with ThreadPoolExecutor(max_workers=len(agents)) as pool:
        owners = list(pool.map(claim, agents))
    winners = [owner for owner in owners if owner]
    assert len(winners) == 1, owners
    assert queue.get(ticket.id).claimed_by == winners[0]
    assert queue.get(ticket.id).status == "claimed"
