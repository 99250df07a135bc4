"""Rasa's SQL tracker store, made to wait out a short database outage instead of forgetting.

Rasa wraps every tracker store in its ``FailSafeTrackerStore``: when a read fails it starts the
conversation afresh, and when a write fails it keeps the turn in an in-memory store that no
other Rasa server sees and that is gone on restart ("Falling back to use the
'InMemoryTrackerStore'"). A PostgreSQL restart of a few seconds therefore cost 10 answered turns
in the scaled fault run (README, issue #12): the bot forgot them, while the transcript and the
tickets kept them.

:class:`RetryingSQLTrackerStore` is Rasa's ``SQLTrackerStore`` with two changes:

* its connection pool checks a connection before use (``pool_pre_ping``), so the connections a
  restarted server closed are replaced instead of failing the next turn;
* a read or write that fails because the database cannot be reached is tried again, with
  growing pauses, for up to ``retry_seconds`` (default 30). Only then does Rasa's fail-safe take
  over, as before. Other errors are raised at once.

``bot run`` names it in the endpoints it writes (:mod:`bot.store.rasa_endpoints`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Awaitable, Callable, Iterable, Optional, Text, TypeVar

import sqlalchemy as sa
from rasa.core.tracker_store import SQLTrackerStore, create_engine_kwargs
from rasa.shared.core.trackers import DialogueStateTracker

logger = logging.getLogger(__name__)

T = TypeVar("T")
# Errors of an unreachable or restarting database (refused, reset, closed, shutting down).
UNREACHABLE = (sa.exc.OperationalError, sa.exc.InterfaceError)
FIRST_PAUSE = 0.2  # seconds; doubled after each failure, at most MAX_PAUSE
MAX_PAUSE = 2.0


class RetryingSQLTrackerStore(SQLTrackerStore):
    """``SQLTrackerStore`` that retries while the database is unreachable (module docstring)."""

    def __init__(self, *args: Any, retry_seconds: float = 30.0, **kwargs: Any) -> None:
        """Rasa's arguments (``dialect``, ``host``, ``db``…), plus how long to keep trying."""
        super().__init__(*args, **kwargs)
        self.retry_seconds = float(retry_seconds)
        url = self.engine.url
        self.engine.dispose()
        self.engine = sa.create_engine(url, pool_pre_ping=True, **create_engine_kwargs(url))
        self.sessionmaker = sa.orm.session.sessionmaker(bind=self.engine)

    async def _retrying(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        """Await ``call()``; while the database is unreachable, pause and try again."""
        deadline = time.monotonic() + self.retry_seconds
        pause = FIRST_PAUSE
        while True:
            try:
                return await call()
            except UNREACHABLE as exc:
                if time.monotonic() + pause > deadline:
                    raise
                logger.warning("tracker store: %s failed (%s); retrying in %.1f s", what,
                               str(exc).splitlines()[0], pause)
                await asyncio.sleep(pause)
                pause = min(pause * 2, MAX_PAUSE)

    async def keys(self) -> Iterable[Text]:
        """The conversation ids (retried while unreachable)."""
        return await self._retrying("keys", super().keys)

    async def retrieve(self, sender_id: Text) -> Optional[DialogueStateTracker]:
        """The conversation since its last session start (retried while unreachable)."""
        return await self._retrying("retrieve", lambda: super(RetryingSQLTrackerStore, self).retrieve(sender_id))

    async def retrieve_full_tracker(self, sender_id: Text) -> Optional[DialogueStateTracker]:
        """The whole conversation (retried while unreachable)."""
        return await self._retrying("retrieve_full_tracker",
                                    lambda: super(RetryingSQLTrackerStore, self).retrieve_full_tracker(sender_id))

    async def save(self, tracker: DialogueStateTracker) -> None:
        """Store the turn's new events (retried while unreachable; only events not stored yet are
        written, so a retry after a lost commit does not repeat any)."""
        await self._retrying("save", lambda: super(RetryingSQLTrackerStore, self).save(tracker))
