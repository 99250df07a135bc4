"""The agent side of the gateway: new tickets, claim, take-over, reply, note, resolve.

Agents act on tickets from the console (bot/server/agent_api.py); what they do reaches
the customer's chat here, and resolving hands the conversation back to the bot.
"""

from __future__ import annotations

from typing import Iterable, Mapping

from bot import wording
from bot.dialogue.routes import Route
from bot.server.gateway_base import MAX_MESSAGE_CHARS, TEXT, GatewayBase
from bot.store.chat_log import NewMessage
from bot.store.models import Ticket
from bot.store.queue import QueueError
from bot.store.queue_place import QueuePlace


# How many of a conversation's latest messages are looked at for turns Rasa never answered.
UNANSWERED_LOOKBACK = 20


class AgentSide(GatewayBase):
    """What the agents' consoles (and the ticket watcher) ask of the gateway."""

    async def ticket_arrived(self, ticket: Ticket) -> None:
        """A new ticket (from the action server): copy messages kept while pending, notify.

        Without a pending mark the handoff reply normally told the customer already. Not when
        the turn that filed the ticket never came back (Rasa answered after RASA_TIMEOUT_SECONDS,
        or the action filed it after the gateway gave up; issue #12): the customer saw only
        TEXT["bot_slow"], and their message is still unrouted. They are told now.
        """
        conversation_id = ticket.conversation_id
        untold = False
        async with self._lock(conversation_id):  # the customer's turn, if any, is over
            # Cancelled if the customer stopped waiting for it before the outboxed packet arrived.
            ticket, was_pending = await self._settle_arrival(ticket)
            if not was_pending and ticket.status != "resolved":
                untold = await self._db(self._take_unanswered, conversation_id)
                if untold:
                    await self._system(conversation_id, TEXT["handoff_after_timeout_offline" if ticket.offline
                                                             else "handoff_after_timeout"])
        self._publish_ticket("created", ticket)
        if was_pending or untold:  # otherwise the handoff reply already told the customer
            await self._publish_state(conversation_id)

    def _take_unanswered(self, conversation_id: str) -> bool:
        """Mark routed the recent customer messages whose turn never came back (in a worker thread).

        A customer message stays unrouted only when Rasa did not answer its turn (or the server
        died meanwhile): the ticket arriving now is that turn's handoff, its packet holds the
        message. One followed by a handoff reply is not counted: that reply (of the customer's
        retry) told them. Returns whether there was any (the customer was not told about the ticket).
        Nothing is done while the latest message is an unrouted customer message: no answer
        followed it, so the server routing it died (:meth:`route_unanswered` routes it into
        this ticket when the customer reconnects) or another server is routing it now.
        """
        chat_log = self._stores.chat_log
        recent = chat_log.history(conversation_id, UNANSWERED_LOOKBACK)
        if recent and recent[-1].sender == "customer" and recent[-1].routed_at is None:
            return False
        unanswered: list[int] = []
        for message in recent:
            if message.sender == "customer" and message.routed_at is None:
                unanswered.append(message.id)
            elif message.sender == "bot" and message.route == Route.HANDOFF.value:
                unanswered.clear()
        for message_id in unanswered:
            chat_log.mark_routed(message_id)
        return bool(unanswered)

    async def claim(self, ticket_id: int, username: str) -> Ticket:
        """An agent takes a waiting ticket (or accepts its offer); the customer sees who joined.

        Raises:
            QueueError: 404 unknown; 409 not waiting, or the agent's cap is reached.
        """
        ticket = await self._db(self._stores.queue.claim, ticket_id, username, self._stores.desk.slot_guard(username))
        self._publish_ticket("claimed", ticket)
        if not ticket.offline:
            await self._system(ticket.conversation_id, TEXT["agent_joined"].format(name=self.display_name(username)))
            await self._publish_state(ticket.conversation_id)
        return ticket

    async def take_over(self, ticket_id: int, username: str) -> Ticket:
        """An agent takes over a ticket another agent claimed (recorded in its transcript).

        Raises:
            QueueError: 404 unknown; 409 not claimed, already this agent's, or their cap is reached.
        """
        current = await self._db(self._stores.queue.get, ticket_id, False)
        name = self.display_name(username)
        old = self.display_name(current.claimed_by) if current.claimed_by else ""
        record = TEXT["took_over"].format(new=name, old=old)
        ticket, _ = await self._db(self._stores.queue.take_over, ticket_id, username, record, name,
                                   self._stores.desk.slot_guard(username))
        self._publish_ticket("taken_over", ticket)
        if not ticket.offline:
            await self._system(ticket.conversation_id, TEXT["agent_changed"].format(name=name))
            await self._publish_state(ticket.conversation_id)
        return ticket

    async def offers_changed(self, ticket_ids: Iterable[int]) -> None:
        """Offers were made, declined or ran out: tell the consoles and the customers' tabs."""
        for ticket_id in ticket_ids:
            ticket = await self._db(self._stores.queue.get, ticket_id, False)
            self._publish_ticket("offered" if ticket.offered_to else "offer_ended", ticket)
            if ticket.status == "waiting" and not ticket.offline:
                await self._publish_state(ticket.conversation_id)  # the queue position follows the offer

    async def queue_moved(self, places: Mapping[int, tuple[str, QueuePlace]], ticket_ids: Iterable[int]) -> None:
        """Waiting customers' places changed (an agent came or went, skills, a claim ahead …).

        Each bot server ranks the queue itself (:class:`bot.server.assigner.Assigner`), so the
        new state goes to this server's tabs only: the other servers tell theirs.

        Args:
            places: The places just ranked (:meth:`bot.store.desk.Desk.places`).
            ticket_ids: The tickets whose place changed.
        """
        here = self._hub.local_conversations()
        for ticket_id in ticket_ids:
            conversation_id = places[ticket_id][0]
            if conversation_id in here:
                frame = {"type": "state", "state": await self.state(conversation_id, places)}
                self._hub.deliver({"kind": "conversation", "conversation_id": conversation_id, "item": frame})

    async def decline(self, ticket_id: int, username: str) -> None:
        """The agent lets an offer go; the next round offers it to another agent.

        Raises:
            QueueError: 409 not offered to this agent (any more).
        """
        await self._db(self._stores.desk.decline, ticket_id, username)
        await self.offers_changed([ticket_id])

    async def agent_reply(self, ticket_id: int, username: str, text: str) -> Ticket:
        """An agent's reply: into the ticket and into the customer's chat.

        Raises:
            QueueError: 404 unknown; 409 not claimed by this agent; 422 empty or too long.
        """
        text = text.strip()
        if len(text) > MAX_MESSAGE_CHARS:
            raise QueueError(TEXT["too_long"], status=422)
        current = await self._db(self._stores.queue.get, ticket_id, False)
        if current.status != "claimed" or current.claimed_by != username:
            raise QueueError(wording.STORE_AGENT_TEXT["not_yours"])
        name = self.display_name(username)
        ticket = await self._db(self._stores.queue.add_entry, ticket_id, "agent", text, name, username)
        await self._say(ticket.conversation_id, NewMessage(ticket.conversation_id, "agent", text, agent_name=name))
        self._publish_ticket("message", ticket)
        return ticket

    async def agent_note(self, ticket_id: int, username: str, text: str) -> Ticket:
        """An internal note: stored with the ticket, never shown to the customer.

        Raises:
            QueueError: 404 unknown; 409 resolved; 422 empty.
        """
        ticket = await self._db(self._stores.queue.add_entry, ticket_id, "note", text.strip(),
                                self.display_name(username), username)
        self._publish_ticket("message", ticket)
        return ticket

    async def resolve(self, ticket_id: int, username: str) -> Ticket:
        """Close the ticket; the conversation returns to the bot with a closing message.

        Only the agent who claimed a ticket resolves it; another agent takes it over
        first (:meth:`take_over`, recorded in the transcript).

        Raises:
            QueueError: 404 unknown; 409 already resolved; 403 claimed by another agent.
        """
        current = await self._db(self._stores.queue.get, ticket_id, False)
        if current.status == "claimed" and current.claimed_by != username:
            raise QueueError(TEXT["not_your_ticket"].format(name=self.display_name(current.claimed_by)), status=403)
        async with self._lock(current.conversation_id):  # no customer message half-routed meanwhile
            ticket = await self._db(self._stores.queue.resolve, ticket_id, "resolved", username)
            self._publish_ticket("resolved", ticket)
            if not ticket.offline:
                await self._drop_pending(ticket.conversation_id)
                await self._back_to_bot(ticket.conversation_id, TEXT["resolved"])
        await self._after_resolved(ticket)
        return ticket
