"""What both sides of the gateway share: the stores, locks, events and the conversation's state.

:class:`GatewayBase` holds the dependencies and the steps the customer side
(bot/server/gateway_customer.py) and the agent side (bot/server/gateway_agent.py) both
take: saying something in the chat, publishing a ticket change, working out who
answers now, handing a conversation back to the bot, and copying what a customer wrote
while a handoff was pending into its ticket. Its customer-visible texts (``TEXT``) come from
bot/wording.py.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import weakref
from typing import Any, Callable, Mapping, TypeVar

from starlette.concurrency import run_in_threadpool

from bot import wording
from bot.server.events import EventHub
from bot.server.rasa_client import RasaClient, RasaUnavailable
from bot.server.serialize import desk_json, ticket_json
from bot.settings import Limits
from bot.store.chat_log import NewMessage, message_json
from bot.store.database import Stores
from bot.store.models import ChatMessage, Ticket, TranscriptEntry
from bot.store.pending import Pending
from bot.store.queue import QueueError, TicketFull
from bot.store.queue_place import QueuePlace

logger = logging.getLogger(__name__)
T = TypeVar("T")

MAX_MESSAGE_CHARS = 10_000
NOT_HELPFUL_PAYLOAD = "/answer_not_helpful"
# Customer- and agent-facing texts live in bot/wording.py (GATEWAY_TEXT); phone and hours are
# filled from knowledge/facts.yml on first use.
TEXT = wording.gateway_text(MAX_MESSAGE_CHARS)
MINUTE = dt.timedelta(minutes=1)


class CustomerError(ValueError):
    """Something the customer should be told (Japanese), nothing was changed."""


class RateLimited(CustomerError):
    """Too many messages in a minute; ``retry_after``: seconds until the next is accepted."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class GatewayBase:
    """Dependencies and shared steps of the gateway (see bot/server/gateway.py)."""

    def __init__(self, stores: Stores, rasa: RasaClient, hub: EventHub, limits: Limits | None = None) -> None:
        """Use the given stores, Rasa client and event hub.

        Args:
            stores: Queue, chat log, agents, pending handoffs.
            rasa: The Rasa client.
            hub: Events to widgets and consoles.
            limits: Customer limits; ``None``: the queue's (``stores.queue.limits``).
        """
        self._stores = stores
        self._rasa = rasa
        self._hub = hub
        self._limits = limits or stores.queue.limits
        # One lock per conversation, dropped when nobody holds or waits for it.
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        # Rasa could not be resumed yet: retried before the conversation's next message. (Also
        # safe after a restart: a paused Rasa that nobody owns is resumed, see _ask_bot.)
        self._needs_resume: set[str] = set()
        self._names: dict[str, str] = {}

    # ---- helpers -------------------------------------------------------------------------

    def _lock(self, conversation_id: str) -> asyncio.Lock:
        lock = self._locks.get(conversation_id)
        if lock is None:
            lock = self._locks[conversation_id] = asyncio.Lock()
        return lock

    @staticmethod
    async def _db(func: Callable[..., T], *args: Any) -> T:
        return await run_in_threadpool(func, *args)

    def display_name(self, username: str) -> str:
        """An agent's display name (cached; the user name when unknown)."""
        if username not in self._names:
            profile = self._stores.agents.get(username)
            self._names[username] = profile.display_name if profile else username
        return self._names[username]

    def ticket_json(self, ticket: Ticket, entries: list[TranscriptEntry] | None = None,
                    has_earlier_entries: bool = False) -> dict[str, Any]:
        """The API shape of ``ticket``, with a page of its transcript when ``entries`` is given."""
        return {**ticket_json(ticket, self.display_name, entries=entries, has_earlier_entries=has_earlier_entries),
                **desk_json(ticket, self._stores.desk, self.display_name)}

    async def _say(self, conversation_id: str, new: NewMessage) -> dict[str, Any]:
        message, _ = await self._db(self._stores.chat_log.add, new)
        return self._show(conversation_id, message)

    def _show(self, conversation_id: str, message: ChatMessage) -> dict[str, Any]:
        """Send a stored message to the conversation's tabs; its frame."""
        frame = message_json(message)
        self._hub.publish_conversation(conversation_id, {"type": "message", "message": frame})
        return frame

    async def _system(self, conversation_id: str, text: str) -> None:
        await self._say(conversation_id, NewMessage(conversation_id, "system", text))

    def _publish_ticket(self, change: str, ticket: Ticket) -> None:
        self._hub.publish_ticket(change, self.ticket_json(ticket))

    # ---- state -----------------------------------------------------------------------------

    async def state(self, conversation_id: str, places: Mapping[int, tuple[str, QueuePlace]] | None = None
                    ) -> dict[str, Any]:
        """``<State>`` of docs/server-api.md: who answers now, queue position, estimate.

        Args:
            conversation_id: The conversation.
            places: Places just ranked (:meth:`bot.store.desk.Desk.places`); a waiting
                ticket not among them is ranked now (:meth:`bot.store.desk.Desk.place`).
        """
        ticket, pending, latest = await self._db(self._who_answers, conversation_id)
        state: dict[str, Any] = {"mode": "bot", "ticket_id": None, "position": None, "estimate_minutes": None,
                                 "wait_note": None, "agent_name": None, "offline": False, "next_opening": None,
                                 "survey": None, "transcript": None}
        if ticket is not None and ticket.status == "claimed":
            state.update(mode="agent", ticket_id=ticket.id, agent_name=self.display_name(ticket.claimed_by))
        elif ticket is not None:
            ranked = (places or {}).get(ticket.id)
            place = ranked[1] if ranked else await self._db(self._stores.desk.place, ticket.id)
            state.update(mode="waiting", ticket_id=ticket.id)
            if place is not None:  # None: claimed or resolved meanwhile (its own state follows)
                state.update(position=place.position, estimate_minutes=place.estimate_minutes,
                             wait_note=TEXT["no_agent_for_category"] if place.unstaffed else None)
        elif pending:
            state.update(mode="waiting")
        elif latest is not None and latest.offline and latest.status != "resolved" \
                and not {"email", "phone"} & set(latest.customer or {}):
            state.update(offline=True, ticket_id=latest.id)
        else:
            state.update(await self.after_chat_state(latest))
        return state

    def _who_answers(self, conversation_id: str) -> tuple[Ticket | None, bool, Ticket | None]:
        """The open ticket; without one, whether a handoff is pending, and if not the latest ticket.

        What :meth:`state` reads, in one worker-thread hop instead of three (issue #12: every
        hop waited for a thread and for the event loop under load).
        """
        ticket = self._stores.queue.open_ticket_for(conversation_id)
        if ticket is not None:
            return ticket, False, None
        if self._stores.pending.waiting(conversation_id) is not None:
            return None, True, None
        return None, False, self._stores.queue.latest_for(conversation_id)

    async def after_chat_state(self, latest: Ticket | None) -> dict[str, Any]:
        """``survey`` / ``transcript`` of the state after a resolved chat (bot/server/gateway_after_chat.py)."""
        return {}

    async def _after_resolved(self, ticket: Ticket) -> None:
        """Hook after an agent's resolve (the transcript mail: bot/server/gateway_after_chat.py)."""

    async def _publish_state(self, conversation_id: str) -> None:
        self._hub.publish_conversation(conversation_id, {"type": "state", "state": await self.state(conversation_id)})

    async def history(self, conversation_id: str) -> dict[str, Any]:
        """The ``history`` frame: every message so far and the current state."""
        messages = await self._db(self._stores.chat_log.history, conversation_id)
        return {"type": "history", "messages": [message_json(m) for m in messages],
                "state": await self.state(conversation_id)}

    # ---- shared steps ----------------------------------------------------------------------

    async def _drop_pending(self, conversation_id: str) -> None:
        """Forget a pending mark when the conversation's staffed ticket is closed.

        While a staffed ticket is open Rasa never sees the customer, so no other handoff
        can be pending: a mark left now belongs to this ticket (made just after the watcher
        announced it). Kept, it would hold every later message for a ticket that never comes.
        """
        await self._db(self._stores.pending.take, conversation_id)

    async def _settle_arrival(self, ticket: Ticket) -> tuple[Ticket, bool]:
        """Meet a ticket that just arrived with the conversation's pending mark (caller holds the lock).

        The mark's own ticket takes it: the messages kept meanwhile are copied into it, or, if
        the customer stopped waiting, it is cancelled. A ticket the mark's handoff joined (an
        open ticket of the conversation, :meth:`bot.store.queue.Queue.enqueue`) is its own too,
        also when it joins while this ticket is being cancelled as another's
        (:meth:`bot.store.queue.Queue.cancel_unless_joined`). A staffed ticket that meets a mark still
        waiting for *another* handoff is cancelled and the mark stays: while a mark waits, the
        customer's messages never reach Rasa, so no later handoff exists; this ticket is an
        earlier one's, which the customer cancelled while its packet was still in the outbox
        and which arrives only now. (A cancelled mark of another handoff tells nothing: it may
        be older than the ticket.)

        Returns:
            The ticket (cancelled or not) and whether the customer was waiting for it.
        """
        key = ticket.idempotency_key
        pending = await self._db(self._stores.pending.get, ticket.conversation_id)
        if pending is None:
            return ticket, False
        if not pending.is_for(key) and await self._db(self._stores.queue.holds, ticket.id, pending.handoff_key):
            key = pending.handoff_key  # the mark's handoff joined this ticket (Queue.enqueue)
        if not pending.is_for(key):
            if pending.cancelled or ticket.status != "waiting" or ticket.offline:
                return ticket, False
            try:
                # Unless the mark's handoff joins it this instant (decided under the conversation's lock).
                cancelled = await self._db(self._stores.queue.cancel_unless_joined, ticket.id, pending.handoff_key)
            except QueueError:  # claimed or resolved this instant (another server)
                return ticket, False
            if cancelled is not None:
                return cancelled, False
            key = pending.handoff_key
        # Taken once: of several bot servers (or a retried announcement) one copies the messages.
        pending = await self._db(self._stores.pending.take, ticket.conversation_id, key)
        if pending is None:
            return ticket, False
        if not pending.cancelled:
            return await self._absorb_pending(ticket, pending), True
        if ticket.status == "waiting" and not ticket.offline:
            try:
                ticket = await self._db(self._stores.queue.resolve, ticket.id, "cancelled")
            except QueueError:  # claimed or resolved this instant (another server)
                pass
        return ticket, False

    async def _absorb_pending(self, ticket: Ticket, pending: Pending) -> Ticket:
        """Copy the handoff reply and what the customer wrote while pending into the ticket (once).

        Args:
            ticket: The ticket that arrived for the pending handoff.
            pending: The mark, already taken from the store (so one server copies the messages).
        """
        conversation_id = ticket.conversation_id
        kept = [m for m in await self._db(self._stores.chat_log.history, conversation_id)
                if m.id >= pending.message_id and m.sender in ("customer", "bot")]
        for message in kept:
            try:
                ticket = await self._db(self._stores.queue.add_entry, ticket.id, message.sender, message.text)
            except TicketFull:
                break
        return ticket

    async def _back_to_bot(self, conversation_id: str, closing: str) -> None:
        """Resume Rasa (retried before the next message if it fails), then tell the customer."""
        try:
            await self._rasa.resume(conversation_id)
        except RasaUnavailable:
            logger.warning("could not resume %s in Rasa now; retried with the next message", conversation_id)
            self._needs_resume.add(conversation_id)
        await self._system(conversation_id, closing)
        await self._publish_state(conversation_id)
