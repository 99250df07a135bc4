"""The resolution rate (解決率, bot/analytics/resolution.py) with exact figures, on SQLite and PostgreSQL.

Conversations are written with the stores the bot server uses (ChatLog: messages and the
「はい」 / 「いいえ」 of 役に立ちましたか？; Queue: a handoff), then dated with the ORM
(tests/test_analytics.py's Recorder). The period is 5/1 0:00 – 5/4 0:00 Japan time. Every
outcome below is worked out by hand from :func:`record`; the rules are in the module's docstring.
"""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path
import pytest
from conftest import recorded_engines
from sqlalchemy.engine import Engine

from bot.analytics.command import format_report
from bot.analytics.export import CSV_FILES, write_csv
from bot.analytics.kpis import KPI_LABELS
from bot.analytics.report import JST, build_report
from bot.analytics.resolution import (ASSUMED, CAME_BACK, CONFIRMED, HANDED_OFF, OUTCOME_LABELS, PENDING, RATED_NO,
                                      UNANSWERED, Message, Resolution, outcome)
from test_analytics import Recorder

SINCE = dt.datetime(2024, 5, 1, tzinfo=JST)
UNTIL = dt.datetime(2024, 5, 4, tzinfo=JST)
ANSWER = "住所はマイページの「会員情報」から変更できます。"


def at(day: int, hour: int, minute: int = 0, second: int = 0, month: int = 5) -> dt.datetime:
    """A moment in Japan time, as UTC like the server stores it."""
    return dt.datetime(2024, month, day, hour, minute, second, tzinfo=JST).astimezone(dt.timezone.utc)


def later(moment: dt.datetime, hours: int, minutes: int = 0) -> dt.datetime:
    return moment + dt.timedelta(hours=hours, minutes=minutes)


def asked(r: Recorder, conversation: str, when: dt.datetime, faq: bool = True, rated: bool | None = None) -> int:
    """The customer asks at ``when``; the bot answers 5 s later (an FAQ answer, rated ``rated``)."""
    r.customer(conversation, "住所を変更したい", when)
    answer = r.bot(conversation, ANSWER, when + dt.timedelta(seconds=5), "answer", "faq_change_address", 0.95,
                   "change-address" if faq else None)
    if rated is not None:
        r.log.set_feedback(conversation, answer, rated)
    return answer


def record(engine: Engine) -> None:
    """Thirteen conversations of the period and two outside it."""
    r = Recorder(engine)
    # Outside: only before the period, only after it.
    asked(r, "z0", at(30, 10, month=4), rated=True)
    r.customer("z1", "住所を変更したい", at(4, 0, 10))

    # Confirmed: y1 said はい, then asked again within the hour (the rating decides);
    # n2 said いいえ, rephrased, and said はい to the second answer (the latest rating decides).
    asked(r, "y1", at(1, 10), rated=True)
    asked(r, "y1", at(1, 11), faq=False)
    asked(r, "n2", at(1, 10), rated=False)
    asked(r, "n2", at(1, 10, 5), rated=True)
    # いいえ: the bot's follow-up after it and two days of silence do not make it resolved.
    asked(r, "n1", at(1, 10), rated=False)
    r.bot("n1", "お役に立てず申し訳ございません。", at(1, 10, 1), "clarify", "answer_not_helpful", 1.0)
    # The 24-hour edge, from the bot's last answer A: the customer writes again (the bot does not answer)
    # 23:59 after A (came back), exactly 24:00 after A (came back: within 24 h), 24:01 after A (assumed).
    for key, minutes in (("s1", 23 * 60 + 59), ("s3", 24 * 60), ("s2", 24 * 60 + 1)):
        asked(r, key, at(1, 9))
        r.customer(key, "もう一度お願いします", later(at(1, 9, 0, 5), 0, minutes))
    # Assumed: q1 answered at 5/1 12:00, silent since; p2 answered exactly 24 h before the end.
    asked(r, "q1", at(1, 12))
    asked(r, "p2", at(2, 23, 59, 55))  # answer at 5/3 0:00:00 = the end - 24 h: decided
    # Pending: p1 answered on 5/3 10:00 (less than 24 h before the end); r1's customer came back
    # 23:59 after the answer and was answered again, which starts the 24 h anew (past the end).
    asked(r, "p1", at(3, 10))
    asked(r, "r1", at(2, 1))
    asked(r, "r1", later(at(2, 1, 0, 5), 23, 59), faq=False)
    # Handed off after a はい: a handoff comes first.
    asked(r, "h1", at(1, 14), rated=True)
    r.handoff("h1", ["human_request"], at(1, 14, 5))
    # The bot never answered in the period.
    r.customer("u1", "住所を変更したい", at(2, 10))
    # o1: a はい before the period does not count; in the period the customer came back within 24 h.
    asked(r, "o1", at(30, 10, month=4), rated=True)
    asked(r, "o1", at(1, 10), faq=False)
    r.customer("o1", "まだ困っています", at(1, 11))


engine = recorded_engines(record)


EXPECTED = Resolution(conversations=13, confirmed=2, assumed=3, rated_no=1, handed_off=1, came_back=3, unanswered=1,
                      pending=2, resolved=5, decided=11, rate=0.4545)


def test_resolution_figures(engine: Engine) -> None:
    kpis = build_report(engine, SINCE, UNTIL).kpis
    assert kpis is not None
    assert kpis.resolution == EXPECTED
    # The same conversations as the other KPIs: 13 of the period, one of them handed off.
    assert (kpis.conversations, kpis.handed_off_conversations) == (13, 1)


def test_one_more_day_decides_the_pending_ones(engine: Engine) -> None:
    """With the end a day later, p1 (answered 5/3 10:00) and r1 (5/3 0:59) had 24 h of silence: assumed;
    s1–s3 stay as they were, and z1 (5/4 0:10, never answered) joins the period."""
    kpis = build_report(engine, SINCE, dt.datetime(2024, 5, 5, tzinfo=JST)).kpis
    assert kpis is not None
    assert kpis.resolution == Resolution(conversations=14, confirmed=2, assumed=5, rated_no=1, handed_off=1,
                                         came_back=3, unanswered=2, pending=0, resolved=7, decided=14, rate=0.5)


def test_resolution_in_the_text_report_the_json_and_the_csv(engine: Engine, tmp_path: Path) -> None:
    report = build_report(engine, SINCE, UNTIL)
    text = format_report(report)
    assert "解決率: 45.5%（5 / 11 会話。「はい」 2・24 時間 3、未確定 2 会話は除く） — 最後の「役に立ちましたか？」" in text
    data = report.as_dict()["kpis"]
    assert data["resolution"] == {"conversations": 13, "confirmed": 2, "assumed": 3, "rated_no": 1, "handed_off": 1,
                                  "came_back": 3, "unanswered": 1, "pending": 2, "resolved": 5, "decided": 11,
                                  "rate": 0.4545}
    assert data["labels"]["resolution"] == list(KPI_LABELS["resolution"])
    assert "24 時間" in KPI_LABELS["resolution"][1] and "未確定" in KPI_LABELS["resolution"][1]

    write_csv(report, tmp_path)
    raw = (tmp_path / CSV_FILES["kpi_summary"]).read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(raw.decode("utf-8-sig").splitlines()))
    assert rows[0] == ["指標", "値", "単位", "件数", "対象の件数", "定義"]
    figures = {row[0]: row[1:5] for row in rows[1:]}
    assert figures["解決率"] == ["0.4545", "割合", "5", "11"]
    assert figures["ボットで解決"] == ["0.9231", "割合", "12", "13"]
    assert figures["初回応答時間"] == ["", "秒（平均）", "0", ""]
    assert [row[0] for row in rows[1:]] == [name for name, _ in KPI_LABELS.values()] + \
        [f"解決率の内訳: {label}" for label in OUTCOME_LABELS.values()]
    assert [row[3] for row in rows[-len(OUTCOME_LABELS):]] == ["2", "3", "1", "1", "3", "1", "2"]
    assert all(row[4] == "13" for row in rows[-len(OUTCOME_LABELS):])
    assert next(row for row in rows if row[0] == "解決率")[5] == KPI_LABELS["resolution"][1]


# ---- the rules one by one, without a database ---------------------------------------------------

A = dt.datetime(2024, 5, 1, 0, 0, tzinfo=dt.timezone.utc)
END = A + dt.timedelta(days=3)


def conversation(*events: tuple[str, dt.timedelta, bool | None]) -> list[Message]:
    return [Message(n, sender, A + offset, rated) for n, (sender, offset, rated) in enumerate(events, start=1)]


H = dt.timedelta(hours=1)
MIN = dt.timedelta(minutes=1)


@pytest.mark.parametrize(("messages", "handed_off", "until", "expected"), [
    (conversation(("customer", 0 * H, None), ("bot", 0 * H, None)), False, END, ASSUMED),
    (conversation(("customer", 0 * H, None), ("bot", 0 * H, None), ("customer", 24 * H - MIN, None)), False, END,
     CAME_BACK),
    (conversation(("customer", 0 * H, None), ("bot", 0 * H, None), ("customer", 24 * H + MIN, None)), False, END,
     ASSUMED),
    (conversation(("customer", 0 * H, None), ("bot", 0 * H, None)), False, A + 24 * H, ASSUMED),      # exactly 24 h
    (conversation(("customer", 0 * H, None), ("bot", 0 * H, None)), False, A + 24 * H - MIN, PENDING),
    (conversation(("customer", 0 * H, None), ("bot", 0 * H, False)), False, END, RATED_NO),
    (conversation(("customer", 0 * H, None), ("bot", 0 * H, False), ("bot", H, True)), False, END, CONFIRMED),
    (conversation(("customer", 0 * H, None), ("bot", 0 * H, True), ("bot", H, False)), False, END, RATED_NO),
    (conversation(("customer", 0 * H, None), ("bot", 0 * H, True)), True, END, HANDED_OFF),
    (conversation(("customer", 0 * H, None)), False, END, UNANSWERED),
    # Same instant: the row id orders the customer's message after the answer.
    (conversation(("bot", 0 * H, None), ("customer", 0 * H, None)), False, END, CAME_BACK),
])
def test_outcome_rules(messages: list[Message], handed_off: bool, until: dt.datetime, expected: str) -> None:
    assert outcome(messages, handed_off, until) == expected
    assert outcome(list(reversed(messages)), handed_off, until) == expected  # any order in


def test_no_conversation_no_rate() -> None:
    assert Resolution.of([]) == Resolution()
    assert Resolution.of([PENDING]).rate is None and Resolution.of([PENDING]).decided == 0
