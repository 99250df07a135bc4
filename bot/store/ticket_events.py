"""A ticket's history (``ticket_events``, migration 0011): every step with who, when and why.

Written in the transaction of the step itself (claim, take-over, transfer, escalation,
a supervisor's join or whisper, resolve), so the history never tells of a step that did
not happen, nor misses one that did.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from bot.store.models import TicketEvent, utcnow

# The longest internal note of a transfer or escalation, and the longest whisper (characters).
NOTE_MAX_CHARS = 1000


def record_event(session: Session, ticket_id: int, kind: str, actor: str | None = None,
                 target: str | None = None, note: str | None = None, at: dt.datetime | None = None) -> None:
    """Add one step to the ticket's history in the caller's transaction (see :class:`TicketEvent`)."""
    session.add(TicketEvent(ticket_id=ticket_id, kind=kind, actor=actor, target=target, note=note,
                            at=at or utcnow()))
