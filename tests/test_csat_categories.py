"""CSAT per category (bot/analytics/kpis.py) with exact figures, on SQLite and on PostgreSQL (127.0.0.1:5432).

Tickets of three categories and of none are filed, resolved and rated with the stores the bot
server uses (Queue, Surveys), then moved to fixed moments with the ORM (tests/test_analytics_kpis.py's
Desk). Tickets outside the period, offline, cancelled or resolved after its end are asked nothing
and count nowhere; a rating given after the end is not a response. Every figure below is worked
out by hand from :func:`record`.
"""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path
from typing import Iterator

import pytest
from conftest import recorded_database
from sqlalchemy.engine import Engine

from bot.analytics.kpis import UNCATEGORISED, CsatCategory, CsatFigures, CsatSummary, build_csat
from bot.analytics.report import build_report
from bot.store.agents import AgentDirectory
from bot.store.csat import Surveys
from bot.store.database import make_engine
from bot.store.models import CsatRating, Ticket
from test_analytics_kpis import SINCE, UNTIL, Desk, jst

REGISTRATION, BILLING, SERVICE = "登録情報の変更", "料金・請求", "サービスについて"


def rated(desk: Desk, key: str, category: str | None, agent: str, rating: int | None, *, day: int = 1,
          rated_on: int = 1, offline: bool = False, resolved_on: int | None = None) -> int:
    """A ticket of ``category`` filed on 5/``day`` at 10:00, resolved by ``agent`` the same
    day at 10:30 (or on 5/``resolved_on``), rated ``rating`` on 5/``rated_on`` at 11:00."""
    ticket = desk.handoff(key, jst(day, 10), offline=offline)
    desk._set(Ticket, ticket, category=category)
    desk.claim(ticket, agent, jst(day, 10, 5))
    desk.resolve(ticket, jst(resolved_on or day, 10, 30), agent)
    if rating is not None:
        row = Surveys(desk.engine).record(key, ticket, rating, f"{rating}点")
        desk._set(CsatRating, row.id, created_at=jst(rated_on, 11))
    return ticket


def record(engine: Engine) -> None:
    """Counted: 登録情報の変更 5, 2 and unrated; 料金・請求 4 and one rated after the end;
    no category (None and blank) 3 and 1. Not counted: the rest."""
    agents = AgentDirectory(engine)
    agents.add("sato", "佐藤", "correct-horse-battery")
    agents.add("suzuki", "鈴木", "correct-horse-battery")
    d = Desk(engine)
    rated(d, "r1", REGISTRATION, "sato", 5)
    rated(d, "r2", REGISTRATION, "suzuki", 2, day=2, rated_on=2)
    rated(d, "r3", REGISTRATION, "sato", None)
    rated(d, "b1", BILLING, "suzuki", 4)
    rated(d, "b2", BILLING, "suzuki", 1, day=2, rated_on=3)          # rated after the end: asked, no response
    rated(d, "n1", None, "sato", 3)
    rated(d, "n2", "", "suzuki", 1)                                    # a blank category is none
    rated(d, "x1", BILLING, "sato", 1, offline=True)                  # offline: never asked
    early = d.handoff("x2", jst(30, 10, month=4))                       # filed the day before
    d._set(Ticket, early, category=BILLING)
    d.claim(early, "sato", jst(30, 10, 5, month=4))
    d.resolve(early, jst(30, 10, 30, month=4), "sato")
    left = d.handoff("x3", jst(1, 12))                                  # the customer stopped waiting
    d._set(Ticket, left, category=SERVICE)
    d.resolve(left, jst(1, 12, 5), resolution="cancelled")
    rated(d, "x4", SERVICE, "sato", None, day=2, resolved_on=3)       # resolved after the end


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    with recorded_database(request.param, tmp_path, record) as engine:
        yield engine


@pytest.fixture()
def csat(engine: Engine) -> CsatSummary:
    return build_csat(engine, SINCE.astimezone(dt.timezone.utc), UNTIL.astimezone(dt.timezone.utc))


def test_per_category_with_the_uncategorised_last(csat: CsatSummary) -> None:
    assert csat.categories == [
        CsatCategory(asked=2, responses=1, response_rate=0.5, average=4.0, distribution=[0, 0, 0, 1, 0],
                     category=BILLING),
        CsatCategory(asked=3, responses=2, response_rate=0.6667, average=3.5, distribution=[0, 1, 0, 0, 1],
                     category=REGISTRATION),
        CsatCategory(asked=2, responses=2, response_rate=1.0, average=2.0, distribution=[1, 0, 1, 0, 0],
                     category=UNCATEGORISED),
    ]
    assert UNCATEGORISED == "未分類"


def test_the_categories_add_up_to_the_whole_and_agents_are_unchanged(csat: CsatSummary) -> None:
    assert (csat.asked, csat.responses, csat.response_rate, csat.average) == (7, 5, 0.7143, 3.0)
    assert csat.distribution == [1, 1, 1, 1, 1]
    assert sum(c.asked for c in csat.categories) == csat.asked
    assert sum(c.responses for c in csat.categories) == csat.responses
    assert csat.agents == [
        CsatFigures(asked=3, responses=2, response_rate=0.6667, average=4.0, distribution=[0, 0, 1, 0, 1], agent="佐藤"),
        CsatFigures(asked=4, responses=3, response_rate=0.75, average=2.33, distribution=[1, 1, 0, 1, 0], agent="鈴木"),
    ]


def test_the_analytics_api_and_the_csv_export_carry_the_categories(engine: Engine, tmp_path: Path) -> None:
    from bot.analytics.export import CSV_FILES, write_csv

    report = build_report(engine, SINCE, UNTIL)
    categories = report.as_dict()["kpis"]["csat"]["categories"]
    assert [(c["category"], c["asked"], c["responses"], c["average"]) for c in categories] == \
        [(BILLING, 2, 1, 4.0), (REGISTRATION, 3, 2, 3.5), ("未分類", 2, 2, 2.0)]
    paths = write_csv(report, tmp_path)
    assert tmp_path / CSV_FILES["csat_categories"] in paths
    raw = (tmp_path / "csat_categories.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    assert list(csv.reader(raw.decode("utf-8-sig").splitlines())) == [
        ["カテゴリ", "アンケートを表示した問い合わせ", "回答数", "回答率", "平均（1〜5）",
         "評価1の件数", "評価2の件数", "評価3の件数", "評価4の件数", "評価5の件数"],
        [BILLING, "2", "1", "0.5", "4.0", "0", "0", "0", "1", "0"],
        [REGISTRATION, "3", "2", "0.6667", "3.5", "0", "1", "0", "0", "1"],
        ["未分類", "2", "2", "1.0", "2.0", "1", "0", "1", "0", "0"]]


def test_no_ratings_no_categories(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    assert build_csat(engine, None, dt.datetime(2024, 5, 3, tzinfo=dt.timezone.utc)).categories == []
    engine.dispose()
