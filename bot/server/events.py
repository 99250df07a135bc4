"""In-process publish/subscribe for the console's SSE stream and the widget's sockets.

Each subscriber gets its own bounded asyncio queue; a subscriber that stops reading
(a dead tab) is dropped instead of slowing everyone else down.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from typing import Any

logger = logging.getLogger(__name__)

SUBSCRIBER_BACKLOG = 1000


class EventHub:
    """Fan-out of ticket events (to agents) and conversation frames (to customers' tabs)."""

    def __init__(self) -> None:
        """Start with no subscribers."""
        self._agents: set[asyncio.Queue[dict[str, Any]]] = set()
        self._conversations: dict[str, set[asyncio.Queue[dict[str, Any]]]] = defaultdict(set)

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
        self._put_all(self._agents, {"change": change, "ticket": ticket})

    def publish_conversation(self, conversation_id: str, frame: dict[str, Any]) -> None:
        """Send a frame to every open tab of a conversation."""
        self._put_all(self._conversations.get(conversation_id, set()), frame)

    @staticmethod
    def _put_all(queues: set[asyncio.Queue[dict[str, Any]]], item: dict[str, Any]) -> None:
        for queue in list(queues):
            try:
                queue.put_nowait(item)
            except asyncio.QueueFull:
                logger.warning("dropping a subscriber that stopped reading")
                queues.discard(queue)
