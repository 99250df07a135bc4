"""The loop of a background sender: work through a database queue, then wait for a wake-up or
the next poll (transcript mails, webhooks)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable

logger = logging.getLogger(__name__)


async def poll_queue(send_due: Callable[[], Awaitable[Any]], wake: asyncio.Event, poll_seconds: float,
                     what: str) -> None:
    """Call ``send_due`` until cancelled: again when ``wake`` is set, at the latest after
    ``poll_seconds``. An error (the database unreachable) is logged and tried at the next poll.

    Args:
        send_due: Sends what is due now.
        wake: Set by whoever queues something, to be sent now instead of at the next poll.
        poll_seconds: Longest wait between looks at the queue.
        what: Names the queue in the log.
    """
    while True:
        try:
            await send_due()
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - the database was unreachable: try again at the next poll
            logger.exception("%s: could not read the queue", what)
        try:
            await asyncio.wait_for(wake.wait(), poll_seconds)
        except asyncio.TimeoutError:
            pass
        wake.clear()
