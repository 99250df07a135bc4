"""Offers waiting tickets to agents, round after round (the desk: bot/store/desk.py).

Every bot server runs one; the database keeps them apart (an offer is a conditional
UPDATE, an agent's load is counted under a lock of the agent's row), so two servers never
offer one ticket twice nor an agent more than their cap. The server whose round changed
an offer tells the consoles (a ``ticket`` event) and the customer's tabs (the queue
position) through the event hub, which reaches the other servers' clients too.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable, Iterable

from starlette.concurrency import run_in_threadpool

from bot.server.outage import DATABASE_DOWN, log_outage
from bot.store.desk import AssignmentRound, Desk

logger = logging.getLogger(__name__)


class Assigner:
    """Runs :meth:`Desk.assign` every ``interval`` seconds and announces what changed."""

    def __init__(self, desk: Desk, on_change: Callable[[Iterable[int]], Awaitable[None]],
                 interval: float = 1.0) -> None:
        """Assign with ``desk``; ``on_change`` gets the ids of tickets whose offer changed."""
        self._desk = desk
        self._on_change = on_change
        self._interval = interval

    async def run(self) -> None:
        """Assign until cancelled; a database outage is logged and retried."""
        while True:
            try:
                await self.round()
            except asyncio.CancelledError:
                raise
            except DATABASE_DOWN as exc:
                log_outage(exc, "assignment")
            except Exception:  # noqa: BLE001 - keep assigning whatever one round hit
                logger.exception("assignment round failed")
            await asyncio.sleep(self._interval)

    async def round(self) -> AssignmentRound:
        """One round (see :meth:`Desk.assign`)."""
        result = await run_in_threadpool(self._desk.assign)
        changed = list(dict.fromkeys([*result.expired, *result.offered]))
        if changed:
            await self._on_change(changed)
        return result
