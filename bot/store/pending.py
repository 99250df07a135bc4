"""Pending handoffs: the customer was told a person takes over, the ticket is on its way.

Between the handoff reply and the ticket's arrival (the action server's outbox delivers
it once the database is back) the conversation waits for a person: what the customer
writes meanwhile is kept for the ticket, never sent to Rasa. The mark lives in the
database, so a bot server that restarts, or another bot server, sees it too and never
lets a second handoff (a second ticket) happen.

Every method is one short transaction; :meth:`PendingHandoffs.take` is atomic, so of
two servers that see the ticket arrive, one copies the kept messages.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import delete, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker

from bot.store.models import PendingHandoff, as_utc, utcnow


@dataclass(frozen=True)
class Pending:
    """One pending handoff.

    Attributes:
        conversation_id: The conversation.
        message_id: The chat message of the handoff reply: it and every later customer
            or bot message go into the ticket.
        since: When the handoff reply was shown.
        cancelled: The customer stopped waiting; the ticket is cancelled when it arrives.
    """

    conversation_id: str
    message_id: int
    since: dt.datetime
    cancelled: bool


def _pending(row: PendingHandoff) -> Pending:
    return Pending(str(row.conversation_id), int(row.message_id), as_utc(row.since), row.cancelled_at is not None)


class PendingHandoffs:
    """The pending handoffs of every conversation, in the bot's database."""

    def __init__(self, engine: Engine) -> None:
        """Use ``engine`` (see :func:`bot.store.database.make_engine`)."""
        self._sessions = sessionmaker(engine, expire_on_commit=False, future=True)

    def mark(self, conversation_id: str, message_id: int, since: dt.datetime | None = None) -> Pending:
        """Record that the conversation waits for a ticket from ``message_id`` on (replaces an older mark)."""
        row = PendingHandoff(conversation_id=conversation_id, message_id=message_id, since=since or utcnow())
        with self._sessions() as session, session.begin():
            session.execute(delete(PendingHandoff).where(PendingHandoff.conversation_id == conversation_id))
            session.add(row)
        return _pending(row)

    def get(self, conversation_id: str) -> Pending | None:
        """The conversation's mark, cancelled or not."""
        with self._sessions() as session:
            row = session.get(PendingHandoff, conversation_id)
            return _pending(row) if row is not None else None

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

    def take(self, conversation_id: str) -> Pending | None:
        """Remove the mark and return it; ``None`` when there is none or another server took it."""
        with self._sessions() as session, session.begin():
            row = session.execute(select(PendingHandoff)
                                  .where(PendingHandoff.conversation_id == conversation_id)).scalar_one_or_none()
            if row is None:
                return None
            pending = _pending(row)
            # Deleted only if unchanged since read: a new mark made meanwhile is not taken.
            result = session.execute(delete(PendingHandoff).where(
                PendingHandoff.conversation_id == conversation_id, PendingHandoff.since == row.since,
                PendingHandoff.message_id == row.message_id))
            return pending if result.rowcount else None
