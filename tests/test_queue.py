"""Handoff queue on a real database: SQLite (default) and PostgreSQL (127.0.0.1:5432)."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from bot.store.queue import HandoffPacket, Queue, QueueError, Turn, make_engine

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
        conn.execute(text(f'DROP DATABASE "{name}"'))
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
    assert replied.entries[-1].sender == "agent"
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
