"""Offers waiting tickets to agents, round after round (the desk: bot/store/desk.py).

Every bot server runs one; the database keeps them apart (an offer is a conditional
UPDATE, an agent's load is counted under a lock of the agent's row), so two servers never
offer one ticket twice nor an agent more than their cap. The server whose round changed
an offer tells the consoles (a ``ticket`` event) and the customer's tabs (the queue
position) through the event hub, which reaches the other servers' clients too.

After each round it also ranks the waiting customers (:meth:`Desk.places`): whenever a
customer's queue position or wait estimate moved (an agent came back, went away or changed
skills or cap, a ticket ahead was claimed or cancelled, a complaint came in), their tabs on
this server get the new state. Every server ranks for its own tabs, so none is told twice.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable, Iterable, Mapping

from starlette.concurrency import run_in_threadpool

from bot.server.outage import DATABASE_DOWN, log_outage
from bot.store.desk import AssignmentRound, Desk
from bot.store.queue_place import QueuePlace

Places = Mapping[int, tuple[str, QueuePlace]]  # ticket id → (conversation id, place)

logger = logging.getLogger(__name__)


class Assigner:
    """Runs :meth:`Desk.assign` every ``interval`` seconds and announces what changed."""

    def __init__(self, desk: Desk, on_change: Callable[[Iterable[int]], Awaitable[None]],
                 interval: float = 1.0,
                 on_moved: Callable[[Places, list[int]], Awaitable[None]] | None = None) -> None:
        """Assign with ``desk``.

        Args:
            desk: The desk.
            on_change: Gets the ids of tickets whose offer changed.
            interval: Seconds between rounds.
            on_moved: Gets the places just ranked and the ids of the other waiting tickets
                whose place changed since the last round; ``None``: places are not ranked.
        """
        self._desk = desk
        self._on_change = on_change
        self._interval = interval
        self._on_moved = on_moved
        self._places: dict[int, QueuePlace] = {}

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
        if self._on_moved is not None:
            places = await run_in_threadpool(self._desk.places)
            moved = [ticket_id for ticket_id, (_, place) in places.items()
                     if self._places.get(ticket_id) != place and ticket_id not in changed]
            self._places = {ticket_id: place for ticket_id, (_, place) in places.items()}
            if moved:
                await self._on_moved(places, moved)
        return result
