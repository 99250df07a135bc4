"""The gateway's part of a department hand-off without chat (#15 item 4; bot/store/forwarding.py).

The agent of a claimed chat (or a supervisor or admin, for any agent's claimed chat) forwards
it to a department of ``knowledge/departments.yml`` with an internal note. Before anything changes the gateway checks that the department
can be reached from this server: its e-mail address needs a mail server (``BOT_SMTP_*``),
its webhook receiver must be in ``BOT_WEBHOOKS_FILE``; with neither usable the forward is
refused (409) and nothing changes. Then the store resolves the ticket as forwarded and
queues the deliveries in one transaction; the conversation goes back to the bot and the
customer reads one line: the department's promise (「このお問い合わせは経理部に引き継ぎました。
経理部の担当者から2営業日以内にメールでご連絡します。…」), never the note.

A delivery given up (the mail after its last try, a webhook dead-lettered) is written into
the ticket's history (``forward_failed``) for the agents, and the consoles are told; the
customer is not (their promise stands: the agents act on it).
"""

from __future__ import annotations

import datetime as dt
import logging
from email.message import EmailMessage
from pathlib import Path

from bot import wording
from bot.knowledge.departments import Department, departments
from bot.mail.forward import forward_message
from bot.server.gateway_after_chat import AfterChatSide
from bot.settings import SmtpSettings
from bot.store.forwarding import FORWARD_TRIGGER, FORWARDED_EVENT, Delivery, receivers_for
from bot.store.models import Ticket, TranscriptMail, WebhookDelivery
from bot.store.queue import QueueError
from bot.store.transcript_mails import RETRY_WAITS
from bot.webhooks.config import WebhookConfig

logger = logging.getLogger(__name__)

TEXT = wording.FORWARD_TEXT


class ForwardSide(AfterChatSide):
    """Forwards of claimed chats to departments, and their failed deliveries."""

    # The webhooks file's receivers (Services sets it; None: no webhook is sent).
    webhook_config: WebhookConfig | None = None
    # The departments file (None: the knowledge folder's departments.yml; tests set another).
    departments_file: Path | None = None

    def departments(self) -> tuple[Department, ...]:
        """The departments agents can forward to (read again when the file changes)."""
        return departments(self.departments_file)

    def department(self, department_id: str) -> Department:
        """The department with ``department_id``.

        Raises:
            QueueError: 404 not in the departments file.
        """
        found = next((d for d in self.departments() if d.id == department_id), None)
        if found is None:
            raise QueueError(TEXT["unknown_department"].format(department=department_id[:40]), status=404)
        return found

    def delivery_for(self, department: Department) -> Delivery:
        """Where a forward to ``department`` goes from this server.

        Raises:
            QueueError: 409 when none of its deliveries can be used here (the message says why).
        """
        config = self.webhook_config
        known = (lambda name: config.endpoint(name) is not None) if config is not None else (lambda name: False)
        subscribed = config.routes().get(FORWARDED_EVENT, ()) if config is not None else ()
        own_receivers = tuple(d.webhook for d in self.departments() if d.webhook)
        receivers = receivers_for(department, subscribed, own_receivers, known)
        email = department.email if self.mailer is not None else None
        if email is None and not (department.webhook and known(department.webhook)):
            if not department.email and not department.webhook:
                raise QueueError(TEXT["no_delivery"].format(department=department.name))
            if department.webhook:
                raise QueueError(TEXT["no_receiver"].format(department=department.name, webhook=department.webhook))
            raise QueueError(TEXT["no_mail_server"].format(department=department.name))
        return Delivery(email=email, receivers=receivers)

    async def forward(self, ticket_id: int, username: str, department_id: str, note: str,
                      supervisor: bool = False) -> Ticket:
        """Forward a claimed chat to a department; the customer reads its promise.

        ``username`` is the chat's agent, or (``supervisor`` True) a supervisor or admin
        forwarding any agent's claimed chat.

        Raises:
            QueueError: 404 unknown ticket or department; 409 no usable delivery, resolved,
                not ``username``'s (and not a supervisor), or changed meanwhile. Nothing changes then.
        """
        department = await self._db(self.department, department_id)
        delivery = await self._db(self.delivery_for, department)
        current = await self._db(self._stores.queue.get, ticket_id, False)
        async with self._lock(current.conversation_id):  # no customer message half-routed meanwhile
            ticket = await self._db(self._stores.forwards.forward, ticket_id, username, department, note, delivery,
                                    self.display_name, supervisor)
            self._publish_ticket("forwarded", ticket)
            promise = department.promise if department.promise.endswith(("。", "！", "!", ".")) \
                else department.promise + "。"
            line = TEXT["customer"].format(department=department.name, promise=promise)
            if ticket.offline:
                await self._system(ticket.conversation_id, line)  # read when they come back
            else:
                await self._drop_pending(ticket.conversation_id)
                await self._back_to_bot(ticket.conversation_id, line)
        if delivery.email and self.mailer is not None:
            self.mailer.wake()
        return ticket

    # ---- deliveries --------------------------------------------------------------------------

    def configure_mail(self, settings: SmtpSettings, retry_waits: tuple[dt.timedelta, ...] = RETRY_WAITS,
                       poll_seconds: float = 5.0) -> None:
        """As :meth:`AfterChatSide.configure_mail`; the mailer also builds departments' mails here."""
        super().configure_mail(settings, retry_waits, poll_seconds)
        if self.mailer is not None:
            self.mailer.forward_message = self._forward_message

    def _forward_message(self, mail: TranscriptMail, ticket: Ticket) -> EmailMessage:
        """The department's mail of a forwarded ticket (in a worker thread; ``ticket`` with its entries)."""
        assert self.mailer is not None
        step = self._stores.forwards.forward_event(ticket.id)
        if step is None:
            raise ValueError(f"ticket {ticket.id} has no forward step")  # never sent; the row fails
        department = self.department_of(step.target or "")
        agent = self.display_name(step.actor) if step.actor else ""
        return forward_message(ticket, ticket.entries, department, step, agent, mail.address,
                               self.mailer.settings.sender)

    def department_of(self, department_id: str) -> Department:
        """The department of a past forward (as the file has it now, else by its id)."""
        found = next((d for d in self.departments() if d.id == department_id), None)
        return found or Department(id=department_id, name=department_id, promise="")

    async def _mail_given_up(self, mail: TranscriptMail) -> None:
        """A department's mail given up: into the ticket's history (the customer's mail: as before)."""
        if mail.trigger != FORWARD_TRIGGER:
            await super()._mail_given_up(mail)
            return
        assert self.mailer is not None
        latest = await self._db(self.mailer.mails.get, mail.id)  # with this try's error
        step = await self._db(self._stores.forwards.forward_event, mail.ticket_id)
        department = self.department_of(step.target or "" if step else "")
        note = TEXT["failed_mail"].format(department=department.name, address=mail.address,
                                          attempts=latest.attempts, error=(latest.last_error or "")[:200])
        await self._forward_failed(mail.ticket_id, note)

    async def webhook_dead(self, row: WebhookDelivery, error: str) -> None:
        """A dead-lettered ``ticket.forwarded``: into the ticket's history (others: the dead-letter list only)."""
        if row.event_type != FORWARDED_EVENT:
            return
        forward = dict((row.data or {}).get("forward") or {})
        name = str((forward.get("department") or {}).get("name") or "")
        note = TEXT["failed_webhook"].format(department=name, webhook=row.endpoint, error=error[:200])
        await self._forward_failed(row.ticket_id, note)

    async def _forward_failed(self, ticket_id: int, note: str) -> None:
        logger.warning("forward of ticket %s: %s", ticket_id, note)
        await self._db(self._stores.forwards.record_failure, ticket_id, note)
        self._publish_ticket("forward_failed", await self._db(self._stores.queue.get, ticket_id, False))
