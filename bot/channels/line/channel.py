"""LINE events into the gateway, and the gateway's messages back out to LINE.

Inbound: each event is handled in the background (the webhook has answered 200
already), one LINE user's events in order, a redelivered ``webhookEventId`` once. A
user's conversation is ``line-<userId>`` (a group's ``line-<groupId>``, with ``LINE_GROUPS=1``); text goes through
:meth:`Gateway.customer_message` with the event id as the client id (so a redelivery
after a restart is still stored once), quick replies through :meth:`Gateway.button`,
はい / いいえ through :meth:`Gateway.feedback`.

Outbound: the channel listens to every conversation frame this server publishes (the
same frames the widget's socket gets). Frames published while the channel is handling
one of the customer's events belong to that *turn*: they are collected and sent in
**one** reply call when the turn ends (free of charge). Anything else (an agent's
reply, 「担当の…が参加しました」, the back-to-the-bot notice) uses the conversation's
unused reply token while it is still valid, and a push otherwise (billed, counted per
month). A push that fails after the retries is written into the conversation's ticket
so the agent sees it.

Frames are taken where they are published, never from the relay of other servers, so
with several bot servers each message is sent once: by the server whose gateway
produced it.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import logging
import time
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable

from starlette.concurrency import run_in_threadpool
from sqlalchemy.exc import IntegrityError

from bot import wording
from bot.knowledge.csat import csat_texts
from bot.channels.line.client import LineApi, LineApiError, ReplyTokenRejected
from bot.channels.line.events import LineEvent
from bot.channels.line.messages import BUTTON_PREFIX, CSAT_PREFIX, FEEDBACK_PREFIX, Outgoing, line_messages
from bot.channels.line.push_count import PushCounter
from bot.channels.line.reply_tokens import ReplyTokens
from bot.channels.line.texts import MEDIA_NAMES, TEXT
from bot.server.events import AGENTS, EventHub
from bot.server.gateway import CustomerError, Gateway
from bot.store.chat_log import NewMessage, message_json
from bot.store.database import Stores
from bot.store.queue import QueueError

logger = logging.getLogger(__name__)

CONVERSATION_PREFIX = "line-"
CHANNEL_NAME = "LINE"
SEEN_EVENTS = 10_000  # webhookEventIds remembered for dropping redeliveries
OUT_SENDERS = frozenset({"bot", "system", "agent"})


def conversation_for(user_id: str) -> str:
    """The conversation of a LINE user (one per user id)."""
    return CONVERSATION_PREFIX + user_id


def user_of(conversation_id: str) -> str | None:
    """The LINE user id of a LINE conversation; ``None`` for widget conversations."""
    return conversation_id[len(CONVERSATION_PREFIX):] if conversation_id.startswith(CONVERSATION_PREFIX) else None


@dataclass
class _Turn:
    """Messages the gateway published while handling one customer event."""

    conversation_id: str
    messages: list[Outgoing] = field(default_factory=list)


_current_turn: contextvars.ContextVar[_Turn | None] = contextvars.ContextVar("line_turn", default=None)


def tap_conversation_frames(hub: EventHub, listener: Callable[[str, dict[str, Any]], None]) -> None:
    """Call ``listener(conversation_id, frame)`` for every frame this server publishes.

    Uses the hub's ``add_listener`` when it has one; otherwise wraps this hub's
    ``publish_conversation`` (events relayed from other servers go through ``deliver``
    and are not seen, on purpose). A failing listener never stops the publication.
    """
    def safe(conversation_id: str, frame: dict[str, Any]) -> None:
        try:
            listener(conversation_id, frame)
        except Exception:  # noqa: BLE001 - a LINE problem must not break the widget's chat
            logger.exception("LINE channel: could not take a frame of %s", conversation_id)

    add = getattr(hub, "add_listener", None)
    if callable(add):
        add(safe)
        return
    publish = hub.publish_conversation

    def publish_conversation(conversation_id: str, frame: dict[str, Any]) -> None:
        publish(conversation_id, frame)
        safe(conversation_id, frame)

    hub.publish_conversation = publish_conversation  # type: ignore[method-assign]


class LineChannel:
    """One LINE channel (official account) on this bot server."""

    def __init__(self, gateway: Gateway, stores: Stores, hub: EventHub, api: LineApi,
                 push_counter: PushCounter | None = None, reply_token_seconds: float = 50.0,
                 mark_as_read: bool = False, push_delay: float = 0.3,
                 knowledge_topics: Callable[[], list[dict[str, str]]] | None = None,
                 clock: Callable[[], float] = time.monotonic, channel_secret: str = "",
                 groups: bool = False) -> None:
        """Wire the channel to the gateway.

        Args:
            gateway: The gateway that decides who answers.
            stores: Chat log and queue (conversations, tickets for notes).
            hub: The server's event hub (frames are taken from it, see :func:`tap_conversation_frames`).
            api: The Messaging API client.
            push_counter: Where push calls are counted (``None``: not counted).
            reply_token_seconds: How long a reply token is used after its event.
            mark_as_read: Send 既読 when an agent claims the conversation's ticket.
            push_delay: Seconds to gather messages that come out of turn into one push.
            knowledge_topics: The main FAQ topics as buttons for the greeting (``None``: none).
            clock: Monotonic seconds (tests pass their own).
            channel_secret: Checks the webhook's signature (bot/channels/line/webhook.py).
            groups: Answer in groups and rooms too (``LINE_GROUPS``).
        """
        self.channel_secret = channel_secret
        self.groups = groups
        self._gateway = gateway
        self._stores = stores
        self._hub = hub
        self.api = api
        self.push_counter = push_counter
        self.tokens = ReplyTokens(reply_token_seconds, clock)
        self._clock = clock
        self._mark_as_read = mark_as_read
        self._push_delay = push_delay
        self._topics = knowledge_topics
        self._seen: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._user_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self._known: set[str] = set()
        self._names: dict[str, str] = {}
        self._read_tokens: dict[str, str] = {}
        self._outbox: dict[str, list[Outgoing]] = {}
        self._send_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._watcher: asyncio.Task[Any] | None = None
        self.failed_pushes = 0
        tap_conversation_frames(hub, self._on_frame)

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start watching ticket changes: when an agent takes a LINE conversation, the customer
        sees the loading animation (a person is preparing an answer) and, if enabled, 既読."""
        if self._watcher is None:
            self._watcher = asyncio.create_task(self._watch_tickets())

    def agent_opened(self, conversation_id: str) -> None:
        """An agent opened the conversation's ticket in the console: 既読, if enabled."""
        if self._mark_as_read:
            self._spawn(self._mark_read(conversation_id))

    async def close(self) -> None:
        """Finish what is being sent (a few seconds at most), then close the API client."""
        if self._watcher is not None:
            self._watcher.cancel()
        try:
            await asyncio.wait_for(self.drain(), 5.0)
        except asyncio.TimeoutError:
            logger.warning("LINE channel: %d tasks still running at shutdown", len(self._tasks))
        await self.api.close()

    async def drain(self) -> None:
        """Wait until every accepted event is handled and every message sent (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("LINE channel task failed", exc_info=task.exception())

    # ---- inbound ---------------------------------------------------------------------------

    def accept(self, events: list[LineEvent]) -> int:
        """Queue a webhook's events for handling in the background.

        Returns:
            How many were taken (redeliveries of events seen already are dropped).
        """
        taken = 0
        for event in events:
            if event.event_id:
                if event.event_id in self._seen:
                    logger.info("LINE: redelivered event dropped")
                    continue
                self._seen[event.event_id] = None
                while len(self._seen) > SEEN_EVENTS:
                    self._seen.popitem(last=False)
            lock = self._user_locks.get(event.user_id)
            if lock is None:
                lock = self._user_locks[event.user_id] = asyncio.Lock()
            # The token's time runs from the webhook, not from when its turn comes.
            self._spawn(self._handle_in_order(lock, event, self._clock()))
            taken += 1
        return taken

    async def _handle_in_order(self, lock: asyncio.Lock, event: LineEvent, received_at: float) -> None:
        async with lock:  # one user's events in the order LINE sent them
            await self.handle(event, received_at)

    async def handle(self, event: LineEvent, received_at: float | None = None) -> None:
        """Carry out one event and send what the gateway answered in one reply.

        Args:
            event: The event.
            received_at: When its webhook arrived (the channel's clock); ``None``: now.
        """
        if event.kind == "other":
            return  # unknown event or message type: nothing to say
        conversation_id = await self._conversation(event.user_id)
        if event.kind == "unfollow":  # blocked or removed: nothing can reach the user any more
            self.tokens.take(conversation_id)
            await self._gateway.end_conversation(conversation_id)
            return
        self.tokens.remember(conversation_id, event.reply_token, received_at)
        if event.mark_as_read_token:
            self._read_tokens[conversation_id] = event.mark_as_read_token
        turn = _Turn(conversation_id)
        context = _current_turn.set(turn)
        try:
            await self._carry_out(conversation_id, event, turn)
        except CustomerError as exc:  # too long, too many per minute (RateLimited), stale button: say why
            turn.messages.append(Outgoing(str(exc), "system"))
        except QueueError as exc:  # e.g. feedback on a message that is not an answer
            logger.info("LINE event refused: %s", exc)
        finally:
            _current_turn.reset(context)
        if turn.messages:
            await self._send(conversation_id, turn.messages)

    async def _carry_out(self, conversation_id: str, event: LineEvent, turn: _Turn) -> None:
        client_id = event.event_id or None
        if event.kind == "text":
            await self._gateway.customer_message(conversation_id, event.text, client_id)
        elif event.kind == "postback" and event.text.startswith(FEEDBACK_PREFIX):
            message_id, _, flag = event.text[len(FEEDBACK_PREFIX):].partition(":")
            if message_id.isdigit() and flag in ("0", "1"):
                await self._gateway.feedback(conversation_id, int(message_id), flag == "1")
                if flag == "1":
                    turn.messages.append(Outgoing(wording.WIDGET_TEXT["helpfulThanks"], "system"))
        elif event.kind == "postback" and event.text.startswith(CSAT_PREFIX):
            await self._rate(conversation_id, event.text[len(CSAT_PREFIX):], turn)
        elif event.kind == "postback" and event.text.startswith(BUTTON_PREFIX):
            await self._gateway.button(conversation_id, event.text[len(BUTTON_PREFIX):], "", client_id)
        elif event.kind == "follow":
            await self._greet(conversation_id, group=not event.user_id.startswith("U"))
        elif event.kind == "media":
            await self._media(conversation_id, event.text, turn)

    async def _rate(self, conversation_id: str, data: str, turn: _Turn) -> None:
        """A rating tapped under the survey (``<ticket id>:<rating>``); thanks, or why it was refused."""
        ticket, _, rating = data.partition(":")
        try:
            await self._gateway.rate(conversation_id, int(ticket) if ticket.isdigit() else None, rating,
                                     channel="line")
        except QueueError as exc:  # rated already (another tap), or not this user's ticket
            turn.messages.append(Outgoing(str(exc), "system"))
            return
        turn.messages.append(Outgoing(csat_texts().thanks, "system"))

    async def _greet(self, conversation_id: str, group: bool = False) -> None:
        """Greeting with the main topics as quick replies (stored like a bot message: its buttons work)."""
        buttons: list[dict[str, str]] = []
        if self._topics is not None:
            try:
                buttons = await run_in_threadpool(self._topics)
            except Exception:  # noqa: BLE001 - a broken knowledge save: greet without the menu
                logger.exception("LINE greeting: main topics unavailable")
        greeting = TEXT["greeting_group" if group else "greeting"]
        message, _ = await run_in_threadpool(self._stores.chat_log.add,
                                             NewMessage(conversation_id, "bot", greeting, buttons))
        self._hub.publish_conversation(conversation_id, {"type": "message", "message": message_json(message)})

    async def _media(self, conversation_id: str, kind: str, turn: _Turn) -> None:
        """Only text is understood: say so; note it in the ticket while a person owns the chat."""
        ticket = await run_in_threadpool(self._stores.queue.open_ticket_for, conversation_id)
        turn.messages.append(Outgoing(TEXT["media"], "system"))
        if ticket is None:
            return
        try:
            ticket = await run_in_threadpool(self._stores.queue.add_entry, ticket.id, "system",
                                             TEXT["media_note"].format(kind=MEDIA_NAMES.get(kind, kind)))
        except QueueError:
            return
        self._hub.publish_ticket("message", self._gateway.ticket_json(ticket))

    async def _conversation(self, user_id: str) -> str:
        """The user's conversation, started (with the LINE display name) on first contact."""
        conversation_id = conversation_for(user_id)
        if conversation_id in self._known:
            return conversation_id
        if not await run_in_threadpool(self._stores.chat_log.customer_of, conversation_id):
            customer = {"channel": CHANNEL_NAME}
            name = await self.display_name(user_id) if user_id.startswith("U") else ""  # groups: no profile
            if name:
                customer["name"] = name
            try:
                await run_in_threadpool(self._stores.chat_log.start_conversation, conversation_id, customer)
            except IntegrityError:
                pass  # started this instant by another server
        self._known.add(conversation_id)
        return conversation_id

    async def display_name(self, user_id: str) -> str:
        """The user's LINE display name (profile API, cached; empty when unavailable)."""
        if user_id not in self._names:
            try:
                profile = await self.api.profile(user_id)
            except LineApiError as exc:
                logger.info("LINE profile unavailable: %s", exc)
                return ""
            self._names[user_id] = str(profile.get("displayName") or "")[:100]
        return self._names[user_id]

    # ---- outbound --------------------------------------------------------------------------

    def _on_frame(self, conversation_id: str, frame: dict[str, Any]) -> None:
        user_id = user_of(conversation_id)
        if user_id is None:
            return
        kind = frame.get("type")
        if kind == "typing" and frame.get("on") and user_id.startswith("U"):  # 1:1 chats only
            self._spawn(self._loading(user_id))
            return
        survey = frame.get("survey") if kind == "survey" else None
        message = frame.get("message") if kind == "message" else None
        if isinstance(survey, dict):  # after a resolved chat: the ratings as quick replies
            texts = survey.get("texts") or {}
            outgoing = Outgoing(str(texts.get("question") or ""), "system",
                                survey={"ticket_id": survey.get("ticket_id"), "labels": texts.get("labels") or {}})
        elif not isinstance(message, dict) or message.get("sender") not in OUT_SENDERS:
            return
        else:
            outgoing = Outgoing.from_frame(message)
        turn = _current_turn.get()
        if turn is not None and turn.conversation_id == conversation_id:
            turn.messages.append(outgoing)
            return
        waiting = self._outbox.setdefault(conversation_id, [])
        waiting.append(outgoing)
        if len(waiting) == 1:  # the first of a burst starts the sender; the others join it
            self._spawn(self._send_later(conversation_id))

    async def _send_later(self, conversation_id: str) -> None:
        await asyncio.sleep(self._push_delay)
        batch = self._outbox.pop(conversation_id, [])
        if batch:
            await self._send(conversation_id, batch)

    async def _loading(self, user_id: str) -> None:
        try:
            await self.api.loading(user_id, 20)
        except LineApiError as exc:
            logger.info("LINE loading indicator: %s", exc)

    async def _send(self, conversation_id: str, batch: list[Outgoing]) -> None:
        """One call for ``batch``: a reply while the conversation's token is valid, else a push."""
        lock = self._send_locks.get(conversation_id)
        if lock is None:
            lock = self._send_locks[conversation_id] = asyncio.Lock()
        async with lock:  # a slow push (retries) is never overtaken by the next message
            await self._send_now(conversation_id, batch)

    async def _send_now(self, conversation_id: str, batch: list[Outgoing]) -> None:
        user_id = user_of(conversation_id)
        messages = line_messages(batch)
        if user_id is None or not messages:
            return
        token = self.tokens.take(conversation_id)
        if token is not None:
            try:
                await self.api.reply(token, messages)
                return
            except ReplyTokenRejected as exc:
                if exc.ambiguous:  # an earlier attempt may have been delivered: never send twice
                    logger.warning("LINE reply may have been delivered already; not pushed")
                    return
                logger.info("LINE reply token refused; pushing instead")
            except LineApiError as exc:
                if exc.ambiguous:
                    logger.warning("LINE reply failed after an ambiguous attempt: %s", exc)
                logger.warning("LINE reply failed (%s); pushing instead", exc)
        try:
            await self.api.push(user_id, messages)
        except LineApiError as exc:
            self.failed_pushes += 1
            logger.error("LINE push to a user failed: %s", exc)
            await self._note_failure(conversation_id, batch, exc)
            return
        if self.push_counter is not None:
            await run_in_threadpool(self.push_counter.add, 1)

    async def _note_failure(self, conversation_id: str, batch: list[Outgoing], error: LineApiError) -> None:
        """Write an undelivered push into the conversation's ticket, for the agent to see."""
        ticket = await run_in_threadpool(self._stores.queue.open_ticket_for, conversation_id)
        if ticket is None:
            ticket = await run_in_threadpool(self._stores.queue.latest_for, conversation_id)
        if ticket is None:
            return
        reason = f"HTTP {error.status}" if error.status else "接続できません"
        text = "\n".join(m.text for m in batch)[:500]
        try:
            ticket = await run_in_threadpool(self._stores.queue.add_entry, ticket.id, "system",
                                             TEXT["push_failed"].format(error=reason, text=text))
        except QueueError:  # resolved: nowhere left to show it but the log
            return
        self._hub.publish_ticket("message", self._gateway.ticket_json(ticket))

    # ---- agents ----------------------------------------------------------------------------

    async def _watch_tickets(self) -> None:
        """Loading animation (and 既読, if enabled) when an agent claims a LINE conversation's ticket."""
        while True:
            async with self._hub.subscribe(AGENTS) as queue:
                while True:
                    item = await queue.get()
                    if item.get("type") == "closed":  # dropped by a resync: subscribe again
                        break
                    await self._on_ticket_change(item)

    async def _on_ticket_change(self, item: dict[str, Any]) -> None:
        ticket = item.get("ticket")
        if item.get("change") not in ("claimed", "taken_over") or not isinstance(ticket, dict):
            return
        conversation_id = str(ticket.get("conversation_id"))
        user_id = user_of(conversation_id)
        if user_id is not None and user_id.startswith("U") and not ticket.get("offline"):
            self._spawn(self._loading(user_id))  # a person is preparing an answer (1:1 chats only)
        if self._mark_as_read:
            await self._mark_read(conversation_id)

    async def _mark_read(self, conversation_id: str) -> None:
        token = self._read_tokens.pop(conversation_id, None)
        if token:
            try:
                await self.api.mark_as_read(token)
            except LineApiError as exc:
                logger.info("LINE mark as read: %s", exc)
