"""Standard KPIs (bot/analytics/kpis.py) with exact figures, on SQLite and on PostgreSQL (127.0.0.1:5432).

Two days of tickets are written with the stores the bot server uses (ChatLog, Queue: claim,
agent reply, resolve, cancel), then moved to fixed moments with the ORM. Every figure below is
worked out by hand from :func:`record`.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Iterator

import pytest
from conftest import recorded_database
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from bot.analytics.kpis import KPI_LABELS, Durations, KpiAgent, KpiDay, Kpis, build_kpis, format_duration
from bot.analytics.command import format_report
from bot.analytics.report import JST, build_report
from bot.handoff.packet import HandoffPacket, Turn
from bot.store.agents import AgentDirectory
from bot.store.chat_log import ChatLog, NewMessage
from bot.store.database import make_engine
from bot.store.models import ChatMessage, Ticket, TranscriptEntry
from bot.store.queue import Queue

SINCE = dt.datetime(2024, 5, 1, tzinfo=JST)
UNTIL = dt.datetime(2024, 5, 3, tzinfo=JST)


def jst(day: int, hour: int, minute: int = 0, second: int = 0, month: int = 5) -> dt.datetime:
    return dt.datetime(2024, month, day, hour, minute, second, tzinfo=JST).astimezone(dt.timezone.utc)


class Desk:
    """Customers and agents at fixed moments: the stores write, the ORM dates."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.log = ChatLog(engine)
        self.queue = Queue(engine)
        self._n = 0

    def _set(self, model: Any, key: Any, **values: Any) -> None:
        with Session(self.engine) as session, session.begin():
            row = session.get(model, key)
            for name, value in values.items():
                setattr(row, name, value)

    def customer(self, conversation: str, when: dt.datetime) -> None:
        self._n += 1
        row, _ = self.log.add(NewMessage(conversation, "customer", "担当者と話したい", client_id=f"m{self._n}"))
        self._set(ChatMessage, row.id, created_at=when)

    def handoff(self, conversation: str, when: dt.datetime, offline: bool = False) -> int:
        self._n += 1
        ticket, _ = self.queue.enqueue(HandoffPacket(f"k{self._n}", conversation, ["human_request"],
                                                     [Turn("customer", "担当者と話したい")], offline=offline))
        self._set(Ticket, ticket.id, created_at=when)
        return int(ticket.id)

    def claim(self, ticket: int, agent: str, when: dt.datetime) -> None:
        self.queue.claim(ticket, agent)
        self._set(Ticket, ticket, claimed_at=when)

    def reply(self, ticket: int, author: str, when: dt.datetime) -> None:
        self.queue.add_entry(ticket, "agent", "お待たせいたしました。", author=author)
        with Session(self.engine) as session, session.begin():
            entry = session.query(TranscriptEntry).filter_by(ticket_id=ticket, sender="agent") \
                .order_by(TranscriptEntry.id.desc()).first()
            entry.at = when

    def resolve(self, ticket: int, when: dt.datetime, agent: str | None = None, resolution: str = "resolved") -> None:
        self.queue.resolve(ticket, resolution, agent)
        self._set(Ticket, ticket, resolved_at=when)


def record(engine: Engine) -> None:
    """5/1 and 5/2 (Japan time), and what lies just outside them."""
    agents = AgentDirectory(engine)
    agents.add("sato", "佐藤", "correct-horse-battery")
    agents.add("suzuki", "鈴木", "correct-horse-battery")
    d = Desk(engine)
    # Outside: a ticket of the evening before (answered), a message just after the end.
    d.customer("z0", jst(30, 23, month=4))
    early = d.handoff("z0", jst(30, 23, month=4))
    d.claim(early, "sato", jst(30, 23, 1, month=4))
    d.reply(early, "佐藤", jst(30, 23, 2, month=4))
    d.customer("z1", jst(3, 0, 10))

    # ---- 5/1: a1 the bot answers; a2 answered and resolved by 佐藤; a3 gives up waiting; a4 offline.
    d.customer("a1", jst(1, 10))
    d.customer("a2", jst(1, 10))
    t1 = d.handoff("a2", jst(1, 10, 1))
    d.claim(t1, "sato", jst(1, 10, 3))
    d.reply(t1, "佐藤", jst(1, 10, 4))                        # first response 180 s
    d.reply(t1, "佐藤", jst(1, 10, 6))                        # a later reply does not count
    d.resolve(t1, jst(1, 10, 11), "sato")                    # handling 480 s
    d.customer("a3", jst(1, 11))
    t2 = d.handoff("a3", jst(1, 11))
    d.resolve(t2, jst(1, 11, 5), resolution="cancelled")     # abandoned after 300 s
    d.customer("a4", jst(1, 12))
    t3 = d.handoff("a4", jst(1, 12), offline=True)
    d.claim(t3, "suzuki", jst(2, 9))
    d.reply(t3, "鈴木", jst(2, 9, 1))                         # offline: no first response time
    d.resolve(t3, jst(2, 9, 10), "suzuki")                   # handling 600 s (filed on 5/1)

    # ---- 5/2
    d.customer("b1", jst(2, 9, 30))
    t4 = d.handoff("b1", jst(2, 9, 30))
    d.claim(t4, "suzuki", jst(2, 9, 31))
    d.reply(t4, "鈴木", jst(2, 9, 32))                        # first response 120 s; still open at the end
    d.customer("b2", jst(2, 10))
    t5 = d.handoff("b2", jst(2, 10))
    d.claim(t5, "sato", jst(2, 10, 10))
    d.reply(t5, "佐藤", jst(2, 10, 12))                       # first response 720 s
    d.resolve(t5, jst(2, 10, 30), "sato")                    # handling 1,200 s
    d.handoff("b2", jst(2, 14))                              # b2 handed off again: still waiting
    d.customer("b3", jst(2, 11))                             # the bot answers
    d.customer("b4", jst(2, 23, 50))
    t7 = d.handoff("b4", jst(2, 23, 50))
    d.claim(t7, "sato", jst(2, 23, 55))
    d.reply(t7, "佐藤", jst(3, 0, 5))                         # after the end: not counted
    d.customer("b5", jst(2, 15))
    t8 = d.handoff("b5", jst(2, 15))
    d.claim(t8, "sato", jst(2, 15, 2))                       # claimed, never answered: only a handoff


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    with recorded_database(request.param, tmp_path, record) as engine:
        yield engine


@pytest.fixture()
def kpis(engine: Engine) -> Kpis:
    report = build_report(engine, SINCE, UNTIL)
    assert report.kpis is not None
    return report.kpis


def test_whole_period(kpis: Kpis) -> None:
    assert (kpis.conversations, kpis.handed_off_conversations, kpis.handoffs, kpis.live_handoffs) == (9, 7, 8, 7)
    assert kpis.first_response == Durations(3, 340.0, 180.0)     # 180, 120, 720
    assert kpis.handling == Durations(3, 760.0, 600.0)           # 480, 600, 1,200
    assert (kpis.resolved_by_agents, kpis.abandoned) == (3, 1)
    assert kpis.abandoned_wait == Durations(1, 300.0, 300.0)
    assert kpis.bot_resolution_rate == 0.2222                     # a1, b3 of nine
    assert kpis.agent_resolution_rate == 0.375                    # 3 of 8 tickets
    assert kpis.handoff_rate == 0.7778                            # 7 of 9 conversations
    assert kpis.abandonment_rate == 0.1429                        # 1 of 7 live tickets


def test_per_day(kpis: Kpis) -> None:
    assert kpis.days == [
        KpiDay(dt.date(2024, 5, 1), 4, 3, 3, 2, 1, 180.0, 540.0),
        KpiDay(dt.date(2024, 5, 2), 5, 4, 5, 1, 0, 420.0, 1200.0),
    ]


def test_per_agent(kpis: Kpis) -> None:
    assert kpis.agents == [
        KpiAgent("佐藤", Durations(2, 450.0, 450.0), Durations(2, 840.0, 840.0)),
        KpiAgent("鈴木", Durations(1, 120.0, 120.0), Durations(1, 600.0, 600.0)),
    ]


def test_a_day_without_anything_is_listed_with_zeros(engine: Engine) -> None:
    report = build_report(engine, SINCE, dt.datetime(2024, 5, 5, tzinfo=JST))
    assert report.kpis is not None
    assert [d.day.day for d in report.kpis.days] == [1, 2, 3, 4]
    assert report.kpis.days[3] == KpiDay(dt.date(2024, 5, 4), 0, 0, 0, 0, 0, None, None)
    # The reply after midnight now falls in the period: four first responses.
    assert report.kpis.first_response.count == 4


def test_empty_database(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    kpis = build_kpis(engine, None, dt.datetime(2024, 5, 3, tzinfo=dt.timezone.utc), JST)
    assert (kpis.conversations, kpis.handoffs, kpis.days, kpis.agents) == (0, 0, [], [])
    assert kpis.first_response == Durations(0, None, None)
    assert kpis.bot_resolution_rate is None and kpis.abandonment_rate is None
    engine.dispose()


def test_report_text_and_json_carry_the_kpis_with_japanese_labels(engine: Engine) -> None:
    report = build_report(engine, SINCE, UNTIL)
    text = format_report(report)
    assert "■ 担当者対応の指標（KPI）" in text
    assert "初回応答時間: 平均 5分40秒 / 中央値 3分00秒（3 件）" in text
    assert "平均対応時間: 平均 12分40秒 / 中央値 10分00秒（3 件）" in text
    assert "ボットで解決: 22.2%（2 / 9 会話）" in text and "担当者が解決: 37.5%（3 / 8 件）" in text
    assert "引き継ぎ率（会話）: 77.8%（7 / 9 会話）" in text
    assert "放棄: 1 件（14.3%、待ち時間 平均 5分00秒）" in text
    assert "  2024-05-01      4     3     3     2     1     3分00秒     9分00秒" in text
    assert "佐藤: 初回応答 2 件・7分30秒 / 解決 2 件・14分00秒" in text
    data = report.as_dict()["kpis"]
    assert data["first_response"] == {"count": 3, "average_seconds": 340.0, "median_seconds": 180.0}
    assert data["days"][0]["day"] == "2024-05-01" and data["agents"][1]["agent"] == "鈴木"
    assert data["labels"]["abandonment"][0] == "放棄" and set(data["labels"]) == set(KPI_LABELS)


@pytest.mark.parametrize(("seconds", "text"), [
    (None, "—"), (0, "0秒"), (59.4, "59秒"), (60, "1分00秒"), (3599, "59分59秒"), (3600, "1時間00分"), (5400, "1時間30分"),
])
def test_format_duration(seconds: float | None, text: str) -> None:
    assert format_duration(seconds) == text


def test_kpi_csv_files(engine: Engine, tmp_path: Path) -> None:
    import csv

    from bot.analytics.export import CSV_FILES, write_csv

    paths = write_csv(build_report(engine, SINCE, UNTIL), tmp_path / "out")
    assert [p.name for p in paths][-2:] == [CSV_FILES["kpi_daily"], CSV_FILES["kpi_agents"]]

    def rows(name: str) -> list[list[str]]:
        raw = (tmp_path / "out" / name).read_bytes()
        assert raw.startswith(b"\xef\xbb\xbf")
        return list(csv.reader(raw.decode("utf-8-sig").splitlines()))

    assert rows("kpi_daily.csv") == [
        ["日付", "会話数", "引き継いだ会話", "引き継ぎ数", "担当者が解決", "放棄", "初回応答時間の平均（秒）", "対応時間の平均（秒）"],
        ["2024-05-01", "4", "3", "3", "2", "1", "180.0", "540.0"],
        ["2024-05-02", "5", "4", "5", "1", "0", "420.0", "1200.0"]]
    assert rows("kpi_agents.csv")[1:] == [["佐藤", "2", "450.0", "450.0", "2", "840.0", "840.0"],
                                          ["鈴木", "1", "120.0", "120.0", "1", "600.0", "600.0"]]
