"""Delivering a handoff packet: into the queue, or into the outbox while the database is away.

The one way a handoff reaches the agents, for every action that hands off. Packets
waiting in the outbox go first (in order), the queue's idempotency key makes a retried
delivery harmless, and :func:`resume_pending_deliveries` delivers what an earlier run
of the action server left behind.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any, Callable, Optional

from sqlalchemy.exc import SQLAlchemyError

from bot.handoff.outbox import Outbox
from bot.handoff.packet import HandoffPacket
from bot.settings import get_settings
from bot.store.database import make_engine
from bot.store.queue import Queue

logger = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def configured_queue() -> Queue:
    """The process-wide handoff queue on ``DATABASE_URL`` (SQLite file under var/ by default)."""
    return Queue(make_engine(get_settings().database_url))


@lru_cache(maxsize=1)
def configured_outbox() -> Outbox:
    """The process-wide outbox file (``BOT_OUTBOX``, default var/outbox.jsonl)."""
    return Outbox(get_settings().outbox_file)


def connect_queue() -> Optional[Queue]:
    """The configured queue, or ``None`` while its database cannot be reached (retried next time)."""
    try:
        return configured_queue()
    except SQLAlchemyError:
        logger.exception("handoff queue database unreachable")
        return None


def deliver(packet: HandoffPacket, queue: Optional[Queue], outbox: Outbox,
            reconnect: Callable[[], Optional[Queue]] = connect_queue) -> dict[str, Any]:
    """Enqueue ``packet`` (after any older waiting ones) or keep it in the outbox.

    Args:
        packet: The handoff, masked (:func:`bot.handoff.packet.build_packet`).
        queue: The queue; ``None`` when its database could not be reached.
        outbox: Where the packet waits while the database is unreachable.
        reconnect: How the outbox's retry thread gets the queue.

    Returns:
        ``ticket_id`` and ``queue_position`` for the reply; ``ticket_id`` None when kept.
    """
    if queue is not None:
        try:
            outbox.drain(queue)  # earlier handoffs first, in order
            ticket, created = queue.enqueue(packet)
            # Not new: a retry of this packet, or a later handoff joining the conversation's open ticket.
            logger.info("handoff ticket %s (%s) for %s", ticket.id, "new" if created else "existing",
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

    The action server calls it when it starts: otherwise packets written during a
    database outage would wait for the next handoff, however long that takes.

    Returns:
        True when packets were waiting and the delivery thread was started.
    """
    outbox = outbox or configured_outbox()
    try:
        waiting = outbox.pending()
    except OSError:
        logger.exception("outbox unreadable at start-up")
        return False
    if waiting:
        logger.warning("outbox: %d handoff packet(s) from an earlier run, delivering", len(waiting))
        outbox.deliver_in_background(connect)
    return bool(waiting)
