"""Tables of the handoff queue."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, Boolean, Column, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import declarative_base, relationship

Base = declarative_base()

PRIORITY_HIGH = 1  # anger, complaint
PRIORITY_NORMAL = 2


def utcnow() -> dt.datetime:
    """Timezone-aware now (stored as UTC)."""
    return dt.datetime.now(dt.timezone.utc)


def as_utc(moment: dt.datetime) -> dt.datetime:
    """SQLite returns naive datetimes for stored UTC values; make them aware."""
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


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
    # Filed outside staffed hours: nobody answers live, the customer left contact details.
    offline = Column(Boolean, nullable=False, default=False)
    resolution = Column(String(20))  # resolved (by an agent) / cancelled (by the customer)
    # Set once the bot server has told the consoles about the ticket (see TicketWatcher):
    # tickets filed while the bot server was down are announced when it is back.
    announced_at = Column(DateTime(timezone=True), index=True)

    # (position, id): two entries written at the same moment on SQLite may share a position.
    entries = relationship("TranscriptEntry", back_populates="ticket",
                           order_by="(TranscriptEntry.position, TranscriptEntry.id)",
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
    author = Column(String(100))  # the agent's display name on agent replies and notes

    ticket = relationship("Ticket", back_populates="entries")


class ChatMessage(Base):
    """One message of a widget conversation, as the customer saw it (history, analytics).

    ``client_id`` is the id the widget gave a customer message; it is unique per
    conversation, so a resend after a reconnect or a double click is stored once.
    """

    __tablename__ = "chat_messages"
    __table_args__ = (UniqueConstraint("conversation_id", "client_id", name="uq_chat_client_id"),)

    id = Column(Integer, primary_key=True)
    conversation_id = Column(String(200), nullable=False, index=True)
    sender = Column(String(20), nullable=False)  # customer / bot / agent / system
    text = Column(Text, nullable=False)
    buttons = Column(JSON, nullable=False, default=list)
    intent = Column(String(100))
    confidence = Column(JSON)
    faq_id = Column(String(100), index=True)
    route = Column(String(20))
    agent_name = Column(String(100))
    client_id = Column(String(100))
    feedback = Column(Boolean)  # 役に立ちましたか？ はい (True) / いいえ (False) on FAQ answers
    # Customer messages: set once routed (bot replied, or added to the ticket). A resend of a
    # message stored but never routed (the server died in between) is routed again.
    routed_at = Column(DateTime(timezone=True))
    created_at = Column(DateTime(timezone=True), nullable=False, default=utcnow, index=True)


class Agent(Base):
    """A support agent who can log in to the console (password stored as a bcrypt hash)."""

    __tablename__ = "agents"

    id = Column(Integer, primary_key=True)
    username = Column(String(100), nullable=False, unique=True)
    display_name = Column(String(100), nullable=False)
    password_hash = Column(String(200), nullable=False)
    created_at = Column(DateTime(timezone=True), nullable=False, default=utcnow)


class Conversation(Base):
    """A widget conversation: when it started and what the customer told the widget."""

    __tablename__ = "conversations"

    id = Column(String(200), primary_key=True)
    customer = Column(JSON, nullable=False, default=dict)  # name / email / page_url, masked
    created_at = Column(DateTime(timezone=True), nullable=False, default=utcnow, index=True)
