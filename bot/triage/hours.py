"""Staffed hours from ``knowledge/hours.yml``: is a person available now, and when next.

Japan has no daylight saving time, so Japan time is a fixed UTC+9. National holidays
(振替休日 included) come from the ``jpholiday`` package.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jpholiday
import yaml

from bot.errors import KnowledgeError
from bot.settings import get_settings

JST = dt.timezone(dt.timedelta(hours=9), "JST")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_RANGE = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")
_MONTH_DAY = re.compile(r"^(\d{2})-(\d{2})$")


def japan_now() -> dt.datetime:
    """The time staffed hours are checked against: now in Japan time.

    The one place the bot reads the clock for that decision. ``BOT_NOW`` fixes it
    (tests take the staffed and the offline branch on purpose, whenever they run).
    """
    fixed = get_settings().fixed_now
    if fixed is None:
        return dt.datetime.now(JST)
    return fixed.astimezone(JST) if fixed.tzinfo else fixed.replace(tzinfo=JST)


@dataclass(frozen=True)
class StaffedHours:
    """Opening time per weekday (``None`` = closed), holidays and yearly closed days."""

    weekly: tuple[tuple[dt.time, dt.time] | None, ...]
    closed_on_national_holidays: bool
    closed_dates: frozenset[tuple[int, int]]

    def is_open(self, at: dt.datetime) -> bool:
        """True when a person can take a handoff at ``at`` (any timezone; naive = Japan time)."""
        local = at.astimezone(JST) if at.tzinfo else at.replace(tzinfo=JST)
        day = local.date()
        if (day.month, day.day) in self.closed_dates:
            return False
        if self.closed_on_national_holidays and jpholiday.is_holiday(day):
            return False
        window = self.weekly[day.weekday()]
        return window is not None and window[0] <= local.time() < window[1]

    def next_opening(self, at: dt.datetime) -> dt.datetime | None:
        """The next time staff are available (``at`` itself when open; None if never within 30 days)."""
        local = at.astimezone(JST) if at.tzinfo else at.replace(tzinfo=JST)
        if self.is_open(local):
            return local
        for offset in range(0, 31):
            day = local.date() + dt.timedelta(days=offset)
            window = self.weekly[day.weekday()]
            if window is None:
                continue
            start = dt.datetime.combine(day, window[0], JST)
            if start > local and self.is_open(start):
                return start
        return None


def _window(value: Any, path: Path, day: str) -> tuple[dt.time, dt.time] | None:
    if value in ("closed", None, False):
        return None
    match = _RANGE.match(str(value))
    if not match:
        raise KnowledgeError(path, day, f"「{value}」は時間帯の形ではありません。", '"09:00-18:00" の形か closed と書いてください。')
    h1, m1, h2, m2 = map(int, match.groups())
    try:
        # "24:00" closes at the end of the day ("00:00-24:00": staffed all day).
        start, end = dt.time(h1, m1), (dt.time.max if (h2, m2) == (24, 0) else dt.time(h2, m2))
    except ValueError as exc:
        raise KnowledgeError(path, day, f"「{value}」に存在しない時刻があります。", "00:00〜24:00 で書いてください。") from exc
    if start >= end:
        raise KnowledgeError(path, day, f"「{value}」は開始が終了より後です。", "開始-終了 の順に書いてください。")
    return start, end


def load_hours(path: Path) -> StaffedHours:
    """Read ``hours.yml``.

    Raises:
        KnowledgeError: A day, a time range or a closed date is malformed.
    """
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise KnowledgeError(path, None, f"読めません: {exc}", "ファイルの場所と YAML の書き方を確認してください。") from exc
    weekly = doc.get("weekly") if isinstance(doc, dict) else None
    if not isinstance(weekly, dict) or set(weekly) != set(DAYS):
        raise KnowledgeError(path, "weekly", "`weekly:` に mon〜sun の7曜日が必要です。",
                             "mon, tue, wed, thu, fri, sat, sun をすべて書いてください。")
    closed = set()
    for item in doc.get("closed_dates") or []:
        match = _MONTH_DAY.match(str(item))
        if not match:
            raise KnowledgeError(path, "closed_dates", f"「{item}」は 月-日 の形ではありません。", '"12-31" のように書いてください。')
        closed.add((int(match.group(1)), int(match.group(2))))
    return StaffedHours(
        weekly=tuple(_window(weekly[d], path, d) for d in DAYS),
        closed_on_national_holidays=bool(doc.get("closed_on_national_holidays", True)),
        closed_dates=frozenset(closed),
    )
