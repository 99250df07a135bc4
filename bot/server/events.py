"""Publish/subscribe for the console's SSE stream and the widget's sockets.

The interface follows encode/broadcaster: a backend chosen by URL behind one hub
(:func:`backend_for_url`: ``memory://`` for one bot server, the default; ``redis://``
for several, bot/server/redis_relay.py), and subscriptions as async context managers
(``async with hub.subscribe(AGENTS) as queue``). Unlike broadcaster, each subscriber
gets a *bounded* queue: a subscriber that stops reading (a dead tab) is dropped instead
of slowing everyone else down, and reads the :data:`CLOSED` marker, as every subscriber
does when events may have been missed (Redis was unreachable): its client reconnects
and reloads.

Every event is delivered to this server's subscribers at once, whatever the backend,
so a Redis outage never silences a server's own customers and consoles. Listeners
(:meth:`EventHub.add_listener`, e.g. the LINE channel) see the conversation frames
published on this server only, never the ones relayed from others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable, Protocol
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from bot.server.redis_relay import RedisRelay

logger = logging.getLogger(__name__)

SUBSCRIBER_BACKLOG = 1000
CLOSED: dict[str, Any] = {"type": "closed"}  # the last item a dropped subscriber reads: reconnect and reload

AGENTS = "tickets"  # the channel of every ticket event (consoles)
CONVERSATION_PREFIX = "conversation:"

FrameListener = Callable[[str, dict[str, Any]], None]


def conversation_channel(conversation_id: str) -> str:
    """The channel of one conversation's frames (its open tabs)."""
    return CONVERSATION_PREFIX + conversation_id


class EventBackend(Protocol):
    """Carries events to the other bot servers (broadcaster's ``BroadcastBackend``, for our hub).

    ``send`` never blocks the caller: delivery to this server's subscribers is the hub's,
    the backend only relays. A backend that hears events of other servers hands them to
    :meth:`EventHub.deliver`, and calls :meth:`EventHub.resync` when some may be lost.
    """

    @property
    def connected(self) -> bool:
        """Whether events reach the other servers now."""

    async def start(self) -> None:
        """Connect (returns even when the service is unreachable; it keeps trying)."""

    async def stop(self) -> None:
        """Disconnect."""

    def send(self, event: dict[str, Any]) -> None:
        """Relay ``event`` to the other servers."""


class MemoryBackend:
    """``memory://``: one bot server; the hub has already delivered every event to its subscribers."""

    connected = True

    async def start(self) -> None:
        """Nothing to connect to."""

    async def stop(self) -> None:
        """Nothing to disconnect."""

    def send(self, event: dict[str, Any]) -> None:
        """No other server to tell."""


def backend_for_url(url: str, hub: EventHub, key: str | None = None) -> EventBackend | RedisRelay:
    """The backend ``BOT_EVENTS_URL`` names (not started).

    Args:
        url: Empty or ``memory://`` (one server), ``redis://`` / ``rediss://`` (several).
        hub: The hub the backend delivers other servers' events to.
        key: The event-relay key (Redis; ``None``: derived from the secret key file).

    Raises:
        ValueError: Another scheme, with the ones that work.
    """
    scheme = urlsplit(url).scheme if url else "memory"
    if scheme == "memory":
        return MemoryBackend()
    if scheme in ("redis", "rediss"):
        from bot.server.redis_relay import RedisRelay

        return RedisRelay(url, hub, key)
    raise ValueError(f"BOT_EVENTS_URL={url!r} is not supported: use memory:// (one bot server) "
                     "or redis://HOST:PORT/DB (several bot servers sharing events)")


class EventHub:
    """Fan-out of ticket events (to agents) and conversation frames (to customers' tabs)."""

    def __init__(self, backlog: int = SUBSCRIBER_BACKLOG) -> None:
        """Start with no subscribers, on the memory backend (see :meth:`connect`).

        Args:
            backlog: Events a subscriber may fall behind before it is told to resync.
        """
        self._backlog = backlog
        self._agents: set[asyncio.Queue[dict[str, Any]]] = set()
        self._conversations: dict[str, set[asyncio.Queue[dict[str, Any]]]] = defaultdict(set)
        self._relay: EventBackend = MemoryBackend()
        self._listeners: list[FrameListener] = []

    async def connect(self, url: str = "", key: str | None = None) -> None:
        """Start the backend ``url`` names (:func:`backend_for_url`) and publish through it.

        Args:
            url: ``BOT_EVENTS_URL``: empty or ``memory://`` (this server alone), or
                ``redis://...`` (several servers).
            key: The event-relay key for a Redis backend (``None``: from the secret key file).
        """
        backend = backend_for_url(url, self, key)
        await backend.start()
        self._relay = backend

    async def disconnect(self) -> None:
        """Stop the backend; events are delivered on this server only from now on."""
        backend, self._relay = self._relay, MemoryBackend()
        await backend.stop()

    def use_relay(self, relay: EventBackend) -> None:
        """Also send every event through a started ``relay`` (it calls :meth:`deliver` on the other servers)."""
        self._relay = relay

    @contextlib.asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[asyncio.Queue[dict[str, Any]]]:
        """A bounded queue of the channel's events while the block runs, as broadcaster's ``subscribe``.

        Args:
            channel: :data:`AGENTS` (every ticket event) or :func:`conversation_channel`
                (the frames of one conversation, one subscription per open tab).

        Yields:
            The queue; it ends with :data:`CLOSED` when the subscriber must resync.
        """
        conversation_id = channel.removeprefix(CONVERSATION_PREFIX) if channel != AGENTS else None
        if conversation_id is not None and not channel.startswith(CONVERSATION_PREFIX):
            raise ValueError(f"unknown event channel {channel!r}")
        queue = self.subscribe_agents() if conversation_id is None else self.subscribe_conversation(conversation_id)
        try:
            yield queue
        finally:
            if conversation_id is None:
                self.unsubscribe_agents(queue)
            else:
                self.unsubscribe_conversation(conversation_id, queue)

    def subscriber_count(self) -> int:
        """Queues subscribed now (consoles and tabs of this server)."""
        return len(self._agents) + sum(len(tabs) for tabs in self._conversations.values())

    def local_conversations(self) -> set[str]:
        """Conversations with a tab open on this server now."""
        return set(self._conversations)

    def subscribe_agents(self) -> asyncio.Queue[dict[str, Any]]:
        """A queue receiving every ticket event (unsubscribe it; :meth:`subscribe` does that for you)."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(self._backlog)
        self._agents.add(queue)
        return queue

    def unsubscribe_agents(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        """Stop sending ticket events to ``queue``."""
        self._agents.discard(queue)

    def subscribe_conversation(self, conversation_id: str) -> asyncio.Queue[dict[str, Any]]:
        """A queue receiving every frame for one conversation (one per open tab)."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(self._backlog)
        self._conversations[conversation_id].add(queue)
        return queue

    def unsubscribe_conversation(self, conversation_id: str, queue: asyncio.Queue[dict[str, Any]]) -> None:
        """Stop sending the conversation's frames to ``queue``."""
        tabs = self._conversations.get(conversation_id)
        if tabs is not None:
            tabs.discard(queue)
            if not tabs:
                del self._conversations[conversation_id]

    def publish_ticket(self, change: str, ticket: dict[str, Any]) -> None:
        """Tell every console about a ticket change (created, claimed, message, ...)."""
        self._publish({"kind": "ticket", "item": {"change": change, "ticket": ticket}})

    def add_listener(self, listener: FrameListener) -> None:
        """Call ``listener(conversation_id, frame)`` for every conversation frame published on this server.

        For channels that send frames on (LINE): frames relayed from other servers (:meth:`deliver`)
        are not passed, so a frame reaches a channel once, through the server that published it.
        A listener that raises is logged; the frame still reaches every tab and the other listeners.
        """
        self._listeners.append(listener)

    def publish_conversation(self, conversation_id: str, frame: dict[str, Any]) -> None:
        """Send a frame to every open tab of a conversation, and to the listeners (:meth:`add_listener`)."""
        self._publish({"kind": "conversation", "conversation_id": conversation_id, "item": frame})
        for listener in list(self._listeners):
            try:
                listener(conversation_id, frame)
            except Exception:  # noqa: BLE001 - a channel's problem must not break the widget's chat
                logger.exception("a frame listener failed on a frame of %s", conversation_id)

    def _publish(self, event: dict[str, Any]) -> None:
        # This server's subscribers never wait for Redis (nor miss events while it is down).
        self.deliver(event)
        self._relay.send(event)

    def deliver(self, event: dict[str, Any]) -> None:
        """Hand an event to this server's subscribers (an event of unknown shape is ignored)."""
        item = event.get("item")
        if not isinstance(item, dict):
            logger.warning("ignoring an event without an item (kind %r)", event.get("kind"))
        elif event.get("kind") == "ticket":
            self._put_all(self._agents, item)
        elif event.get("kind") == "conversation":
            self._put_all(self._conversations.get(str(event.get("conversation_id")), set()), item)

    def resync(self) -> None:
        """Tell every subscriber to reload (events may have been missed): each reads :data:`CLOSED`.

        The subscribers are dropped; their readers close their streams (a widget's socket
        with code 4000), and the clients reconnect and load everything again.
        """
        queues = set(self._agents)
        for tabs in self._conversations.values():
            queues |= tabs
        self._agents.clear()
        self._conversations.clear()
        for queue in queues:
            self._close(queue)

    @classmethod
    def _put_all(cls, queues: set[asyncio.Queue[dict[str, Any]]], item: dict[str, Any]) -> None:
        for queue in list(queues):
            try:
                queue.put_nowait(item)
            except asyncio.QueueFull:
                # Too far behind: replace the backlog by one "closed" marker; the reader then
                # closes its stream, and the client reconnects and reloads everything.
                logger.warning("dropping a subscriber that stopped reading")
                queues.discard(queue)
                cls._close(queue)

    @staticmethod
    def _close(queue: asyncio.Queue[dict[str, Any]]) -> None:
        while not queue.empty():
            queue.get_nowait()
        queue.put_nowait(CLOSED)
