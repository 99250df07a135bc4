"""Weekly figures (Monday to Sunday, Japan time) with exact values, on SQLite and PostgreSQL.

The period starts on a Wednesday (5/29) and ends after a Monday (6/10): the first week holds
5/29–6/2 and crosses the month's end, the last holds 6/10 alone. Rows are written with the stores
(tests/test_analytics.py's Recorder, tests/test_analytics_kpis.py's Desk) and dated with the ORM.
Two moments sit on the weeks' edge in Japan time but not in UTC: Sunday 6/2 23:30 JST and Monday
6/3 0:30 JST (Sunday 15:30 UTC). Every figure below is worked out by hand from :func:`record`.
"""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path
import pytest
from conftest import recorded_engines
from sqlalchemy.engine import Engine

from bot.analytics.export import CSV_FILES, write_chart, write_csv
from bot.analytics.kpis import KpiWeek
from bot.analytics.periods import WeekSpan, week_spans, week_start
from bot.analytics.report import JST, AnalyticsReport, DayVolume, WeekVolume, build_report
from bot.store.agents import AgentDirectory
from test_analytics import Recorder
from test_analytics_kpis import Desk

SINCE = dt.datetime(2024, 5, 29, tzinfo=JST)   # a Wednesday
UNTIL = dt.datetime(2024, 6, 11, tzinfo=JST)   # the period's last day is Monday 6/10
D = dt.date


def at(month: int, day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2024, month, day, hour, minute, tzinfo=JST).astimezone(dt.timezone.utc)


def record(engine: Engine) -> None:
    AgentDirectory(engine).add("sato", "佐藤", "correct-horse-battery")
    r, desk = Recorder(engine), Desk(engine)

    def customer(conversation: str, when: dt.datetime, started: bool = True) -> None:
        if started:
            r.start(conversation, when)
        r.customer(conversation, "住所を変更したい", when)

    # ---- week of 5/27 (in the period from Wednesday 5/29)
    customer("w1a", at(5, 28, 23))                       # Tuesday: the same week, before the period
    customer("w1a", at(5, 31, 10), started=False)        # Friday and Saturday, across the month's end:
    customer("w1a", at(6, 1, 10), started=False)         # one conversation of the week
    a = desk.handoff("w1a", at(6, 1, 10, 5))
    desk.claim(a, "sato", at(6, 1, 10, 6))
    desk.reply(a, "佐藤", at(6, 1, 10, 10))              # first response 300 s; never resolved
    customer("w1b", at(6, 2, 23, 30))                    # Sunday 23:30 JST
    customer("w1c", at(5, 29, 9))
    c = desk.handoff("w1c", at(5, 29, 9, 1))
    desk.claim(c, "sato", at(5, 29, 9, 2))
    desk.reply(c, "佐藤", at(5, 29, 9, 3))               # first response 120 s
    desk.resolve(c, at(5, 29, 9, 12), "sato")            # handling 600 s
    # ---- week of 6/3
    customer("w2a", at(6, 3, 0, 30))                     # Monday 0:30 JST = Sunday 15:30 UTC
    e = desk.handoff("w2a", at(6, 3, 0, 31))
    desk.claim(e, "sato", at(6, 3, 0, 32))
    desk.reply(e, "佐藤", at(6, 3, 0, 34))               # first response 180 s
    desk.resolve(e, at(6, 3, 0, 40), "sato")             # handling 480 s
    customer("w2b", at(6, 9, 23, 59))                    # Sunday 23:59 JST
    f = desk.handoff("w2b", at(6, 9, 23, 59))
    desk.resolve(f, at(6, 10, 0, 1), resolution="cancelled")  # abandoned (the ticket's week: filed on 6/9)
    # ---- week of 6/10 (the period's last day only), then after the end
    customer("w3a", at(6, 10, 12))
    customer("w3b", at(6, 11, 0, 10))


engine = recorded_engines(record)


@pytest.fixture()
def report(engine: Engine) -> AnalyticsReport:
    return build_report(engine, SINCE, UNTIL)


def test_weeks_of_the_volume(report: AnalyticsReport) -> None:
    assert report.weeks == [
        WeekVolume(D(2024, 5, 29), 2, 3, 4, 2, 0.6667, last_day=D(2024, 6, 2), week=D(2024, 5, 27)),
        WeekVolume(D(2024, 6, 3), 2, 2, 2, 2, 1.0, last_day=D(2024, 6, 9), week=D(2024, 6, 3)),
        WeekVolume(D(2024, 6, 10), 1, 1, 1, 0, 0.0, last_day=D(2024, 6, 10), week=D(2024, 6, 10)),
    ]
    # Per day, the conversation that wrote on 5/31 and 6/1 counts on both days (4 in the days of
    # the first week), once in its week (3).
    assert len(report.days) == 13
    first_week = [d for d in report.days if d.day <= D(2024, 6, 2)]
    assert sum(d.conversations for d in first_week) == 4
    assert next(d for d in report.days if d.day == D(2024, 6, 2)) == DayVolume(D(2024, 6, 2), 1, 1, 1, 0, 0.0)
    assert next(d for d in report.days if d.day == D(2024, 6, 3)) == DayVolume(D(2024, 6, 3), 1, 1, 1, 1, 1.0)


def test_weeks_of_the_kpis(report: AnalyticsReport) -> None:
    assert report.kpis is not None
    assert report.kpis.weeks == [
        KpiWeek(D(2024, 5, 29), 3, 2, 2, 1, 0, 210.0, 600.0, last_day=D(2024, 6, 2), week=D(2024, 5, 27)),
        KpiWeek(D(2024, 6, 3), 2, 2, 2, 1, 1, 180.0, 480.0, last_day=D(2024, 6, 9), week=D(2024, 6, 3)),
        KpiWeek(D(2024, 6, 10), 1, 0, 0, 0, 0, None, None, last_day=D(2024, 6, 10), week=D(2024, 6, 10)),
    ]
    data = report.as_dict()
    assert data["weeks"][0] == {"day": "2024-05-29", "new_conversations": 2, "conversations": 3,
                                "customer_messages": 4, "handoffs": 2, "handoff_rate": 0.6667,
                                "last_day": "2024-06-02", "week": "2024-05-27"}
    assert data["kpis"]["weeks"][2]["day"] == data["kpis"]["weeks"][2]["last_day"] == "2024-06-10"


def test_weekly_csv_files(report: AnalyticsReport, tmp_path: Path) -> None:
    paths = write_csv(report, tmp_path)
    assert [p.name for p in paths] == list(CSV_FILES.values())

    def rows(name: str) -> list[list[str]]:
        raw = (tmp_path / name).read_bytes()
        assert raw.startswith(b"\xef\xbb\xbf")
        return list(csv.reader(raw.decode("utf-8-sig").splitlines()))

    assert rows(CSV_FILES["weekly"]) == [
        ["週（月曜日）", "集計の最初の日", "集計の最後の日", "新規会話数", "会話数", "お客さまメッセージ数", "引き継ぎ数",
         "引き継ぎ率"],
        ["2024-05-27", "2024-05-29", "2024-06-02", "2", "3", "4", "2", "0.6667"],
        ["2024-06-03", "2024-06-03", "2024-06-09", "2", "2", "2", "2", "1.0"],
        ["2024-06-10", "2024-06-10", "2024-06-10", "1", "1", "1", "0", "0.0"]]
    assert rows(CSV_FILES["kpi_weekly"]) == [
        ["週（月曜日）", "集計の最初の日", "集計の最後の日", "会話数", "引き継いだ会話", "引き継ぎ数", "担当者が解決", "放棄",
         "初回応答時間の平均（秒）", "対応時間の平均（秒）"],
        ["2024-05-27", "2024-05-29", "2024-06-02", "3", "2", "2", "1", "0", "210.0", "600.0"],
        ["2024-06-03", "2024-06-03", "2024-06-09", "2", "2", "2", "1", "1", "180.0", "480.0"],
        ["2024-06-10", "2024-06-10", "2024-06-10", "1", "0", "0", "0", "0", "", ""]]


def test_weekly_chart_has_one_bar_pair_per_week(report: AnalyticsReport, tmp_path: Path) -> None:
    daily = write_chart(report, tmp_path / "daily.svg").read_text(encoding="utf-8")
    weekly = write_chart(report, tmp_path / "weekly.svg", weekly=True).read_text(encoding="utf-8")
    # The same axes, spines and backgrounds; bars: two per day (13 days) against two per week (3).
    assert daily.count('id="patch_') - weekly.count('id="patch_') == 2 * (13 - 3)
    assert write_chart(report, tmp_path / "weekly.png", weekly=True).read_bytes().startswith(b"\x89PNG")


# ---- the calendar, without a database ------------------------------------------------------------


def test_week_start_is_monday() -> None:
    assert [week_start(D(2024, 6, n)) for n in (2, 3, 9, 10)] == [D(2024, 5, 27), D(2024, 6, 3), D(2024, 6, 3),
                                                                    D(2024, 6, 10)]


def test_week_spans_mid_week_start_month_and_year_ends() -> None:
    may_june = [D(2024, 5, 29) + dt.timedelta(days=n) for n in range(13)]
    assert week_spans(reversed(may_june + may_june[:3])) == [  # any order, repeats once
        WeekSpan(D(2024, 5, 27), tuple(may_june[:5])),
        WeekSpan(D(2024, 6, 3), tuple(may_june[5:12])),
        WeekSpan(D(2024, 6, 10), (D(2024, 6, 10),)),
    ]
    year_end = week_spans([D(2024, 12, 28), D(2024, 12, 31), D(2025, 1, 5), D(2025, 1, 6)])
    assert [(s.week, s.first_day, s.last_day) for s in year_end] == [
        (D(2024, 12, 23), D(2024, 12, 28), D(2024, 12, 28)),
        (D(2024, 12, 30), D(2024, 12, 31), D(2025, 1, 5)),
        (D(2025, 1, 6), D(2025, 1, 6), D(2025, 1, 6))]
    assert week_spans([]) == []
