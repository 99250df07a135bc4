"""Handoff queue operations: idempotent enqueue, listing by priority and age, state changes.

Every text is masked (card numbers, マイナンバー; see bot/handoff/masking.py) before it is
written. State changes check the current state and raise :class:`QueueError` with a
message for the API to return as 4xx; nothing is written when they fail.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload, sessionmaker

from bot.handoff.masking import mask_sensitive
from bot.store.models import PRIORITY_HIGH, PRIORITY_NORMAL, Ticket, TranscriptEntry, as_utc, utcnow

HIGH_PRIORITY_REASONS = {"anger", "complaint"}


class QueueError(ValueError):
    """A request the queue refuses; ``status`` is the HTTP status an API should answer."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Turn:
    """One transcript turn as the action server sends it."""

    sender: str
    text: str
    intent: str | None = None
    confidence: float | None = None
    at: float | None = None  # UNIX time of the turn


@dataclass(frozen=True)
class HandoffPacket:
    """Everything an agent needs, so the customer never repeats themselves."""

    idempotency_key: str
    conversation_id: str
    reasons: list[str]
    transcript: list[Turn]
    summary: str = ""
    category: str | None = None
    customer: dict[str, Any] = field(default_factory=dict)
    offline: bool = False  # filed outside staffed hours


def _not_found(ticket_id: int) -> QueueError:
    return QueueError(f"チケット {ticket_id} はありません。", status=404)


def make_engine(url: str) -> Engine:
    """Engine for ``url``, migrated to the newest schema (a SQLite file's folder is created)."""
    from bot.store.migrate import upgrade

    if not url.startswith("sqlite"):
        engine = create_engine(url, future=True, pool_pre_ping=True)
    else:
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        # The action server and the bot server write the same file: wait for the other's
        # lock instead of failing at once, and let readers work during a write (WAL).
        engine = create_engine(url, future=True, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
    upgrade(engine)
    return engine


def _sqlite_pragmas(connection: Any, record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class Queue:
    """The handoff queue on one database."""

    def __init__(self, engine: Engine) -> None:
        """Use ``engine`` (see :func:`make_engine`)."""
        self._sessions = sessionmaker(engine, expire_on_commit=False, future=True)

    def enqueue(self, packet: HandoffPacket) -> tuple[Ticket, bool]:
        """Create the ticket for ``packet`` once.

        Returns:
            The ticket and whether it was created now (``False``: a retry of a known key).
        """
        ticket = Ticket(
            idempotency_key=packet.idempotency_key,
            conversation_id=packet.conversation_id,
            priority=PRIORITY_HIGH if HIGH_PRIORITY_REASONS & set(packet.reasons) else PRIORITY_NORMAL,
            reasons=list(packet.reasons),
            category=packet.category,
            summary=mask_sensitive(packet.summary),
            customer={k: mask_sensitive(str(v)) for k, v in packet.customer.items()},
            offline=packet.offline,
            entries=[TranscriptEntry(position=i, sender=t.sender, text=mask_sensitive(t.text), intent=t.intent,
                                     confidence=t.confidence,
                                     at=dt.datetime.fromtimestamp(t.at, dt.timezone.utc) if t.at else utcnow())
                     for i, t in enumerate(packet.transcript)],
        )
        with self._sessions() as session:
            session.add(ticket)
            try:
                session.commit()
                return self._load(session, ticket.id), True
            except IntegrityError:
                session.rollback()
        with self._sessions() as session:
            existing = session.execute(select(Ticket.id).where(
                Ticket.idempotency_key == packet.idempotency_key)).scalar_one()
            return self._load(session, existing), False

    @staticmethod
    def _load(session: Session, ticket_id: int) -> Ticket:
        ticket = session.execute(select(Ticket).options(selectinload(Ticket.entries))
                                 .where(Ticket.id == ticket_id)).scalar_one_or_none()
        if ticket is None:
            raise _not_found(ticket_id)
        return ticket

    @staticmethod
    def _locked(session: Session, ticket_id: int) -> Ticket:
        """The ticket, row-locked for a state change (PostgreSQL; SQLite serialises writes)."""
        ticket = session.get(Ticket, ticket_id, with_for_update=True)
        if ticket is None:
            raise _not_found(ticket_id)
        return ticket

    def get(self, ticket_id: int) -> Ticket:
        """The ticket with its transcript.

        Raises:
            QueueError: 404 when it does not exist.
        """
        with self._sessions() as session:
            return self._load(session, ticket_id)

    def position(self, ticket_id: int) -> int:
        """1-based place of a waiting ticket in the queue (0 when it is no longer waiting)."""
        waiting = [t.id for t in self.open_tickets() if t.status == "waiting"]
        return waiting.index(ticket_id) + 1 if ticket_id in waiting else 0

    def open_tickets(self) -> list[Ticket]:
        """Waiting and claimed tickets, high priority first, then oldest first."""
        return self.tickets("open")

    def tickets(self, status: str = "open", limit: int = 200) -> list[Ticket]:
        """Tickets by status (``open``: waiting and claimed, by priority then age;
        ``resolved`` / ``all``: newest first).

        Raises:
            QueueError: 422 for an unknown status.
        """
        query = select(Ticket)
        if status == "open":
            query = query.where(Ticket.status != "resolved").order_by(Ticket.priority, Ticket.created_at,
                                                                      Ticket.id)
        elif status in ("resolved", "all"):
            if status == "resolved":
                query = query.where(Ticket.status == "resolved")
            query = query.order_by(Ticket.id.desc()).limit(limit)
        else:
            raise QueueError(f"status={status!r} は使えません。open / resolved / all のいずれかを指定してください。",
                             status=422)
        with self._sessions() as session:
            return list(session.execute(query).scalars())

    def unannounced(self, limit: int = 500) -> list[Ticket]:
        """Tickets the consoles have not been told about yet, oldest first.

        A flag rather than an id watermark: on PostgreSQL ids become visible in commit
        order, not id order, and tickets filed while the bot server was down must not be
        skipped when it starts again.
        """
        with self._sessions() as session:
            return list(session.execute(select(Ticket).where(Ticket.announced_at.is_(None))
                                        .order_by(Ticket.id).limit(limit)).scalars())

    def mark_announced(self, ticket_id: int) -> bool:
        """Record that the consoles were told; False if another server did it first."""
        with self._sessions() as session, session.begin():
            result = session.execute(update(Ticket).where(Ticket.id == ticket_id, Ticket.announced_at.is_(None))
                                     .values(announced_at=utcnow()))
            return bool(result.rowcount)

    def open_ticket_for(self, conversation_id: str) -> Ticket | None:
        """The conversation's unresolved ticket, if a person owns it now."""
        with self._sessions() as session:
            ticket_id = session.execute(select(Ticket.id).where(Ticket.conversation_id == conversation_id,
                                                                Ticket.status != "resolved",
                                                                Ticket.offline.is_(False))
                                        .order_by(Ticket.id.desc()).limit(1)).scalar()
            return self._load(session, ticket_id) if ticket_id else None

    def typical_wait(self, default: dt.timedelta = dt.timedelta(minutes=5),
                     sample: int = 50) -> dt.timedelta:
        """Median time from handoff to claim over the latest ``sample`` claimed tickets."""
        with self._sessions() as session:
            rows = session.execute(select(Ticket.created_at, Ticket.claimed_at)
                                   .where(Ticket.claimed_at.is_not(None))
                                   .order_by(Ticket.id.desc()).limit(sample)).all()
        waits = sorted(as_utc(claimed) - as_utc(created) for created, claimed in rows)
        return waits[len(waits) // 2] if waits else default

    def claim(self, ticket_id: int, agent: str) -> Ticket:
        """Agent takes a waiting ticket.

        Raises:
            QueueError: 404 unknown ticket; 409 already claimed or resolved.
        """
        with self._sessions() as session, session.begin():
            ticket = self._locked(session, ticket_id)
            if ticket.status != "waiting":
                raise QueueError(f"チケット {ticket_id} は対応待ちではありません（現在: {ticket.status}）。")
            self._transition(session, ticket_id, ("waiting",), status="claimed", claimed_by=agent,
                             claimed_at=utcnow())
        return self.get(ticket_id)

    @staticmethod
    def _transition(session: Session, ticket_id: int, expected: tuple[str, ...], **values: Any) -> None:
        """UPDATE only if the status is still one of ``expected``.

        The check before it gives the precise error; this conditional UPDATE makes the
        change atomic where ``SELECT ... FOR UPDATE`` locks nothing (SQLite), so two agents
        can never both claim a ticket, nor a cancel and a claim both succeed.
        """
        result = session.execute(update(Ticket).where(Ticket.id == ticket_id, Ticket.status.in_(expected))
                                 .values(**values).execution_options(synchronize_session=False))
        if result.rowcount != 1:
            raise QueueError(f"チケット {ticket_id} は別の操作で更新されました。画面を更新してください。")

    def add_entry(self, ticket_id: int, sender: str, text: str, author: str | None = None) -> Ticket:
        """Append an agent reply, an internal note or a customer message (masked).

        Raises:
            QueueError: 404 unknown ticket; 409 resolved ticket; 422 empty text.
        """
        if not text.strip():
            raise QueueError("メッセージが空です。", status=422)
        with self._sessions() as session, session.begin():
            ticket = self._locked(session, ticket_id)
            if ticket.status == "resolved":
                raise QueueError(f"チケット {ticket_id} は解決済みです。")
            position = len(ticket.entries)
            session.add(TranscriptEntry(ticket_id=ticket_id, position=position, sender=sender,
                                        text=mask_sensitive(text), author=author))
        return self.get(ticket_id)

    def resolve(self, ticket_id: int, resolution: str = "resolved") -> Ticket:
        """Close a ticket; the conversation goes back to the bot.

        Args:
            ticket_id: The ticket.
            resolution: ``resolved`` (an agent closed it) or ``cancelled`` (the customer
                stopped waiting; only while nobody has claimed it).

        Raises:
            QueueError: 404 unknown ticket; 409 already resolved, or cancelling a claimed ticket.
        """
        with self._sessions() as session, session.begin():
            ticket = self._locked(session, ticket_id)
            if ticket.status == "resolved":
                raise QueueError(f"チケット {ticket_id} はすでに解決済みです。")
            if resolution == "cancelled" and ticket.status != "waiting":
                raise QueueError("担当者がすでに対応を始めています。")
            expected = ("waiting",) if resolution == "cancelled" else ("waiting", "claimed")
            self._transition(session, ticket_id, expected, status="resolved", resolved_at=utcnow(),
                             resolution=resolution)
        return self.get(ticket_id)

    def set_contact(self, ticket_id: int, contact: dict[str, str]) -> Ticket:
        """Add the contact details a customer left (offline ticket), masked.

        Raises:
            QueueError: 404 unknown ticket; 409 resolved ticket.
        """
        with self._sessions() as session, session.begin():
            ticket = self._locked(session, ticket_id)
            if ticket.status == "resolved":
                raise QueueError(f"チケット {ticket_id} は解決済みです。")
            ticket.customer = {**(ticket.customer or {}),
                               **{k: mask_sensitive(v) for k, v in contact.items() if v}}
        return self.get(ticket_id)

    def latest_for(self, conversation_id: str) -> Ticket | None:
        """The conversation's newest ticket of any status."""
        with self._sessions() as session:
            ticket_id = session.execute(select(Ticket.id).where(Ticket.conversation_id == conversation_id)
                                        .order_by(Ticket.id.desc()).limit(1)).scalar()
            return self._load(session, ticket_id) if ticket_id else None

