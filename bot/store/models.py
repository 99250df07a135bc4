"""Tables of the handoff queue."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, Boolean, Column, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import declarative_base, relationship

Base = declarative_base()

PRIORITY_ESCALATED = 0  # escalated to supervisors (bot/store/escalation.py): before everything else
PRIORITY_HIGH = 1  # anger, complaint (bot/handoff/reasons.py HIGH_PRIORITY_REASONS, and only those)
PRIORITY_NORMAL = 2
# Resolution of a ticket refused because its customer has too many open ones (Limits).
RESOLUTION_LIMITED = "limited"


def utcnow() -> dt.datetime:
    """Timezone-aware now (stored as UTC)."""
    return dt.datetime.now(dt.timezone.utc)


def as_utc(moment: dt.datetime) -> dt.datetime:
    """SQLite returns naive datetimes for stored UTC values; make them aware."""
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


class Ticket(Base):
    """One handoff of one conversation to a person.

    ``idempotency_key`` is unique: a retried handoff (action server retry, outbox replay)
    finds the ticket it already created instead of making a second one. A later handoff of the
    conversation while this ticket is open joins it (its key kept in ``handoff_keys``).
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
    resolved_at = Column(DateTime(timezone=True), index=True)
    # Filed outside staffed hours: nobody answers live, the customer left contact details.
    offline = Column(Boolean, nullable=False, default=False)
    # resolved (by an agent) / cancelled (by the customer) / limited (refused: too many open tickets)
    resolution = Column(String(20))
    resolved_by = Column(String(100))  # the agent who resolved it
    # Set once the bot server has told the consoles about the ticket (see TicketWatcher):
    # tickets filed while the bot server was down are announced when it is back.
    announced_at = Column(DateTime(timezone=True), index=True)
    # Set when a bot server starts telling the consoles; announced_at is set only once they
    # were told. A server that died in between leaves this older than the lease, and the
    # ticket is announced again (Queue.claim_announcement).
    announce_claimed_at = Column(DateTime(timezone=True))
    # Entries so far, i.e. the next entry's position: appending needs neither a count nor
    # the entries themselves (the row is locked while it grows).
    entry_count = Column(Integer, nullable=False, default=0, server_default="0")
    # Assignment (bot/store/desk.py): the agent a waiting ticket is offered to and since when;
    # the agents who let it go (declined or timed out), skipped by the next offers.
    offered_to = Column(String(100), index=True)
    offered_at = Column(DateTime(timezone=True))
    offer_skipped = Column(JSON)
    # Claimed tickets: since when the customer waits for the agent's reply (set at the claim
    # and by a customer message, cleared by the agent's reply); the console flags it late.
    awaiting_reply_since = Column(DateTime(timezone=True))
    # Escalation (bot/store/escalation.py, migration 0011): ``requested`` (supervisors are
    # asked; the agent stays in the chat) or ``joined`` (a supervisor took the chat), when,
    # by whom (``None``: automatically) and the supervisor who joined.
    escalation = Column(String(20), index=True)
    escalated_at = Column(DateTime(timezone=True))
    escalated_by = Column(String(100))
    joined_by = Column(String(100))
    # Retention (bot/store/retention.py, migration 0012): when the transcript, summary and
    # customer details were removed; the row stays for the analytics counts.
    redacted_at = Column(DateTime(timezone=True))
    # One open ticket per conversation and kind (Queue.enqueue, migration 0013): the idempotency
    # keys of later handoffs of the conversation that joined this ticket instead of opening another.
    handoff_keys = Column(JSON)

    # (position, id): two entries written at the same moment on SQLite may share a position.
    entries = relationship("TranscriptEntry", back_populates="ticket",
                           order_by="(TranscriptEntry.position, TranscriptEntry.id)",
                           cascade="all, delete-orphan")


class TranscriptEntry(Base):
    """A turn of the conversation: customer, bot, agent reply or internal note."""

    __tablename__ = "transcript_entries"
    __table_args__ = (Index("ix_transcript_entries_ticket_position", "ticket_id", "position", "id"),)

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


class TicketEvent(Base):
    """One step of a ticket's handling, for its history: who, when, what and why.

    ``kind``: claimed, taken_over, transferred (to ``target``, an agent), requeued (back to
    the queue; ``target``: the category, if one was chosen), escalated, auto_escalated,
    joined (a supervisor), whisper (a supervisor's ささやき to ``target``, the agent; never
    shown to the customer), resolved, cancelled. ``actor`` is a user name (``None``: the
    system); ``note`` the internal reason or the whisper, as written (rendered as text only).
    """

    __tablename__ = "ticket_events"
    __table_args__ = (Index("ix_ticket_events_ticket", "ticket_id", "id"),)

    id = Column(Integer, primary_key=True)
    ticket_id = Column(Integer, ForeignKey("tickets.id", ondelete="CASCADE"), nullable=False)
    kind = Column(String(30), nullable=False)
    actor = Column(String(100))
    target = Column(String(100))
    note = Column(Text)
    at = Column(DateTime(timezone=True), nullable=False, default=utcnow)


class PendingHandoff(Base):
    """A handoff the customer was told about whose ticket has not arrived yet.

    The action server kept the packet in its outbox (database unreachable). Kept here,
    not in a bot server's memory, so a restart or another bot server still knows the
    conversation waits for a person: its messages are kept for the ticket instead of
    going to Rasa (which would file a second ticket).
    """

    __tablename__ = "pending_handoffs"

    conversation_id = Column(String(200), primary_key=True)
    message_id = Column(Integer, nullable=False)  # the chat message of the handoff reply
    since = Column(DateTime(timezone=True), nullable=False, default=utcnow)
    # The customer stopped waiting (or ended the conversation): the ticket is cancelled on arrival.
    cancelled_at = Column(DateTime(timezone=True))


class UndeliveredHandoff(Base):
    """A handoff packet the action server's outbox set aside: it could not become a ticket.

    Either the database refused the packet for a reason a retry cannot cure (``refused``:
    ``packet`` holds it, masked, so an agent may send it again once the cause is fixed), or
    a line of the outbox file could not be read (``unreadable``: ``excerpt`` holds its
    beginning, masked). ``key`` identifies the set-aside line, so recording it again (from
    another drain, or from the ``.bad`` file) changes nothing.
    """

    __tablename__ = "undelivered_handoffs"

    id = Column(Integer, primary_key=True)
    key = Column(String(64), nullable=False, unique=True)  # sha256 of the set-aside line
    kind = Column(String(20), nullable=False)  # refused / unreadable
    reason = Column(Text, nullable=False)  # the error, as the outbox logged it (no statement parameters)
    idempotency_key = Column(String(200))
    conversation_id = Column(String(200))
    summary = Column(Text, nullable=False, default="")
    packet = Column(JSON)  # masked
    excerpt = Column(Text)  # masked
    set_aside_at = Column(DateTime(timezone=True), nullable=False, default=utcnow)
    status = Column(String(20), nullable=False, default="open", index=True)  # open / retried / dismissed
    handled_by = Column(String(100))  # the agent who retried or dismissed it
    handled_at = Column(DateTime(timezone=True))
    ticket_id = Column(Integer)  # the ticket a successful retry filed


class ChatMessage(Base):
    """One message of a widget conversation, as the customer saw it (history, analytics).

    ``client_id`` is the id the widget gave a customer message; it is unique per
    conversation, so a resend after a reconnect or a double click is stored once.
    """

    __tablename__ = "chat_messages"
    __table_args__ = (UniqueConstraint("conversation_id", "client_id", name="uq_chat_client_id"),
                      Index("ix_chat_messages_conversation_created", "conversation_id", "created_at"))

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
    # FAQ answers rated いいえ: set once Rasa took the 「いいえ」 (its follow-up is asked again on
    # reconnect while unset; gateway_customer.route_unanswered).
    routed_at = Column(DateTime(timezone=True))
    created_at = Column(DateTime(timezone=True), nullable=False, default=utcnow, index=True)
    redacted_at = Column(DateTime(timezone=True))  # retention removed the text (intent, route, feedback kept)


class Agent(Base):
    """A support agent who can log in to the console (password stored as a bcrypt hash)."""

    __tablename__ = "agents"

    id = Column(Integer, primary_key=True)
    username = Column(String(100), nullable=False, unique=True)
    display_name = Column(String(100), nullable=False)
    password_hash = Column(String(200), nullable=False)
    created_at = Column(DateTime(timezone=True), nullable=False, default=utcnow)
    # The desk (bot/store/desk.py, migration 0009): agent / admin, the cap on concurrent chats
    # (同時対応数), available / away / offline, the knowledge categories they take (empty: all),
    # and their latest claim or offer (the longest idle gets the next offer).
    role = Column(String(20), nullable=False, default="agent", server_default="agent")
    max_chats = Column(Integer, nullable=False, default=3, server_default="3")
    status = Column(String(20), nullable=False, default="offline", server_default="offline")
    skills = Column(JSON, nullable=False, default=list, server_default="[]")
    last_assigned_at = Column(DateTime(timezone=True))


class Conversation(Base):
    """A widget conversation: when it started and what the customer told the widget.

    Its token works while ``ended_at`` is empty and the conversation was used within the
    idle expiry (``last_active_at``, or ``created_at`` before its first use).
    """

    __tablename__ = "conversations"
    __table_args__ = (Index("ix_conversations_address_created", "address_key", "created_at"),)

    id = Column(String(200), primary_key=True)
    customer = Column(JSON, nullable=False, default=dict)  # name / email / page_url, masked
    created_at = Column(DateTime(timezone=True), nullable=False, default=utcnow, index=True)
    # Keyed hash (never the address itself) of the client address that started it: limits
    # new conversations and open tickets per address.
    address_key = Column(String(64))
    last_active_at = Column(DateTime(timezone=True))
    ended_at = Column(DateTime(timezone=True))  # the customer pressed 「会話を終了」
    redacted_at = Column(DateTime(timezone=True))  # retention removed the customer's details


class CsatRating(Base):
    """The customer's satisfaction rating of one resolved ticket (at most one per ticket).

    ``agent`` is the user name of the agent who resolved the ticket, copied so the figure
    per agent stays as it was when the agent's ticket is later changed.
    """

    __tablename__ = "csat_ratings"

    id = Column(Integer, primary_key=True)
    ticket_id = Column(Integer, ForeignKey("tickets.id", ondelete="CASCADE"), nullable=False, unique=True)
    conversation_id = Column(String(200), nullable=False, index=True)
    agent = Column(String(100))
    rating = Column(Integer, nullable=False)  # 1 (lowest) .. 5
    comment = Column(Text)  # as the customer wrote it (masked); rendered as text only
    channel = Column(String(20), nullable=False, default="web")  # web / line
    created_at = Column(DateTime(timezone=True), nullable=False, default=utcnow, index=True)


class TranscriptMail(Base):
    """A ticket's transcript to be mailed to the customer, with its delivery state.

    ``status``: ``pending`` (waiting for its next try at ``next_attempt_at``), ``sending``
    (claimed by a bot server at ``claimed_at``; a server that died leaves it to be claimed
    again after a lease), ``sent`` or ``failed`` (given up after the configured attempts;
    the customer was told).
    """

    __tablename__ = "transcript_mails"
    __table_args__ = (Index("ix_transcript_mails_due", "status", "next_attempt_at"),)

    id = Column(Integer, primary_key=True)
    ticket_id = Column(Integer, ForeignKey("tickets.id", ondelete="CASCADE"), nullable=False, index=True)
    conversation_id = Column(String(200), nullable=False)
    address = Column(String(254), nullable=False)
    trigger = Column(String(20), nullable=False)  # request (widget button) / auto (resolved, address known)
    status = Column(String(20), nullable=False, default="pending")
    attempts = Column(Integer, nullable=False, default=0, server_default="0")
    next_attempt_at = Column(DateTime(timezone=True), nullable=False, default=utcnow)
    claimed_at = Column(DateTime(timezone=True))
    last_error = Column(String(500))
    created_at = Column(DateTime(timezone=True), nullable=False, default=utcnow)
    sent_at = Column(DateTime(timezone=True))


class WebhookDelivery(Base):
    """One event of a ticket to be POSTed to one configured webhook receiver (docs/webhooks.md).

    Written in the transaction that changes the ticket (created, claimed, resolved, CSAT
    received), one row per receiver subscribed to the event; ``event_id`` is the same
    on each and on every retry (the receiver's deduplication key). ``data`` is the
    ticket's state at the event (status, agents, times, ``entry_count``: the transcript
    sent is the entries before it), so a retry sends the same body.

    ``status``: ``pending`` (next try at ``next_attempt_at``), ``sending`` (claimed by a
    bot server at ``claimed_at``; a server that died leaves it to be claimed again after
    a lease), ``delivered``, or ``dead`` (given up after the configured tries; an admin
    can queue it again). A row waits while an earlier one of the same ticket and receiver
    is pending or sending: events of a ticket arrive in order.
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (UniqueConstraint("event_id", "endpoint", name="uq_webhook_event_endpoint"),
                      Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
                      Index("ix_webhook_deliveries_order", "endpoint", "ticket_id", "id"))

    id = Column(Integer, primary_key=True)
    event_id = Column(String(36), nullable=False)
    event_type = Column(String(40), nullable=False)
    ticket_id = Column(Integer, ForeignKey("tickets.id", ondelete="CASCADE"), nullable=False)
    endpoint = Column(String(50), nullable=False)  # the receiver's name in the webhooks file
    data = Column(JSON, nullable=False, default=dict)
    occurred_at = Column(DateTime(timezone=True), nullable=False, default=utcnow)
    status = Column(String(20), nullable=False, default="pending")
    attempts = Column(Integer, nullable=False, default=0, server_default="0")
    next_attempt_at = Column(DateTime(timezone=True), nullable=False, default=utcnow)
    claimed_at = Column(DateTime(timezone=True))
    last_error = Column(String(500))
    delivered_at = Column(DateTime(timezone=True))
    retried_by = Column(String(100))  # the admin who queued a dead letter again


class AuditEntry(Base):
    """One line of the audit log: who (``actor``: a user name, ``cli:<os user>`` for the
    command line, ``None`` for the system) did what (``action``, see
    :data:`bot.store.audit.ACTIONS`) to what (``target``), when, from which client address.

    Append-only (migration 0012 adds a trigger that refuses UPDATE on both databases); no
    API writes it, and retention deletes rows only after ``BOT_AUDIT_RETENTION_DAYS``.
    ``detail`` holds small facts (changed fields, counts), never customer content.
    """

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_actor_at", "actor", "at"), Index("ix_audit_log_action_at", "action", "at"))

    id = Column(Integer, primary_key=True)
    at = Column(DateTime(timezone=True), nullable=False, default=utcnow, index=True)
    actor = Column(String(100))
    action = Column(String(40), nullable=False)
    target = Column(String(200))
    detail = Column(JSON)
    address = Column(String(100))


class JobRun(Base):
    """When a job shared by every bot server last started (``retention``, ``settings``).

    Claimed with a conditional UPDATE (bot/store/retention.py): of several servers, one runs it.
    """

    __tablename__ = "job_runs"

    name = Column(String(50), primary_key=True)
    started_at = Column(DateTime(timezone=True))


class DeskSetting(Base):
    """An admin's value for one of the desk's timings, set in the console (bot/store/desk_settings.py).

    A setting without a row keeps the value the servers started with (environment variable).
    """

    __tablename__ = "desk_settings"

    name = Column(String(50), primary_key=True)
    value = Column(Integer, nullable=False)
    changed_by = Column(String(100), nullable=False)
    changed_at = Column(DateTime(timezone=True), nullable=False, default=utcnow)
