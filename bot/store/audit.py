"""The audit log (``audit_log``, migration 0012): who did what and when, for admins.

Actions are written in the transaction of the action itself wherever the action has one
(:func:`record_audit` with the caller's session: ticket steps through
:func:`bot.store.ticket_events.record_event`, agents' replies and internal notes with their
transcript entry (:meth:`bot.store.queue.Queue.add_entry`), agents' changes, webhook replays, login),
so the log never tells of an action that did not happen. Actions without a transaction of
their own (a failed login, a logout, an export) are written on their own
(:meth:`AuditLog.write`).

The table is append-only: no API writes or changes it, and the database refuses any
UPDATE (a trigger); rows are deleted only by retention after their own, longer period
(``BOT_AUDIT_RETENTION_DAYS``, bot/store/retention.py). ``detail`` holds small facts —
changed fields, counts, an export's period — never customer content.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

from sqlalchemy import func, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from bot.store.models import AuditEntry, JobRun, as_utc, utcnow

# Action code -> the label the console and the CSV show.
ACTIONS: dict[str, str] = {
    "auth.login": "ログイン",
    "auth.login_failed": "ログイン失敗",
    "auth.logout": "ログアウト",
    "auth.password_changed": "パスワード変更",
    "agent.created": "担当者の登録",
    "agent.changed": "担当者の設定変更",
    "agent.removed": "担当者の削除",
    "settings.changed": "設定の変更",
    "desk.settings_changed": "対応の設定の変更（コンソール）",
    "export.analytics": "分析の書き出し（CSV）",
    "export.faq": "FAQ の書き出し",
    "export.audit": "監査ログの書き出し（CSV）",
    "ticket.claimed": "対応開始",
    "ticket.taken_over": "引き継ぎ（交代）",
    "ticket.transferred": "転送",
    "ticket.requeued": "待ち行列に戻す",
    "ticket.escalated": "エスカレーション",
    "ticket.auto_escalated": "自動エスカレーション",
    "ticket.joined": "責任者の参加",
    "ticket.whisper": "ささやき",
    "ticket.resolved": "解決",
    "ticket.forwarded": "部署への引き継ぎ",
    "ticket.replied": "お客さまへの返信",
    "ticket.noted": "内部メモの追加",
    "webhook.replayed": "Webhook の再送",
    "mail.retried": "送れなかったメールの再送",
    "undelivered.retried": "配信できなかった引き継ぎの再送",
    "undelivered.dismissed": "配信できなかった引き継ぎの破棄",
    "retention.run": "保存期間を過ぎたデータの削除",
    "data.deleted": "お客さまのデータの削除（依頼による）",
}
# The longest actor, target and address stored (the columns' sizes).
ACTOR_CHARS, TARGET_CHARS, ADDRESS_CHARS = 100, 200, 100
# Rows per page of the admin API, and at most one CSV export.
PAGE = 50
MAX_PAGE = 200
MAX_EXPORT_ROWS = 100_000


def cli_actor() -> str:
    """The actor of a command-line action: ``cli:<the operating-system user>``."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no user name (a container without passwd entry)
        user = "unknown"
    return f"cli:{user}"[:ACTOR_CHARS]


def ticket_target(ticket_id: int) -> str:
    """The ``target`` of a ticket's lines: ``ticket:<id>``."""
    return f"ticket:{ticket_id}"


def record_audit(session: Session, action: str, actor: str | None = None, target: str | None = None,
                 detail: Mapping[str, Any] | None = None, address: str | None = None,
                 at: dt.datetime | None = None) -> None:
    """Add one line to the audit log in the caller's transaction.

    Raises:
        ValueError: An action code not in :data:`ACTIONS` (a programming error).
    """
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}; fix: add it to bot.store.audit.ACTIONS")
    session.add(AuditEntry(at=at or utcnow(), action=action, actor=actor[:ACTOR_CHARS] if actor else None,
                           target=target[:TARGET_CHARS] if target else None,
                           detail=dict(detail) if detail else None,
                           address=address[:ADDRESS_CHARS] if address else None))


@dataclass(frozen=True)
class AuditFilter:
    """What the admin asks for: an actor, an action, a period (``since`` <= at < ``until``)."""

    actor: str | None = None
    action: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None

    def conditions(self) -> list[Any]:
        """The WHERE conditions."""
        found: list[Any] = []
        if self.actor:
            found.append(AuditEntry.actor == self.actor)
        if self.action:
            found.append(AuditEntry.action == self.action)
        if self.since is not None:
            found.append(AuditEntry.at >= self.since)
        if self.until is not None:
            found.append(AuditEntry.at < self.until)
        return found


def entry_json(row: AuditEntry) -> dict[str, Any]:
    """A line as the admin API shows it (text fields as stored; the console renders them as text)."""
    return {"id": row.id, "at": as_utc(row.at).isoformat(), "actor": row.actor, "action": row.action,
            "action_label": ACTIONS.get(str(row.action), str(row.action)), "target": row.target,
            "detail": row.detail or {}, "address": row.address}


class AuditLog:
    """Reads the audit log and writes the lines of actions that have no transaction of their own."""

    def __init__(self, engine: Engine) -> None:
        """Use ``engine`` (migrated)."""
        self._sessions = sessionmaker(bind=engine, future=True, expire_on_commit=False)

    def write(self, action: str, actor: str | None = None, target: str | None = None,
              detail: Mapping[str, Any] | None = None, address: str | None = None) -> None:
        """Write one line in its own transaction (see :func:`record_audit`)."""
        with self._sessions() as session, session.begin():
            record_audit(session, action, actor, target, detail, address)

    def record_settings(self, settings: Mapping[str, Any], actor: str | None = None) -> bool:
        """Write ``settings.changed`` when ``settings`` differ from the last recorded ones.

        Servers starting together take the ``settings`` row of ``job_runs`` first (a row lock
        on PostgreSQL, the write lock on SQLite), so one change is recorded once.

        Returns:
            Whether a line was written.
        """
        now = utcnow()
        with self._sessions() as session, session.begin():
            session.execute(update(JobRun).where(JobRun.name == "settings").values(started_at=now))
            last = session.execute(select(AuditEntry.detail).where(AuditEntry.action == "settings.changed")
                                   .order_by(AuditEntry.id.desc()).limit(1)).scalar_one_or_none()
            before = (last or {}).get("settings") or {}
            current = json.loads(json.dumps(dict(settings)))  # as stored (tuples become lists)
            if before == current:
                return False
            changed = {name: [before.get(name), value] for name, value in current.items() if before.get(name) != value}
            record_audit(session, "settings.changed", actor, None,
                         {"changed": changed, "settings": current, **({} if before else {"first": True})}, at=now)
        return True

    def page(self, where: AuditFilter, limit: int = PAGE, offset: int = 0) -> tuple[list[AuditEntry], int]:
        """The matching lines, newest first, one page, and how many match in all."""
        with self._sessions() as session:
            rows = session.execute(select(AuditEntry).where(*where.conditions())
                                   .order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
                                   .limit(limit).offset(offset)).scalars().all()
            total = session.execute(select(func.count()).select_from(AuditEntry)
                                    .where(*where.conditions())).scalar_one()
        return list(rows), int(total)

    def actors(self) -> list[str]:
        """Everyone who appears in the log (for the console's filter)."""
        with self._sessions() as session:
            return sorted(a for a in session.execute(select(AuditEntry.actor).distinct()).scalars() if a)

    def export(self, where: AuditFilter, limit: int = MAX_EXPORT_ROWS) -> Iterator[AuditEntry]:
        """The matching lines, newest first, read a thousand at a time (a CSV export)."""
        last: tuple[dt.datetime, int] | None = None
        sent = 0
        while sent < limit:
            with self._sessions() as session:
                query = select(AuditEntry).where(*where.conditions())
                if last is not None:
                    query = query.where((AuditEntry.at < last[0]) | ((AuditEntry.at == last[0])
                                                                     & (AuditEntry.id < last[1])))
                rows = session.execute(query.order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
                                       .limit(min(1000, limit - sent))).scalars().all()
            if not rows:
                return
            yield from rows
            sent += len(rows)
            last = (rows[-1].at, rows[-1].id)
