"""Handoff queue operations: idempotent enqueue, listing by priority and age, state changes.

Every text is masked (card numbers, マイナンバー; see bot/text/masking.py) before it is
written. State changes check the current state and raise :class:`QueueError` with a
message for the API to return as 4xx; nothing is written when they fail.

Nothing here loads more than a page: lists and transcripts are paged, a queue position
is one COUNT, and appending to a transcript reads only the ticket's row (its
``entry_count``), so a long conversation costs the same per message as a short one.
Limits (:class:`bot.settings.Limits`) bound the open tickets of one customer and the
entries of one ticket. (A handoff joining a conversation's open ticket, rare, reads that
ticket's customer and bot entries, at most ``Limits.ticket_entries``, to skip the ones it holds.)
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Callable, Mapping, Protocol, Sequence

from sqlalchemy import and_, func, or_, select, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload, sessionmaker

from bot import wording
from bot.settings import Limits
from bot.store.audit import record_audit, ticket_target
from bot.store.models import RESOLUTION_LIMITED, Conversation, Ticket, TranscriptEntry, as_utc, utcnow
from bot.store.ticket_events import record_event
from bot.store.webhooks import WebhookOutbox, ticket_snapshot
from bot.text.masking import mask_sensitive

# Senders whose entries stop at Limits.ticket_entries; agents' replies, notes and system
# entries are always added (an agent can still answer and close a full ticket).
LIMITED_SENDERS = ("customer", "bot")
# Senders whose entries are an agent's action: each writes its audit line (without the text).
AUDITED_SENDERS = {"agent": "ticket.replied", "note": "ticket.noted"}
# First key of the advisory locks that keep one conversation's handoffs apart (PostgreSQL;
# the second is the conversation's hash): any number no other advisory lock here uses.
ENQUEUE_LOCK_SPACE = 0x4B12


class QueueError(ValueError):
    """A request the queue refuses; ``status`` is the HTTP status an API should answer."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


class TicketResolved(QueueError):
    """The ticket was resolved already (409): nothing more can be attached to it."""

    def __init__(self, ticket_id: int) -> None:
        super().__init__(wording.STORE_CUSTOMER_TEXT["resolved"])  # reaches customers: no number
        self.ticket_id = ticket_id


class TicketFull(QueueError):
    """The ticket holds :attr:`Limits.ticket_entries` entries; no more customer or bot ones."""

    def __init__(self, limit: int) -> None:
        super().__init__(wording.STORE_CUSTOMER_TEXT["entry_limit"].format(limit=limit,
                                                                          contact=wording.fallback_contact()),
                         status=429)


# Runs first in a claim's (or take-over's) transaction with the ticket's id; raises QueueError
# to refuse (bot.store.desk.Desk.slot_guard: the agent's concurrent-chat cap).
SlotGuard = Callable[[Session, int], None]


class NewTurn(Protocol):
    """One turn of a new ticket's transcript (e.g. :class:`bot.handoff.packet.Turn`)."""

    @property
    def sender(self) -> str: ...
    @property
    def text(self) -> str: ...
    @property
    def intent(self) -> str | None: ...
    @property
    def confidence(self) -> float | None: ...
    @property
    def at(self) -> float | None: ...  # UNIX time


class NewTicket(Protocol):
    """What a new ticket is made of (e.g. :class:`bot.handoff.packet.HandoffPacket`).

    A protocol, not the handoff's own type: the store persists what it is given and
    knows nothing of how a handoff is decided (reasons, priority, masking rules).
    """

    @property
    def idempotency_key(self) -> str: ...
    @property
    def conversation_id(self) -> str: ...
    @property
    def reasons(self) -> Sequence[str]: ...
    @property
    def priority(self) -> int: ...
    @property
    def transcript(self) -> Sequence[NewTurn]: ...
    @property
    def summary(self) -> str: ...
    @property
    def category(self) -> str | None: ...
    @property
    def customer(self) -> Mapping[str, Any]: ...
    @property
    def offline(self) -> bool: ...


def _status_ja(ticket: Ticket) -> str:
    """The ticket's status as agents read it (対応待ち, 対応中, 解決済み)."""
    return wording.TICKET_STATUS_JA.get(str(ticket.status), "不明")


def ahead_of(ticket: Ticket) -> Any:
    """Condition: a ticket comes before ``ticket`` in the queue's order (priority, age, id)."""
    return or_(Ticket.priority < ticket.priority,
               and_(Ticket.priority == ticket.priority,
                    or_(Ticket.created_at < ticket.created_at,
                        and_(Ticket.created_at == ticket.created_at, Ticket.id < ticket.id))))


def _turn_time(turn: NewTurn) -> dt.datetime:
    """When the turn was said (now, for a turn without a time)."""
    return dt.datetime.fromtimestamp(turn.at, dt.timezone.utc) if turn.at else utcnow()


def _entry(turn: NewTurn, position: int, ticket_id: int | None = None) -> TranscriptEntry:
    """The transcript entry of a packet's turn (masked)."""
    return TranscriptEntry(ticket_id=ticket_id, position=position, sender=turn.sender, text=mask_sensitive(turn.text),
                           intent=turn.intent, confidence=turn.confidence, at=_turn_time(turn))


def _not_found(ticket_id: int) -> QueueError:
    return QueueError(wording.STORE_AGENT_TEXT["not_found"].format(ticket_id=ticket_id), status=404)


class Queue:
    """The handoff queue on one database."""

    def __init__(self, engine: Engine, limits: Limits | None = None, webhooks: WebhookOutbox | None = None) -> None:
        """Use ``engine`` (see :func:`bot.store.database.make_engine`).

        Args:
            engine: The database.
            limits: Open tickets per customer, entries per ticket; ``None`` reads the
                settings (``BOT_LIMIT_*``). Public as ``limits``.
            webhooks: Records ticket events for webhook receivers in the same transaction
                as the change; ``None`` reads ``BOT_WEBHOOKS_FILE``. Public as ``webhooks``.
        """
        self.engine = engine  # other stores of the same database (e.g. the outbox's undelivered handoffs)
        self._sessions = sessionmaker(engine, expire_on_commit=False, future=True)
        if limits is None:
            from bot.settings import get_settings

            limits = get_settings().limits
        self.limits = limits
        self.webhooks = webhooks if webhooks is not None else WebhookOutbox.from_settings()

    def enqueue(self, packet: NewTicket) -> tuple[Ticket, bool]:
        """Create the ticket for ``packet`` once; a conversation has one open ticket of a kind.

        A packet whose conversation already has an open (unresolved) ticket of its kind
        (staffed or offline) joins that ticket instead of opening another: the transcript
        turns the ticket does not hold yet are appended and its key is kept with the ticket.
        So a resend while the first packet still waited in the action server's outbox, or two
        action servers handing off one conversation at once, make one ticket (issue #12).
        The conversation's handoffs are decided one at a time (:meth:`_lock_conversation`).

        A customer who already has :attr:`Limits.open_tickets_per_customer` unresolved
        tickets (this conversation, and the conversations started from the same address)
        gets a ticket that is resolved at once with resolution ``limited``: it never
        reaches the consoles, and the bot server tells the customer why. A packet that
        joins an open ticket opens none and is never refused.

        Returns:
            The ticket and whether it was created now (``False``: a retry of a known key,
            or a packet that joined the conversation's open ticket).

        Raises:
            IntegrityError: The database refused the ticket for another reason than its
                key (a retry cannot help).
        """
        try:
            with self._sessions() as session, session.begin():
                self._lock_conversation(session, packet.conversation_id)
                ticket_id = self._holder(session, packet.conversation_id, packet.idempotency_key)
                created = ticket_id is None
                if created:
                    ticket_id = session.execute(select(Ticket.id).where(
                        Ticket.conversation_id == packet.conversation_id, Ticket.status != "resolved",
                        Ticket.offline.is_(bool(packet.offline))).order_by(Ticket.id.desc()).limit(1)).scalar()
                    created = ticket_id is None
                    if ticket_id is not None:
                        self._join(session, ticket_id, packet)
                    else:
                        ticket_id = self._insert(session, packet)
        except IntegrityError:
            with self._sessions() as session:
                ticket_id = self._holder(session, packet.conversation_id, packet.idempotency_key)
            if ticket_id is None:
                # Not a repeated key but another constraint (e.g. a missing value): the
                # caller must see the real reason, not "no ticket with this key".
                raise
            created = False
        return self.get(ticket_id), created

    @staticmethod
    def _lock_conversation(session: Session, conversation_id: str) -> None:
        """Hold the conversation's handoffs back until this transaction ends (first in it).

        PostgreSQL: a transaction-level advisory lock on the conversation. SQLite: a write to
        the conversation's open tickets (none may match) takes the database's write lock; it
        must come first, so what follows reads what the last writer committed.
        """
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("SELECT pg_advisory_xact_lock(:space, hashtext(:conversation))"),
                            {"space": ENQUEUE_LOCK_SPACE, "conversation": conversation_id})
        else:
            session.execute(update(Ticket).where(Ticket.conversation_id == conversation_id,
                                                 Ticket.status != "resolved")
                            .values(entry_count=Ticket.entry_count).execution_options(synchronize_session=False))

    @staticmethod
    def _holder(session: Session, conversation_id: str, key: str) -> int | None:
        """The ticket holding the handoff ``key``: its own, or joined into it (one of the conversation's few)."""
        own = session.execute(select(Ticket.id).where(Ticket.idempotency_key == key)).scalar()
        if own is not None:
            return int(own)
        joined = session.execute(select(Ticket.id, Ticket.handoff_keys).where(
            Ticket.conversation_id == conversation_id, Ticket.handoff_keys.is_not(None)))
        return next((int(ticket_id) for ticket_id, keys in joined if key in (keys or [])), None)

    def holds(self, ticket_id: int, key: str) -> bool:
        """Whether the ticket is the one of the handoff ``key`` (its own, or a handoff that joined it)."""
        with self._sessions() as session:
            row = session.execute(select(Ticket.idempotency_key, Ticket.handoff_keys)
                                  .where(Ticket.id == ticket_id)).first()
            return row is not None and (row.idempotency_key == key or key in (row.handoff_keys or []))

    def _insert(self, session: Session, packet: NewTicket) -> int:
        """Add the new ticket of ``packet`` (``limited`` beyond the open-ticket limit); its id."""
        limited = bool(self.limits.open_tickets_per_customer) and \
            self._open_for_customer(session, packet.conversation_id) >= self.limits.open_tickets_per_customer
        now = utcnow()
        ticket = Ticket(
            idempotency_key=packet.idempotency_key,
            conversation_id=packet.conversation_id,
            priority=packet.priority,
            reasons=list(packet.reasons),
            category=packet.category,
            summary=mask_sensitive(packet.summary),
            customer={k: mask_sensitive(str(v)) for k, v in packet.customer.items()},
            offline=packet.offline,
            entries=[_entry(turn, i) for i, turn in enumerate(packet.transcript)],
            entry_count=len(packet.transcript),
            **({"status": "resolved", "resolution": RESOLUTION_LIMITED, "resolved_at": now, "announced_at": now}
               if limited else {}),
        )
        session.add(ticket)
        session.flush()  # the ticket's id
        if not limited and self.webhooks.routes.get("ticket.created"):
            self.webhooks.record(session, ticket.id, "ticket.created", ticket_snapshot(ticket))
        return int(ticket.id)

    def _join(self, session: Session, ticket_id: int, packet: NewTicket) -> None:
        """Fold ``packet`` into the conversation's open ticket (caller holds the conversation's lock).

        The turns the ticket holds already (the conversation's common history: same sender,
        text and time) are skipped, the others appended, up to :attr:`Limits.ticket_entries`
        customer and bot entries. The ticket takes the packet's reasons and the higher priority.
        """
        ticket = self._locked(session, ticket_id)  # the gateway appends to it meanwhile
        held: dict[tuple[str, str], set[dt.datetime]] = {}
        for sender, text_, at in session.execute(select(TranscriptEntry.sender, TranscriptEntry.text,
                                                        TranscriptEntry.at)
                                                 .where(TranscriptEntry.ticket_id == ticket_id,
                                                        TranscriptEntry.sender.in_(LIMITED_SENDERS))):
            held.setdefault((sender, text_), set()).add(as_utc(at))
        new = []
        for turn in packet.transcript:
            times = held.get((turn.sender, mask_sensitive(turn.text)))
            # A turn without a time is known by its text only.
            if times is None or (turn.at is not None and _turn_time(turn) not in times):
                new.append(turn)
        if self.limits.ticket_entries:
            new = new[:max(0, self.limits.ticket_entries - ticket.entry_count)]
        for offset, turn in enumerate(new):
            session.add(_entry(turn, ticket.entry_count + offset, ticket_id))
        ticket.entry_count = ticket.entry_count + len(new)
        if any(turn.sender == "customer" for turn in new) and ticket.awaiting_reply_since is None:
            ticket.awaiting_reply_since = utcnow()
        ticket.reasons = list(dict.fromkeys([*(ticket.reasons or []), *packet.reasons]))
        ticket.priority = min(int(ticket.priority), packet.priority)
        ticket.handoff_keys = [*(ticket.handoff_keys or []), packet.idempotency_key]

    @staticmethod
    def _open_for_customer(session: Session, conversation_id: str) -> int:
        """Unresolved tickets of the conversation and of those started from its address."""
        address = session.execute(select(Conversation.address_key)
                                  .where(Conversation.id == conversation_id)).scalar()
        mine = Ticket.conversation_id == conversation_id
        if address:
            mine = or_(mine, Ticket.conversation_id.in_(select(Conversation.id)
                                                        .where(Conversation.address_key == address)))
        return int(session.execute(select(func.count()).select_from(Ticket)
                                   .where(Ticket.status != "resolved", mine)).scalar_one())

    @staticmethod
    def _load(session: Session, ticket_id: int, with_entries: bool = True) -> Ticket:
        query = select(Ticket).where(Ticket.id == ticket_id)
        if with_entries:
            query = query.options(selectinload(Ticket.entries))
        ticket = session.execute(query).scalar_one_or_none()
        if ticket is None:
            raise _not_found(ticket_id)
        return ticket

    @staticmethod
    def _locked(session: Session, ticket_id: int) -> Ticket:
        """The ticket, row-locked for a state change (PostgreSQL; SQLite serialises writes)."""
        ticket = session.get(Ticket, ticket_id, with_for_update=True)
        if ticket is None:
            raise _not_found(ticket_id)
        return ticket

    def get(self, ticket_id: int, with_entries: bool = True) -> Ticket:
        """The ticket, with its whole transcript unless ``with_entries`` is False.

        The agent API reads transcripts a page at a time (:meth:`entries`); the whole one
        is for tests and tools.

        Raises:
            QueueError: 404 when it does not exist.
        """
        with self._sessions() as session:
            return self._load(session, ticket_id, with_entries)

    def entries(self, ticket_id: int, before: int | None = None,
                limit: int = 100) -> tuple[list[TranscriptEntry], bool]:
        """A page of the transcript: the latest ``limit`` entries before entry ``before``.

        Args:
            ticket_id: The ticket.
            before: Id of an entry of this ticket; ``None``: the newest entries.
            limit: Entries per page (the agent API allows at most 500).

        Returns:
            The entries in transcript order (oldest first) and whether older ones exist.

        Raises:
            QueueError: 404 unknown ticket, or ``before`` is not one of its entries.
        """
        limit = max(1, limit)
        with self._sessions() as session:
            if session.get(Ticket, ticket_id) is None:
                raise _not_found(ticket_id)
            query = select(TranscriptEntry).where(TranscriptEntry.ticket_id == ticket_id)
            if before is not None:
                anchor = session.get(TranscriptEntry, before)
                if anchor is None or anchor.ticket_id != ticket_id:
                    raise QueueError(wording.STORE_AGENT_TEXT["no_such_entry"].format(ticket_id=ticket_id,
                                                                                      before=before), status=404)
                query = query.where(or_(TranscriptEntry.position < anchor.position,
                                        and_(TranscriptEntry.position == anchor.position,
                                             TranscriptEntry.id < anchor.id)))
            rows = list(session.execute(query.order_by(TranscriptEntry.position.desc(), TranscriptEntry.id.desc())
                                        .limit(limit + 1)).scalars())
        return rows[:limit][::-1], len(rows) > limit

    def position(self, ticket_id: int) -> int:
        """1-based place of a waiting ticket in the queue (0 when it is no longer waiting).

        One COUNT of the waiting tickets ahead of it (same order as :meth:`tickets`).
        """
        with self._sessions() as session:
            ticket = session.get(Ticket, ticket_id)
            if ticket is None or ticket.status != "waiting":
                return 0
            return 1 + int(session.execute(select(func.count()).select_from(Ticket)
                                           .where(Ticket.status == "waiting", ahead_of(ticket))).scalar_one())

    def open_tickets(self, limit: int = 200) -> list[Ticket]:
        """Waiting and claimed tickets, high priority first, then oldest first (the first ``limit``)."""
        return self.tickets("open", limit)

    def tickets(self, status: str = "open", limit: int = 200, offset: int = 0) -> list[Ticket]:
        """A page of tickets by status, without their transcripts.

        Args:
            status: ``open`` (waiting and claimed, by priority then age), ``resolved`` or
                ``all`` (newest first).
            limit: Tickets per page (the agent API allows at most 200).
            offset: Tickets to skip.

        Raises:
            QueueError: 422 for an unknown status.
        """
        query = select(Ticket)
        if status == "open":
            query = query.where(Ticket.status != "resolved").order_by(Ticket.priority, Ticket.created_at,
                                                                      Ticket.id)
        elif status in ("resolved", "all"):
            if status == "resolved":
                query = query.where(Ticket.status == "resolved")
            query = query.order_by(Ticket.id.desc())
        else:
            raise QueueError(f"status={status!r} は使えません。open / resolved / all のいずれかを指定してください。",
                             status=422)
        query = query.limit(max(1, limit)).offset(max(0, offset))
        with self._sessions() as session:
            return list(session.execute(query).scalars())

    def unannounced(self, limit: int = 500) -> list[Ticket]:
        """Tickets the consoles have not been told about yet, oldest first.

        A flag rather than an id watermark: on PostgreSQL ids become visible in commit
        order, not id order, and tickets filed while the bot server was down must not be
        skipped when it starts again.
        """
        with self._sessions() as session:
            return list(session.execute(select(Ticket).where(Ticket.announced_at.is_(None))
                                        .order_by(Ticket.id).limit(limit)).scalars())

    def claim_announcement(self, ticket_id: int, lease: dt.timedelta) -> bool:
        """Take the job of telling the consoles about a ticket; False if another server has it.

        A claim older than ``lease`` without :meth:`mark_announced` means its server died
        (or failed) before the consoles were told: the ticket is claimed again.
        """
        return bool(self.claim_announcements([ticket_id], lease))

    def claim_announcements(self, ticket_ids: Sequence[int], lease: dt.timedelta) -> list[int]:
        """:meth:`claim_announcement` for several tickets in one transaction (one commit).

        Each ticket is claimed by its own conditional UPDATE, so of two servers claiming
        the same tickets at once each ticket goes to one of them.

        Returns:
            The ids this call claimed, in the given order.
        """
        now = utcnow()
        claimed = []
        with self._sessions() as session, session.begin():
            for ticket_id in ticket_ids:
                result = session.execute(update(Ticket).where(
                    Ticket.id == ticket_id, Ticket.announced_at.is_(None),
                    or_(Ticket.announce_claimed_at.is_(None), Ticket.announce_claimed_at < now - lease))
                    .values(announce_claimed_at=now))
                if result.rowcount:
                    claimed.append(ticket_id)
        return claimed

    def release_announcement(self, ticket_id: int) -> None:
        """Give up a claim (telling the consoles failed): any server may announce it again."""
        with self._sessions() as session, session.begin():
            session.execute(update(Ticket).where(Ticket.id == ticket_id, Ticket.announced_at.is_(None))
                            .values(announce_claimed_at=None))

    def mark_announced(self, *ticket_ids: int) -> int:
        """Record that the consoles were told (one commit for all); how many were not recorded yet."""
        if not ticket_ids:
            return 0
        with self._sessions() as session, session.begin():
            result = session.execute(update(Ticket).where(Ticket.id.in_(ticket_ids), Ticket.announced_at.is_(None))
                                     .values(announced_at=utcnow()))
            return int(result.rowcount)

    def open_ticket_for(self, conversation_id: str) -> Ticket | None:
        """The conversation's unresolved ticket, if a person owns it now."""
        with self._sessions() as session:
            ticket_id = session.execute(select(Ticket.id).where(Ticket.conversation_id == conversation_id,
                                                                Ticket.status != "resolved",
                                                                Ticket.offline.is_(False))
                                        .order_by(Ticket.id.desc()).limit(1)).scalar()
            return self._load(session, ticket_id, with_entries=False) if ticket_id else None

    def claim(self, ticket_id: int, agent: str, guard: SlotGuard | None = None) -> Ticket:
        """Agent takes a waiting ticket (an offer to anyone ends with it).

        Args:
            ticket_id: The ticket.
            agent: The agent's user name.
            guard: Checks the agent's cap inside the claim's transaction, before the ticket
                is locked (:meth:`bot.store.desk.Desk.slot_guard`); ``None``: no cap.

        Raises:
            QueueError: 404 unknown ticket; 409 already claimed or resolved, or the agent's
                cap is reached.
        """
        with self._sessions() as session, session.begin():
            if guard is not None:
                guard(session, ticket_id)
            ticket = self._locked(session, ticket_id)
            if ticket.status != "waiting":
                raise QueueError(wording.STORE_AGENT_TEXT["not_waiting"].format(ticket_id=ticket_id,
                                                                                status_ja=_status_ja(ticket)))
            now = utcnow()
            self._transition(session, ticket_id, ("waiting",), status="claimed", claimed_by=agent,
                             claimed_at=now, offered_to=None, offered_at=None, awaiting_reply_since=now)
            self.webhooks.record(session, ticket_id, "ticket.claimed",
                                 ticket_snapshot(ticket, status="claimed", claimed_by=agent, claimed_at=now))
            record_event(session, ticket_id, "claimed", agent, at=now)
        return self.get(ticket_id, with_entries=False)

    @staticmethod
    def _transition(session: Session, ticket_id: int, expected: tuple[str, ...], *conditions: Any,
                    **values: Any) -> None:
        """UPDATE only if the status is still one of ``expected`` (and ``conditions`` hold).

        The check before it gives the precise error; this conditional UPDATE makes the
        change atomic where ``SELECT ... FOR UPDATE`` locks nothing (SQLite), so two agents
        can never both claim a ticket, nor a cancel and a claim both succeed.
        """
        result = session.execute(update(Ticket).where(Ticket.id == ticket_id, Ticket.status.in_(expected),
                                                      *conditions)
                                 .values(**values).execution_options(synchronize_session=False))
        if result.rowcount != 1:
            raise QueueError(wording.STORE_AGENT_TEXT["changed_meanwhile"].format(ticket_id=ticket_id))

    def add_entry(self, ticket_id: int, sender: str, text: str, author: str | None = None,
                  actor: str | None = None) -> Ticket:
        """Append an agent reply, an internal note, a system line or a customer message (masked).

        Touches the ticket's row only (its ``entry_count`` is the new position): no entry
        is loaded, so appending costs the same however long the transcript is.

        Args:
            ticket_id: The ticket.
            sender: ``customer``, ``bot``, ``agent`` (a reply), ``note`` or ``system``.
            text: The entry's text.
            author: Display name shown with the entry (an agent's).
            actor: User name of the agent who wrote a reply or note, for its audit line.

        Returns:
            The ticket without its transcript (see :meth:`entries`).

        Raises:
            QueueError: 404 unknown ticket; 409 resolved ticket; 422 empty text.
            TicketFull: 429, a customer or bot entry beyond :attr:`Limits.ticket_entries`.
        """
        if not text.strip():
            raise QueueError("メッセージが空です。", status=422)
        with self._sessions() as session, session.begin():
            return self._append(session, ticket_id, sender, text, author, actor)

    def _append(self, session: Session, ticket_id: int, sender: str, text: str, author: str | None,
                actor: str | None = None) -> Ticket:
        """Add one entry inside the caller's transaction; the ticket, refreshed.

        The counter is raised first: that UPDATE takes the row's write lock (PostgreSQL)
        or the database's (SQLite) before the position is read, so two writers at once
        never get the same position. A reply or note (:data:`AUDITED_SENDERS`) writes its
        audit line here too, never its text: the log tells of exactly the entries stored.
        """
        # The customer now waits for the agent's reply (since their first unanswered message).
        waiting_since: dict[str, Any] = {
            "customer": {"awaiting_reply_since": func.coalesce(Ticket.awaiting_reply_since, utcnow())},
            "agent": {"awaiting_reply_since": None}}.get(sender, {})
        bumped = session.execute(update(Ticket).where(Ticket.id == ticket_id, Ticket.status != "resolved")
                                 .values(entry_count=Ticket.entry_count + 1, **waiting_since)
                                 .execution_options(synchronize_session=False)).rowcount
        ticket = session.execute(select(Ticket).where(Ticket.id == ticket_id)
                                 .execution_options(populate_existing=True)).scalar_one_or_none()
        if ticket is None:
            raise _not_found(ticket_id)
        if not bumped:
            raise QueueError(wording.STORE_CUSTOMER_TEXT["resolved"])  # reaches customers (error frames): no number
        position = ticket.entry_count - 1
        limit = self.limits.ticket_entries
        if limit and sender in LIMITED_SENDERS and position >= limit:
            raise TicketFull(limit)  # rolls the counter back with the transaction
        session.add(TranscriptEntry(ticket_id=ticket_id, position=position, sender=sender,
                                    text=mask_sensitive(text), author=author))
        if sender in AUDITED_SENDERS:
            record_audit(session, AUDITED_SENDERS[sender], actor, ticket_target(ticket_id))
        return ticket

    def resolve(self, ticket_id: int, resolution: str = "resolved", agent: str | None = None) -> Ticket:
        """Close a ticket; the conversation goes back to the bot.

        Args:
            ticket_id: The ticket.
            resolution: ``resolved`` (an agent closed it) or ``cancelled`` (the customer
                stopped waiting; only while nobody has claimed it).
            agent: The agent resolving it. A claimed ticket can be resolved by the agent
                who claimed it only (others take it over first, :meth:`take_over`).

        Raises:
            QueueError: 404 unknown ticket; 409 already resolved, or cancelling a claimed
                ticket; 403 claimed by another agent.
        """
        with self._sessions() as session, session.begin():
            self._resolve(session, ticket_id, resolution, agent)
        return self.get(ticket_id, with_entries=False)

    def _resolve(self, session: Session, ticket_id: int, resolution: str, agent: str | None) -> None:
        """:meth:`resolve` inside the caller's transaction."""
        ticket = self._locked(session, ticket_id)
        if ticket.status == "resolved":
            raise QueueError(wording.STORE_AGENT_TEXT["already_resolved"].format(ticket_id=ticket_id))
        if resolution == "cancelled" and ticket.status != "waiting":
            raise QueueError("担当者がすでに対応を始めています。")
        conditions: list[Any] = []
        if agent is not None:
            if ticket.status == "claimed" and ticket.claimed_by != agent:
                raise QueueError(wording.STORE_AGENT_TEXT["claimed_by_other"].format(
                    ticket_id=ticket_id, name=ticket.claimed_by), status=403)
            conditions.append(or_(Ticket.status == "waiting", Ticket.claimed_by == agent))
        expected = ("waiting",) if resolution == "cancelled" else ("waiting", "claimed")
        now = utcnow()
        self._transition(session, ticket_id, expected, *conditions, status="resolved", resolved_at=now,
                         resolution=resolution, resolved_by=agent)
        self.webhooks.record(session, ticket_id, "ticket.resolved", ticket_snapshot(
            ticket, status="resolved", resolved_at=now, resolution=resolution, resolved_by=agent))
        record_event(session, ticket_id, "cancelled" if resolution == "cancelled" else "resolved", agent, at=now)

    def cancel_unless_joined(self, ticket_id: int, key: str) -> Ticket | None:
        """Cancel a waiting ticket (as :meth:`resolve`) unless the handoff ``key`` has joined it.

        Decided under the conversation's lock (:meth:`enqueue`): that handoff's packet, arriving
        this instant, either joined the ticket first (``None``: nothing is changed, the ticket
        is that handoff's) or finds it cancelled and opens its own.

        Raises:
            QueueError: As :meth:`resolve` with ``cancelled``.
        """
        with self._sessions() as session, session.begin():
            conversation_id = session.execute(select(Ticket.conversation_id).where(Ticket.id == ticket_id)).scalar()
            if conversation_id is None:
                raise _not_found(ticket_id)
            self._lock_conversation(session, conversation_id)
            if self._holder(session, conversation_id, key) == ticket_id:
                return None
            self._resolve(session, ticket_id, "cancelled", None)
        return self.get(ticket_id, with_entries=False)

    def take_over(self, ticket_id: int, agent: str, record: str, author: str | None = None,
                  guard: SlotGuard | None = None) -> tuple[Ticket, str]:
        """An agent takes a ticket another agent claimed; ``record`` goes into its transcript.

        Args:
            ticket_id: The ticket.
            agent: The agent taking over.
            record: The transcript line recording the take-over (a ``system`` entry).
            author: Display name of ``agent`` for the entry.
            guard: Checks the new agent's cap first (see :meth:`claim`); ``None``: no cap.

        Returns:
            The ticket (without its transcript) and the user name of the previous agent.

        Raises:
            QueueError: 404 unknown ticket; 409 not claimed, or claimed by ``agent`` already.
        """
        with self._sessions() as session, session.begin():
            if guard is not None:
                guard(session, ticket_id)
            ticket = self._locked(session, ticket_id)
            if ticket.status != "claimed":
                raise QueueError(wording.STORE_AGENT_TEXT["not_claimed"].format(ticket_id=ticket_id,
                                                                                status_ja=_status_ja(ticket)))
            previous = str(ticket.claimed_by)
            if previous == agent:
                raise QueueError(wording.STORE_AGENT_TEXT["already_yours"].format(ticket_id=ticket_id))
            self._transition(session, ticket_id, ("claimed",), Ticket.claimed_by == previous, claimed_by=agent,
                             awaiting_reply_since=utcnow())  # the new agent's own time to reply
            ticket = self._append(session, ticket_id, "system", record, author)
            record_event(session, ticket_id, "taken_over", agent, target=previous)
            # Receivers hear the new owner as of a claim (as after a supervisor's join).
            self.webhooks.record(session, ticket_id, "ticket.claimed", ticket_snapshot(ticket))
        return ticket, previous

    def set_contact(self, ticket_id: int, contact: dict[str, str]) -> Ticket:
        """Add the contact details a customer left (offline ticket), masked.

        Raises:
            QueueError: 404 unknown ticket.
            TicketResolved: 409, the ticket was resolved (nothing is changed; the caller
                keeps the details elsewhere, see ``ChatLog.add_contact``).
        """
        with self._sessions() as session, session.begin():
            ticket = self._locked(session, ticket_id)
            if ticket.status == "resolved":
                raise TicketResolved(ticket_id)
            ticket.customer = {**(ticket.customer or {}),
                               **{k: mask_sensitive(v) for k, v in contact.items() if v}}
        return self.get(ticket_id, with_entries=False)

    def latest_for(self, conversation_id: str) -> Ticket | None:
        """The conversation's newest ticket of any status (without its transcript)."""
        with self._sessions() as session:
            ticket_id = session.execute(select(Ticket.id).where(Ticket.conversation_id == conversation_id)
                                        .order_by(Ticket.id.desc()).limit(1)).scalar()
            return self._load(session, ticket_id, with_entries=False) if ticket_id else None

