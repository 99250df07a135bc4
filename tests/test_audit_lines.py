"""Audit lines of agents' replies, internal notes and take-overs, and of `bot kb export` (#14 item 6).

The store on SQLite and PostgreSQL (127.0.0.1:5432): each reply and note writes exactly one
line, never its text, in the entry's own transaction (when the database refuses the line, the
entry is not stored either); a take-over writes its line with the agent it was taken from.
Through the bot server (SQLite, scripted Rasa): the console's reply, note and take-over write
the lines the admin's 監査ログ lists and exports with Japanese labels. `bot kb export` writes
its line with the command-line actor.
"""

from __future__ import annotations

import csv
import getpass
import io
import json
from pathlib import Path
from typing import Any, Iterator

import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from bot.server.app import Services
from bot.store.audit import AuditFilter, AuditLog
from bot.store.models import TranscriptEntry
from bot.store.queue import Queue, QueueError
from test_desk import database, engine, file_ticket  # noqa: F401 - fixtures
from test_desk_api import admin_and_agent
from test_desk_api import file_ticket as file_ticket_on_server

REPLY = "カード 4111 1111 1111 1111 のご請求の件、承りました"
NOTE = "本人確認済み、前回も同じ件 090-1234-5678"
# Parts of REPLY and NOTE (and of their masked forms) that must never reach the audit log.
CONTENT = ("4111", "1111", "ご請求", "承りました", "本人確認", "前回も同じ件", "090", "5678")

# What refuses every new audit line, to show that an entry and its line are one transaction.
REFUSE_AUDIT = {
    "sqlite": ["CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'no audit'); END"],
    "postgresql": ["CREATE FUNCTION refuse_audit() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'no audit'; END $$ "
                   "LANGUAGE plpgsql",
                   "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION refuse_audit()"],
}
ALLOW_AUDIT = {"sqlite": "DROP TRIGGER refuse_audit", "postgresql": "DROP TRIGGER refuse_audit ON audit_log"}


def audit_rows(engine: Engine, **where: Any) -> list[tuple[str | None, str, str | None]]:  # noqa: F811
    """(actor, action, target) of the matching lines, oldest first."""
    lines, _ = AuditLog(engine).page(AuditFilter(**where), limit=200)
    return [(line.actor, line.action, line.target) for line in reversed(lines)]


def stored_entries(engine: Engine, ticket_id: int) -> list[tuple[str, str]]:  # noqa: F811
    with Session(engine) as session:
        return [(e.sender, e.text) for e in session.execute(
            select(TranscriptEntry).where(TranscriptEntry.ticket_id == ticket_id)
            .order_by(TranscriptEntry.position)).scalars()]


def test_each_reply_and_note_writes_one_line_without_its_text(engine: Engine) -> None:  # noqa: F811
    queue = Queue(engine)
    ticket = file_ticket(queue, "c1")
    queue.claim(ticket, "sato")
    queue.add_entry(ticket, "customer", "まだですか")  # a customer's entry: not an agent's action
    queue.add_entry(ticket, "agent", REPLY, "佐藤", actor="sato")
    queue.add_entry(ticket, "note", NOTE, "佐藤", actor="sato")
    queue.add_entry(ticket, "system", "お客さまが会話を終了しました。")  # nor a system line
    queue.add_entry(ticket, "agent", "ほかにご不明な点はございますか", "佐藤", actor="sato")

    target = f"ticket:{ticket}"
    assert audit_rows(engine) == [("sato", "ticket.claimed", target), ("sato", "ticket.replied", target),
                                  ("sato", "ticket.noted", target), ("sato", "ticket.replied", target)]
    lines, _ = AuditLog(engine).page(AuditFilter(), limit=200)
    assert [line.detail for line in lines if line.action in ("ticket.replied", "ticket.noted")] == [None] * 3
    written = json.dumps([[line.actor, line.target, line.detail, line.address] for line in lines], ensure_ascii=False)
    for content in (*CONTENT, "ご不明"):
        assert content not in written
    assert [sender for sender, _ in stored_entries(engine, ticket)][-4:] == ["agent", "note", "system", "agent"]


def test_a_refused_audit_line_leaves_no_entry_and_a_refused_entry_no_line(engine: Engine,  # noqa: F811
                                                                          database: str) -> None:  # noqa: F811
    queue = Queue(engine)
    ticket = file_ticket(queue, "c1")
    queue.claim(ticket, "sato")
    before = stored_entries(engine, ticket)
    with engine.begin() as connection:
        for statement in REFUSE_AUDIT[database.split(":", 1)[0]]:
            connection.execute(text(statement))
    for sender, words in (("agent", REPLY), ("note", NOTE)):
        with pytest.raises(DBAPIError, match="no audit"):
            queue.add_entry(ticket, sender, words, "佐藤", actor="sato")
    assert stored_entries(engine, ticket) == before
    assert queue.get(ticket, False).entry_count == len(before)
    queue.add_entry(ticket, "customer", "まだですか")  # entries without a line are stored as before
    assert stored_entries(engine, ticket)[-1] == ("customer", "まだですか")

    with engine.begin() as connection:
        connection.execute(text(ALLOW_AUDIT[database.split(":", 1)[0]]))
    queue.resolve(ticket, "resolved", "sato")
    with pytest.raises(QueueError) as refused:
        queue.add_entry(ticket, "note", NOTE, "佐藤", actor="sato")  # resolved: the entry is refused
    assert refused.value.status == 409
    assert [action for _, action, _ in audit_rows(engine)] == ["ticket.claimed", "ticket.resolved"]


def test_a_take_over_writes_its_line_with_the_previous_agent(engine: Engine) -> None:  # noqa: F811
    queue = Queue(engine)
    ticket = file_ticket(queue, "c1")
    queue.claim(ticket, "sato")
    queue.take_over(ticket, "suzuki", "鈴木さんが佐藤さんから対応を引き継ぎました。", "鈴木")

    assert audit_rows(engine, action="ticket.taken_over") == [("suzuki", "ticket.taken_over", f"ticket:{ticket}")]
    [line], _ = AuditLog(engine).page(AuditFilter(action="ticket.taken_over"))
    assert line.detail == {"from": "sato"}


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[tuple[TestClient, TestClient, Services]]:
    with admin_and_agent(tmp_path / "bot.db") as clients:
        yield clients


def test_console_replies_notes_and_take_over_are_listed_and_exported_with_labels(
        server: tuple[TestClient, TestClient, Services]) -> None:
    admin, agent, services = server
    ticket = file_ticket_on_server(services, "c1")
    assert admin.post(f"/api/tickets/{ticket}/claim").status_code == 200
    assert admin.post(f"/api/tickets/{ticket}/reply", json={"text": REPLY}).status_code == 200
    assert admin.post(f"/api/tickets/{ticket}/notes", json={"text": NOTE}).status_code == 200
    assert agent.post(f"/api/tickets/{ticket}/takeover").status_code == 200
    assert agent.post(f"/api/tickets/{ticket}/reply", json={"text": "鈴木が代わってご案内します"}).status_code == 200
    assert agent.post(f"/api/tickets/{ticket}/reply", json={"text": "   "}).status_code == 422  # no entry, no line

    listing = admin.get("/api/admin/audit", params={"limit": 200}).json()
    target = f"ticket:{ticket}"
    ticket_lines = [(e["actor"], e["action"], e["target"], e["action_label"]) for e in reversed(listing["entries"])
                    if e["action"].startswith("ticket.")]
    assert ticket_lines == [("sato", "ticket.claimed", target, "対応開始"),
                            ("sato", "ticket.replied", target, "お客さまへの返信"),
                            ("sato", "ticket.noted", target, "内部メモの追加"),
                            ("suzuki", "ticket.taken_over", target, "引き継ぎ（交代）"),
                            ("suzuki", "ticket.replied", target, "お客さまへの返信")]
    assert listing["actions"]["ticket.replied"] == "お客さまへの返信"  # the console's action filter
    assert listing["actions"]["ticket.noted"] == "内部メモの追加"
    noted = admin.get("/api/admin/audit", params={"action": "ticket.noted"}).json()["entries"]
    assert [(e["actor"], e["target"], e["detail"]) for e in noted] == [("sato", target, {})]
    assert "suzuki" in admin.get("/api/admin/audit", params={"actor": "suzuki", "action": "ticket.replied"}).text

    response = admin.get("/api/admin/audit.csv", params={"action": "ticket.replied"})
    assert response.status_code == 200
    body = response.content.decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(body)))
    assert [row[1:7] for row in rows[1:]] == [["suzuki", "お客さまへの返信", "ticket.replied", target, "", ""],
                                              ["sato", "お客さまへの返信", "ticket.replied", target, "", ""]]
    everything = admin.get("/api/admin/audit.csv").content.decode("utf-8-sig") + json.dumps(listing, ensure_ascii=False)
    for content in (*CONTENT, "代わって"):
        assert content not in everything
    entries = [e.sender for e in services.stores.queue.get(ticket).entries]
    assert entries.count("agent") == 2 and entries.count("note") == 1


def test_bot_kb_export_writes_its_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    from bot.cli import main
    from bot.server.app import stores_for
    from bot.settings import PROJECT_ROOT, get_settings

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    get_settings.cache_clear()
    sheet = tmp_path / "faq.csv"
    try:
        assert main(["kb", "export", str(sheet), "--kb", str(PROJECT_ROOT / "knowledge")]) == 0
        count = int(capsys.readouterr().out.split(" 件の FAQ")[0])
        engine = stores_for(url).engine
        assert audit_rows(engine) == [(f"cli:{getpass.getuser()}", "export.faq", None)]
        [line], _ = AuditLog(engine).page(AuditFilter(action="export.faq"))
        assert line.detail == {"file": str(sheet.resolve()), "entries": count} and count > 0
    finally:
        get_settings.cache_clear()
