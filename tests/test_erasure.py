"""Erasure of one customer's data (`bot data delete`) and retention of Rasa's tracker store (#14 item 5).

On SQLite and PostgreSQL (127.0.0.1:5432). Two customers are seeded through the real stores
(widget conversation, handoff, agent reply and note, resolve, CSAT, transcript mail, a
department forward with its mail and webhook rows, a pending handoff, undelivered packets)
and Rasa's own ``SQLTrackerStore`` writes their trackers where `bot run` configures it
(bot/store/rasa_endpoints.py). The checks count rows with plain SQL, independently of
bot/store/erasure.py's own conditions.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from sqlalchemy import bindparam, inspect, text
from sqlalchemy.engine import Engine

from bot.handoff.packet import HandoffPacket, Turn
from bot.knowledge.departments import Department
from bot.settings import RetentionSettings
from bot.store import erasure
from bot.store.audit import AuditFilter, AuditLog
from bot.store.chat_log import ChatLog, NewMessage
from bot.store.csat import Surveys
from bot.store.database import make_engine
from bot.store.erasure import Erasure, ErasureError
from bot.store.forwarding import Delivery, Forwards
from bot.store.models import Base
from bot.store.pending import PendingHandoffs
from bot.store.queue import Queue
from bot.store.rasa_endpoints import tracker_store
from bot.store.rasa_trackers import RasaTrackers
from bot.store.retention import Retention
from bot.store.transcript_mails import TranscriptMails
from bot.store.undelivered import UndeliveredHandoffs
from bot.store.webhooks import WebhookOutbox
from test_desk import database, engine  # noqa: F401 - fixtures: SQLite and PostgreSQL

ROUTES = WebhookOutbox({event: ("crm",) for event in ("ticket.created", "ticket.claimed", "ticket.resolved",
                                                      "csat.received")})
ACCOUNTS = Department(id="billing", name="経理部", promise="経理部から3営業日以内にご連絡します。",
                      email="keiri@example.jp", webhook="crm")
TARO = ("c-taro1", "line-Utaro2")  # the widget and LINE; the address reaches the second only through its ticket
HANAKO = "c-hanako"


@pytest.fixture()
def rasa(database: str) -> Iterator[Any]:  # noqa: F811
    """Rasa's own SQL tracker store, configured as `bot run` configures it for the database."""
    from rasa.core.tracker_store import SQLTrackerStore

    section = tracker_store(database)
    options = {"host": section["url"], "port": section["port"], "username": section.get("username")} \
        if section["dialect"] == "postgresql" else {}
    store = SQLTrackerStore(dialect=section["dialect"], db=section["db"], **options)
    yield store
    store.engine.dispose()


def save_tracker(store: Any, conversation_id: str, words: str, email: str | None = None,
                 at: float | None = None) -> None:
    """Three more events of a conversation (what the customer wrote, a slot, the bot's reply), at ``at``."""
    from rasa.shared.core.events import BotUttered, SlotSet, UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker

    moment = at or time.time()
    events = [UserUttered(words, {"name": "human_request", "confidence": 0.9}, timestamp=moment),
              SlotSet("customer_email", email, timestamp=moment), BotUttered("担当者におつなぎします", timestamp=moment)]

    async def append() -> None:  # Rasa stores the events past those it has
        known = await store.retrieve_full_tracker(conversation_id)
        await store.save(DialogueStateTracker.from_events(conversation_id, [*(known.events if known else []), *events]))

    asyncio.run(append())


def seed_customer(engine: Engine, rasa: Any, conversation_id: str, name: str, email: str,
                  widget: bool = True) -> None:
    """One customer's conversation, through the stores the servers use."""
    chat, queue = ChatLog(engine), Queue(engine, webhooks=ROUTES)
    words = f"{name}です。引っ越したので住所を変えたい"
    if widget:
        chat.start_conversation(conversation_id, {"name": name, "email": email, "page_url": "https://example.jp/faq"})
    chat.add(NewMessage(conversation_id, "customer", words, client_id="m1"))
    reply, _ = chat.add(NewMessage(conversation_id, "bot", "担当者におつなぎします", intent="human_request"))
    packet = HandoffPacket(idempotency_key=f"{conversation_id}:1", conversation_id=conversation_id,
                           reasons=["human_request"], transcript=[Turn("customer", words)],
                           summary=f"{name}さんの住所変更", customer={"name": name, "email": email})
    ticket, _ = queue.enqueue(packet)
    queue.claim(ticket.id, "sato")
    queue.add_entry(ticket.id, "agent", "承りました", "佐藤")
    queue.add_entry(ticket.id, "note", f"内部メモ: {name}さん本人確認済み", "佐藤")
    queue.resolve(ticket.id, agent="sato")
    Surveys(engine, ROUTES).record(conversation_id, ticket.id, 4, f"{name}: 助かりました")
    TranscriptMails(engine).enqueue(ticket.id, conversation_id, email, "auto")
    # A second handoff forwarded to a department: its history step, the department's mail, webhook rows.
    second, _ = queue.enqueue(HandoffPacket(idempotency_key=f"{conversation_id}:2", conversation_id=conversation_id,
                                            reasons=["human_request"], transcript=[Turn("customer", "請求が二重です")]))
    queue.claim(second.id, "sato")
    Forwards(queue).forward(second.id, "sato", ACCOUNTS, f"{name}さんの請求の確認をお願いします",
                            Delivery(ACCOUNTS.email, ("crm",)), lambda username: "佐藤")
    # A third handoff whose packet the outbox still holds, and two it set aside.
    PendingHandoffs(engine).mark(conversation_id, reply.id, handoff_key=f"{conversation_id}:3")
    UndeliveredHandoffs(engine).record([
        {"key": f"{conversation_id}-refused", "kind": "refused", "reason": "too long",
         "idempotency_key": f"{conversation_id}:4", "conversation_id": conversation_id, "summary": words,
         "packet": {"conversation_id": conversation_id, "customer": {"name": name, "email": email}}},
        {"key": f"{conversation_id}-unreadable", "kind": "unreadable", "reason": "not JSON",
         "excerpt": f'{{"conversation_id": "{conversation_id}", "customer": {{"email": "{email}"'}])
    save_tracker(rasa, conversation_id, words, email)


@pytest.fixture()
def customers(engine: Engine, rasa: Any) -> Engine:  # noqa: F811
    """Taro (two conversations, his address written differently in one) and Hanako."""
    seed_customer(engine, rasa, TARO[0], "山田太郎", "Taro@Example.jp")
    seed_customer(engine, rasa, TARO[1], "山田太郎", "taro@example.jp", widget=False)
    seed_customer(engine, rasa, HANAKO, "佐藤花子", "hanako@example.jp")
    return engine


# ---- counting with plain SQL -------------------------------------------------------------------------------

TICKETS_OF = "SELECT id FROM tickets WHERE conversation_id IN :ids"
HOLDINGS = {
    "conversations": "SELECT count(*) FROM conversations WHERE id IN :ids",
    "chat_messages": "SELECT count(*) FROM chat_messages WHERE conversation_id IN :ids",
    "tickets": "SELECT count(*) FROM tickets WHERE conversation_id IN :ids",
    "transcript_entries": f"SELECT count(*) FROM transcript_entries WHERE ticket_id IN ({TICKETS_OF})",
    "ticket_events": f"SELECT count(*) FROM ticket_events WHERE ticket_id IN ({TICKETS_OF})",
    "csat_ratings": "SELECT count(*) FROM csat_ratings WHERE conversation_id IN :ids",
    "transcript_mails": "SELECT count(*) FROM transcript_mails WHERE conversation_id IN :ids",
    "webhook_deliveries": f"SELECT count(*) FROM webhook_deliveries WHERE ticket_id IN ({TICKETS_OF})",
    "pending_handoffs": "SELECT count(*) FROM pending_handoffs WHERE conversation_id IN :ids",
    "undelivered_handoffs": "SELECT count(*) FROM undelivered_handoffs WHERE conversation_id IN :ids",
}


def rasa_events(engine: Engine, ids: tuple[str, ...] | None = None) -> int:  # noqa: F811
    """Rows of Rasa's ``events`` table (of ``ids``; ``None``: all), found where `bot run` puts it."""
    trackers = RasaTrackers.for_engine(engine)
    store = engine if trackers.shared else make_engine_of(trackers.path)
    query = "SELECT count(*) FROM events" + (" WHERE sender_id IN :ids" if ids is not None else "")
    with store.connect() as connection:
        statement = text(query).bindparams(bindparam("ids", expanding=True)) if ids is not None else text(query)
        return int(connection.execute(statement, {"ids": list(ids)} if ids is not None else {}).scalar_one())


def make_engine_of(path: Path | None) -> Engine:
    from sqlalchemy import create_engine

    assert path is not None and path.exists(), "Rasa's tracker file is missing"
    return create_engine(f"sqlite:///{path}")


def holdings(engine: Engine, ids: tuple[str, ...]) -> dict[str, int]:  # noqa: F811
    """Rows per kind that hold something of these conversations."""
    counts = {}
    with engine.connect() as connection:
        for kind, query in HOLDINGS.items():
            statement = text(query).bindparams(bindparam("ids", expanding=True))
            counts[kind] = int(connection.execute(statement, {"ids": list(ids)}).scalar_one())
        lines = connection.execute(text("SELECT excerpt FROM undelivered_handoffs WHERE kind = 'unreadable'")).scalars()
        counts["unreadable_lines"] = sum(any(i in line for i in ids) for line in lines)  # they name the conversation
    return counts | {"rasa_events": rasa_events(engine, ids)}


def everything(engine: Engine) -> dict[str, int]:  # noqa: F811
    """Rows of every table of the bot database, and of Rasa's events."""
    with engine.connect() as connection:
        return {table: int(connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
                for table in Base.metadata.tables} | {"rasa_events": rasa_events(engine)}


def deletions(engine: Engine) -> list[Any]:  # noqa: F811
    return AuditLog(engine).page(AuditFilter(action=erasure.ACTION))[0]


# ---- erasure -----------------------------------------------------------------------------------------------


def test_every_table_with_a_conversation_or_ticket_is_covered() -> None:
    """A new table holding a customer's conversation or ticket must be added to the erasure."""
    holding = {name for name, table in Base.metadata.tables.items()
               if {"conversation_id", "ticket_id"} & set(table.columns.keys())}
    assert holding | {"conversations"} == {model.__tablename__ for model in erasure.MODELS.values()}
    assert list(erasure.KINDS) == [*erasure.MODELS, "rasa_events"]


def test_delete_by_email_erases_every_conversation_of_the_address_and_nothing_of_another(customers: Engine) -> None:
    engine = customers
    taro = holdings(engine, TARO)
    assert all(taro.values()), taro  # every kind holds something of Taro: the test can fail
    hanako, before = holdings(engine, (HANAKO,)), everything(engine)

    result = Erasure(engine).erase("email", "  TARO@example.jp ", actor="cli:admin")

    assert result.conversations == TARO  # the LINE conversation is found through its ticket's details
    assert holdings(engine, TARO) == dict.fromkeys(taro, 0)
    assert holdings(engine, (HANAKO,)) == hanako
    assert result.counts == {"transcript_entries": taro["transcript_entries"], "ticket_events": taro["ticket_events"],
                             "csat_ratings": 2, "transcript_mails": 4, "webhook_deliveries": taro["webhook_deliveries"],
                             "tickets": 4, "chat_messages": 4, "pending_handoffs": 2, "undelivered_handoffs": 4,
                             "conversations": 1, "rasa_events": 6}
    after = everything(engine)
    assert {table: before[table] - after[table] for table in before if before[table] != after[table]} == \
        {"conversations": 1, "chat_messages": 4, "tickets": 4, "transcript_entries": taro["transcript_entries"],
         "ticket_events": taro["ticket_events"], "csat_ratings": 2, "transcript_mails": 4,
         "webhook_deliveries": taro["webhook_deliveries"], "pending_handoffs": 2, "undelivered_handoffs": 4,
         "rasa_events": 6, "audit_log": -1}  # and one audit line more

    [line] = deletions(engine)
    assert (line.actor, line.action) == ("cli:admin", "data.deleted")
    assert line.target == "email:sha256:" + hashlib.sha256(b"email:taro@example.jp").hexdigest()
    assert line.detail == {"by": "email", "conversations": 2, "counts": result.counts}
    written = json.dumps([line.target, line.detail, line.address], ensure_ascii=False).lower()
    for content in ("taro", "山田", "住所", "c-taro1", "utaro2", "@", "内部メモ", "助かりました"):
        assert content not in written


def test_delete_by_conversation_erases_that_conversation_only(customers: Engine) -> None:
    engine = customers
    other, hanako = holdings(engine, TARO[1:]), holdings(engine, (HANAKO,))

    result = Erasure(engine).erase("conversation", TARO[0], actor="cli:admin")

    assert result.conversations == TARO[:1] and result.counts["rasa_events"] == 3
    assert result.counts["undelivered_handoffs"] == 2  # the refused packet and the line naming the conversation
    assert holdings(engine, TARO[:1]) == dict.fromkeys(other, 0)
    assert holdings(engine, TARO[1:]) == other and holdings(engine, (HANAKO,)) == hanako
    [line] = deletions(engine)
    assert line.target == "conversation:sha256:" + hashlib.sha256(f"conversation:{TARO[0]}".encode()).hexdigest()
    assert line.detail["counts"] == {k: v for k, v in result.counts.items() if v}


def test_a_conversation_only_rasa_remembers_is_erased_too(engine: Engine, rasa: Any) -> None:  # noqa: F811
    save_tracker(rasa, "c-rasa-only", "料金について")
    assert Erasure(engine).erase("conversation", "c-rasa-only").counts["rasa_events"] == 3
    assert rasa_events(engine, ("c-rasa-only",)) == 0


def test_a_dry_run_counts_and_changes_nothing(customers: Engine) -> None:
    engine = customers
    before = everything(engine)
    dry = Erasure(engine).erase("email", "taro@example.jp", dry_run=True)
    assert everything(engine) == before and deletions(engine) == []
    assert dry.counts == Erasure(engine).erase("email", "taro@example.jp").counts  # the real run deletes that much
    assert dry.lines()[1].startswith("削除の対象（--dry-run")


@pytest.mark.parametrize(("by", "value", "reason"), [("email", "nobody@example.jp", "unknown"),
                                                     ("conversation", "c-nobody", "unknown"),
                                                     ("email", "taro.example.jp", "input"),
                                                     ("conversation", "  ", "input")])
def test_an_unknown_customer_or_a_bad_id_deletes_nothing(customers: Engine, by: str, value: str, reason: str) -> None:
    engine = customers
    before = everything(engine)
    with pytest.raises(ErasureError) as info:
        Erasure(engine).erase(by, value)
    assert info.value.reason == reason
    if reason == "unknown":
        assert f"「{value}」のお客さまのデータは見つかりません。何も削除していません。" in str(info.value)
    assert everything(engine) == before and deletions(engine) == []


def test_an_open_ticket_is_refused_until_it_is_resolved(customers: Engine) -> None:
    engine = customers
    queue = Queue(engine, webhooks=ROUTES)
    ticket, _ = queue.enqueue(HandoffPacket(idempotency_key=f"{HANAKO}:9", conversation_id=HANAKO,
                                            reasons=["human_request"], transcript=[Turn("customer", "まだですか")]))
    before = everything(engine)
    with pytest.raises(ErasureError) as info:
        Erasure(engine).erase("email", "hanako@example.jp")
    assert info.value.reason == "open" and f"#{ticket.id}" in str(info.value)
    assert everything(engine) == before
    queue.resolve(ticket.id, resolution="cancelled")
    Erasure(engine).erase("email", "hanako@example.jp")
    assert not any(holdings(engine, (HANAKO,)).values())


# ---- the command line ---------------------------------------------------------------------------------------


@pytest.fixture()
def cli(database: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:  # noqa: F811
    from bot.cli import main
    from bot.settings import get_settings

    monkeypatch.setenv("DATABASE_URL", database)
    get_settings.cache_clear()
    yield main
    get_settings.cache_clear()


def test_bot_data_delete_and_purge_from_the_command_line(customers: Engine, cli: Any,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    engine = customers
    assert cli(["data", "delete", "--email", "nobody@example.jp"]) == 3
    assert "メールアドレス「nobody@example.jp」のお客さまのデータは見つかりません" in capsys.readouterr().err
    assert cli(["data", "delete", "--email", "nobody"]) == 2 and "@ がありません" in capsys.readouterr().err
    assert cli(["data", "delete", "--conversation", HANAKO, "--dry-run"]) == 0
    dry = capsys.readouterr().out
    assert "削除の対象（--dry-run" in dry and "  Rasa の会話の記録（イベント）: 3 件" in dry
    assert holdings(engine, (HANAKO,))["rasa_events"] == 3
    assert cli(["data", "delete", "--conversation", HANAKO]) == 0
    done = capsys.readouterr().out
    assert "削除しました" in done and "  チャットの発言: 2 件" in done and "  会話（名前・メールアドレス・ページ）: 1 件" in done
    assert not any(holdings(engine, (HANAKO,)).values())
    assert [line.actor.startswith("cli:") for line in deletions(engine)] == [True]

    assert cli(["data", "purge"]) == 0  # counts only (the name); `bot retention run` deletes
    purge = capsys.readouterr().out
    assert "削除の対象（--dry-run" in purge and "--yes を付けて" in purge
    assert AuditLog(engine).page(AuditFilter(action="retention.run"))[1] == 0
    assert cli(["data", "purge", "--yes"]) == 0 and "削除しました:" in capsys.readouterr().out
    assert AuditLog(engine).page(AuditFilter(action="retention.run"))[1] == 1
    with pytest.raises(SystemExit):  # one of --conversation / --email
        cli(["data", "delete"])


# ---- retention of Rasa's tracker store ----------------------------------------------------------------------

NOW = dt.datetime.now(dt.timezone.utc)


def test_retention_removes_conversations_whose_last_event_is_older_than_the_period(engine: Engine, rasa: Any) -> None:
    old, recent = (NOW - dt.timedelta(days=400)).timestamp(), (NOW - dt.timedelta(days=10)).timestamp()
    for conversation_id in ("c-old1", "c-old2", "c-open"):
        save_tracker(rasa, conversation_id, "住所を変えたい", at=old)
    save_tracker(rasa, "c-returned", "住所を変えたい", at=old)
    save_tracker(rasa, "c-returned", "まだですか", at=recent)  # an old conversation with a recent event
    save_tracker(rasa, "c-recent", "料金は？", at=recent)
    Queue(engine, webhooks=ROUTES).enqueue(HandoffPacket(idempotency_key="c-open:1", conversation_id="c-open",
                                                         reasons=["human_request"], transcript=[]))
    retention = Retention(engine, RetentionSettings(days=365, audit_days=730), batch=1, clock=lambda: NOW)

    assert retention.run(dry_run=True).counts["rasa_events"] == 6
    assert rasa_events(engine) == 18  # c-returned holds six
    result = retention.run()
    assert result.counts["rasa_events"] == 6 and retention.batches >= 2  # one conversation per transaction
    assert rasa_events(engine, ("c-old1", "c-old2")) == 0
    assert rasa_events(engine) == 12  # the open ticket's, the returned and the recent conversation's (3 + 6 + 3)
    line = AuditLog(engine).page(AuditFilter(action="retention.run"))[0][0]
    assert line.detail["counts"]["rasa_events"] == 6
    assert retention.run().counts["rasa_events"] == 0


def test_no_tracker_store_yet_counts_nothing(engine: Engine) -> None:  # noqa: F811
    trackers = RasaTrackers.for_engine(engine)
    with trackers.begin() as connection:
        assert connection is None  # Rasa has not run: no file is created, no table read
    if not trackers.shared:
        assert trackers.path is not None and not trackers.path.exists()
    else:
        assert not inspect(engine).has_table("events")
    assert Retention(engine, RetentionSettings(), clock=lambda: NOW).run(dry_run=True).counts["rasa_events"] == 0


def test_an_in_memory_database_has_no_tracker_store() -> None:
    memory = make_engine("sqlite://")
    assert RasaTrackers.for_engine(memory).path is None and not RasaTrackers.for_engine(memory).shared
    memory.dispose()


def test_many_expired_conversations_go_in_batches(engine: Engine, rasa: Any) -> None:  # noqa: F811
    old = (NOW - dt.timedelta(days=400)).timestamp()
    save_tracker(rasa, "c-recent", "料金は？")
    rows = [{"sender_id": f"c-{i:05d}", "type_name": "user", "timestamp": old + i, "data": "{}"} for i in range(1200)]
    with rasa.engine.begin() as connection:  # Rasa's own table, filled faster than through trackers
        connection.execute(text("INSERT INTO events (sender_id, type_name, timestamp, data) "
                                "VALUES (:sender_id, :type_name, :timestamp, :data)"), rows)
    retention = Retention(engine, RetentionSettings(days=365, audit_days=730), clock=lambda: NOW)
    assert retention.run(dry_run=True).counts["rasa_events"] == 1200
    assert retention.run().counts["rasa_events"] == 1200 and retention.batches >= 3  # 500 conversations each
    assert rasa_events(engine) == 3
