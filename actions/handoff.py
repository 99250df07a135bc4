"""Hands the conversation to a person (request for a person, complaint, anger).

Thin glue: the reply comes from bot/dialogue, the packet, its delivery and the outbox
from bot/handoff.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ConversationPaused
from rasa_sdk.executor import CollectingDispatcher

from actions.common import default_hours, default_knowledge, send
from bot.dialogue.decisions import handoff_reason
from bot.dialogue.replies import Reply, staffed_handoff_reply
from bot.dialogue.routes import ACTION_HANDOFF
from bot.handoff.delivery import configured_outbox, connect_queue, deliver, resume_pending_deliveries
from bot.handoff.outbox import Outbox
from bot.handoff.packet import build_packet
from bot.store.queue import Queue


class ActionHandoff(Action):
    """File a ticket with the whole transcript and tell the customer a person takes over.

    The ticket is created once per handoff (idempotency key), so a retried action never
    duplicates it, and a conversation has one open ticket: a later handoff (a resend after a
    timeout, another action server) joins it and the reply names that ticket. When the
    database is unreachable the packet waits in the local outbox and a background thread
    delivers it as soon as the database is back. During staffed hours the bot pauses
    (ConversationPaused) until the bot server resumes it when the agent resolves the ticket
    or the customer stops waiting.
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
        return hand_off(dispatcher, tracker, reason, given or connect_queue(), self.outbox or configured_outbox(),
                        reconnect=(lambda: given) if given else connect_queue)


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
    ticket_info = deliver(packet, queue, outbox, reconnect or connect_queue)
    # The key tells the bot server which handoff a pending mark waits for (bot/store/pending.py):
    # a cancelled handoff's packet arriving late must not take a newer handoff's mark.
    custom = {**reply.custom, **ticket_info, "handoff_key": packet.idempotency_key}
    send(dispatcher, Reply(reply.text, reply.buttons, custom), tracker.latest_message)
    return [] if offline else [ConversationPaused()]


# rasa_sdk imports every module of the package when the action server starts: deliver
# what an earlier run left in the outbox now, not with the next handoff.
resume_pending_deliveries()
