"""Escalation, transfers and whispers (#15 items 1 and 2): nobody is left alone with a hard case.

From a claimed ticket its agent (or a supervisor) can

- **transfer** it to another agent who is 対応可能 and has a free slot (the new agent owns
  the chat at once), or back to the queue, for a category if one is chosen (the assignment
  rounds then offer it to someone else, never straight back to the same agent);
- **escalate** it to the supervisors: it goes before every other ticket (priority
  :data:`~bot.store.models.PRIORITY_ESCALATED`) and the agent stays in the chat until a
  supervisor **joins** (takes the chat). One supervisor joins; a second gets a clear 409.

A supervisor may also join any open chat without an escalation, and whisper (ささやき) to
the agent of a claimed chat: the whisper is kept in the ticket's history only, never in
its transcript nor in the customer's chat. A complaint or anger ticket (priority
:data:`~bot.store.models.PRIORITY_HIGH`, which exactly those reasons get) that waits
unclaimed, or claimed without the agent's reply, for longer than a set time is escalated
automatically (:meth:`Escalations.auto_escalate`, run by every bot server).

Every change is one transaction that checks the state first (for a precise message) and
then changes it by a conditional UPDATE on the state it read (status, owner, escalation),
so of two bot servers, agents or supervisors acting at once exactly one wins and the other
gets a 409 naming what happened. Each step is written into the ticket's history
(:mod:`bot.store.ticket_events`), a ``system`` line into its transcript (agents read it;
the customer never does) and, for receivers, a ``ticket.transferred`` / ``ticket.escalated``
webhook event (a join: ``ticket.claimed``, the supervisor now owning the chat), all in the
same transaction.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from bot import wording
from bot.store.desk import STATUSES, Desk
from bot.store.models import PRIORITY_ESCALATED, PRIORITY_HIGH, Agent, Ticket, TicketEvent, TranscriptEntry
from bot.store.queue import Queue, QueueError, _status_ja
from bot.store.ticket_events import record_event
from bot.store.webhooks import ticket_snapshot

TEXT = wording.ESCALATION_TEXT
AUTO_BATCH = 50  # tickets escalated automatically per round at most
DisplayName = Callable[[str], str]


@dataclass(frozen=True)
class Transfer:
    """Where a claimed ticket goes: to ``agent`` (a user name), or back to the queue (``agent``
    ``None``) for ``category`` (``None``: the ticket's own); ``note`` says why (internal)."""

    note: str
    agent: str | None = None
    category: str | None = None


class Escalations:
    """Transfers, escalations, joins and whispers on the queue's database.

    Times come from the desk's clock (tests move it), like the desk's own rounds.
    """

    def __init__(self, queue: Queue, desk: Desk) -> None:
        """Work on ``queue``'s tickets, with ``desk``'s caps, statuses and clock."""
        self._queue = queue
        self._desk = desk
        self._sessions = sessionmaker(queue.engine, expire_on_commit=False, future=True)

    # ---- checks ------------------------------------------------------------------------------

    def _fresh(self, ticket_id: int) -> Ticket:
        with self._sessions() as session:
            ticket = session.get(Ticket, ticket_id)
        if ticket is None:
            raise QueueError(wording.STORE_AGENT_TEXT["not_found"].format(ticket_id=ticket_id), status=404)
        return ticket

    @staticmethod
    def _check_owner(ticket: Ticket, username: str, action: str, supervisor: bool = False) -> None:
        """Refuse a resolved or offline ticket, or one ``username`` does not own (supervisors: any claimed one)."""
        label = TEXT["actions"][action]
        if ticket.status == "resolved":
            raise QueueError(TEXT["resolved"].format(ticket_id=ticket.id, action=label))
        if ticket.offline:
            raise QueueError(TEXT["offline"].format(ticket_id=ticket.id, action=label))
        if ticket.status != "claimed" or not (ticket.claimed_by == username or supervisor):
            raise QueueError(TEXT["not_owner"].format(ticket_id=ticket.id, action=label,
                                                      status_ja=_status_ja(ticket)))

    @staticmethod
    def _reread(session: Session, ticket_id: int) -> Ticket:
        """The ticket as the caller's transaction sees it now (after a conditional UPDATE that missed)."""
        return session.execute(select(Ticket).where(Ticket.id == ticket_id)
                                .execution_options(populate_existing=True)).scalar_one()

    def _lost(self, ticket: Ticket, username: str, action: str, supervisor: bool = False) -> QueueError:
        """The 409 of a step that lost a race, from ``ticket`` as the winner left it.

        The refusal a later try would get (not ``username``'s chat any more, escalated
        already), so both of two clicks at once read the same clear message; else
        "changed meanwhile".
        """
        try:
            self._check_owner(ticket, username, action, supervisor)
        except QueueError as refusal:
            return refusal
        if action == "escalate" and ticket.escalation == "requested":
            return QueueError(TEXT["already_escalated"].format(ticket_id=ticket.id))
        return QueueError(wording.STORE_AGENT_TEXT["changed_meanwhile"].format(ticket_id=ticket.id))

    @staticmethod
    def _changed(session: Session, ticket_id: int, *conditions: Any, **values: Any) -> bool:
        """The conditional UPDATE of a step: True if the ticket still was as read."""
        return bool(session.execute(update(Ticket).where(Ticket.id == ticket_id, *conditions).values(**values)
                                    .execution_options(synchronize_session=False)).rowcount)

    # ---- transfer ----------------------------------------------------------------------------

    def transfer(self, ticket_id: int, username: str, to: Transfer, display_name: DisplayName,
                 supervisor: bool = False) -> tuple[Ticket, str]:
        """Hand a claimed ticket to another agent or back to the queue.

        Args:
            ticket_id: The ticket.
            username: Who transfers it: its agent, or a supervisor (``supervisor`` True).
            to: The new agent or the queue, and the internal note.
            display_name: User name → display name (for the transcript line).
            supervisor: ``username`` is a supervisor or an admin.

        Returns:
            The ticket and the user name of the agent who had it.

        Raises:
            QueueError: 404 unknown ticket or agent; 409 resolved, offline, not ``username``'s,
                the new agent is the current one, not 対応可能 or at their cap, or the ticket
                changed meanwhile.
        """
        current = self._fresh(ticket_id)
        self._check_owner(current, username, "transfer", supervisor)
        previous = str(current.claimed_by)
        if to.agent is not None and to.agent == previous:
            raise QueueError(TEXT["to_self"].format(name=display_name(previous)))
        now = self._desk.now()
        with self._sessions() as session, session.begin():
            if to.agent is not None:
                self._reserve(session, to.agent, ticket_id, display_name)  # the new agent's row first, as claims do
            ticket = self._queue._locked(session, ticket_id)
            same = (Ticket.status == "claimed", Ticket.claimed_by == previous)
            if to.agent is not None:
                changed = self._changed(session, ticket_id, *same, claimed_by=to.agent, awaiting_reply_since=now)
                record = TEXT["record_transferred"].format(old=display_name(previous), new=display_name(to.agent))
            else:
                category = to.category or ticket.category
                changed = self._changed(session, ticket_id, *same, status="waiting", claimed_by=None,
                                        offered_to=None, offered_at=None, offer_skipped=[previous],
                                        category=category,
                                        awaiting_reply_since=func.coalesce(Ticket.awaiting_reply_since, now))
                record = TEXT["record_requeued"].format(old=display_name(previous),
                                                       category=category or TEXT["no_category"])
            if not changed:  # another step came first (rolled back with the reserved slot)
                raise self._lost(self._reread(session, ticket_id), username, "transfer", supervisor)
            ticket = self._queue._append(session, ticket_id, "system", record, display_name(username))
            record_event(session, ticket_id, "transferred" if to.agent else "requeued", username,
                         target=to.agent or to.category, note=to.note, at=now)
            self._queue.webhooks.record(session, ticket_id, "ticket.transferred", ticket_snapshot(ticket))
        return self._queue.get(ticket_id, with_entries=False), previous

    def _reserve(self, session: Session, username: str, ticket_id: int, display_name: DisplayName) -> None:
        refused = self._desk.take_slot(session, username, ticket_id, available_only=True)
        if refused == "unknown":
            raise QueueError(TEXT["unknown_agent"].format(username=username[:100]), status=404)
        row = session.execute(select(Agent.status, Agent.max_chats).where(Agent.username == username)).one()
        if refused == "unavailable":
            raise QueueError(TEXT["unavailable"].format(name=display_name(username),
                                                        status=STATUSES.get(row.status, row.status)))
        if refused == "full":
            raise QueueError(TEXT["full"].format(name=display_name(username), cap=row.max_chats))

    # ---- escalation --------------------------------------------------------------------------

    def escalate(self, ticket_id: int, username: str, note: str | None, display_name: DisplayName) -> Ticket:
        """The agent of a claimed ticket asks the supervisors to step in; they stay in the chat.

        Raises:
            QueueError: 404 unknown; 409 resolved, offline, not ``username``'s, escalated
                already (and no supervisor joined yet), or changed meanwhile.
        """
        current = self._fresh(ticket_id)
        self._check_owner(current, username, "escalate")
        if current.escalation == "requested":
            raise QueueError(TEXT["already_escalated"].format(ticket_id=ticket_id))
        record = TEXT["record_escalated"].format(name=display_name(username))
        escalated = self._escalate(ticket_id, username, note, record, Ticket.claimed_by == username,
                                   Ticket.status == "claimed",
                                   or_(Ticket.escalation.is_(None), Ticket.escalation != "requested"))
        if escalated is None:  # another step came first
            raise self._lost(self._fresh(ticket_id), username, "escalate")
        return escalated

    def _escalate(self, ticket_id: int, username: str | None, note: str | None, record: str,
                  *conditions: Any) -> Ticket | None:
        """Mark the ticket escalated if ``conditions`` still hold; ``None`` when they did not."""
        now = self._desk.now()
        with self._sessions() as session, session.begin():
            if not self._changed(session, ticket_id, *conditions, escalation="requested", escalated_at=now,
                                 escalated_by=username, joined_by=None, priority=PRIORITY_ESCALATED):
                return None
            ticket = self._queue._append(session, ticket_id, "system", record, None)
            record_event(session, ticket_id, "escalated" if username else "auto_escalated", username,
                         note=note, at=now)
            self._queue.webhooks.record(session, ticket_id, "ticket.escalated", ticket_snapshot(ticket))
        return self._queue.get(ticket_id, with_entries=False)

    def due_for_escalation(self, after: dt.timedelta, limit: int = AUTO_BATCH) -> list[int]:
        """Complaint and anger tickets not escalated yet whose customer has waited ``after``.

        Waited: unclaimed since the ticket was filed (or since their first message that
        nobody answered), or claimed without the agent's reply since the claim or since their
        first unanswered message (``awaiting_reply_since``, which the agent's reply clears).
        """
        with self._sessions() as session:
            return list(session.execute(select(Ticket.id).where(*self._due(after))
                                        .order_by(Ticket.id).limit(limit)).scalars())

    def _due(self, after: dt.timedelta) -> tuple[Any, ...]:
        """The conditions of :meth:`due_for_escalation` (checked again by each escalation's UPDATE)."""
        cutoff = self._desk.now() - after
        return (Ticket.priority == PRIORITY_HIGH, Ticket.escalation.is_(None), Ticket.offline.is_(False),
                or_(and_(Ticket.status == "waiting",
                         func.coalesce(Ticket.awaiting_reply_since, Ticket.created_at) <= cutoff),
                    and_(Ticket.status == "claimed", Ticket.awaiting_reply_since <= cutoff)))

    def auto_escalate(self, after: dt.timedelta, note: str, record: str) -> list[Ticket]:
        """Escalate every ticket :meth:`due_for_escalation` finds (each once, whatever the servers).

        Args:
            after: How long the customer of a complaint or anger ticket may wait.
            note: The history's reason; ``record``: the transcript's line.

        Returns:
            The tickets escalated now.
        """
        done = []
        for ticket_id in self.due_for_escalation(after):
            escalated = self._escalate(ticket_id, None, note, record, *self._due(after))
            if escalated is not None:  # else another server, an agent's reply or a claim came first
                done.append(escalated)
        return done

    def join(self, ticket_id: int, supervisor: str, display_name: DisplayName) -> tuple[Ticket, str | None]:
        """A supervisor takes an open chat, escalated or not (the agent, if any, leaves it).

        Joining needs no free slot: a supervisor steps in whatever their load.

        Returns:
            The ticket and the agent who had it (``None``: it was waiting).

        Raises:
            QueueError: 404 unknown; 409 resolved or offline, a supervisor joined already
                (the second of two at once too), or it is the supervisor's own chat.
        """
        current = self._fresh(ticket_id)
        refusal = self._join_refusal(current, supervisor, display_name)
        if refusal is not None:
            raise refusal
        previous = current.claimed_by
        now = self._desk.now()
        owner = Ticket.claimed_by == previous if previous else Ticket.claimed_by.is_(None)
        with self._sessions() as session, session.begin():
            joined = self._changed(session, ticket_id, Ticket.status == current.status, owner,
                                   or_(Ticket.escalation.is_(None), Ticket.escalation == "requested"),
                                   status="claimed", claimed_by=supervisor, claimed_at=current.claimed_at or now,
                                   offered_to=None, offered_at=None, escalation="joined", joined_by=supervisor,
                                   awaiting_reply_since=now)
            if joined:
                ticket = self._queue._append(session, ticket_id, "system",
                                             TEXT["record_joined"].format(name=display_name(supervisor)), None)
                record_event(session, ticket_id, "joined", supervisor, target=previous, at=now)
                # The supervisor owns the chat now (a waiting one too): receivers hear who, as of a claim.
                self._queue.webhooks.record(session, ticket_id, "ticket.claimed", ticket_snapshot(ticket))
        if not joined:  # another supervisor (or agent) came first: say who, from the row as it is now
            refusal = self._join_refusal(self._fresh(ticket_id), supervisor, display_name)
            raise refusal or QueueError(wording.STORE_AGENT_TEXT["changed_meanwhile"].format(ticket_id=ticket_id))
        return self._queue.get(ticket_id, with_entries=False), previous

    @staticmethod
    def _join_refusal(ticket: Ticket, supervisor: str, display_name: DisplayName) -> QueueError | None:
        label = TEXT["actions"]["join"]
        if ticket.status == "resolved":
            return QueueError(TEXT["resolved"].format(ticket_id=ticket.id, action=label))
        if ticket.offline:
            return QueueError(TEXT["offline"].format(ticket_id=ticket.id, action=label))
        if ticket.claimed_by == supervisor:
            return QueueError(TEXT["already_yours"].format(ticket_id=ticket.id))
        if ticket.escalation == "joined" and ticket.joined_by:
            return QueueError(TEXT["already_joined"].format(ticket_id=ticket.id, name=display_name(ticket.joined_by)))
        return None

    # ---- whispers and history ----------------------------------------------------------------

    def whisper(self, ticket_id: int, supervisor: str, text: str) -> Ticket:
        """A supervisor's ささやき to the agent of a claimed chat: into the history only.

        Raises:
            QueueError: 404 unknown; 409 resolved, nobody's chat now, or the supervisor's own.
        """
        with self._sessions() as session, session.begin():
            ticket = self._queue._locked(session, ticket_id)
            label = TEXT["actions"]["whisper"]
            if ticket.status == "resolved":
                raise QueueError(TEXT["resolved"].format(ticket_id=ticket_id, action=label))
            if ticket.status != "claimed" or not ticket.claimed_by:
                raise QueueError(TEXT["no_agent"].format(ticket_id=ticket_id))
            if ticket.claimed_by == supervisor:
                raise QueueError(TEXT["whisper_self"].format(ticket_id=ticket_id))
            record_event(session, ticket_id, "whisper", supervisor, target=ticket.claimed_by, note=text,
                         at=self._desk.now())
        return ticket

    def history(self, ticket_id: int, viewer: str, supervisor: bool) -> list[TicketEvent]:
        """The ticket's steps, oldest first; a whisper only for its author, its agent and supervisors.

        Raises:
            QueueError: 404 unknown ticket.
        """
        self._fresh(ticket_id)
        query = select(TicketEvent).where(TicketEvent.ticket_id == ticket_id)
        if not supervisor:
            query = query.where(or_(TicketEvent.kind != "whisper", TicketEvent.target == viewer,
                                    TicketEvent.actor == viewer))
        with self._sessions() as session:
            return list(session.execute(query.order_by(TicketEvent.id)).scalars())

    def last_customer_messages(self, ticket_ids: Sequence[int]) -> dict[int, dt.datetime]:
        """Ticket id → the time of the customer's latest message in it (one grouped query)."""
        if not ticket_ids:
            return {}
        with self._sessions() as session:
            rows = session.execute(select(TranscriptEntry.ticket_id, func.max(TranscriptEntry.at))
                                   .where(TranscriptEntry.ticket_id.in_(list(ticket_ids)),
                                          TranscriptEntry.sender == "customer")
                                   .group_by(TranscriptEntry.ticket_id)).all()
        return {int(ticket_id): at for ticket_id, at in rows}
