"""Hands the conversation to a person (request for a person, complaint, anger)."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ConversationPaused
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy.exc import SQLAlchemyError

from actions.common import default_hours, default_knowledge, default_outbox, default_queue, send
from bot.dialogue.decisions import handoff_reason
from bot.dialogue.replies import Reply, staffed_handoff_reply
from bot.dialogue.routes import ACTION_HANDOFF
from bot.handoff.outbox import Outbox
from bot.handoff.packet import build_packet
from bot.store.queue import HandoffPacket, Queue

logger = logging.getLogger(__name__)


class ActionHandoff(Action):
    """File a ticket with the whole transcript and tell the customer a person takes over.

    The ticket is created once per handoff (idempotency key), so a retried action never
    duplicates it. When the database is unreachable the packet waits in the local outbox
    and a background thread delivers it as soon as the database is back. During staffed
    hours the bot pauses (ConversationPaused) until the bot server resumes it when the
    agent resolves the ticket or the customer stops waiting.
    """

    def __init__(self, queue: Optional[Queue] = None, outbox: Optional[Outbox] = None) -> None:
        """Use ``queue`` / ``outbox`` (tests pass their own) or the configured ones."""
        self._desk = HandoffDesk(queue, outbox)

    def name(self) -> Text:
        """The action name used in rules and the domain."""
        return ACTION_HANDOFF

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
            domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        """File the ticket, then reply with the message for the handoff reason."""
        return self._desk.hand_off(dispatcher, tracker, handoff_reason(tracker.latest_message))


@dataclass(frozen=True)
class HandoffDesk:
    """Where an action's handoffs go: the given queue and outbox (tests) or the configured ones."""

    queue: Optional[Queue] = None
    outbox: Optional[Outbox] = None

    def hand_off(self, dispatcher: CollectingDispatcher, tracker: Tracker, reason: str) -> List[Dict[Text, Any]]:
        """:func:`hand_off` with this desk's queue, outbox and retry connection."""
        given = self.queue
        return hand_off(dispatcher, tracker, reason, given or connect_queue(), self.outbox or default_outbox(),
                        reconnect=(lambda: given) if given else connect_queue)


def connect_queue() -> Optional[Queue]:
    """The configured queue, or ``None`` while its database cannot be reached (retried next time)."""
    try:
        return default_queue()
    except SQLAlchemyError:
        logger.exception("handoff queue database unreachable")
        return None


def hand_off(dispatcher: CollectingDispatcher, tracker: Tracker, reason: str, queue: Optional[Queue],
             outbox: Outbox, now: Optional[dt.datetime] = None,
             reconnect: Optional[Callable[[], Optional[Queue]]] = None) -> List[Dict[Text, Any]]:
    """File (or, with the database down, keep in the outbox) a ticket and tell the customer.

    Outside staffed hours the ticket is an *offline* one: the bot keeps answering and the
    widget offers the contact form; otherwise the bot pauses until a person is done.

    Args:
        dispatcher: Where the customer's message goes.
        tracker: The conversation (its events become the transcript).
        reason: Reason code (human_request, complaint, anger, unresolved).
        queue: The handoff queue (``None``: unreachable, the packet goes to the outbox).
        outbox: Where the packet waits if the queue is unreachable.
        now: The current time (tests pass a fixed one).
        reconnect: How the outbox's retry thread gets the queue (default: the configured one).

    Returns:
        The events for Rasa: ConversationPaused during staffed hours.
    """
    kb = default_knowledge().get()
    reply = staffed_handoff_reply(reason, default_hours(), now)
    offline = reply.custom.get("staffed") is False
    customer = (tracker.latest_message.get("metadata") or {}).get("customer") or {}
    packet = build_packet(tracker.sender_id, tracker.events, [reason], kb,
                          customer if isinstance(customer, dict) else {}, offline=offline)
    ticket_info = _deliver(packet, queue, outbox, reconnect or connect_queue)
    send(dispatcher, Reply(reply.text, reply.buttons, {**reply.custom, **ticket_info}), tracker.latest_message)
    return [] if offline else [ConversationPaused()]


def _deliver(packet: HandoffPacket, queue: Optional[Queue], outbox: Outbox,
             reconnect: Callable[[], Optional[Queue]]) -> Dict[str, Any]:
    """Enqueue ``packet`` (after any older waiting ones) or keep it in the outbox.

    Returns:
        ``ticket_id`` and ``queue_position`` for the reply; ``ticket_id`` None when kept.
    """
    if queue is not None:
        try:
            outbox.drain(queue)  # earlier handoffs first, in order
            ticket, created = queue.enqueue(packet)
            logger.info("handoff ticket %s (%s) for %s", ticket.id, "new" if created else "retry",
                        packet.conversation_id)
            return {"ticket_id": ticket.id, "queue_position": queue.position(ticket.id)}
        except SQLAlchemyError:
            logger.exception("handoff queue unreachable")
    logger.warning("handoff packet for %s kept in the outbox", packet.conversation_id)
    outbox.put(packet)
    outbox.deliver_in_background(reconnect)
    return {"ticket_id": None}


def resume_pending_deliveries(outbox: Optional[Outbox] = None,
                              connect: Callable[[], Optional[Queue]] = connect_queue) -> bool:
    """Start delivering the packets an earlier run left in the outbox.

    Called when the action server starts (below): otherwise packets written during a
    database outage would wait for the next handoff, however long that takes.

    Returns:
        True when packets were waiting and the delivery thread was started.
    """
    outbox = outbox or default_outbox()
    try:
        waiting = outbox.pending()
    except OSError:
        logger.exception("outbox unreadable at start-up")
        return False
    if waiting:
        logger.warning("outbox: %d handoff packet(s) from an earlier run, delivering", len(waiting))
        outbox.deliver_in_background(connect)
    return bool(waiting)


# rasa_sdk imports every module of the package when the action server starts.
resume_pending_deliveries()
