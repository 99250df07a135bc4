"""A ticket's history (``ticket_events``, migration 0011): every step with who, when and why.

Written in the transaction of the step itself (claim, take-over, transfer, escalation,
a supervisor's join or whisper, resolve), so the history never tells of a step that did
not happen, nor misses one that did. The same steps of agents and the system go into the
audit log (bot/store/audit.py) in that transaction too, without the note's text; a
customer's cancel does not (not an agent's action).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from bot.store.audit import record_audit, ticket_target
from bot.store.models import TicketEvent, utcnow

# The longest internal note of a transfer or escalation, and the longest whisper (characters).
NOTE_MAX_CHARS = 1000
# Step kinds of the audit log, and what the event's ``target`` is there.
AUDITED_KINDS = {"claimed": None, "taken_over": "from", "transferred": "to", "requeued": "category",
                 "escalated": None, "auto_escalated": None, "joined": "from", "whisper": "to", "resolved": None,
                 "forwarded": "to"}


def record_event(session: Session, ticket_id: int, kind: str, actor: str | None = None,
                 target: str | None = None, note: str | None = None, at: dt.datetime | None = None) -> None:
    """Add one step to the ticket's history in the caller's transaction (see :class:`TicketEvent`)."""
    moment = at or utcnow()
    session.add(TicketEvent(ticket_id=ticket_id, kind=kind, actor=actor, target=target, note=note, at=moment))
    if kind in AUDITED_KINDS:
        role = AUDITED_KINDS[kind]
        record_audit(session, f"ticket.{kind}", actor, ticket_target(ticket_id),
                     {role: target} if role and target else None, at=moment)
