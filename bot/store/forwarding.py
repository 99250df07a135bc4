"""Department hand-off without chat (#15 item 4): a claimed ticket forwarded to a department.

The agent of a claimed ticket, or a supervisor or admin for any agent's claimed ticket, picks
a department of ``knowledge/departments.yml`` (:mod:`bot.knowledge.departments`) and writes an
internal note for it. In **one
transaction** the ticket is resolved with resolution :data:`RESOLUTION_FORWARDED`
(no new status, no migration: ``resolution`` already tells how a ticket ended), a
``system`` line goes into its transcript (agents read it; the customer never does), the
step goes into its history (``ticket_events`` kind ``forwarded``: who forwarded it as actor,
the department's id as target, the note as why) and the deliveries go into the existing durable queues:

- a ``transcript_mails`` row with trigger :data:`FORWARD_TRIGGER` to the department's
  address (the transcript mailer sends it with the masked transcript and the note,
  retried as every transcript mail; :mod:`bot.mail.forward`);
- ``webhook_deliveries`` rows of the event ``ticket.forwarded`` (the department's receiver
  and every receiver subscribed to it; signed, retried and dead-lettered like every event),
  and ``ticket.resolved`` for receivers of that (the ticket did end).

So the forward either happened with every delivery queued, or nothing changed and the
agent's note is still in their box. Two agents or servers at once: the conditional UPDATE
lets one win; the other gets 409.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from sqlalchemy import select, update
from sqlalchemy.orm import sessionmaker

from bot import wording
from bot.knowledge.departments import Department
from bot.store.models import Ticket, TicketEvent, TranscriptMail, utcnow
from bot.store.queue import Queue, QueueError, _status_ja
from bot.store.ticket_events import record_event
from bot.store.webhooks import ticket_snapshot
from bot.text.masking import mask_sensitive

RESOLUTION_FORWARDED = "forwarded"
FORWARD_TRIGGER = "forward"  # transcript_mails.trigger of a department's mail
FORWARDED_EVENT = "ticket.forwarded"
TEXT = wording.FORWARD_TEXT
DisplayName = Callable[[str], str]


@dataclass(frozen=True)
class Delivery:
    """Where one forward goes: ``email`` (``None``: no mail) and webhook ``receivers`` (may be empty)."""

    email: str | None
    receivers: tuple[str, ...] = ()

    @property
    def channels(self) -> str:
        """「メール・Webhook」: what the transcript line says."""
        names = ([TEXT["channel_mail"]] if self.email else []) + ([TEXT["channel_webhook"]] if self.receivers else [])
        return TEXT["channel_separator"].join(names)


class Forwards:
    """Forwards of the queue's tickets (on its database)."""

    def __init__(self, queue: Queue) -> None:
        """Work on ``queue``'s tickets (its webhook outbox records the events)."""
        self._queue = queue
        self._sessions = sessionmaker(queue.engine, expire_on_commit=False, future=True)

    def forward(self, ticket_id: int, username: str, department: Department, note: str, delivery: Delivery,
                display_name: DisplayName, supervisor: bool = False) -> Ticket:
        """Resolve a claimed ticket as forwarded to ``department`` and queue its deliveries.

        Args:
            ticket_id: The ticket.
            username: Who forwards it: the agent who claimed it, or a supervisor (``supervisor`` True).
            department: The department (from ``departments.yml``).
            note: The internal note for the department (checked by the caller; never shown to the customer).
            delivery: The department's mail address and webhook receivers that are usable here.
            display_name: User name → display name (the transcript line).
            supervisor: ``username`` is a supervisor or an admin: any claimed chat may be
                forwarded, and the transcript line names whose chat it was.

        Returns:
            The ticket, resolved (without its transcript).

        Raises:
            QueueError: 404 unknown ticket; 409 resolved already, not claimed by ``username``
                (waiting, someone else's unless ``supervisor``, offline and unclaimed), or
                changed meanwhile.
        """
        label = TEXT["action"]
        note = mask_sensitive(note)  # it leaves the house: masked before it is written, as transcripts are
        with self._sessions() as session, session.begin():
            ticket = self._queue._locked(session, ticket_id)
            if ticket.status == "resolved":
                raise QueueError(wording.ESCALATION_TEXT["resolved"].format(ticket_id=ticket_id, action=label))
            if ticket.status != "claimed" or not (ticket.claimed_by == username or supervisor):
                raise QueueError(wording.ESCALATION_TEXT["not_owner"].format(
                    ticket_id=ticket_id, action=label, status_ja=_status_ja(ticket)))
            agent = str(ticket.claimed_by)
            record = TEXT["record" if agent == username else "record_for"].format(
                name=display_name(username), agent=display_name(agent), department=department.name,
                channels=delivery.channels)
            ticket = self._queue._append(session, ticket_id, "system", record, display_name(username))
            now = utcnow()
            changed = session.execute(
                update(Ticket).where(Ticket.id == ticket_id, Ticket.status == "claimed", Ticket.claimed_by == agent)
                .values(status="resolved", resolved_at=now, resolution=RESOLUTION_FORWARDED, resolved_by=username)
                .execution_options(synchronize_session=False)).rowcount
            if not changed:
                raise QueueError(wording.STORE_AGENT_TEXT["changed_meanwhile"].format(ticket_id=ticket_id))
            record_event(session, ticket_id, "forwarded", username, target=department.id, note=note, at=now)
            if delivery.email:
                session.add(TranscriptMail(ticket_id=ticket_id, conversation_id=ticket.conversation_id,
                                           address=delivery.email, trigger=FORWARD_TRIGGER, status="pending",
                                           next_attempt_at=now, created_at=now))
            state = ticket_snapshot(ticket, status="resolved", resolved_at=now, resolution=RESOLUTION_FORWARDED,
                                    resolved_by=username)
            forward = {"department": {"id": department.id, "name": department.name}, "note": note,
                       "promise": department.promise, "by": username, "by_name": display_name(username)}
            outbox = self._queue.webhooks
            receivers = tuple(dict.fromkeys(delivery.receivers))
            if receivers:
                outbox.record(session, ticket_id, FORWARDED_EVENT, {**state, "forward": forward}, receivers=receivers)
            outbox.record(session, ticket_id, "ticket.resolved", state)
        return self._queue.get(ticket_id, with_entries=False)

    def forward_event(self, ticket_id: int) -> TicketEvent | None:
        """The ticket's ``forwarded`` step (its department and note), ``None`` if it was not forwarded."""
        with self._sessions() as session:
            return session.execute(select(TicketEvent).where(TicketEvent.ticket_id == ticket_id,
                                                             TicketEvent.kind == "forwarded")
                                   .order_by(TicketEvent.id.desc()).limit(1)).scalar_one_or_none()

    def record_failure(self, ticket_id: int, note: str) -> None:
        """A delivery of the forward was given up: a ``forward_failed`` step in the ticket's history."""
        with self._sessions() as session, session.begin():
            record_event(session, ticket_id, "forward_failed", None, note=note[:1000])


def receivers_for(department: Department, subscribed: Sequence[str], department_receivers: Sequence[str],
                  known: Callable[[str], bool]) -> tuple[str, ...]:
    """The webhook receivers of one forward.

    The department's own receiver (when the webhooks file has it), then every receiver
    subscribed to ``ticket.forwarded`` that is not another department's (a department's
    receiver hears only of its own forwards; a CRM subscribed to the event hears of all).
    """
    own = (department.webhook,) if department.webhook and known(department.webhook) else ()
    others = tuple(name for name in subscribed if name not in department_receivers)
    return tuple(dict.fromkeys(own + others))
