"""Announces new tickets to the consoles: those the action server filed, found by polling.

Polling (every ``interval`` seconds, one indexed query) works the same on SQLite and
PostgreSQL and needs no extra service; benchmarks/handoff_load.py measures the
message-to-console time it gives. The ``announced_at`` flag (not an id watermark) means
tickets filed while this server was down are announced when it is back.

A ticket is marked announced only *after* the consoles were told. Between the two, a
claim with a lease (``Queue.claim_announcements``, one commit per poll) keeps other bot
servers from telling them a second time; if telling fails the claim is released and the
ticket is tried again (with a growing pause), and if the server dies in between, the
lease runs out and the ticket is announced again. So a ``created`` event is never lost;
at worst, after a crash, it is sent twice (consoles key tickets by id).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from typing import Awaitable, Callable

from starlette.concurrency import run_in_threadpool

from bot.server.outage import DATABASE_DOWN, log_outage
from bot.store.models import Ticket
from bot.store.queue import Queue

logger = logging.getLogger(__name__)

ANNOUNCE_LEASE = dt.timedelta(seconds=30)  # far above the time telling the consoles takes
MAX_BACKOFF_SECONDS = 30.0


class TicketWatcher:
    """Polls the queue for tickets not announced yet and announces each through ``on_ticket``."""

    def __init__(self, queue: Queue, on_ticket: Callable[[Ticket], Awaitable[None]], interval: float = 0.2,
                 lease: dt.timedelta = ANNOUNCE_LEASE) -> None:
        """Watch ``queue``.

        Args:
            queue: The handoff queue.
            on_ticket: Tells the consoles (and the customer's tabs) about a new ticket.
            interval: Seconds between polls.
            lease: How long a claim to announce a ticket holds before another server (or
                this one, restarted) announces it.
        """
        self._queue = queue
        self._on_ticket = on_ticket
        self._interval = interval
        self._lease = lease
        self._failures: dict[int, tuple[int, float]] = {}  # ticket id -> (failures, retry at monotonic)
        # A pass cut short (the database went away) leaves claims this server holds for tickets
        # not told yet, and tickets told but not marked: the next poll tells / marks them while
        # the claim is well inside its lease, rather than waiting out the lease or telling twice.
        self._held: dict[int, float] = {}  # ticket id -> monotonic time of this server's claim
        self._told: set[int] = set()

    async def run(self) -> None:
        """Poll until cancelled; a database outage is logged and retried."""
        while True:
            try:
                await self.poll()
            except asyncio.CancelledError:
                raise
            except DATABASE_DOWN as exc:  # one line now and then, not a traceback every poll
                log_outage(exc, "ticket watcher")
            except Exception:  # noqa: BLE001 - keep watching whatever one poll hit
                logger.exception("ticket watcher poll failed")
            await asyncio.sleep(self._interval)

    async def poll(self) -> int:
        """Announce every ticket not announced yet (one pass).

        Returns:
            How many tickets were announced by this pass.
        """
        if self._told:
            await run_in_threadpool(self._queue.mark_announced, *self._told)
            self._told.clear()
        tickets = await run_in_threadpool(self._queue.unannounced)
        unannounced = {t.id for t in tickets}
        # Forget failures of tickets announced meanwhile (here or by another server).
        self._failures = {k: v for k, v in self._failures.items() if k in unannounced}
        now = time.monotonic()
        fresh_for = self._lease.total_seconds() / 2  # an own claim is used while well inside its lease
        self._held = {k: at for k, at in self._held.items() if k in unannounced and now - at < fresh_for}
        due = [t for t in tickets if now >= self._failures.get(t.id, (0, 0.0))[1]]
        # One commit claims the pass's tickets and one marks them: two commits per ticket, one
        # after the other behind the customers' writes, made a burst of handoffs reach the
        # consoles up to a second late. Tickets not claimed are being told by another server.
        unclaimed = [t.id for t in due if t.id not in self._held]
        if unclaimed:
            for ticket_id in await run_in_threadpool(self._queue.claim_announcements, unclaimed, self._lease):
                self._held[ticket_id] = now
        announced = 0
        try:
            for ticket in [t for t in due if t.id in self._held]:
                try:
                    await self._on_ticket(ticket)
                except Exception:  # noqa: BLE001 - the next poll tries again; others go on
                    logger.exception("announcing ticket %s failed; tried again", ticket.id)
                    failures = self._failures.get(ticket.id, (0, 0.0))[0] + 1
                    self._failures[ticket.id] = (failures, time.monotonic() + self._backoff(failures))
                    claimed_at = self._held.pop(ticket.id)
                    try:
                        await run_in_threadpool(self._queue.release_announcement, ticket.id)
                    except Exception:
                        self._held[ticket.id] = claimed_at  # still this server's: tried by the next poll
                        raise
                    continue
                self._failures.pop(ticket.id, None)
                del self._held[ticket.id]
                self._told.add(ticket.id)
        finally:  # also when the pass stops early: what the consoles were told is not told again
            if self._told:
                await run_in_threadpool(self._queue.mark_announced, *self._told)
                announced = len(self._told)
                self._told.clear()
        return announced

    def _backoff(self, failures: int) -> float:
        """Seconds before trying a ticket again after ``failures`` failures in a row."""
        return min(MAX_BACKOFF_SECONDS, self._interval * 2 ** (failures - 1))
