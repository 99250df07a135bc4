"""Transcripts to be mailed to customers: a small durable queue with retries.

A row is written when the customer asks for the transcript (widget button) or when an
agent resolves a ticket whose customer left an e-mail address. A bot server's mailer
(:class:`bot.mail.sender.TranscriptMailer`) claims due rows with a conditional UPDATE
(so with several bot servers each mail is sent by one), sends them and records the
result; a failed try waits longer each time, and after the last one the row is
``failed``. A server that died while sending leaves the row ``sending``: it is claimed
again after :data:`CLAIM_LEASE`.
"""

from __future__ import annotations

import datetime as dt
from typing import Callable

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker

from bot import wording
from bot.store.audit import record_audit
from bot.store.models import TranscriptMail, as_utc, utcnow
from bot.store.queue import QueueError

FAILED = "failed"
MAX_PER_TICKET = 3  # requests for one ticket's transcript (a button is not a mail relay)
CLAIM_LEASE = dt.timedelta(minutes=5)
# Waits after the 1st, 2nd, ... failed try (the last one repeats).
RETRY_WAITS = (dt.timedelta(seconds=10), dt.timedelta(minutes=1), dt.timedelta(minutes=5),
               dt.timedelta(minutes=15), dt.timedelta(hours=1))


class TranscriptMails:
    """The transcript mail queue on one database."""

    def __init__(self, engine: Engine, retry_waits: tuple[dt.timedelta, ...] = RETRY_WAITS) -> None:
        """Use ``engine``; ``retry_waits``: waits between tries (tests make them short).

        ``clock`` (public) gives the current time: tests set it to travel in time.
        """
        self._sessions = sessionmaker(engine, expire_on_commit=False, future=True)
        self.retry_waits = retry_waits
        self.clock: Callable[[], dt.datetime] = utcnow

    def enqueue(self, ticket_id: int, conversation_id: str, address: str, trigger: str) -> TranscriptMail:
        """Queue one transcript mail (due at once).

        Raises:
            QueueError: 429 when the ticket's transcript was requested :data:`MAX_PER_TICKET` times.
        """
        with self._sessions() as session, session.begin():
            count = session.execute(select(func.count()).where(TranscriptMail.ticket_id == ticket_id)).scalar_one()
            if count >= MAX_PER_TICKET:
                raise QueueError(wording.TRANSCRIPT_TEXT["too_many"].format(limit=MAX_PER_TICKET), status=429)
            row = TranscriptMail(ticket_id=ticket_id, conversation_id=conversation_id, address=address,
                                 trigger=trigger, status="pending", next_attempt_at=self.clock(),
                                 created_at=self.clock())
            session.add(row)
        return row

    def claim_due(self, limit: int = 20) -> list[TranscriptMail]:
        """Take the mails due now (and those a dead server left ``sending``) for this server."""
        now = self.clock()
        due = or_(and_(TranscriptMail.status == "pending", TranscriptMail.next_attempt_at <= now),
                  and_(TranscriptMail.status == "sending", TranscriptMail.claimed_at < now - CLAIM_LEASE))
        with self._sessions() as session:
            candidates = session.execute(select(TranscriptMail.id, TranscriptMail.status, TranscriptMail.claimed_at)
                                         .where(due).order_by(TranscriptMail.id).limit(limit)).all()
        claimed = []
        for mail_id, status, claimed_at in candidates:
            with self._sessions() as session, session.begin():
                condition = (TranscriptMail.claimed_at == claimed_at) if claimed_at is not None \
                    else TranscriptMail.claimed_at.is_(None)
                taken = session.execute(update(TranscriptMail)
                                        .where(TranscriptMail.id == mail_id, TranscriptMail.status == status, condition)
                                        .values(status="sending", claimed_at=now, attempts=TranscriptMail.attempts + 1)
                                        .execution_options(synchronize_session=False)).rowcount
            if taken:
                claimed.append(self.get(mail_id))
        return claimed

    def get(self, mail_id: int) -> TranscriptMail:
        """One row (raises when unknown)."""
        with self._sessions() as session:
            return session.execute(select(TranscriptMail).where(TranscriptMail.id == mail_id)).scalar_one()

    def for_ticket(self, ticket_id: int) -> list[TranscriptMail]:
        """The ticket's transcript mails, oldest first."""
        with self._sessions() as session:
            return list(session.execute(select(TranscriptMail).where(TranscriptMail.ticket_id == ticket_id)
                                        .order_by(TranscriptMail.id)).scalars())

    def sent(self, mail_id: int) -> None:
        """The server accepted the mail."""
        with self._sessions() as session, session.begin():
            session.execute(update(TranscriptMail).where(TranscriptMail.id == mail_id)
                            .values(status="sent", sent_at=self.clock(), last_error=None))

    def failed_try(self, mail_id: int, error: str, max_attempts: int) -> bool:
        """Record a failed try; the next one is scheduled unless ``max_attempts`` are used.

        Returns:
            True when the mail is given up (status ``failed``).
        """
        row = self.get(mail_id)
        give_up = row.attempts >= max_attempts
        wait = self.retry_waits[min(row.attempts, len(self.retry_waits)) - 1] if row.attempts else self.retry_waits[0]
        with self._sessions() as session, session.begin():
            session.execute(update(TranscriptMail).where(TranscriptMail.id == mail_id).values(
                status=FAILED if give_up else "pending", last_error=error[:500],
                next_attempt_at=as_utc(self.clock()) + wait))
        return give_up

    def failed(self, limit: int = 100, offset: int = 0) -> list[TranscriptMail]:
        """Mails given up after their last try, newest first (the admins' list of failures)."""
        with self._sessions() as session:
            return list(session.execute(select(TranscriptMail).where(TranscriptMail.status == FAILED)
                                        .order_by(TranscriptMail.id.desc()).limit(limit).offset(offset)).scalars())

    def count_failed(self) -> int:
        """How many mails are given up."""
        with self._sessions() as session:
            return int(session.execute(select(func.count()).where(TranscriptMail.status == FAILED)).scalar_one())

    def retry(self, mail_id: int, admin: str) -> TranscriptMail:
        """Queue a given-up mail again (due now, tries counted from zero), with an audit line.

        For when the mail server is back or its settings were fixed: the customer was told
        the mail could not be sent, and gets it after all.

        Raises:
            QueueError: 404 unknown; 409 not given up (sent, or queued again meanwhile).
        """
        with self._sessions() as session, session.begin():
            if session.get(TranscriptMail, mail_id) is None:
                raise QueueError(wording.MAIL_ADMIN_TEXT["unknown_mail"].format(id=mail_id), status=404)
            done = session.execute(update(TranscriptMail)
                                   .where(TranscriptMail.id == mail_id, TranscriptMail.status == FAILED)
                                   .values(status="pending", attempts=0, next_attempt_at=self.clock(),
                                           claimed_at=None)
                                   .execution_options(synchronize_session=False)).rowcount
            if done:
                record_audit(session, "mail.retried", admin, f"mail:{mail_id}")
        if not done:
            raise QueueError(wording.MAIL_ADMIN_TEXT["not_failed"].format(id=mail_id), status=409)
        return self.get(mail_id)
