"""Hands the conversation to a person (request for a person, complaint, anger)."""

from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.common import default_knowledge, default_queue, send
from bot.dialogue.decisions import handoff_reason, reply_for
from bot.dialogue.replies import Reply
from bot.dialogue.routes import ACTION_HANDOFF
from bot.handoff.packet import build_packet
from bot.store.queue import Queue

logger = logging.getLogger(__name__)


class ActionHandoff(Action):
    """File a ticket with the whole transcript and tell the customer a person takes over.

    The ticket is created once per handoff (idempotency key), so a retried action never
    duplicates it. Still to come (issue #3): pausing the bot while an agent owns the
    conversation, the agent console, and an outbox when the database is unreachable.
    """

    def __init__(self, queue: Optional[Queue] = None) -> None:
        """Use ``queue`` (tests pass their own) or the one on ``DATABASE_URL``."""
        self._queue = queue

    def name(self) -> Text:
        """The action name used in rules and the domain."""
        return ACTION_HANDOFF

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
            domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        """File the ticket, then reply with the message for the handoff reason."""
        kb = default_knowledge().get()
        reply = reply_for(ACTION_HANDOFF, tracker.latest_message, kb)
        queue = self._queue or default_queue()
        customer = (tracker.latest_message.get("metadata") or {}).get("customer") or {}
        packet = build_packet(tracker.sender_id, tracker.events, [handoff_reason(tracker.latest_message)], kb,
                              customer if isinstance(customer, dict) else {})
        ticket, created = queue.enqueue(packet)
        logger.info("handoff ticket %s (%s) for %s", ticket.id, "new" if created else "retry", tracker.sender_id)
        custom = {**reply.custom, "ticket_id": ticket.id, "queue_position": queue.position(ticket.id)}
        send(dispatcher, Reply(reply.text, reply.buttons, custom))
        return []
