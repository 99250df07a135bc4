"""The background mailer of a bot server: sends queued transcripts, retries, reports failures.

It waits for :meth:`TranscriptMailer.wake` (a mail was queued on this server) or its
poll interval (one queued on another server, a retry that came due, a row a dead server
left), claims the due rows (:meth:`bot.store.transcript_mails.TranscriptMails.claim_due`),
and sends each through SMTP. A failure never reaches the gateway: the row is tried again
later and, after the last try, ``on_given_up`` tells the customer (the gateway writes a
line in the chat). Nothing here raises out of :meth:`run`.
"""

from __future__ import annotations

import asyncio
import logging
from email.message import EmailMessage
from typing import Awaitable, Callable

from starlette.concurrency import run_in_threadpool

from bot.mail.smtp import MailError, send_async
from bot.mail.transcript import transcript_message
from bot.polling import poll_queue
from bot.settings import SmtpSettings
from bot.store.models import Ticket, TranscriptMail
from bot.store.forwarding import FORWARD_TRIGGER
from bot.store.queue import Queue
from bot.store.transcript_mails import TranscriptMails

logger = logging.getLogger(__name__)

GivenUp = Callable[[TranscriptMail], Awaitable[None]]
# A department's mail of a forwarded ticket (trigger ``forward``, bot/store/forwarding.py): built
# by the gateway, which knows the department and the agent (bot/server/gateway_forward.py).
ForwardMessage = Callable[[TranscriptMail, Ticket], EmailMessage]


class TranscriptMailer:
    """Sends the transcript mails of one database through one SMTP server."""

    def __init__(self, settings: SmtpSettings, mails: TranscriptMails, queue: Queue,
                 on_given_up: GivenUp | None = None, poll_seconds: float = 5.0) -> None:
        """Send through ``settings``' server the mails of ``mails``, reading transcripts from ``queue``.

        Args:
            settings: The SMTP server (``BOT_SMTP_*``).
            mails: The mail queue.
            queue: The tickets (their transcripts).
            on_given_up: Called after a mail's last failed try.
            poll_seconds: Longest wait between looks at the queue.
        """
        self.settings = settings
        self.mails = mails
        self._queue = queue
        self._on_given_up = on_given_up
        self._poll = poll_seconds
        self._wake = asyncio.Event()
        self.forward_message: ForwardMessage | None = None

    def wake(self) -> None:
        """A mail was queued: look now instead of at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        """Send due mails until cancelled."""
        await poll_queue(self.send_due, self._wake, self._poll, "transcript mails")

    async def send_due(self) -> int:
        """Send every mail due now; the number sent."""
        sent = 0
        for mail in await run_in_threadpool(self.mails.claim_due):
            if await self._send_one(mail):
                sent += 1
        return sent

    async def _send_one(self, mail: TranscriptMail) -> bool:
        try:
            ticket = await run_in_threadpool(self._queue.get, mail.ticket_id, True)
            if mail.trigger == FORWARD_TRIGGER and self.forward_message is not None:
                message = await run_in_threadpool(self.forward_message, mail, ticket)
            else:
                name = str((ticket.customer or {}).get("name") or "") or None
                message = transcript_message(ticket, ticket.entries, mail.address, self.settings.sender, name)
            await send_async(self.settings, message)
        except (MailError, ValueError) as exc:  # ValueError: a header the address cannot be (never sent)
            given_up = await run_in_threadpool(self.mails.failed_try, mail.id, str(exc), self.settings.attempts)
            logger.warning("transcript mail %s of ticket %s: try %s failed (%s)%s", mail.id, mail.ticket_id,
                           mail.attempts, exc, "; given up" if given_up else "; will retry")
            if given_up and self._on_given_up is not None:
                try:
                    await self._on_given_up(mail)
                except Exception:  # noqa: BLE001 - telling the customer must not stop the mailer
                    logger.exception("transcript mail %s: could not tell the customer", mail.id)
            return False
        await run_in_threadpool(self.mails.sent, mail.id)
        logger.info("transcript mail %s of ticket %s sent", mail.id, mail.ticket_id)
        return True
