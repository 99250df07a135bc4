"""Retention (#14 item 5): conversation content is removed after ``BOT_RETENTION_DAYS``.

What goes, per kind (:data:`KINDS`), when older than the period:

- resolved tickets: summary and customer details emptied, every transcript entry's text
  (customer, bot, agent, internal notes) emptied, transfer / escalation notes and whispers
  removed; the row, its times, agents, reasons and category stay (analytics: handoffs,
  first response and handling times, CSAT per agent);
- chat messages: text and buttons emptied; intent, route, FAQ and 「はい / いいえ」 stay
  (analytics: volumes, intents, feedback, fallback rate);
- conversations: the customer's details (name, e-mail, page) and the address key emptied;
- CSAT: the comment removed, the rating kept;
- transcript mails (the customer's e-mail address), handled undelivered packets and sent or
  dead webhook deliveries (their payload): deleted;
- the audit log: deleted after its own, longer period (``BOT_AUDIT_RETENTION_DAYS``);
- Rasa's tracker store (bot/store/rasa_trackers.py): every event of a conversation whose
  last event is older than the period is deleted (Rasa then starts it afresh).

Open tickets are never touched, nor the chat messages, details and Rasa events of a
conversation that has one (nor the Rasa events of one waiting for its ticket: a pending
handoff). Work is done in batches of :data:`BATCH` rows (Rasa: conversations), one short
transaction each; every UPDATE or DELETE repeats its condition, so two runs at once (two
bot servers, or a server and ``bot retention run``) never count a row twice and end in the
same state. The daily run is claimed by one server at a time with a conditional UPDATE of
``job_runs``. Each run is written to the audit log with its counts (never the content).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from sqlalchemy import and_, delete, exists, func, or_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from bot.settings import RetentionSettings
from bot.store.audit import record_audit
from bot.store.models import (AuditEntry, ChatMessage, Conversation, CsatRating, JobRun, PendingHandoff, Ticket,
                              TicketEvent, TranscriptEntry, TranscriptMail, UndeliveredHandoff, WebhookDelivery, as_utc,
                              utcnow)
from bot.store.rasa_trackers import RasaTrackers, count_events, delete_expired, expired_conversations

BATCH = 500
JOB = "retention"

# Kind -> what `bot retention run` prints (Japanese).
KINDS: dict[str, str] = {
    "tickets": "解決済みのお問い合わせ（要約・お客さまの連絡先）",
    "transcript_entries": "お問い合わせの記録（発言・内部メモ）",
    "ticket_notes": "転送・エスカレーションのメモとささやき",
    "chat_messages": "チャットの発言",
    "conversations": "会話のお客さま情報（名前・メールアドレス・ページ）",
    "csat_comments": "満足度アンケートのコメント（評価は残ります）",
    "transcript_mails": "会話記録のメール（宛先）",
    "undelivered_handoffs": "配信できなかった引き継ぎ（対応済みのもの）",
    "webhook_deliveries": "Webhook の配信（送信済み・配信不能、送った内容）",
    "rasa_events": "Rasa の会話の記録（最後の発言が保存期間より前の会話）",
    "audit_log": "監査ログ",
}


@dataclass
class RetentionResult:
    """What a run removed (or, dry, would remove): rows per kind of :data:`KINDS`."""

    dry_run: bool
    cutoff: dt.datetime | None  # content older than this; None: kept forever
    audit_cutoff: dt.datetime | None
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """Rows in all."""
        return sum(self.counts.values())

    def lines(self) -> list[str]:
        """The run in Japanese, one line per kind (for `bot retention run`)."""
        def when(moment: dt.datetime | None) -> str:
            jst = dt.timezone(dt.timedelta(hours=9))
            return "無期限に保存（削除しません）" if moment is None else f"{moment.astimezone(jst):%Y-%m-%d %H:%M} より前"

        head = "削除の対象（--dry-run: まだ何も削除していません）" if self.dry_run else "削除しました"
        lines = [f"会話の内容: {when(self.cutoff)}、監査ログ: {when(self.audit_cutoff)}", f"{head}:"]
        lines += [f"  {label}: {self.counts.get(kind, 0)} 件" for kind, label in KINDS.items()]
        lines.append(f"合計 {self.total} 件。")
        return lines


def _open_ticket_of(conversation_id: Any) -> Any:
    return exists().where(Ticket.conversation_id == conversation_id, Ticket.status != "resolved")


@dataclass(frozen=True)
class _Step:
    """One kind of rows: which are expired, and what is done to a batch of their ids."""

    kind: str
    id_column: Any
    expired: Callable[[dt.datetime], Any]
    apply: Callable[[Session, Sequence[Any], dt.datetime, dt.datetime], dict[str, int]]
    audit: bool = False  # the audit log's own period

    def count(self, session: Session, cutoff: dt.datetime) -> dict[str, int]:
        return {self.kind: int(session.execute(select(func.count()).select_from(self.id_column.class_)
                                               .where(self.expired(cutoff))).scalar_one())}


def _rowcount(session: Session, statement: Any) -> int:
    return int(session.execute(statement.execution_options(synchronize_session=False)).rowcount or 0)


def _ticket_expired(cutoff: dt.datetime) -> Any:
    return and_(Ticket.status == "resolved", Ticket.resolved_at < cutoff, Ticket.redacted_at.is_(None))


def _redact_tickets(session: Session, ids: Sequence[Any], cutoff: dt.datetime, now: dt.datetime) -> dict[str, int]:
    tickets = _rowcount(session, update(Ticket).where(Ticket.id.in_(ids), _ticket_expired(cutoff))
                        .values(summary="", customer={}, redacted_at=now))
    # A resolved ticket never opens again: the entries of the batch's tickets may be emptied
    # even when another run redacted the ticket meanwhile (then there is nothing left to empty).
    entries = _rowcount(session, update(TranscriptEntry).where(TranscriptEntry.ticket_id.in_(ids),
                                                               TranscriptEntry.text != "").values(text=""))
    notes = _rowcount(session, update(TicketEvent).where(TicketEvent.ticket_id.in_(ids), TicketEvent.note.is_not(None))
                      .values(note=None))
    return {"tickets": tickets, "transcript_entries": entries, "ticket_notes": notes}


def _count_tickets(session: Session, cutoff: dt.datetime) -> dict[str, int]:
    expired = select(Ticket.id).where(_ticket_expired(cutoff))

    def count(statement: Any) -> int:
        return int(session.execute(statement).scalar_one())

    return {"tickets": count(select(func.count()).select_from(Ticket).where(_ticket_expired(cutoff))),
            "transcript_entries": count(select(func.count()).select_from(TranscriptEntry).where(
                TranscriptEntry.ticket_id.in_(expired), TranscriptEntry.text != "")),
            "ticket_notes": count(select(func.count()).select_from(TicketEvent).where(
                TicketEvent.ticket_id.in_(expired), TicketEvent.note.is_not(None)))}


def _chat_expired(cutoff: dt.datetime) -> Any:
    return and_(ChatMessage.created_at < cutoff, ChatMessage.redacted_at.is_(None),
                ~_open_ticket_of(ChatMessage.conversation_id))


def _conversation_expired(cutoff: dt.datetime) -> Any:
    return and_(func.coalesce(Conversation.last_active_at, Conversation.created_at) < cutoff,
                Conversation.redacted_at.is_(None), ~_open_ticket_of(Conversation.id))


def _updating(kind: str, model: Any, expired: Callable[[dt.datetime], Any],
              values: Callable[[dt.datetime], dict[str, Any]]) -> _Step:
    def apply(session: Session, ids: Sequence[Any], cutoff: dt.datetime, now: dt.datetime) -> dict[str, int]:
        return {kind: _rowcount(session, update(model).where(model.id.in_(ids), expired(cutoff)).values(**values(now)))}

    return _Step(kind, model.id, expired, apply)


def _deleting(kind: str, model: Any, expired: Callable[[dt.datetime], Any], audit: bool = False) -> _Step:
    def apply(session: Session, ids: Sequence[Any], cutoff: dt.datetime, now: dt.datetime) -> dict[str, int]:
        return {kind: _rowcount(session, delete(model).where(model.id.in_(ids), expired(cutoff)))}

    return _Step(kind, model.id, expired, apply, audit)


STEPS: tuple[_Step, ...] = (
    _Step("tickets", Ticket.id, _ticket_expired, _redact_tickets),
    _updating("chat_messages", ChatMessage, _chat_expired,
              lambda now: {"text": "", "buttons": [], "redacted_at": now}),
    _updating("conversations", Conversation, _conversation_expired,
              lambda now: {"customer": {}, "address_key": None, "redacted_at": now,
                           "ended_at": func.coalesce(Conversation.ended_at, now)}),
    _updating("csat_comments", CsatRating,
              lambda cutoff: and_(CsatRating.created_at < cutoff, CsatRating.comment.is_not(None)),
              lambda now: {"comment": None}),
    _deleting("transcript_mails", TranscriptMail,
              lambda cutoff: and_(TranscriptMail.created_at < cutoff, TranscriptMail.status.in_(("sent", "failed")))),
    _deleting("undelivered_handoffs", UndeliveredHandoff,
              lambda cutoff: and_(UndeliveredHandoff.set_aside_at < cutoff, UndeliveredHandoff.status != "open")),
    _deleting("webhook_deliveries", WebhookDelivery,
              lambda cutoff: and_(WebhookDelivery.occurred_at < cutoff,
                                  WebhookDelivery.status.in_(("delivered", "dead")))),
    _deleting("audit_log", AuditEntry, lambda cutoff: AuditEntry.at < cutoff, audit=True),
)


class Retention:
    """Removes what is older than the retention periods (see the module's docstring)."""

    def __init__(self, engine: Engine, settings: RetentionSettings, batch: int = BATCH,
                 clock: Callable[[], dt.datetime] = utcnow, trackers: RasaTrackers | None = None) -> None:
        """Use ``engine`` (migrated) with the periods of ``settings``; ``batch`` rows per transaction.

        ``trackers``: Rasa's tracker store (default: the one `bot run` configures for ``engine``;
        bot/store/rasa_trackers.py); ``batch`` conversations per transaction there.
        """
        self._sessions = sessionmaker(bind=engine, future=True, expire_on_commit=False)
        self.trackers = trackers if trackers is not None else RasaTrackers.for_engine(engine)
        self.settings = settings
        self.batch = batch
        self.clock = clock
        self.batches = 0  # transactions that changed something (tests check the batching)

    def cutoffs(self, now: dt.datetime) -> tuple[dt.datetime | None, dt.datetime | None]:
        """(content, audit log) cutoffs at ``now``; ``None`` where kept forever."""
        days, audit_days = self.settings.days, self.settings.audit_days
        return (now - dt.timedelta(days=days) if days else None,
                now - dt.timedelta(days=audit_days) if audit_days else None)

    def run(self, dry_run: bool = False, actor: str | None = None, address: str | None = None) -> RetentionResult:
        """Remove (``dry_run``: count) what is due; a real run is written to the audit log.

        Args:
            dry_run: Only count; nothing is changed and nothing is logged.
            actor: Who started it (``None``: a bot server's daily run).
            address: The client address of an admin who started it from the API.
        """
        now = self.clock()
        cutoff, audit_cutoff = self.cutoffs(now)
        result = RetentionResult(dry_run, cutoff, audit_cutoff, {kind: 0 for kind in KINDS})
        for step in STEPS:
            moment = audit_cutoff if step.audit else cutoff
            if moment is None:
                continue
            counts = self._count(step, moment) if dry_run else self._purge(step, moment, now)
            for kind, count in counts.items():
                result.counts[kind] += count
        if cutoff is not None:
            result.counts["rasa_events"] = self._trackers(cutoff, dry_run)
        if not dry_run:
            with self._sessions() as session, session.begin():
                record_audit(session, "retention.run", actor, None,
                             {"counts": {k: v for k, v in result.counts.items() if v},
                              "days": self.settings.days, "audit_days": self.settings.audit_days}, address)
        return result

    def _count(self, step: _Step, cutoff: dt.datetime) -> dict[str, int]:
        with self._sessions() as session:
            return _count_tickets(session, cutoff) if step.kind == "tickets" else step.count(session, cutoff)

    def _purge(self, step: _Step, cutoff: dt.datetime, now: dt.datetime) -> dict[str, int]:
        """Batches until no expired row is left; each batch one transaction."""
        totals: dict[str, int] = {}
        while True:
            with self._sessions() as session, session.begin():
                ids = session.execute(select(step.id_column).where(step.expired(cutoff))
                                      .order_by(step.id_column).limit(self.batch)).scalars().all()
                if not ids:
                    return totals
                counts = step.apply(session, ids, cutoff, now)
            self.batches += 1
            for kind, count in counts.items():
                totals[kind] = totals.get(kind, 0) + count

    def _in_progress(self) -> set[str]:
        """Conversations with an open ticket or a pending handoff: their Rasa events stay."""
        with self._sessions() as session:
            open_ones = session.execute(select(Ticket.conversation_id).where(Ticket.status != "resolved")).scalars()
            pending = session.execute(select(PendingHandoff.conversation_id)).scalars()
            return {*open_ones, *pending}

    def _trackers(self, cutoff: dt.datetime, dry_run: bool) -> int:
        """Events of Rasa's tracker store removed (``dry_run``: to be removed), a batch per transaction."""
        with self.trackers.begin() as connection:
            expired = expired_conversations(connection, cutoff, self._in_progress())
            if dry_run:
                return count_events(connection, expired)
        total = 0
        for start in range(0, len(expired), self.batch):
            with self.trackers.begin() as connection:
                total += delete_expired(connection, expired[start:start + self.batch], cutoff)
            self.batches += 1
        return total

    def claim(self, every: dt.timedelta) -> bool:
        """Whether this server runs the job now: it last started ``every`` ago or more (one
        conditional UPDATE, so of several servers asking at once one gets it)."""
        now = self.clock()
        with self._sessions() as session, session.begin():
            return _rowcount(session, update(JobRun).where(JobRun.name == JOB, or_(
                JobRun.started_at.is_(None), JobRun.started_at <= now - every)).values(started_at=now)) == 1

    def last_run(self) -> dt.datetime | None:
        """When the daily job last started (any server)."""
        with self._sessions() as session:
            moment = session.execute(select(JobRun.started_at).where(JobRun.name == JOB)).scalar_one_or_none()
        return as_utc(moment) if moment is not None else None

    def run_if_due(self) -> RetentionResult | None:
        """The background job: run when the interval has passed and no other server took it."""
        hours = self.settings.interval_hours
        if not hours or not (self.settings.days or self.settings.audit_days):
            return None
        if not self.claim(dt.timedelta(hours=hours)):
            return None
        return self.run()
