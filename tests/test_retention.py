"""Retention (#14 item 5) and the audit log's store (#14 item 6) on SQLite and PostgreSQL (127.0.0.1:5432).

Rows are written straight into the tables with old times (no waiting): retention must empty
or delete exactly the expired ones, keep open tickets and their conversations, keep the rows
analytics counts, work in batches, and end in the same state with the same total when two
runs race. The audit log refuses UPDATE on both databases, and each store action writes its
line in its own transaction.
"""

from __future__ import annotations

import datetime as dt
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from bot.analytics.report import build_report
from bot.settings import RetentionSettings
from bot.store.agents import AgentDirectory
from bot.store.audit import ACTIONS, AuditFilter, AuditLog
from bot.store.escalation import Escalations, Transfer
from bot.store.models import (AuditEntry, ChatMessage, Conversation, CsatRating, Ticket, TicketEvent, TranscriptEntry,
                              TranscriptMail, UndeliveredHandoff, WebhookDelivery, as_utc, utcnow)
from bot.store.queue import Queue
from bot.store.retention import KINDS, Retention
from bot.store.undelivered import UndeliveredHandoffs
from bot.store.webhooks import WebhookDeliveries
from test_desk import add_agent, clock, database, desk, engine, file_ticket  # noqa: F401 - fixtures

NOW = utcnow()
OLD = NOW - dt.timedelta(days=400)
RECENT = NOW - dt.timedelta(days=10)
SETTINGS = RetentionSettings(days=365, audit_days=730)


def conversation(session: Session, cid: str, at: dt.datetime, *, intent: str = "faq", feedback: bool | None = None,
                 email: str = "taro@example.jp") -> None:
    session.add(Conversation(id=cid, customer={"name": "山田", "email": email}, created_at=at, address_key="k" + cid))
    session.add(ChatMessage(conversation_id=cid, sender="customer", text="住所を変えたい 090-1234-5678",
                            client_id="m1", created_at=at, routed_at=at))
    session.add(ChatMessage(conversation_id=cid, sender="bot", text="ご登録の住所は…", intent=intent, route="answer",
                            faq_id="change-address", feedback=feedback, created_at=at + dt.timedelta(seconds=1),
                            buttons=[{"title": "はい", "payload": "/affirm"}]))


def ticket(session: Session, cid: str, at: dt.datetime, status: str = "resolved") -> int:
    row = Ticket(idempotency_key=f"{cid}:1", conversation_id=cid, status=status, reasons=["human_request"],
                 category="登録情報の変更", summary="住所の変更について", customer={"email": "taro@example.jp"},
                 created_at=at, claimed_by="sato", claimed_at=at + dt.timedelta(minutes=1),
                 resolved_at=at + dt.timedelta(minutes=9) if status == "resolved" else None,
                 resolution="resolved" if status == "resolved" else None,
                 resolved_by="sato" if status == "resolved" else None, entry_count=3)
    session.add(row)
    session.flush()
    for position, (sender, words) in enumerate([("customer", "引っ越しました"), ("agent", "承りました"),
                                                ("note", "内部メモ: 本人確認済み")]):
        session.add(TranscriptEntry(ticket_id=row.id, position=position, sender=sender, text=words,
                                    author="佐藤" if sender != "customer" else None,
                                    at=at + dt.timedelta(minutes=2 + position)))
    session.add(TicketEvent(ticket_id=row.id, kind="transferred", actor="sato", target="suzuki", note="請求の件", at=at))
    return int(row.id)


def seed(engine: Engine) -> dict[str, Any]:  # noqa: F811
    """Old and recent data of every kind; what retention must leave is noted in the test."""
    with Session(engine) as session, session.begin():
        conversation(session, "old", OLD, feedback=False)
        conversation(session, "recent", RECENT, feedback=True)
        conversation(session, "open", OLD)  # an old conversation whose ticket is still open
        old_ticket = ticket(session, "old", OLD)
        recent_ticket = ticket(session, "recent", RECENT)
        open_ticket = ticket(session, "open", OLD, status="claimed")
        session.add(CsatRating(ticket_id=old_ticket, conversation_id="old", agent="sato", rating=2,
                               comment="対応が遅い", created_at=OLD))
        session.add(CsatRating(ticket_id=recent_ticket, conversation_id="recent", agent="sato", rating=5,
                               comment="助かりました", created_at=RECENT))
        for tid, status, at in ((old_ticket, "sent", OLD), (recent_ticket, "sent", RECENT), (open_ticket, "pending", OLD)):
            session.add(TranscriptMail(ticket_id=tid, conversation_id="x", address="taro@example.jp", trigger="auto",
                                       status=status, created_at=at, next_attempt_at=at))
        for i, (status, at) in enumerate((("dismissed", OLD), ("open", OLD), ("retried", RECENT))):
            session.add(UndeliveredHandoff(key=f"k{i}", kind="refused", reason="too long", packet={"text": "秘密"},
                                           status=status, set_aside_at=at))
        for i, (status, at) in enumerate((("delivered", OLD), ("dead", OLD), ("pending", OLD), ("delivered", RECENT))):
            session.add(WebhookDelivery(event_id=f"e{i}", event_type="ticket.resolved", ticket_id=old_ticket,
                                        endpoint="crm", data={"summary": "住所"}, status=status, occurred_at=at,
                                        next_attempt_at=at))
        for days in (800, 400):
            session.add(AuditEntry(action="auth.login", actor="sato", at=NOW - dt.timedelta(days=days)))
    return {"old": old_ticket, "recent": recent_ticket, "open": open_ticket}


EXPECTED = {"tickets": 1, "transcript_entries": 3, "ticket_notes": 1, "chat_messages": 2, "conversations": 1,
            "csat_comments": 1, "transcript_mails": 1, "undelivered_handoffs": 1, "webhook_deliveries": 2,
            "rasa_events": 0, "audit_log": 1}  # no Rasa tracker store here: tests/test_erasure.py has one


def figures(engine: Engine) -> dict[str, Any]:  # noqa: F811
    """What analytics shows for all time, without the texts retention removes."""
    report = build_report(engine, None, NOW + dt.timedelta(days=1)).as_dict()
    kpis = report["kpis"]
    kpis["csat"].pop("comments")
    return {name: report[name] for name in ("totals", "days", "handoff_reasons", "intents", "feedback")} | \
        {"kpis": kpis}


def test_retention_removes_exactly_the_expired_content_and_keeps_open_tickets_and_aggregates(
        engine: Engine) -> None:  # noqa: F811
    ids = seed(engine)
    before = figures(engine)
    retention = Retention(engine, SETTINGS, batch=1, clock=lambda: NOW)
    assert retention.run(dry_run=True).counts == EXPECTED
    assert figures(engine) == before  # a dry run changes nothing

    result = retention.run(actor="cli:root")
    assert result.counts == EXPECTED and retention.batches >= 10  # one row per transaction
    assert [line.split(":")[0].strip() for line in result.lines()[2:-1]] == list(KINDS.values())
    with Session(engine) as session:
        tickets = {t.id: t for t in session.execute(select(Ticket)).scalars()}
        assert (tickets[ids["old"]].summary, tickets[ids["old"]].customer) == ("", {})
        assert tickets[ids["old"]].redacted_at is not None and tickets[ids["old"]].resolved_by == "sato"
        for kept in ("recent", "open"):
            assert (tickets[ids[kept]].summary, tickets[ids[kept]].redacted_at) == ("住所の変更について", None)
        entries = {(e.ticket_id, e.sender): e.text for e in session.execute(select(TranscriptEntry)).scalars()}
        assert {entries[(ids["old"], s)] for s in ("customer", "agent", "note")} == {""}
        assert entries[(ids["open"], "note")] == entries[(ids["recent"], "note")] == "内部メモ: 本人確認済み"
        notes = {e.ticket_id: e.note for e in session.execute(select(TicketEvent)).scalars()}
        assert notes == {ids["old"]: None, ids["recent"]: "請求の件", ids["open"]: "請求の件"}
        messages = {(m.conversation_id, m.sender): m for m in session.execute(select(ChatMessage)).scalars()}
        old_bot = messages[("old", "bot")]
        assert (messages[("old", "customer")].text, old_bot.text, old_bot.buttons) == ("", "", [])
        assert (old_bot.intent, old_bot.route, old_bot.faq_id, old_bot.feedback) == ("faq", "answer", "change-address",
                                                                                     False)
        assert messages[("open", "customer")].text.startswith("住所") and messages[("recent", "bot")].text
        customers = {c.id: c.customer for c in session.execute(select(Conversation)).scalars()}
        assert customers["old"] == {} and customers["open"]["email"] == customers["recent"]["email"]
        ratings = {r.conversation_id: (r.rating, r.comment) for r in session.execute(select(CsatRating)).scalars()}
        assert ratings == {"old": (2, None), "recent": (5, "助かりました")}
        assert sorted(m.status for m in session.execute(select(TranscriptMail)).scalars()) == ["pending", "sent"]
        assert sorted(u.status for u in session.execute(select(UndeliveredHandoff)).scalars()) == ["open", "retried"]
        assert sorted((w.status, as_utc(w.occurred_at) > OLD) for w in session.execute(select(WebhookDelivery)).scalars()) \
            == [("delivered", True), ("pending", False)]
    assert figures(engine) == before  # every count, rating and KPI survives

    lines, _ = AuditLog(engine).page(AuditFilter(action="retention.run"))
    logged = {kind: count for kind, count in EXPECTED.items() if count}  # the log keeps the kinds with rows
    assert [(line.actor, line.detail["counts"]) for line in lines] == [("cli:root", logged)]
    logins, total = AuditLog(engine).page(AuditFilter(action="auth.login"))
    assert total == 1  # the 800-day-old line went, the 400-day-old one stays (730 days)
    again = retention.run()
    assert again.total == 0  # idempotent


def test_keep_forever_and_an_empty_database(engine: Engine) -> None:  # noqa: F811
    empty = Retention(engine, SETTINGS, clock=lambda: NOW).run()
    assert empty.total == 0 and empty.lines()[-1] == "合計 0 件。"
    seed(engine)
    forever = Retention(engine, RetentionSettings(days=0, audit_days=0), clock=lambda: NOW)
    assert forever.run().total == 0 and "無期限" in forever.run(dry_run=True).lines()[0]


def test_two_runs_at_once_remove_each_row_once(engine: Engine) -> None:  # noqa: F811
    with Session(engine) as session, session.begin():
        for i in range(12):
            conversation(session, f"c{i}", OLD)
            ticket(session, f"c{i}", OLD)
    runs = [Retention(engine, SETTINGS, batch=3, clock=lambda: NOW) for _ in range(2)]
    start = threading.Barrier(2)

    def run(retention: Retention) -> dict[str, int]:
        start.wait()
        return retention.run().counts

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(run, runs))
    summed = {kind: sum(r[kind] for r in results) for kind in KINDS}
    assert summed["tickets"] == 12 and summed["chat_messages"] == 24 and summed["conversations"] == 12
    assert summed["transcript_entries"] == 36 and summed["ticket_notes"] == 12
    with Session(engine) as session:
        assert session.execute(select(ChatMessage).where(ChatMessage.text != "")).first() is None
        assert session.execute(select(Ticket).where(Ticket.redacted_at.is_(None))).first() is None


def test_the_daily_run_is_claimed_by_one_server(engine: Engine) -> None:  # noqa: F811
    moment = [NOW]
    servers = [Retention(engine, RetentionSettings(days=365, interval_hours=24), clock=lambda: moment[0])
               for _ in range(2)]
    assert [s.run_if_due() is not None for s in servers] == [True, False]
    moment[0] = NOW + dt.timedelta(hours=23)
    assert servers[1].run_if_due() is None
    moment[0] = NOW + dt.timedelta(hours=24)
    assert servers[1].run_if_due() is not None and servers[0].last_run() == moment[0]
    off = Retention(engine, RetentionSettings(days=365, interval_hours=0), clock=lambda: NOW + dt.timedelta(days=9))
    assert off.run_if_due() is None


def test_the_audit_log_refuses_updates_on_the_database(engine: Engine) -> None:  # noqa: F811
    AuditLog(engine).write("auth.login", "sato", "sato", address="127.0.0.1")
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as connection:
        connection.execute(update(AuditEntry).values(actor="someone else"))
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as connection:
        connection.execute(text("UPDATE audit_log SET action = 'auth.logout'"))
    assert [r.actor for r in AuditLog(engine).page(AuditFilter())[0]] == ["sato"]
    with pytest.raises(ValueError, match="unknown audit action"):
        AuditLog(engine).write("made.up")


def test_store_actions_write_their_audit_lines(engine: Engine, desk: Any, clock: Any) -> None:  # noqa: F811
    agents = AgentDirectory(engine)
    agents.add("sato", "佐藤", "password-1", actor="cli:root")
    agents.add("suzuki", "鈴木", "password-1", actor="cli:root")
    add_agent(engine, "boss", role="supervisor")
    desk.update("suzuki", max_chats=5, role="supervisor", changed_by="sato")
    desk.update("suzuki", status="available")  # an agent's own status: not logged
    desk.update("sato", status="available", changed_by="sato")
    agents.set_password("suzuki", "password-2", actor="cli:root")
    session_info = agents.sessions.start("sato", "192.0.2.1")
    assert session_info is not None
    agents.sessions.end(session_info.session_id, ("sato", "192.0.2.1"))
    queue = Queue(engine)
    ticket_id = file_ticket(queue, "a1")
    queue.claim(ticket_id, "sato")
    escalations = Escalations(queue, desk)
    escalations.transfer(ticket_id, "sato", Transfer("詳しい人へ", agent="suzuki"), str.upper)
    escalations.escalate(ticket_id, "suzuki", "至急", str.upper)
    escalations.whisper(ticket_id, "boss", "ささやきの本文")
    escalations.join(ticket_id, "boss", str.upper)
    queue.resolve(ticket_id, agent="boss")
    with Session(engine) as session, session.begin():
        session.add(UndeliveredHandoff(key="u", kind="refused", reason="r", status="open"))
        session.add(WebhookDelivery(event_id="e", event_type="ticket.created", ticket_id=ticket_id, endpoint="crm",
                                    data={}, status="dead"))
    UndeliveredHandoffs(engine).dismiss(1, "sato")
    WebhookDeliveries(engine).retry(1, "sato")
    agents.remove("suzuki", actor="cli:root")

    lines, total = AuditLog(engine).page(AuditFilter(), limit=100)
    seen = [(line.action, line.actor, line.target) for line in reversed(lines)]
    assert seen == [
        ("agent.created", "cli:root", "sato"), ("agent.created", "cli:root", "suzuki"),
        ("agent.changed", "sato", "suzuki"), ("agent.changed", "sato", "sato"),
        ("auth.password_changed", "cli:root", "suzuki"), ("auth.login", "sato", "sato"), ("auth.logout", "sato", "sato"),
        ("ticket.claimed", "sato", f"ticket:{ticket_id}"), ("ticket.transferred", "sato", f"ticket:{ticket_id}"),
        ("ticket.escalated", "suzuki", f"ticket:{ticket_id}"), ("ticket.whisper", "boss", f"ticket:{ticket_id}"),
        ("ticket.joined", "boss", f"ticket:{ticket_id}"), ("ticket.resolved", "boss", f"ticket:{ticket_id}"),
        ("undelivered.dismissed", "sato", "undelivered:1"), ("webhook.replayed", "sato", "webhook:1"),
        ("agent.removed", "cli:root", "suzuki")]
    assert total == len(seen)
    changed = [line.detail for line in lines if line.action == "agent.changed"]
    assert changed[-1] == {"changes": {"role": ["agent", "supervisor"], "max_chats": [3, 5]}}
    assert changed[0] == {"changes": {"status": ["offline", "available"]}}
    assert all("ささやき" not in str(line.detail) and "至急" not in str(line.detail) for line in lines)  # no content
    assert [line.address for line in lines if line.action.startswith("auth.log")] == ["192.0.2.1"] * 2
    assert set(a for a, _, _ in seen) <= set(ACTIONS)


def test_settings_changes_are_recorded_once(engine: Engine) -> None:  # noqa: F811
    audit = AuditLog(engine)
    first = {"retention_days": 365, "widget_origins": ("https://a.example.jp",)}
    assert audit.record_settings(first) and not audit.record_settings(dict(first))
    assert audit.record_settings({**first, "retention_days": 90})
    lines, _ = audit.page(AuditFilter(action="settings.changed"))
    assert lines[0].detail["changed"] == {"retention_days": [365, 90]} and lines[1].detail["first"] is True
