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

from sqlalchemy import create_engine, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload, sessionmaker

from bot.handoff.masking import mask_sensitive
from bot.store.models import PRIORITY_HIGH, PRIORITY_NORMAL, Ticket, TranscriptEntry, utcnow

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


def _not_found(ticket_id: int) -> QueueError:
    return QueueError(f"チケット {ticket_id} はありません。", status=404)


def make_engine(url: str) -> Engine:
    """Engine for ``url``, migrated to the newest schema (a SQLite file's folder is created)."""
    from bot.store.migrate import upgrade

    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, future=True, pool_pre_ping=True)
    upgrade(engine)
    return engine


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
        with self._sessions() as session:
            rows = session.execute(select(Ticket).where(Ticket.status != "resolved")
                                   .order_by(Ticket.priority, Ticket.created_at, Ticket.id)).scalars()
            return list(rows)

    def claim(self, ticket_id: int, agent: str) -> Ticket:
        """Agent takes a waiting ticket.

        Raises:
            QueueError: 404 unknown ticket; 409 already claimed or resolved.
        """
        with self._sessions() as session, session.begin():
            ticket = self._locked(session, ticket_id)
            if ticket.status != "waiting":
                raise QueueError(f"チケット {ticket_id} は対応待ちではありません（現在: {ticket.status}）。")
            ticket.status, ticket.claimed_by, ticket.claimed_at = "claimed", agent, utcnow()
        return self.get(ticket_id)

    def add_entry(self, ticket_id: int, sender: str, text: str) -> Ticket:
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
                                        text=mask_sensitive(text)))
        return self.get(ticket_id)

    def resolve(self, ticket_id: int) -> Ticket:
        """Close a ticket; the conversation goes back to the bot.

        Raises:
            QueueError: 404 unknown ticket; 409 already resolved.
        """
        with self._sessions() as session, session.begin():
            ticket = self._locked(session, ticket_id)
            if ticket.status == "resolved":
                raise QueueError(f"チケット {ticket_id} はすでに解決済みです。")
            ticket.status, ticket.resolved_at = "resolved", utcnow()
        return self.get(ticket_id)
