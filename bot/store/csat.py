"""Satisfaction ratings (CSAT) of resolved tickets: one per ticket.

The customer rates a ticket an agent resolved, 1–5, with an optional comment. Bad input
is refused with a Japanese message and nothing is stored (the widget keeps what the
customer typed); a second rating of the same ticket is refused too (the unique
``ticket_id`` decides, so two tabs answering at once store one rating).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker

from bot import wording
from bot.store.models import CsatRating, Ticket
from bot.store.queue import QueueError
from bot.store.webhooks import WebhookOutbox, ticket_snapshot
from bot.text.masking_settings import current_masking_settings

MAX_COMMENT_CHARS = 1000
RESOLVED_BY_AGENT = "resolved"


def clean_rating(value: Any) -> int:
    """A rating 1–5 from a frame (a whole number, or its digits as text).

    Raises:
        QueueError: 422 with a Japanese message for anything else (0, 6, "abc", 4.5, true).
    """
    if isinstance(value, bool):
        value = None
    if isinstance(value, str) and value.strip().isdigit() and len(value.strip()) == 1:
        value = int(value.strip())
    if not isinstance(value, int) or not 1 <= value <= 5:
        raise QueueError(wording.CSAT_TEXT["bad_rating"], status=422)
    return value


def clean_comment(value: Any) -> str | None:
    """The optional comment, stripped (``None`` when empty).

    Raises:
        QueueError: 422 when it is not text or longer than :data:`MAX_COMMENT_CHARS`.
    """
    if value is None:
        return None
    if not isinstance(value, str):
        raise QueueError(wording.CSAT_TEXT["bad_comment"], status=422)
    text = value.strip()
    if len(text) > MAX_COMMENT_CHARS:
        raise QueueError(wording.CSAT_TEXT["comment_too_long"].format(limit=MAX_COMMENT_CHARS, length=len(text)),
                         status=422)
    return text or None


class Surveys:
    """CSAT ratings on one database."""

    def __init__(self, engine: Engine, webhooks: WebhookOutbox | None = None) -> None:
        """Use ``engine`` (migrated, see :func:`bot.store.database.make_engine`).

        ``webhooks`` records ``csat.received`` with the rating (same transaction); ``None``
        reads ``BOT_WEBHOOKS_FILE``. Public as ``webhooks``.
        """
        self._sessions = sessionmaker(engine, expire_on_commit=False, future=True)
        self.webhooks = webhooks if webhooks is not None else WebhookOutbox.from_settings()

    def record(self, conversation_id: str, ticket_id: int, rating: Any, comment: Any = None,
               channel: str = "web") -> CsatRating:
        """Store the customer's rating of a ticket of their conversation.

        Args:
            conversation_id: The customer's conversation (the ticket must be of it).
            ticket_id: A ticket an agent resolved.
            rating: 1–5 (see :func:`clean_rating`).
            comment: Optional text, at most :data:`MAX_COMMENT_CHARS` characters (masked when stored).
            channel: ``web`` or ``line``.

        Raises:
            QueueError: 422 bad rating or comment; 404 not a ticket of this conversation;
                409 not resolved by an agent, or rated already.
        """
        value = clean_rating(rating)
        text = clean_comment(comment)
        with self._sessions() as session:
            ticket = session.get(Ticket, ticket_id) if isinstance(ticket_id, int) else None
            if ticket is None or ticket.conversation_id != conversation_id:
                raise QueueError(wording.CSAT_TEXT["no_ticket"], status=404)
            if ticket.status != "resolved" or ticket.resolution != RESOLVED_BY_AGENT:
                raise QueueError(wording.CSAT_TEXT["not_resolved"])
            row = CsatRating(ticket_id=ticket_id, conversation_id=conversation_id, agent=ticket.resolved_by,
                             rating=value, comment=current_masking_settings().mask(text) if text else None,
                             channel=channel)
            session.add(row)
            self.webhooks.record(session, ticket_id, "csat.received",
                                 {**ticket_snapshot(ticket), "csat": {"rating": value, "comment": row.comment,
                                                                      "channel": channel}})
            try:
                session.commit()
            except IntegrityError:
                session.rollback()
                raise QueueError(wording.CSAT_TEXT["already_rated"]) from None
            return row

    def for_ticket(self, ticket_id: int) -> CsatRating | None:
        """The rating of a ticket, if the customer gave one."""
        with self._sessions() as session:
            return session.execute(select(CsatRating).where(CsatRating.ticket_id == ticket_id)).scalar_one_or_none()
