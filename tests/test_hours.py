"""Staffed hours (knowledge/hours.yml) with Japanese holidays (groundwork for #3)."""

import datetime as dt
import re
from pathlib import Path

import pytest

from bot.errors import KnowledgeError
from bot.settings import PROJECT_ROOT
from bot.triage.hours import JST, load_hours

HOURS = load_hours(PROJECT_ROOT / "knowledge" / "hours.yml")


@pytest.mark.parametrize(
    ("when", "is_open"),
    [
        (dt.datetime(2026, 11, 24, 9, 0, tzinfo=JST), True),  # Tuesday opening time
        (dt.datetime(2026, 11, 24, 17, 59, tzinfo=JST), True),
        (dt.datetime(2026, 11, 24, 18, 0, tzinfo=JST), False),  # closing time
        (dt.datetime(2026, 11, 24, 8, 59, tzinfo=JST), False),
        (dt.datetime(2026, 11, 28, 12, 0, tzinfo=JST), False),  # Saturday
        (dt.datetime(2026, 11, 23, 12, 0, tzinfo=JST), False),  # 勤労感謝の日 (Monday)
        (dt.datetime(2026, 12, 30, 12, 0, tzinfo=JST), False),  # 年末
        (dt.datetime(2026, 11, 24, 1, 0, tzinfo=dt.timezone.utc), True),  # 10:00 in Japan
        (dt.datetime(2026, 11, 24, 10, 0), True),  # naive = Japan time
    ],
)
def test_is_open(when: dt.datetime, is_open: bool) -> None:
    assert HOURS.is_open(when) is is_open


def test_next_opening_skips_weekend_holidays_and_new_year() -> None:
    assert HOURS.next_opening(dt.datetime(2026, 11, 23, 12, 0, tzinfo=JST)) == dt.datetime(2026, 11, 24, 9, 0, tzinfo=JST)
    assert HOURS.next_opening(dt.datetime(2026, 12, 28, 19, 0, tzinfo=JST)) == dt.datetime(2027, 1, 4, 9, 0, tzinfo=JST)
    open_now = dt.datetime(2026, 11, 24, 10, 0, tzinfo=JST)
    assert HOURS.next_opening(open_now) == open_now


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ("weekly: {mon: x}\n", "7曜日"),
        ("weekly: {mon: '9-18', tue: closed, wed: closed, thu: closed, fri: closed, sat: closed, sun: closed}\n",
         "時間帯の形"),
        ("weekly: {mon: '18:00-09:00', tue: closed, wed: closed, thu: closed, fri: closed, sat: closed, sun: closed}\n",
         "開始が終了より後"),
        ("weekly: {mon: closed, tue: closed, wed: closed, thu: closed, fri: closed, sat: closed, sun: closed}\n"
         "closed_dates: ['12/31']\n", "月-日"),
    ],
)
def test_bad_hours_file_is_explained(tmp_path: Path, body: str, words: str) -> None:
    path = tmp_path / "hours.yml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(KnowledgeError) as info:
        load_hours(path)
    assert "hours.yml" in str(info.value) and words in str(info.value)


def test_24_00_means_staffed_until_midnight(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import datetime as dt

    from bot.triage.hours import JST, load_hours

    path = tmp_path / "hours.yml"
    days = "\n".join(f'  {d}: "00:00-24:00"' for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun"))
    path.write_text(f"weekly:\n{days}\nclosed_on_national_holidays: false\n", encoding="utf-8")
    hours = load_hours(path)
    assert hours.is_open(dt.datetime(2026, 11, 23, 23, 59, 59, tzinfo=JST))
    assert hours.is_open(dt.datetime(2026, 11, 24, 0, 0, tzinfo=JST))


@pytest.mark.parametrize(("value", "expected"), [
    ("2026-11-23T12:00", dt.datetime(2026, 11, 23, 12, 0, tzinfo=JST)),  # no offset: Japan time
    ("2026-11-23T03:00+00:00", dt.datetime(2026, 11, 23, 12, 0, tzinfo=JST)),  # UTC, shown in Japan time
])
def test_bot_now_fixes_the_clock_of_staffed_hours(clock, value: str, expected: dt.datetime) -> None:  # type: ignore[no-untyped-def]
    from bot.triage.hours import japan_now

    clock(value)
    assert japan_now() == expected and japan_now().utcoffset() == dt.timedelta(hours=9)


def test_without_bot_now_the_real_clock_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.settings import get_settings
    from bot.triage.hours import japan_now

    monkeypatch.delenv("BOT_NOW")
    get_settings.cache_clear()
    try:
        before, now, after = dt.datetime.now(JST), japan_now(), dt.datetime.now(JST)
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    assert before <= now <= after and now.utcoffset() == dt.timedelta(hours=9)


def test_bad_bot_now_names_the_variable_and_the_fix(clock) -> None:  # type: ignore[no-untyped-def]
    from bot.triage.hours import japan_now

    clock("next tuesday")
    with pytest.raises(ValueError, match=r"BOT_NOW='next tuesday'.*fix: write it as 2026-11-24T10:00"):
        japan_now()


def test_staffed_hours_are_checked_against_japan_now_only() -> None:
    """Code that asks "is a person on duty" takes the time from japan_now() (which BOT_NOW fixes).

    A `datetime.now()` next to such a check would make tests depend on when they run again.
    """
    callers = [path for folder in ("bot", "actions") for path in sorted((PROJECT_ROOT / folder).rglob("*.py"))
               if path.name != "hours.py" and re.search(r"\.(is_open|next_opening)\(", path.read_text(encoding="utf-8"))]
    assert callers, "no caller found: the check below would prove nothing"
    for path in callers:
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"\b(datetime|dt\.datetime)\.(now|utcnow|today)\(|\btime\.time\(", text), path
        assert "japan_now()" in text, path
