"""The customer side of the gateway: messages, buttons, feedback, cancelling, contact details.

A customer message is stored, shown and routed: into the ticket while a person owns the
conversation (or kept for it while a handoff is pending), otherwise to Rasa. Customers
are not logged in, so what one conversation can cost is bounded
(:class:`bot.settings.Limits`): messages per minute, entries per ticket, open tickets
per customer. A limit is answered with a polite Japanese message and changes nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from dataclasses import dataclass
from typing import Any

from bot.dialogue.routes import Route
from bot.handoff.contact import clean_contact
from bot.server.gateway_base import (MAX_MESSAGE_CHARS, MINUTE, NOT_HELPFUL_PAYLOAD, TEXT, CustomerError, GatewayBase,
                                     RateLimited)
from bot.server.rasa_client import BotMessage, RasaUnavailable, safe_for_rasa
from bot.store.chat_log import NewMessage
from bot.store.models import RESOLUTION_LIMITED, ChatMessage, Ticket, as_utc
from bot.store.pending import Pending
from bot.store.queue import QueueError, TicketFull, TicketResolved

logger = logging.getLogger(__name__)
# How old an unanswered message may be and still be routed when the customer reconnects.
UNANSWERED_WINDOW = dt.timedelta(hours=1)
UNANSWERED_LOOKBACK = 20  # latest messages read on reconnect: system notices may follow the unrouted one


def _no_never_followed_up(message: ChatMessage) -> bool:
    """An FAQ answer the customer rated 「いいえ」 whose follow-up Rasa never took."""
    return message.sender == "bot" and message.feedback is False and message.routed_at is None


@dataclass(frozen=True)
class Admitted:
    """A stored customer message and what routing it needs, read in the same worker-thread hop.

    Attributes:
        message: The stored message (the first one, for a resend of a known ``client_id``).
        new: Whether it was stored now.
        ticket: The conversation's open ticket, if a person owns it.
        waiting: The pending mark the customer waits on (read only when there is no ticket).
        customer: The customer's details for Rasa (read only when there is no ticket).
    """

    message: ChatMessage
    new: bool
    ticket: Ticket | None
    waiting: Pending | None = None
    customer: dict[str, Any] | None = None


class CustomerSide(GatewayBase):
    """What a customer's widget asks of the gateway."""

    async def customer_message(self, conversation_id: str, text: str, client_id: str | None,
                               rasa_text: str | None = None) -> None:
        """Store, show and route one customer message.

        Args:
            conversation_id: The conversation.
            text: What the customer wrote (or the title of the quick reply they clicked).
            client_id: The widget's id for this message; a repeat is ignored.
            rasa_text: What Rasa receives instead of ``text`` (a quick reply's payload).

        Raises:
            CustomerError: Empty or too long; the ticket is full (Limits.ticket_entries).
            RateLimited: More than Limits.messages_per_minute in the last minute.
        """
        text = text.strip()
        if not text:
            raise CustomerError(TEXT["empty"])
        if len(text) > MAX_MESSAGE_CHARS:
            raise CustomerError(TEXT["too_long"])
        async with self._lock(conversation_id):
            admitted = await self._db(self._admit, NewMessage(conversation_id, "customer", text, client_id=client_id))
            if not admitted.new and admitted.message.routed_at is not None:
                return  # a resend of a message already handled
            # (A resend of a message stored but never routed — the server died in between —
            # goes on: nothing reached the bot or the agent yet.)
            await self._route(conversation_id, admitted.message, admitted.new, admitted.ticket, rasa_text, admitted)

    def _admit(self, new: NewMessage) -> Admitted:
        """Check the limits, store the message and read what routing it needs (in a worker thread).

        One hop to a worker thread instead of five: under load each hop waited tens of
        milliseconds for a thread and then for the event loop (issue #12's profile, README). The
        message is committed before anything is routed, as before.

        Raises:
            RateLimited: More than Limits.messages_per_minute in the last minute.
            CustomerError: The ticket is full (Limits.ticket_entries); nothing was stored.
        """
        conversation_id = new.conversation_id
        self._check_rate(conversation_id, new.client_id)
        ticket = self._stores.queue.open_ticket_for(conversation_id)
        limit = self._limits.ticket_entries
        if ticket is not None and limit and ticket.entry_count >= limit:
            raise CustomerError(str(TicketFull(limit)))
        message, is_new = self._stores.chat_log.add(new)
        if ticket is not None or (not is_new and message.routed_at is not None):
            return Admitted(message, is_new, ticket)
        return Admitted(message, is_new, None, self._stores.pending.waiting(conversation_id),
                        self._stores.chat_log.customer_of(conversation_id))

    async def route_unanswered(self, conversation_id: str) -> None:
        """Route what the customer sent last if it never reached the bot (a tab (re)connected).

        Two things can be left unrouted when the database, Rasa or this server went away:

        * the latest message, a customer message stored but never routed: neither the bot nor
          an agent saw it, and the widget, which saw it in the history, will not send it again;
        * a 「いいえ」 on the latest FAQ answer whose follow-up Rasa never took (only system
          notices after it, such as the line saying the AI chat cannot answer now): the widget
          shows the answer as rated and offers no second click.

        Anything the customer or the bot said after it, or an age over
        :data:`UNANSWERED_WINDOW`, leaves it alone. Nothing is routed twice: the conversation's
        lock is held meanwhile, and a conversation's sockets all reach one bot server
        (deploy/nginx: ``bot_sockets``).
        """
        async with self._lock(conversation_id):
            latest = await self._db(self._stores.chat_log.history, conversation_id, UNANSWERED_LOOKBACK)
            if not latest:
                return
            if latest[-1].sender == "customer" and latest[-1].routed_at is None:
                message = latest[-1]
            else:
                spoken = [m for m in latest if m.sender != "system"]
                message = spoken[-1] if spoken and _no_never_followed_up(spoken[-1]) else None
            if message is None or self._stores.chat_log.clock() - as_utc(message.created_at) > UNANSWERED_WINDOW:
                return
            if message.sender != "customer":
                await self._follow_up_no(conversation_id, message.id)
                return
            ticket = await self._db(self._stores.queue.open_ticket_for, conversation_id)
            if ticket is None and await self._hold_for_handoff(conversation_id, check_first=True):
                await self._db(self._stores.chat_log.mark_routed, message.id)  # kept for the handoff's ticket
                return
            logger.info("routing message %s of %s, stored but never routed", message.id, conversation_id)
            try:
                await self._route(conversation_id, message, False, ticket, None)
            except CustomerError as exc:  # e.g. the ticket filled up meanwhile: kept, not routed
                logger.info("unanswered message %s not routed: %s", message.id, type(exc).__name__)
            # The history frame just sent may be older than a ticket that arrived meanwhile
            # (the handoff's packet delivered from the outbox): say who answers now.
            await self._publish_state(conversation_id)

    async def _route(self, conversation_id: str, message: ChatMessage, new: bool, ticket: Ticket | None,
                     rasa_text: str | None, admitted: Admitted | None = None) -> None:
        """Route a stored customer message (caller holds the lock): into the conversation's open
        ``ticket``, kept for a pending handoff, or to Rasa; marked routed once it got there.

        Args:
            admitted: What :meth:`_admit` read with the message (the pending mark and the
                customer's details, when there was no ticket); ``None``: read them now.

        Raises:
            CustomerError: The ticket filled up this instant (the message is kept, not routed).
        """
        known = admitted if admitted is not None and admitted.ticket is None else None
        absorbed = False
        if ticket is not None:  # perhaps it arrived before the watcher saw it
            ticket, absorbed = await self._settle_arrival(ticket)
            if ticket.status == "resolved":
                ticket = None  # an earlier handoff's, cancelled: the customer waits for another
        if ticket is not None:  # into the ticket before the echo: the transcript keeps chat order
            try:
                ticket = await self._db(self._stores.queue.add_entry, ticket.id, "customer", message.text)
            except TicketFull as exc:  # filled up this instant (another server): kept, not routed
                raise CustomerError(str(exc)) from None
            except QueueError:  # resolved this instant by the agent: the bot answers instead
                ticket = None
        if new:
            self._show(conversation_id, message)
        if ticket is not None:
            self._publish_ticket("message", ticket)
            if absorbed:
                await self._publish_state(conversation_id)
        elif await self._still_pending(conversation_id, known):
            await self._system(conversation_id, TEXT["pending"])
        else:  # marked routed with the bot's replies (not when Rasa was unreachable)
            await self._ask_bot(conversation_id, rasa_text or safe_for_rasa(message.text), message.id,
                                known.customer if known is not None else None)
            return
        await self._db(self._stores.chat_log.mark_routed, message.id)

    def _check_rate(self, conversation_id: str, client_id: str | None) -> None:
        """Refuse a new message beyond Limits.messages_per_minute (a resend of a stored one passes).

        Counted in the database, so every bot server of a conversation counts the same (runs in
        a worker thread, within :meth:`_admit`).

        Raises:
            RateLimited: With the seconds until the oldest counted message is a minute old.
        """
        limit = self._limits.messages_per_minute
        if not limit:
            return
        chat_log = self._stores.chat_log
        count, oldest = chat_log.recent_customer_messages(conversation_id, MINUTE)
        if count < limit:
            return
        if client_id and chat_log.has_client_id(conversation_id, client_id):
            return
        age = chat_log.clock() - oldest if oldest else dt.timedelta()
        seconds = max(1, math.ceil((MINUTE - age).total_seconds()))
        raise RateLimited(TEXT["slow_down"].format(seconds=seconds), seconds)

    async def _still_pending(self, conversation_id: str, known: Admitted | None = None) -> bool:
        """Whether the conversation waits for a handoff's ticket (the mark is in the database).

        Normally the ticket watcher clears the mark when the ticket arrives; if the ticket
        exists already (announced by another server, perhaps even resolved), the mark is
        dropped here and the message goes on as usual. A newer ticket of another handoff (a
        cancelled one, arriving late) leaves the mark waiting. ``known``: the mark was read by
        :meth:`_admit` just now.
        """
        pending = known.waiting if known is not None else await self._db(self._stores.pending.waiting,
                                                                         conversation_id)
        if pending is None:
            return False
        latest = await self._db(self._stores.queue.latest_for, conversation_id)
        if latest is None or as_utc(latest.created_at) < pending.since or not pending.is_for(latest.idempotency_key):
            return True
        await self._db(self._stores.pending.take, conversation_id, latest.idempotency_key)
        return False

    async def button(self, conversation_id: str, payload: str, title: str, client_id: str | None) -> None:
        """A quick reply: only the buttons of the bot's latest message are accepted.

        Raises:
            CustomerError: The button is not (or no longer) offered.
        """
        offered = await self._db(self._stores.chat_log.last_bot_buttons, conversation_id)
        match = next((b for b in offered if b.get("payload") == payload), None)
        if match is None:
            raise CustomerError(TEXT["stale_button"])
        await self.customer_message(conversation_id, match.get("title") or title, client_id, rasa_text=payload)

    async def feedback(self, conversation_id: str, message_id: int, helpful: bool) -> None:
        """Record 役に立ちましたか？; a 「いいえ」 asks the bot what to do next (twice: a person).

        Raises:
            QueueError: 404 when the message is not an FAQ answer of this conversation.
        """
        row, recorded = await self._db(self._stores.chat_log.set_feedback, conversation_id, message_id, helpful)
        self._hub.publish_conversation(conversation_id, {"type": "feedback_saved", "message_id": row.id,
                                                         "helpful": row.feedback})
        if recorded and row.feedback is False:
            async with self._lock(conversation_id):
                await self._follow_up_no(conversation_id, row.id)

    async def _follow_up_no(self, conversation_id: str, answer_id: int) -> None:
        """Ask the bot what follows a 「いいえ」 on FAQ answer ``answer_id`` (caller holds the lock).

        The answer's ``routed_at`` is set once Rasa took it, with its replies; while Rasa cannot
        take it, it stays unset and :meth:`route_unanswered` asks again when the customer comes
        back. Not asked while a person owns the conversation or a handoff is pending (Rasa is
        paused then; asking would resume it and could start a second handoff): marked as done.
        """
        if await self._db(self._stores.queue.open_ticket_for, conversation_id) is None \
                and not await self._still_pending(conversation_id):
            await self._ask_bot(conversation_id, NOT_HELPFUL_PAYLOAD, routed=answer_id)
        else:
            await self._mark_routed(answer_id)

    async def _ask_bot(self, conversation_id: str, text: str, routed: int | None = None,
                       customer: dict[str, Any] | None = None) -> bool:
        """Send to Rasa and show its replies; note a handoff (caller holds the lock).

        Args:
            conversation_id: The conversation.
            text: What Rasa receives.
            routed: The customer message this is; marked routed once Rasa answered (with the
                replies, in their transaction, when none is a handoff).
            customer: The customer's details for Rasa; ``None``: read them now.

        Returns:
            Whether Rasa got the message (False: Rasa unreachable, the customer was told).
        """
        if customer is None:
            customer = await self._db(self._stores.chat_log.customer_of, conversation_id)
        metadata = {"customer": customer}
        self._hub.publish_conversation(conversation_id, {"type": "typing", "on": True})
        try:
            if conversation_id in self._needs_resume:
                await self._rasa.resume(conversation_id)
                self._needs_resume.discard(conversation_id)
            replies = await self._rasa.send(conversation_id, text, metadata)
            if not replies:
                # Rasa stays silent only while paused. Nobody owns the conversation (the
                # caller checked): either a handoff's ticket is still on its way, or a resume
                # was lost (e.g. this server restarted after a handoff): then resume and ask
                # again rather than leave the customer unanswered.
                if await self._hold_for_handoff(conversation_id):
                    await self._mark_routed(routed)
                    return True
                logger.warning("Rasa was still paused for %s; resuming", conversation_id)
                await self._rasa.resume(conversation_id)
                replies = await self._rasa.send(conversation_id, text, metadata)
                if not replies:
                    # Silent even when not paused: an action failed (its action server down, so
                    # Rasa went on without the action's messages). Not answered: say so and keep
                    # the message unrouted; a handoff it may have filed still announces itself.
                    raise RasaUnavailable(f"Rasa gave no reply for {conversation_id}", maybe_taken=True)
        except RasaUnavailable as exc:
            logger.warning("%s", exc)
            replies = None
            # Taken but unanswered (a timeout): a handoff may still file its ticket, whose arrival
            # tells the customer (AgentSide.ticket_arrived); meanwhile they learn it may not have.
            down = "bot_slow" if exc.maybe_taken else "bot_down"
        finally:
            self._hub.publish_conversation(conversation_id, {"type": "typing", "on": False})
        if replies is None:
            await self._system(conversation_id, TEXT[down])
            return False
        if all(reply.custom.get("route") != Route.HANDOFF.value for reply in replies):
            # The everyday turn: every reply and the routed mark in one commit, one worker-thread hop.
            stored = await self._db(self._stores.chat_log.add_replies,
                                    [self._reply_message(conversation_id, r) for r in replies], routed)
            for message in stored:
                self._show(conversation_id, message)
            return True
        await self._show_handoff(conversation_id, replies)
        await self._mark_routed(routed)
        return True

    @staticmethod
    def _reply_message(conversation_id: str, reply: BotMessage) -> NewMessage:
        """The bot's reply as it is stored (an FAQ id only on an answer)."""
        custom = reply.custom
        return NewMessage(conversation_id, "bot", reply.text, reply.buttons, intent=custom.get("intent"),
                          confidence=custom.get("confidence"),
                          faq_id=custom.get("faq_id") if custom.get("route") == Route.ANSWER.value else None,
                          route=custom.get("route"))

    async def _mark_routed(self, message_id: int | None) -> None:
        if message_id is not None:
            await self._db(self._stores.chat_log.mark_routed, message_id)

    async def _show_handoff(self, conversation_id: str, replies: list[BotMessage]) -> None:
        """Store and show replies that include a handoff, and note the handoff (caller holds the lock)."""
        handoff: dict[str, Any] | None = None
        for reply in replies:
            custom = reply.custom
            if custom.get("route") == Route.HANDOFF.value and await self._refused_ticket(custom.get("ticket_id")):
                # Limits.open_tickets_per_customer: the queue refused the ticket; say so instead
                # of "a person will answer", and let the bot go on.
                await self._system(conversation_id, TEXT["too_many_tickets"])
                await self._resume(conversation_id)
                continue
            frame = await self._say(conversation_id, self._reply_message(conversation_id, reply))
            if custom.get("route") == Route.HANDOFF.value:
                handoff = {**custom, "message_id": frame["id"], "text": reply.text}
        if handoff is None:
            return
        if handoff.get("ticket_id"):
            # The packet was built before this reply existed; the agent should see it too.
            ticket = await self._db(self._stores.queue.add_entry, handoff["ticket_id"], "bot", handoff["text"])
            self._publish_ticket("message", ticket)
        elif handoff.get("staffed") is not False:
            # The packet waits in the action server's outbox: until its ticket arrives the
            # customer's messages are kept for it (in the database: a restart keeps this).
            await self._db(self._stores.pending.mark, conversation_id, handoff["message_id"],
                           handoff.get("handoff_key"))
        await self._publish_state(conversation_id)

    async def _refused_ticket(self, ticket_id: Any) -> bool:
        """Whether the handoff's ticket was refused by the open-ticket limit."""
        if not isinstance(ticket_id, int):
            return False
        try:
            ticket = await self._db(self._stores.queue.get, ticket_id, False)
        except QueueError:
            return False
        return ticket.resolution == RESOLUTION_LIMITED

    async def _hold_for_handoff(self, conversation_id: str, check_first: bool = False) -> bool:
        """Keep the conversation waiting if Rasa is paused by a handoff whose ticket has not arrived.

        The handoff's packet is in the action server's outbox, but its reply never reached
        this server's database (cut at that moment), so no pending mark was made. Resuming
        Rasa would let the customer's message start a second handoff: a second ticket once
        the outbox delivers the first. Instead the reply is shown now and the conversation
        marked pending, as if the reply had come through; the customer's latest message goes
        into the ticket with it, unless it is the one that started the handoff (the packet has it).

        Args:
            conversation_id: The conversation, nobody owning it (caller holds the lock).
            check_first: Before sending anything to Rasa (a message stored but never routed,
                perhaps seen by Rasa already): Rasa unreachable counts as "not held".

        Returns:
            Whether the conversation now waits for the handoff's ticket (or is in it: arrived
            this instant, before the watcher saw it). False when Rasa is not paused by a
            handoff, its ticket was resolved (a resume was lost) or refused, or the customer
            already stopped waiting for it (a cancelled mark).
        """
        try:
            held = await self._rasa.paused_handoff(conversation_id)
        except RasaUnavailable:
            if check_first:
                return False
            raise
        if held is None or await self._db(self._stores.pending.get, conversation_id) is not None:
            return False
        latest = await self._db(self._stores.queue.latest_for, conversation_id)
        arrived = latest if latest is not None and await self._db(self._stores.queue.holds, latest.id, held.key) \
            else None  # its own key, or the handoff joined the conversation's open ticket (Queue.enqueue)
        if arrived is not None and arrived.status == "resolved":
            return False
        recent = [m for m in await self._db(self._stores.chat_log.history, conversation_id, 5)
                  if m.sender == "customer"]
        logger.warning("Rasa is paused for %s by handoff %s whose ticket has not arrived; waiting for it",
                       conversation_id, held.key)
        frame = await self._say(conversation_id, NewMessage(conversation_id, "bot", held.text or TEXT["pending"],
                                                            route=Route.HANDOFF.value))
        kept_from = frame["id"]
        if recent and safe_for_rasa(recent[-1].text) != held.customer_text:
            kept_from = recent[-1].id  # written after the handoff started: the agent needs it too
        await self._db(self._stores.pending.mark, conversation_id, kept_from, held.key)
        if arrived is not None:  # the outbox delivered it meanwhile: what was kept goes in now
            ticket, _ = await self._settle_arrival(arrived)
            self._publish_ticket("message", ticket)
        await self._publish_state(conversation_id)
        return True

    async def _resume(self, conversation_id: str) -> None:
        """Resume Rasa after a handoff that did not happen (retried with the next message if it fails)."""
        try:
            await self._rasa.resume(conversation_id)
        except RasaUnavailable:
            self._needs_resume.add(conversation_id)

    async def end_conversation(self, conversation_id: str) -> None:
        """The customer pressed 「会話を終了」: the token stops working, every open tab is told.

        A waiting handoff is cancelled; the agent of a claimed one sees a line saying the
        customer left (the ticket stays theirs to resolve).
        """
        async with self._lock(conversation_id):
            await self._db(self._stores.chat_log.end_conversation, conversation_id)
            # A handoff still in the outbox: its ticket is cancelled when it arrives.
            await self._db(self._stores.pending.cancel, conversation_id)
            ticket = await self._db(self._stores.queue.open_ticket_for, conversation_id)
            try:
                if ticket is not None and ticket.status == "waiting":
                    ticket = await self._db(self._stores.queue.resolve, ticket.id, "cancelled")
                    self._publish_ticket("cancelled", ticket)
                elif ticket is not None:
                    ticket = await self._db(self._stores.queue.add_entry, ticket.id, "system",
                                            TEXT["ended_with_agent"])
                    self._publish_ticket("message", ticket)
            except QueueError:  # claimed or resolved this instant: nothing left to tell
                pass
        self._hub.publish_conversation(conversation_id, {"type": "ended"})

    async def cancel_handoff(self, conversation_id: str) -> None:
        """The customer stops waiting for a person and goes back to the bot.

        Raises:
            CustomerError: Nothing to cancel.
            QueueError: 409 when an agent has already claimed the ticket.
        """
        async with self._lock(conversation_id):
            ticket = await self._db(self._stores.queue.open_ticket_for, conversation_id)
            if ticket is not None:  # perhaps an earlier, cancelled handoff's, arriving only now
                ticket, _ = await self._settle_arrival(ticket)
                ticket = ticket if ticket.status != "resolved" else None
            if ticket is None:
                # Only a handoff still in the outbox can be cancelled: on arrival (bot/server/gateway_agent.py).
                if not await self._db(self._stores.pending.cancel, conversation_id):
                    raise CustomerError(TEXT["no_open_ticket"])
            else:
                ticket = await self._db(self._stores.queue.resolve, ticket.id, "cancelled")
                self._publish_ticket("cancelled", ticket)
                await self._drop_pending(conversation_id)
            await self._back_to_bot(conversation_id, TEXT["cancelled"])

    async def contact(self, conversation_id: str, form: dict[str, Any]) -> None:
        """Attach the offline contact form to the conversation's offline ticket.

        Raises:
            CustomerError / ContactError: No offline ticket, the form is invalid, or the
                ticket was resolved (the details are kept for the next handoff).
        """
        contact = clean_contact(form)
        latest = await self._db(self._stores.queue.latest_for, conversation_id)
        if latest is None or not latest.offline:
            raise CustomerError(TEXT["no_offline_ticket"])
        # Kept with the conversation first: if an agent closed the ticket meanwhile, the
        # next handoff still carries the details (nothing the customer typed is lost).
        await self._db(self._stores.chat_log.add_contact, conversation_id, contact)
        if latest.status == "resolved":
            raise CustomerError(TEXT["contact_after_resolved"])
        try:
            ticket = await self._db(self._stores.queue.set_contact, latest.id, contact)
        except TicketResolved:  # resolved this instant
            raise CustomerError(TEXT["contact_after_resolved"]) from None
        self._publish_ticket("contact", ticket)
        self._hub.publish_conversation(conversation_id, {"type": "contact_saved"})
        await self._publish_state(conversation_id)
