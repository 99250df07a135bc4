"""Push messages sent per month (LINE bills them; replies are free).

LINE counts one push call to one user as one message, whatever the number of bubbles
in it, so a call is counted once. The counts live in the queue's database (table
``line_push_counts``, created when the channel starts) so every bot server adds to the
same figure and a restart loses nothing.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Callable

from sqlalchemy import Column, Integer, MetaData, String, Table, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from bot.triage.hours import japan_now

metadata = MetaData()
push_counts = Table("line_push_counts", metadata,
                    Column("month", String(7), primary_key=True),  # 2026-11, Japan time (LINE's billing month)
                    Column("count", Integer, nullable=False))


class PushCounter:
    """Adds to and reads the monthly push counts."""

    def __init__(self, engine: Engine, warning: int = 0, clock: Callable[[], dt.datetime] = japan_now) -> None:
        """Count in ``engine``'s database (the table is created if missing).

        Args:
            engine: The queue's database.
            warning: Pushes per month above which the analytics page warns (0: never).
            clock: Now in Japan time (tests pass their own).
        """
        self._engine = engine
        self.warning = warning
        self._clock = clock
        metadata.create_all(engine)

    def month(self) -> str:
        """The current month in Japan, ``YYYY-MM``."""
        return self._clock().strftime("%Y-%m")

    def add(self, calls: int = 1) -> None:
        """Count ``calls`` push calls in the current month (one conditional UPDATE, else INSERT)."""
        month = self.month()
        for _ in range(3):  # two servers inserting the month's first row at once: one retries the UPDATE
            with self._engine.begin() as conn:
                done = conn.execute(update(push_counts).where(push_counts.c.month == month)
                                    .values(count=push_counts.c.count + calls)).rowcount
            if done:
                return
            try:
                with self._engine.begin() as conn:
                    conn.execute(push_counts.insert().values(month=month, count=calls))
                return
            except IntegrityError:
                continue

    def counts(self) -> dict[str, int]:
        """Every month's count, oldest first."""
        with self._engine.connect() as conn:
            rows = conn.execute(select(push_counts.c.month, push_counts.c.count).order_by(push_counts.c.month))
            return {month: int(count) for month, count in rows}

    def this_month(self) -> int:
        """Push calls so far this month."""
        return self.counts().get(self.month(), 0)

    def summary(self) -> dict[str, Any]:
        """What the analytics page shows: this month's count, the warning threshold, every month."""
        counts = self.counts()
        this_month = counts.get(self.month(), 0)
        return {"month": self.month(), "this_month": this_month, "warning": self.warning,
                "over": bool(self.warning) and this_month > self.warning, "months": counts}
