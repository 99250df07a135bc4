"""The webhook delivery queue: events recorded with the ticket change, claimed, retried.

:meth:`WebhookOutbox.record` adds one :class:`~bot.store.models.WebhookDelivery` per
subscribed receiver inside the caller's transaction (the queue's create / claim /
resolve and the CSAT store's rating): the event is stored exactly when the change is,
and writing it costs one small INSERT per receiver. Bot servers send the rows
(:class:`bot.webhooks.sender.WebhookSender`); :class:`WebhookDeliveries` is their queue:

- claimed with a conditional UPDATE per row, so with several bot servers each try is
  made by one; a row a dead server left ``sending`` is claimed again after a lease;
- a row waits while an earlier row of the same ticket and receiver is pending or
  sending (events of a ticket arrive in order);
- a failed try waits longer each time; after the last one the row is ``dead`` until an
  admin queues it again (:meth:`WebhookDeliveries.retry`).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Callable, Iterable, Mapping, Sequence

from sqlalchemy import and_, exists, or_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, aliased, selectinload, sessionmaker

from bot.store.audit import record_audit
from bot.store.models import Ticket, WebhookDelivery, as_utc, utcnow

CLAIM_LEASE = dt.timedelta(minutes=2)  # far above a POST's timeout
MAX_WAIT = dt.timedelta(hours=1)
OPEN = ("pending", "sending")


def _iso(moment: dt.datetime | None) -> str | None:
    return as_utc(moment).isoformat() if moment is not None else None


def ticket_snapshot(ticket: Ticket, **changes: Any) -> dict[str, Any]:
    """The ticket's state at an event (``changes``: values the transaction is setting).

    Times are ISO 8601 text; ``entry_count`` bounds the transcript sent with the event.
    """
    state = {"status": ticket.status, "claimed_by": ticket.claimed_by, "claimed_at": ticket.claimed_at,
             "resolved_at": ticket.resolved_at, "resolved_by": ticket.resolved_by,
             "resolution": ticket.resolution, "entry_count": ticket.entry_count}
    state.update(changes)
    return {k: _iso(v) if isinstance(v, dt.datetime) else v for k, v in state.items()}


class WebhookOutbox:
    """Records events for the receivers subscribed to them (nothing when none is)."""

    def __init__(self, routes: Mapping[str, Sequence[str]] | None = None) -> None:
        """``routes``: event type -> receiver names (:meth:`bot.webhooks.config.WebhookConfig.routes`)."""
        self.routes = {event: tuple(names) for event, names in (routes or {}).items()}

    @classmethod
    def from_settings(cls) -> "WebhookOutbox":
        """The receivers of ``BOT_WEBHOOKS_FILE`` (none when it is not set).

        Raises:
            bot.webhooks.config.WebhookConfigError: The file is missing or wrong.
        """
        from bot.webhooks.config import configured_webhooks

        config = configured_webhooks()
        return cls(config.routes() if config is not None else None)

    def record(self, session: Session, ticket_id: int, event_type: str, data: Mapping[str, Any],
               receivers: Sequence[str] | None = None) -> str | None:
        """Queue ``event_type`` of a ticket in the caller's transaction.

        Args:
            session: The caller's transaction.
            ticket_id: The ticket.
            event_type: One of :data:`bot.webhooks.config.EVENTS`.
            data: The ticket's state at the event (:func:`ticket_snapshot`, plus the event's own fields).
            receivers: These receivers instead of the event's subscribers (a department's
                forward goes to its own receiver: bot/store/forwarding.py).

        Returns:
            The event id (the same for every receiver), or ``None`` when nobody receives it.
        """
        names = tuple(receivers) if receivers is not None else self.routes.get(event_type, ())
        if not names:
            return None
        event_id, now = str(uuid.uuid4()), utcnow()
        for name in names:
            session.add(WebhookDelivery(event_id=event_id, event_type=event_type, ticket_id=ticket_id,
                                        endpoint=name, data=dict(data), occurred_at=now, status="pending",
                                        attempts=0, next_attempt_at=now))
        return event_id


class WebhookDeliveries:
    """The delivery queue on one database."""

    def __init__(self, engine: Engine, clock: Callable[[], dt.datetime] = utcnow) -> None:
        """Use ``engine``; ``clock`` gives the current time (tests travel in time)."""
        self._sessions = sessionmaker(engine, expire_on_commit=False, future=True)
        self.clock = clock

    def claim_due(self, limit: int = 50) -> list[WebhookDelivery]:
        """Take the rows due now whose earlier rows (same ticket and receiver) are done."""
        now = self.clock()
        earlier = aliased(WebhookDelivery)
        waits = exists().where(earlier.endpoint == WebhookDelivery.endpoint,
                               earlier.ticket_id == WebhookDelivery.ticket_id,
                               earlier.id < WebhookDelivery.id, earlier.status.in_(OPEN))
        due = or_(and_(WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= now),
                  and_(WebhookDelivery.status == "sending", WebhookDelivery.claimed_at < now - CLAIM_LEASE))
        with self._sessions() as session:
            candidates = session.execute(select(WebhookDelivery.id, WebhookDelivery.status,
                                                WebhookDelivery.claimed_at)
                                         .where(due, ~waits).order_by(WebhookDelivery.id).limit(limit)).all()
        if not candidates:
            return []
        taken: list[int] = []
        with self._sessions() as session, session.begin():  # one commit for the batch
            for row_id, status, claimed_at in candidates:
                same_claim = (WebhookDelivery.claimed_at == claimed_at) if claimed_at is not None \
                    else WebhookDelivery.claimed_at.is_(None)
                if session.execute(update(WebhookDelivery)
                                   .where(WebhookDelivery.id == row_id, WebhookDelivery.status == status, same_claim)
                                   .values(status="sending", claimed_at=now, attempts=WebhookDelivery.attempts + 1)
                                   .execution_options(synchronize_session=False)).rowcount:
                    taken.append(row_id)
        with self._sessions() as session:
            return list(session.execute(select(WebhookDelivery).where(WebhookDelivery.id.in_(taken))
                                        .order_by(WebhookDelivery.id)).scalars()) if taken else []

    def get(self, row_id: int) -> WebhookDelivery:
        """One row.

        Raises:
            QueueError: 404 when it does not exist.
        """
        from bot.store.queue import QueueError  # queue.py imports this module

        with self._sessions() as session:
            row = session.get(WebhookDelivery, row_id)
        if row is None:
            raise QueueError(f"Webhook の配信 {row_id} はありません。", status=404)
        return row

    def for_ticket(self, ticket_id: int) -> list[WebhookDelivery]:
        """A ticket's deliveries, oldest first."""
        with self._sessions() as session:
            return list(session.execute(select(WebhookDelivery).where(WebhookDelivery.ticket_id == ticket_id)
                                        .order_by(WebhookDelivery.id)).scalars())

    def tickets(self, ticket_ids: Iterable[int]) -> dict[int, Ticket]:
        """The tickets of a round of rows, with their transcripts, in one query (missing ids left out)."""
        ids = sorted(set(ticket_ids))
        if not ids:
            return {}
        with self._sessions() as session:
            found = session.execute(select(Ticket).where(Ticket.id.in_(ids))
                                    .options(selectinload(Ticket.entries))).scalars()
            return {ticket.id: ticket for ticket in found}

    def delivered(self, *row_ids: int) -> None:
        """The receiver answered 2xx to each of ``row_ids`` (one transaction for a whole round)."""
        if not row_ids:
            return
        with self._sessions() as session, session.begin():
            session.execute(update(WebhookDelivery)
                            .where(WebhookDelivery.id.in_(row_ids), WebhookDelivery.status == "sending")
                            .values(status="delivered", delivered_at=self.clock(), last_error=None)
                            .execution_options(synchronize_session=False))

    def failed_try(self, row_id: int, error: str, max_attempts: int, first_wait: dt.timedelta) -> bool:
        """Record a failed try: the next one waits ``first_wait`` doubled per earlier failure.

        Returns:
            True when the row is dead-lettered (``max_attempts`` used).
        """
        row = self.get(row_id)
        dead = row.attempts >= max_attempts
        wait = min(MAX_WAIT, first_wait * 2 ** max(0, row.attempts - 1))
        with self._sessions() as session, session.begin():
            session.execute(update(WebhookDelivery).where(WebhookDelivery.id == row_id,
                                                          WebhookDelivery.status == "sending")
                            .values(status="dead" if dead else "pending", last_error=error[:500],
                                    next_attempt_at=as_utc(self.clock()) + wait))
        return dead

    def dead_letters(self, limit: int = 100, offset: int = 0) -> list[WebhookDelivery]:
        """Dead-lettered rows, newest first."""
        with self._sessions() as session:
            return list(session.execute(select(WebhookDelivery).where(WebhookDelivery.status == "dead")
                                        .order_by(WebhookDelivery.id.desc()).limit(max(1, limit))
                                        .offset(max(0, offset))).scalars())

    def count(self, status: str) -> int:
        """Rows with ``status``."""
        from sqlalchemy import func

        with self._sessions() as session:
            return int(session.execute(select(func.count()).select_from(WebhookDelivery)
                                       .where(WebhookDelivery.status == status)).scalar_one())

    def retry(self, row_id: int, admin: str) -> WebhookDelivery:
        """Queue a dead letter again (due now, tries counted from zero).

        Raises:
            QueueError: 404 unknown; 409 not dead-lettered (sent meanwhile, or queued already).
        """
        from bot.store.queue import QueueError  # queue.py imports this module

        self.get(row_id)
        with self._sessions() as session, session.begin():
            done = session.execute(update(WebhookDelivery)
                                   .where(WebhookDelivery.id == row_id, WebhookDelivery.status == "dead")
                                   .values(status="pending", attempts=0, next_attempt_at=self.clock(),
                                           claimed_at=None, retried_by=admin)
                                   .execution_options(synchronize_session=False)).rowcount
            if done:
                record_audit(session, "webhook.replayed", admin, f"webhook:{row_id}")
        if not done:
            raise QueueError(f"Webhook の配信 {row_id} は配信できなかったものではありません（再送済みか送信済みです）。")
        return self.get(row_id)
