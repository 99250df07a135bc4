"""Who answers each conversation: the bot, or a person (waiting → agent → back to the bot).

This is the one place that decides. The state lives in the database (an unresolved,
staffed ticket for the conversation means a person owns it), so it survives restarts
and every bot server reads the same answer. While a person owns a conversation:

- customer messages go to the ticket (and the agent's console), never to Rasa;
- Rasa is paused (``action_handoff`` returns ConversationPaused), a second guard;
- when the agent resolves or the customer cancels, Rasa is resumed first, then the
  customer is told the bot is back.

Between the handoff message and the ticket's arrival (the action server kept the
packet in its outbox while the database was unreachable) the conversation is
*pending*: messages are kept and copied into the ticket when it arrives.

Customers are not logged in, so what one conversation can cost is bounded
(:class:`bot.settings.Limits`): messages per minute, entries per ticket, open tickets
per customer. A limit is answered with a polite Japanese message and changes nothing.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import weakref
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, TypeVar

from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool

from bot.dialogue.routes import Route
from bot.handoff.contact import clean_contact
from bot.server.events import EventHub
from bot.server.rasa_client import RasaClient, RasaUnavailable, safe_for_rasa
from bot.server.serialize import ticket_json
from bot.settings import Limits
from bot.store.chat_log import ChatLog, NewMessage, message_json
from bot.store.models import RESOLUTION_LIMITED, Ticket, TranscriptEntry, as_utc, utcnow
from bot.store.database import Stores
from bot.store.queue import QueueError, TicketFull

logger = logging.getLogger(__name__)
T = TypeVar("T")

MAX_MESSAGE_CHARS = 10_000
NOT_HELPFUL_PAYLOAD = "/answer_not_helpful"
TEXT = {
    "empty": "メッセージが空です。ご質問を入力してください。",
    "too_long": f"メッセージが長すぎます（{MAX_MESSAGE_CHARS:,} 文字まで）。分けて送ってください。",
    "stale_button": "このボタンは現在使えません。ご質問を入力してください。",
    "bot_down": "ただいま自動応答に接続できません。メッセージは保存しました。しばらくしてからもう一度お送りください。",
    "pending": "担当者への引き継ぎを準備しています。このメッセージも担当者に伝わります。",
    "agent_joined": "担当の{name}がチャットに参加しました。",
    "resolved": "担当者との会話を終了しました。ご利用ありがとうございました。引き続き自動応答がご質問にお答えします。",
    "cancelled": "担当者へのおつなぎを取り消しました。引き続き自動応答がご質問にお答えします。",
    "no_open_ticket": "お待ちいただいている引き継ぎはありません。",
    "no_offline_ticket": "ご連絡先をお預かりできる受付がありません。",
    "slow_down": "メッセージの送信が続いています。恐れ入りますが、{seconds} 秒ほど待ってからもう一度お送りください。",
    "too_many_tickets": "申し訳ございません。お受けしている担当者へのお問い合わせが上限に達しているため、"
                        "新しいお問い合わせをお受けできませんでした。担当者からのご連絡をお待ちいただくか、"
                        "しばらくしてからもう一度お試しください。引き続き自動応答がご質問にお答えします。",
    "agent_changed": "担当が{name}に代わりました。",
    "ended_with_agent": "お客様が会話を終了しました。",
    "not_your_ticket": "このチケットは{name}さんが対応中です。解決するには、先に「対応を引き継ぐ」を押してください。",
    "took_over": "{new}さんが{old}さんから対応を引き継ぎました。",
}
MINUTE = dt.timedelta(minutes=1)


class CustomerError(ValueError):
    """Something the customer should be told (Japanese), nothing was changed."""


class RateLimited(CustomerError):
    """Too many messages in a minute; ``retry_after``: seconds until the next is accepted."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Gateway:
    """Routes customer messages to the bot or a person and agent actions to the customer."""

    def __init__(self, stores: Stores, rasa: RasaClient, hub: EventHub, limits: Limits | None = None) -> None:
        """Use the given stores, Rasa client and event hub.

        Args:
            stores: Queue, chat log, agents.
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
        self._cancelled_pending: set[str] = set()  # cancelled before the outboxed ticket arrived
        self._pending: dict[str, int] = {}  # conversation -> chat message id of the handoff reply
        self._pending_since: dict[str, dt.datetime] = {}
        self._needs_resume: set[str] = set()  # Rasa could not be resumed yet
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
        return ticket_json(ticket, self.display_name, entries=entries, has_earlier_entries=has_earlier_entries)

    async def _say(self, conversation_id: str, new: NewMessage) -> dict[str, Any]:
        message, _ = await self._db(self._stores.chat_log.add, new)
        frame = message_json(message)
        self._hub.publish_conversation(conversation_id, {"type": "message", "message": frame})
        return frame

    async def _system(self, conversation_id: str, text: str) -> None:
        await self._say(conversation_id, NewMessage(conversation_id, "system", text))

    def _publish_ticket(self, change: str, ticket: Ticket) -> None:
        self._hub.publish_ticket(change, self.ticket_json(ticket))

    # ---- state -----------------------------------------------------------------------------

    async def state(self, conversation_id: str) -> dict[str, Any]:
        """``<State>`` of docs/server-api.md: who answers now, queue position, estimate."""
        queue = self._stores.queue
        ticket = await self._db(queue.open_ticket_for, conversation_id)
        state: dict[str, Any] = {"mode": "bot", "ticket_id": None, "position": None, "estimate_minutes": None,
                                 "agent_name": None, "offline": False, "next_opening": None}
        if ticket is not None and ticket.status == "claimed":
            state.update(mode="agent", ticket_id=ticket.id, agent_name=self.display_name(ticket.claimed_by))
        elif ticket is not None:
            position = await self._db(queue.position, ticket.id)
            typical = await self._db(queue.typical_wait)
            state.update(mode="waiting", ticket_id=ticket.id, position=position,
                         estimate_minutes=max(1, math.ceil(position * typical.total_seconds() / 60)))
        elif conversation_id in self._pending:
            state.update(mode="waiting")
        else:
            latest = await self._db(queue.latest_for, conversation_id)
            if latest is not None and latest.offline and latest.status != "resolved" \
                    and not {"email", "phone"} & set(latest.customer or {}):
                state.update(offline=True, ticket_id=latest.id)
        return state

    async def _publish_state(self, conversation_id: str) -> None:
        self._hub.publish_conversation(conversation_id, {"type": "state", "state": await self.state(conversation_id)})

    async def history(self, conversation_id: str) -> dict[str, Any]:
        """The ``history`` frame: every message so far and the current state."""
        messages = await self._db(self._stores.chat_log.history, conversation_id)
        return {"type": "history", "messages": [message_json(m) for m in messages],
                "state": await self.state(conversation_id)}

    # ---- customer side ---------------------------------------------------------------------

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
            await self._check_rate(conversation_id, client_id)
            ticket = await self._db(self._stores.queue.open_ticket_for, conversation_id)
            limit = self._limits.ticket_entries
            if ticket is not None and limit and ticket.entry_count >= limit:
                raise CustomerError(str(TicketFull(limit)))
            message, new = await self._db(self._stores.chat_log.add,
                                          NewMessage(conversation_id, "customer", text, client_id=client_id))
            if not new and message.routed_at is not None:
                return  # a resend of a message already handled
            # (A resend of a message stored but never routed — the server died in between —
            # goes on: nothing reached the bot or the agent yet.)
            if ticket is not None and conversation_id in self._pending:
                ticket = await self._absorb_pending(ticket)  # arrived before the watcher saw it
            if ticket is not None:  # into the ticket before the echo: the transcript keeps chat order
                try:
                    ticket = await self._db(self._stores.queue.add_entry, ticket.id, "customer", message.text)
                except TicketFull as exc:  # filled up this instant (another server): kept, not routed
                    raise CustomerError(str(exc)) from None
                except QueueError:  # resolved this instant by the agent: the bot answers instead
                    ticket = None
            if new:
                self._hub.publish_conversation(conversation_id, {"type": "message", "message": message_json(message)})
            if ticket is not None:
                self._publish_ticket("message", ticket)
                routed = True
            elif conversation_id in self._pending and not await self._pending_settled(conversation_id):
                await self._system(conversation_id, TEXT["pending"])
                routed = True
            else:
                routed = await self._ask_bot(conversation_id, rasa_text or safe_for_rasa(message.text))
            if routed:
                await self._db(self._stores.chat_log.mark_routed, message.id)

    async def _check_rate(self, conversation_id: str, client_id: str | None) -> None:
        """Refuse a new message beyond Limits.messages_per_minute (a resend of a stored one passes).

        Counted in the database, so every bot server of a conversation counts the same.

        Raises:
            RateLimited: With the seconds until the oldest counted message is a minute old.
        """
        limit = self._limits.messages_per_minute
        if not limit:
            return
        chat_log = self._stores.chat_log
        count, oldest = await self._db(chat_log.recent_customer_messages, conversation_id, MINUTE)
        if count < limit:
            return
        if client_id and await self._db(chat_log.has_client_id, conversation_id, client_id):
            return
        age = chat_log.clock() - oldest if oldest else dt.timedelta()
        seconds = max(1, math.ceil((MINUTE - age).total_seconds()))
        raise RateLimited(TEXT["slow_down"].format(seconds=seconds), seconds)

    async def _pending_settled(self, conversation_id: str) -> bool:
        """True (and the pending mark dropped) once the awaited ticket exists.

        Normally :meth:`ticket_arrived` clears the mark; with several bot servers another
        server may have announced the ticket, and it may even be resolved already.
        """
        since = self._pending_since.get(conversation_id)
        latest = await self._db(self._stores.queue.latest_for, conversation_id)
        if latest is None or since is None or as_utc(latest.created_at) < since:
            return False
        self._pending.pop(conversation_id, None)
        self._pending_since.pop(conversation_id, None)
        return True

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
                if await self._db(self._stores.queue.open_ticket_for, conversation_id) is None:
                    await self._ask_bot(conversation_id, NOT_HELPFUL_PAYLOAD)

    async def _ask_bot(self, conversation_id: str, text: str) -> bool:
        """Send to Rasa and show its replies; note a handoff (caller holds the lock).

        Returns:
            Whether Rasa got the message (False: Rasa unreachable, the customer was told).
        """
        metadata = {"customer": await self._db(self._stores.chat_log.customer_of, conversation_id)}
        self._hub.publish_conversation(conversation_id, {"type": "typing", "on": True})
        try:
            if conversation_id in self._needs_resume:
                await self._rasa.resume(conversation_id)
                self._needs_resume.discard(conversation_id)
            replies = await self._rasa.send(conversation_id, text, metadata)
            if not replies:
                # Rasa stays silent only while paused. Nobody owns the conversation (the
                # caller checked), so a resume was lost (e.g. this server restarted after a
                # handoff): resume and ask again rather than leave the customer unanswered.
                logger.warning("Rasa was still paused for %s; resuming", conversation_id)
                await self._rasa.resume(conversation_id)
                replies = await self._rasa.send(conversation_id, text, metadata)
        except RasaUnavailable as exc:
            logger.warning("%s", exc)
            replies = None
        finally:
            self._hub.publish_conversation(conversation_id, {"type": "typing", "on": False})
        if replies is None:
            await self._system(conversation_id, TEXT["bot_down"])
            return False
        handoff: dict[str, Any] | None = None
        for reply in replies:
            custom = reply.custom
            if custom.get("route") == Route.HANDOFF.value and await self._refused_ticket(custom.get("ticket_id")):
                # Limits.open_tickets_per_customer: the queue refused the ticket; say so instead
                # of "a person will answer", and let the bot go on.
                await self._system(conversation_id, TEXT["too_many_tickets"])
                await self._resume(conversation_id)
                continue
            frame = await self._say(conversation_id, NewMessage(
                conversation_id, "bot", reply.text, reply.buttons, intent=custom.get("intent"),
                confidence=custom.get("confidence"),
                faq_id=custom.get("faq_id") if custom.get("route") == Route.ANSWER.value else None,
                route=custom.get("route")))
            if custom.get("route") == Route.HANDOFF.value:
                handoff = {**custom, "message_id": frame["id"], "text": reply.text}
        if handoff is None:
            return True
        if handoff.get("ticket_id"):
            # The packet was built before this reply existed; the agent should see it too.
            ticket = await self._db(self._stores.queue.add_entry, handoff["ticket_id"], "bot", handoff["text"])
            self._publish_ticket("message", ticket)
        elif handoff.get("staffed") is not False:
            self._pending[conversation_id] = handoff["message_id"]  # packet waits in the outbox
            self._pending_since[conversation_id] = utcnow()
        await self._publish_state(conversation_id)
        return True

    async def _refused_ticket(self, ticket_id: Any) -> bool:
        """Whether the handoff's ticket was refused by the open-ticket limit."""
        if not isinstance(ticket_id, int):
            return False
        try:
            ticket = await self._db(self._stores.queue.get, ticket_id, False)
        except QueueError:
            return False
        return ticket.resolution == RESOLUTION_LIMITED

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
            self._pending_since.pop(conversation_id, None)
            if self._pending.pop(conversation_id, None) is not None:
                self._cancelled_pending.add(conversation_id)  # cancel the outboxed ticket on arrival
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
            if ticket is None:
                self._pending_since.pop(conversation_id, None)
                if self._pending.pop(conversation_id, None) is None:
                    raise CustomerError(TEXT["no_open_ticket"])
                self._cancelled_pending.add(conversation_id)
            else:
                ticket = await self._db(self._stores.queue.resolve, ticket.id, "cancelled")
                self._publish_ticket("cancelled", ticket)
            await self._back_to_bot(conversation_id, TEXT["cancelled"])

    async def contact(self, conversation_id: str, form: dict[str, Any]) -> None:
        """Attach the offline contact form to the conversation's offline ticket.

        Raises:
            CustomerError / ContactError: No offline ticket, or the form is invalid.
        """
        contact = clean_contact(form)
        latest = await self._db(self._stores.queue.latest_for, conversation_id)
        if latest is None or not latest.offline or latest.status == "resolved":
            raise CustomerError(TEXT["no_offline_ticket"])
        ticket = await self._db(self._stores.queue.set_contact, latest.id, contact)
        self._publish_ticket("contact", ticket)
        self._hub.publish_conversation(conversation_id, {"type": "contact_saved"})
        await self._publish_state(conversation_id)

    # ---- agent side ------------------------------------------------------------------------

    async def ticket_arrived(self, ticket: Ticket) -> None:
        """A new ticket (from the action server): copy messages kept while pending, notify."""
        conversation_id = ticket.conversation_id
        async with self._lock(conversation_id):
            was_pending = conversation_id in self._pending
            if was_pending:
                ticket = await self._absorb_pending(ticket)
            if conversation_id in self._cancelled_pending and ticket.status == "waiting" and not ticket.offline:
                # The customer stopped waiting before the outboxed packet arrived.
                self._cancelled_pending.discard(conversation_id)
                ticket = await self._db(self._stores.queue.resolve, ticket.id, "cancelled")
        self._publish_ticket("created", ticket)
        if was_pending:  # otherwise the handoff reply already told the customer
            await self._publish_state(conversation_id)

    async def _absorb_pending(self, ticket: Ticket) -> Ticket:
        """Copy the handoff reply and what the customer wrote while pending into the ticket (once)."""
        conversation_id = ticket.conversation_id
        handoff_message = self._pending.pop(conversation_id, None)
        self._pending_since.pop(conversation_id, None)
        if handoff_message is None:
            return ticket
        kept = [m for m in await self._db(self._stores.chat_log.history, conversation_id)
                if m.id >= handoff_message and m.sender in ("customer", "bot")]
        for message in kept:
            try:
                ticket = await self._db(self._stores.queue.add_entry, ticket.id, message.sender, message.text)
            except TicketFull:
                break
        return ticket

    async def claim(self, ticket_id: int, username: str) -> Ticket:
        """An agent takes a waiting ticket; the customer sees who joined.

        Raises:
            QueueError: 404 unknown; 409 not waiting.
        """
        ticket = await self._db(self._stores.queue.claim, ticket_id, username)
        self._publish_ticket("claimed", ticket)
        if not ticket.offline:
            await self._system(ticket.conversation_id, TEXT["agent_joined"].format(name=self.display_name(username)))
            await self._publish_state(ticket.conversation_id)
        return ticket

    async def take_over(self, ticket_id: int, username: str) -> Ticket:
        """An agent takes over a ticket another agent claimed (recorded in its transcript).

        Raises:
            QueueError: 404 unknown; 409 not claimed, or already this agent's.
        """
        current = await self._db(self._stores.queue.get, ticket_id, False)
        name = self.display_name(username)
        old = self.display_name(current.claimed_by) if current.claimed_by else ""
        record = TEXT["took_over"].format(new=name, old=old)
        ticket, _ = await self._db(self._stores.queue.take_over, ticket_id, username, record, name)
        self._publish_ticket("taken_over", ticket)
        if not ticket.offline:
            await self._system(ticket.conversation_id, TEXT["agent_changed"].format(name=name))
            await self._publish_state(ticket.conversation_id)
        return ticket

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
            raise QueueError("このチケットはあなたが対応中ではありません。先に「対応する」を押してください。")
        name = self.display_name(username)
        ticket = await self._db(self._stores.queue.add_entry, ticket_id, "agent", text, name)
        await self._say(ticket.conversation_id, NewMessage(ticket.conversation_id, "agent", text, agent_name=name))
        self._publish_ticket("message", ticket)
        return ticket

    async def agent_note(self, ticket_id: int, username: str, text: str) -> Ticket:
        """An internal note: stored with the ticket, never shown to the customer.

        Raises:
            QueueError: 404 unknown; 409 resolved; 422 empty.
        """
        ticket = await self._db(self._stores.queue.add_entry, ticket_id, "note", text.strip(),
                                self.display_name(username))
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
                await self._back_to_bot(ticket.conversation_id, TEXT["resolved"])
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
