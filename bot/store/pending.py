"""Pending handoffs: the customer was told a person takes over, the ticket is on its way.

Between the handoff reply and the ticket's arrival (the action server's outbox delivers
it once the database is back) the conversation waits for a person: what the customer
writes meanwhile is kept for the ticket, never sent to Rasa. The mark lives in the
database, so a bot server that restarts, or another bot server, sees it too and never
lets a second handoff (a second ticket) happen.

A mark knows which handoff it waits for: the packet's idempotency key (the action server
sends it with the handoff reply), kept as the ``client_id`` of that reply's chat message
(the id its sender gave the message; the mark points at the message), so no column was
needed. A customer who cancels and asks for a person again while both packets wait in the
outbox has one mark, for the new handoff: the cancelled handoff's ticket does not match it
and is cancelled on arrival (bot/server/gateway_base.py), only the new one opens.

Every method is one short transaction; :meth:`PendingHandoffs.take` is atomic, so of
two servers that see the ticket arrive, one copies the kept messages.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import delete, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from bot.store.models import ChatMessage, PendingHandoff, as_utc, utcnow


@dataclass(frozen=True)
class Pending:
    """One pending handoff.

    Attributes:
        conversation_id: The conversation.
        message_id: The chat message of the handoff reply: it and every later customer
            or bot message go into the ticket.
        since: When the handoff reply was shown.
        cancelled: The customer stopped waiting; the ticket is cancelled when it arrives.
        handoff_key: The idempotency key of the handoff's packet, i.e. of its ticket;
            ``None`` when unknown (a mark made before keys were recorded, or an action
            server that does not send it): then any arriving ticket is taken to be its own.
    """

    conversation_id: str
    message_id: int
    since: dt.datetime
    cancelled: bool
    handoff_key: str | None = None

    def is_for(self, idempotency_key: str) -> bool:
        """Whether a ticket with this key is the one the mark waits for."""
        return self.handoff_key is None or self.handoff_key == idempotency_key


def _pending(row: PendingHandoff, handoff_key: str | None) -> Pending:
    return Pending(str(row.conversation_id), int(row.message_id), as_utc(row.since), row.cancelled_at is not None,
                   handoff_key)


def _handoff_key(session: Session, row: PendingHandoff) -> str | None:
    """The key kept on the mark's handoff reply (see the module's docstring)."""
    return session.execute(select(ChatMessage.client_id).where(
        ChatMessage.id == row.message_id, ChatMessage.conversation_id == row.conversation_id,
        ChatMessage.sender != "customer")).scalar()


class PendingHandoffs:
    """The pending handoffs of every conversation, in the bot's database."""

    def __init__(self, engine: Engine) -> None:
        """Use ``engine`` (see :func:`bot.store.database.make_engine`)."""
        self._sessions = sessionmaker(engine, expire_on_commit=False, future=True)

    def mark(self, conversation_id: str, message_id: int, handoff_key: str | None = None,
             since: dt.datetime | None = None) -> Pending:
        """Record that the conversation waits for a ticket from ``message_id`` on (replaces an older mark).

        Args:
            conversation_id: The conversation.
            message_id: The chat message of the handoff reply (the bot's, already stored).
            handoff_key: The idempotency key of the handoff's packet; ``None``: unknown.
            since: When the handoff reply was shown (default: now).
        """
        row = PendingHandoff(conversation_id=conversation_id, message_id=message_id, since=since or utcnow())
        with self._sessions() as session, session.begin():
            session.execute(delete(PendingHandoff).where(PendingHandoff.conversation_id == conversation_id))
            session.add(row)
            if handoff_key and not session.execute(select(ChatMessage.id).where(
                    ChatMessage.conversation_id == conversation_id, ChatMessage.client_id == handoff_key)).first():
                session.execute(update(ChatMessage).where(
                    ChatMessage.id == message_id, ChatMessage.conversation_id == conversation_id,
                    ChatMessage.sender != "customer").values(client_id=handoff_key))
            session.flush()
            return _pending(row, _handoff_key(session, row))

    def get(self, conversation_id: str) -> Pending | None:
        """The conversation's mark, cancelled or not."""
        with self._sessions() as session:
            row = session.get(PendingHandoff, conversation_id)
            return _pending(row, _handoff_key(session, row)) if row is not None else None

    def waiting(self, conversation_id: str) -> Pending | None:
        """The mark while the customer still waits (not cancelled)."""
        pending = self.get(conversation_id)
        return pending if pending is not None and not pending.cancelled else None

    def cancel(self, conversation_id: str) -> bool:
        """The customer stopped waiting; True when a waiting mark was cancelled."""
        with self._sessions() as session, session.begin():
            result = session.execute(update(PendingHandoff)
                                     .where(PendingHandoff.conversation_id == conversation_id,
                                            PendingHandoff.cancelled_at.is_(None))
                                     .values(cancelled_at=utcnow()))
            return bool(result.rowcount)

    def take(self, conversation_id: str, idempotency_key: str | None = None) -> Pending | None:
        """Remove the mark and return it; ``None`` when there is none or another server took it.

        Args:
            conversation_id: The conversation.
            idempotency_key: The arriving ticket's key: a mark waiting for another handoff
                is left alone (``None``: any mark).
        """
        with self._sessions() as session, session.begin():
            row = session.execute(select(PendingHandoff)
                                  .where(PendingHandoff.conversation_id == conversation_id)).scalar_one_or_none()
            if row is None:
                return None
            pending = _pending(row, _handoff_key(session, row))
            if idempotency_key is not None and not pending.is_for(idempotency_key):
                return None
            # Deleted only if unchanged since read: a new mark made meanwhile is not taken.
            result = session.execute(delete(PendingHandoff).where(
                PendingHandoff.conversation_id == conversation_id, PendingHandoff.since == row.since,
                PendingHandoff.message_id == row.message_id))
            return pending if result.rowcount else None
