"""What every analytics table shares: the period filter, ratios, calendar days and weeks.

Days and weeks are calendar days and weeks in the report's time zone (Japan time by default):
each UTC timestamp is converted in Python, so SQLite and PostgreSQL give the same buckets.
A week runs from Monday to Sunday; the first and last weeks of a period that starts or ends
mid-week hold only the period's days (:func:`week_spans`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from sqlalchemy import and_

from bot.store.models import as_utc

IN_CHUNK = 500  # ids per IN (...) list


def ratio(part: int, whole: int | None) -> float | None:
    """``part / whole`` rounded to 4 decimals; ``None`` when ``whole`` is 0 or missing."""
    return round(part / whole, 4) if whole else None


def in_period(column: Any, since: dt.datetime | None, until: dt.datetime) -> Any:
    """SQL condition ``since <= column < until`` (no lower bound when ``since`` is ``None``)."""
    return and_(column >= since, column < until) if since is not None else column < until


def chunks(items: Sequence[Any], size: int = IN_CHUNK) -> Iterable[Sequence[Any]]:
    """``items`` in slices of at most ``size`` (for ``IN (...)`` lists)."""
    for start in range(0, len(items), size):
        yield items[start:start + size]


def local_day(moment: dt.datetime, tz: dt.tzinfo) -> dt.date:
    """The calendar day of ``moment`` (a stored timestamp, naive UTC on SQLite) in ``tz``."""
    return as_utc(moment).astimezone(tz).date()


def week_start(day: dt.date) -> dt.date:
    """The Monday of ``day``'s week (weeks run from Monday to Sunday)."""
    return day - dt.timedelta(days=day.weekday())


@dataclass(frozen=True)
class WeekFields:
    """What a weekly row adds to its daily row, whose ``day`` becomes the week's first day in the period.

    Put first among the bases (``class Week(WeekFields, Day)``) so these fields follow the day's.

    Attributes:
        last_day: The week's last day in the period (its Sunday, or the period's last day).
        week: The Monday the week starts on.
    """

    last_day: dt.date
    week: dt.date


@dataclass(frozen=True)
class WeekSpan:
    """One calendar week of a list of days.

    Attributes:
        week: The Monday the week starts on (it may lie before the period).
        days: The listed days that fall in the week, oldest first.
    """

    week: dt.date
    days: tuple[dt.date, ...]

    @property
    def first_day(self) -> dt.date:
        """The week's first listed day (its Monday, or the period's first day)."""
        return self.days[0]

    @property
    def last_day(self) -> dt.date:
        """The week's last listed day (its Sunday, or the period's last day)."""
        return self.days[-1]

    def row_fields(self) -> dict[str, dt.date]:
        """``day``, ``last_day`` and ``week`` of a weekly row (see :class:`WeekFields`)."""
        return {"day": self.first_day, "last_day": self.last_day, "week": self.week}


def week_spans(days: Iterable[dt.date]) -> list[WeekSpan]:
    """Group ``days`` by calendar week (Monday to Sunday), oldest week first.

    Args:
        days: Calendar days (any order; repeats are ignored).

    Returns:
        One :class:`WeekSpan` per week with at least one of ``days``.
    """
    weeks: dict[dt.date, list[dt.date]] = {}
    for day in sorted(set(days)):
        weeks.setdefault(week_start(day), []).append(day)
    return [WeekSpan(monday, tuple(members)) for monday, members in weeks.items()]
