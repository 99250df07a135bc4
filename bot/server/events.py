"""Publish/subscribe for the console's SSE stream and the widget's sockets.

Each subscriber gets its own bounded asyncio queue; a subscriber that stops reading
(a dead tab) is dropped instead of slowing everyone else down.

One bot server delivers events in process. Several bot servers (scale-out: a customer's
socket on one, the agent's console on another) relay every event through Redis
pub/sub (``BOT_EVENTS_URL=redis://...``): each server publishes to one channel and
delivers what it hears to its own subscribers, so every event reaches every tab once.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import defaultdict
from typing import Any

logger = logging.getLogger(__name__)

SUBSCRIBER_BACKLOG = 1000
CLOSED: dict[str, Any] = {"type": "closed"}  # the last item a dropped subscriber reads


class EventHub:
    """Fan-out of ticket events (to agents) and conversation frames (to customers' tabs)."""

    def __init__(self) -> None:
        """Start with no subscribers, delivering in process (see :meth:`use_relay`)."""
        self._agents: set[asyncio.Queue[dict[str, Any]]] = set()
        self._conversations: dict[str, set[asyncio.Queue[dict[str, Any]]]] = defaultdict(set)
        self._relay: RedisRelay | None = None

    def use_relay(self, relay: RedisRelay) -> None:
        """Send every event through ``relay`` (it calls :meth:`deliver` back on every server)."""
        self._relay = relay

    def subscribe_agents(self) -> asyncio.Queue[dict[str, Any]]:
        """A queue receiving every ticket event."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(SUBSCRIBER_BACKLOG)
        self._agents.add(queue)
        return queue

    def unsubscribe_agents(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        """Stop sending ticket events to ``queue``."""
        self._agents.discard(queue)

    def subscribe_conversation(self, conversation_id: str) -> asyncio.Queue[dict[str, Any]]:
        """A queue receiving every frame for one conversation (one per open tab)."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(SUBSCRIBER_BACKLOG)
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

    def publish_conversation(self, conversation_id: str, frame: dict[str, Any]) -> None:
        """Send a frame to every open tab of a conversation."""
        self._publish({"kind": "conversation", "conversation_id": conversation_id, "item": frame})

    def _publish(self, event: dict[str, Any]) -> None:
        if self._relay is not None:
            self._relay.send(event)
        else:
            self.deliver(event)

    def deliver(self, event: dict[str, Any]) -> None:
        """Hand an event to this server's subscribers."""
        if event.get("kind") == "ticket":
            self._put_all(self._agents, event["item"])
        elif event.get("kind") == "conversation":
            self._put_all(self._conversations.get(str(event.get("conversation_id")), set()), event["item"])

    @staticmethod
    def _put_all(queues: set[asyncio.Queue[dict[str, Any]]], item: dict[str, Any]) -> None:
        for queue in list(queues):
            try:
                queue.put_nowait(item)
            except asyncio.QueueFull:
                # Too far behind: replace the backlog by one "closed" marker; the reader then
                # closes its stream, and the client reconnects and reloads everything.
                logger.warning("dropping a subscriber that stopped reading")
                queues.discard(queue)
                while not queue.empty():
                    queue.get_nowait()
                queue.put_nowait(CLOSED)


class RedisRelay:
    """Carries :class:`EventHub` events between bot servers over one Redis pub/sub channel.

    Events are published by one task in the order they were sent (frames of a
    conversation must not overtake each other). While Redis is unreachable events are
    dropped with a warning; consoles reload their lists when their stream reconnects.
    """

    CHANNEL = "bot:events"

    def __init__(self, url: str, hub: EventHub) -> None:
        """Relay ``hub``'s events through the Redis server at ``url``."""
        import redis.asyncio as redis

        self._redis = redis.from_url(url)
        self._hub = hub
        self._outgoing: asyncio.Queue[dict[str, Any]] = asyncio.Queue(SUBSCRIBER_BACKLOG * 10)
        self._tasks: list[asyncio.Task[None]] = []
        self._subscribed = asyncio.Event()

    def send(self, event: dict[str, Any]) -> None:
        """Queue ``event`` for publishing."""
        try:
            self._outgoing.put_nowait(event)
        except asyncio.QueueFull:
            logger.warning("event relay backlog full; dropping an event")

    async def start(self) -> None:
        """Subscribe, then start publishing (returns once subscribed)."""
        self._tasks = [asyncio.create_task(self._listen()), asyncio.create_task(self._publish())]
        await asyncio.wait_for(self._subscribed.wait(), timeout=10)

    async def stop(self) -> None:
        """Cancel both tasks and close the connection."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._redis.close()

    async def _publish(self) -> None:
        while True:
            event = await self._outgoing.get()
            try:
                await self._redis.publish(self.CHANNEL, json.dumps(event, ensure_ascii=False))
            except Exception:  # noqa: BLE001 - Redis down: log, keep going
                logger.warning("event relay: Redis unreachable, event dropped", exc_info=True)

    async def _listen(self) -> None:
        while True:
            try:
                pubsub = self._redis.pubsub()
                await pubsub.subscribe(self.CHANNEL)
                self._subscribed.set()
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        self._hub.deliver(json.loads(message["data"]))
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - reconnect after a Redis outage
                logger.warning("event relay: subscription lost, retrying", exc_info=True)
                await asyncio.sleep(1)
