"""Tables of the handoff queue."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, Column, DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import declarative_base, relationship

Base = declarative_base()

PRIORITY_HIGH = 1  # anger, complaint
PRIORITY_NORMAL = 2


def utcnow() -> dt.datetime:
    """Timezone-aware now (stored as UTC)."""
    return dt.datetime.now(dt.timezone.utc)


class Ticket(Base):
    """One handoff of one conversation to a person.

    ``idempotency_key`` is unique: a retried handoff (action server retry, outbox replay)
    finds the ticket it already created instead of making a second one.
    """

    __tablename__ = "tickets"

    id = Column(Integer, primary_key=True)
    idempotency_key = Column(String(200), nullable=False, unique=True)
    conversation_id = Column(String(200), nullable=False, index=True)
    status = Column(String(20), nullable=False, default="waiting", index=True)  # waiting/claimed/resolved
    priority = Column(Integer, nullable=False, default=PRIORITY_NORMAL)
    reasons = Column(JSON, nullable=False, default=list)
    category = Column(String(100))
    summary = Column(Text, nullable=False, default="")
    customer = Column(JSON, nullable=False, default=dict)
    claimed_by = Column(String(100))
    created_at = Column(DateTime(timezone=True), nullable=False, default=utcnow)
    claimed_at = Column(DateTime(timezone=True))
    resolved_at = Column(DateTime(timezone=True))

    entries = relationship("TranscriptEntry", back_populates="ticket", order_by="TranscriptEntry.position",
                           cascade="all, delete-orphan")


class TranscriptEntry(Base):
    """A turn of the conversation: customer, bot, agent reply or internal note."""

    __tablename__ = "transcript_entries"

    id = Column(Integer, primary_key=True)
    ticket_id = Column(Integer, ForeignKey("tickets.id", ondelete="CASCADE"), nullable=False, index=True)
    position = Column(Integer, nullable=False)
    sender = Column(String(20), nullable=False)  # customer / bot / agent / note
    text = Column(Text, nullable=False)
    intent = Column(String(100))
    confidence = Column(JSON)
    at = Column(DateTime(timezone=True), nullable=False, default=utcnow)

    ticket = relationship("Ticket", back_populates="entries")
