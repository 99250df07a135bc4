"""Editors' analytics on a real database (SQLite and PostgreSQL on 127.0.0.1:5432).

One realistic week-end of conversations is written with the stores the bot server uses
(ChatLog, Queue), then moved to fixed days with the ORM, and every figure is checked.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import zipfile
from pathlib import Path
from typing import Any, Iterator

import pytest
from conftest import recorded_database
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from bot.analytics.command import format_report, run_report
from bot.analytics.export import CSV_FILES, write_chart, write_csv
from bot.analytics.report import (
    JST, AnalyticsReport, DayVolume, FaqHandoffs, FeedbackRow, IntentCount, ReasonHandoffs, Totals, build_report,
    clean_for_grouping, group_questions, last_days,
)
from bot.server import analytics_api as page
from bot.store.chat_log import ChatLog, NewMessage
from bot.store.models import ChatMessage, Conversation, Ticket
from bot.handoff.packet import HandoffPacket, Turn
from bot.store.database import make_engine
from bot.store.queue import Queue

SINCE = dt.datetime(2024, 5, 1, tzinfo=JST)
UNTIL = dt.datetime(2024, 5, 5, tzinfo=JST)


def jst(day: int, hour: int, minute: int = 0, month: int = 5) -> dt.datetime:
    """A moment in Japan time, stored as UTC like the server does."""
    return dt.datetime(2024, month, day, hour, minute, tzinfo=JST).astimezone(dt.timezone.utc)


class Recorder:
    """Writes conversations through ChatLog / Queue, then dates each row with the ORM."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.log = ChatLog(engine)
        self.queue = Queue(engine)
        self._client_ids = 0

    def _date(self, model: Any, key: Any, when: dt.datetime) -> None:
        with Session(self.engine) as session, session.begin():
            session.get(model, key).created_at = when

    def start(self, conversation_id: str, when: dt.datetime) -> None:
        self.log.start_conversation(conversation_id, {"name": "山田"})
        self._date(Conversation, conversation_id, when)

    def customer(self, conversation_id: str, text: str, when: dt.datetime) -> int:
        self._client_ids += 1
        row, _ = self.log.add(NewMessage(conversation_id, "customer", text, client_id=f"m{self._client_ids}"))
        self._date(ChatMessage, row.id, when)
        return row.id

    def bot(self, conversation_id: str, text: str, when: dt.datetime, route: str | None,
            intent: str | None = None, confidence: float | None = None, faq_id: str | None = None) -> int:
        row, _ = self.log.add(NewMessage(conversation_id, "bot", text, intent=intent, confidence=confidence,
                                         faq_id=faq_id, route=route))
        self._date(ChatMessage, row.id, when)
        return row.id

    def agent(self, conversation_id: str, text: str, when: dt.datetime) -> None:
        row, _ = self.log.add(NewMessage(conversation_id, "agent", text, agent_name="佐藤"))
        self._date(ChatMessage, row.id, when)

    def handoff(self, conversation_id: str, reasons: list[str], when: dt.datetime, category: str | None = None,
                offline: bool = False) -> None:
        ticket, _ = self.queue.enqueue(HandoffPacket(f"{conversation_id}:{when.isoformat()}", conversation_id,
                                                     reasons, [Turn("customer", "…")], category=category,
                                                     offline=offline))
        self._date(Ticket, ticket.id, when)


ADDRESS_ANSWER = "住所はマイページの「登録情報」から変更できます。"


def record_sample(engine: Engine) -> None:
    """Four days (5/1–5/4 Japan time) plus rows just outside them.

    5/1: ten conversations ask to change their address (FAQ answer); c01 and c02 are handed
    off (2 of 10 → 0.2). 5/2: five conversations, three ask about point expiry in two
    spellings (clarify, low confidence), one wants a receipt (out of scope), one gets a
    low-confidence shipping answer; two handoffs of five → 0.4. 5/3: one thank-you.
    5/4: nothing.
    """
    r = Recorder(engine)
    # Outside the period: the evening before and the night after.
    r.start("c00", jst(30, 12, month=4))
    r.customer("c00", "ポイントの有効期限は？", jst(30, 12, 1, month=4))
    r.bot("c00", "どちらのご質問ですか？", jst(30, 12, 1, month=4), "clarify", "faq_points", 0.3)
    r.handoff("c00", ["anger"], jst(30, 23, 59, month=4))
    r.queue.resolve(r.queue.latest_for("c00").id)  # done before the next: an open one would take it in
    r.handoff("c00", ["anger"], jst(5, 0, 30))

    # ---- 5/1
    for n in range(1, 11):
        conversation = f"c{n:02d}"
        # c01 writes at 08:30 Japan time = 23:30 UTC the day before; c02 just after midnight.
        start = jst(1, 8, 30) if n == 1 else jst(1, 0, 20) if n == 2 else jst(1, 9 + n)
        r.start(conversation, start)
        r.customer(conversation, "住所を変更したい", start)
        answer = r.bot(conversation, ADDRESS_ANSWER, start, "answer", "faq_change_address", 0.95, "change-address")
        if n in (1, 2, 3):
            r.log.set_feedback(conversation, answer, n == 3)  # いいえ, いいえ, はい
    # c01: 「いいえ」 makes the bot ask back (no customer message), then the customer is angry.
    r.bot("c01", "お役に立てず申し訳ありません。", jst(1, 8, 31), "clarify", "answer_not_helpful", 1.0)
    r.customer("c01", "ふざけるな、全然わからない", jst(1, 9, 55))
    r.bot("c01", "担当者におつなぎします。", jst(1, 9, 55), "handoff", "complaint", 0.9)
    r.handoff("c01", ["anger", "complaint"], jst(1, 10), category="登録情報の変更")
    # c02: asks for a person at 00:40; the next message goes to the agent, not the bot.
    r.customer("c02", "人と話したい", jst(1, 0, 40))
    r.bot("c02", "担当者におつなぎします。", jst(1, 0, 40), "handoff", "human_request", 0.99)
    r.handoff("c02", ["human_request"], jst(1, 0, 45), category="登録情報の変更")
    r.customer("c02", "よろしくお願いします", jst(1, 0, 50))
    r.agent("c02", "担当の佐藤です。", jst(1, 0, 52))

    # ---- 5/2
    for n in range(11, 16):
        r.start(f"c{n}", jst(2, 10))
    r.customer("c11", "ポイントの有効期限は？", jst(2, 10, 1))
    r.bot("c11", "どちらのご質問ですか？", jst(2, 10, 1), "clarify", "faq_points", 0.42)
    r.customer("c12", "ポイント有効期限いつまで", jst(2, 10, 2))
    r.bot("c12", "どちらのご質問ですか？", jst(2, 10, 2), "clarify", "faq_points", 0.38)
    r.customer("c15", "ポイントの有効期限は？", jst(2, 10, 3))
    r.bot("c15", "どちらのご質問ですか？", jst(2, 10, 3), "clarify", "faq_points", 0.40)
    r.customer("c13", "領収書ほしい", jst(2, 11))
    r.bot("c13", "申し訳ありません、その件にはお答えできません。", jst(2, 11), "out_of_scope", "out_of_scope", 0.8)
    r.customer("c13", "担当者お願いします", jst(2, 11, 1))
    r.bot("c13", "ただいま受付時間外です。", jst(2, 11, 1), "handoff", "human_request", 0.97)
    r.handoff("c13", ["human_request"], jst(2, 11, 2), offline=True)
    r.customer("c14", "送料はいくら？", jst(2, 12))
    fee = r.bot("c14", "送料は全国一律 500 円です。", jst(2, 12), "answer", "faq_shipping_fee", 0.45, "shipping-fee")
    r.bot("c14", "ほかにご質問はありますか？", jst(2, 12), None)
    r.log.set_feedback("c14", fee, False)
    r.customer("c14", "ありがとう", jst(2, 12, 5))
    r.bot("c14", "どういたしまして。", jst(2, 12, 5), "smalltalk", "thanks", 0.97)
    r.handoff("c14", ["unresolved"], jst(2, 23, 59), category="配送")

    # ---- 5/3
    r.customer("c03", "ありがとう", jst(3, 9))
    r.bot("c03", "どういたしまして。", jst(3, 9), "smalltalk", "thanks", 0.97)


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    with recorded_database(request.param, tmp_path, record_sample) as engine:
        yield engine


@pytest.fixture()
def report(engine: Engine) -> AnalyticsReport:
    return build_report(engine, SINCE, UNTIL)


def test_daily_volume_and_handoff_rate_in_japan_time(report: AnalyticsReport) -> None:
    rows = [(d.day.isoformat(), d.new_conversations, d.conversations, d.customer_messages, d.handoffs,
             d.handoff_rate) for d in report.days]
    assert rows == [
        ("2024-05-01", 10, 10, 13, 2, 0.2),
        ("2024-05-02", 5, 5, 7, 2, 0.4),
        ("2024-05-03", 0, 1, 1, 0, 0.0),
        ("2024-05-04", 0, 0, 0, 0, None),
    ]


def test_totals(report: AnalyticsReport) -> None:
    t = report.totals
    assert (t.new_conversations, t.conversations, t.customer_messages, t.bot_answered_messages) == (15, 15, 21, 20)
    assert (t.handoffs, t.offline_handoffs, t.handoff_rate) == (4, 1, 0.2667)
    assert (t.unanswered, t.unanswered_rate, t.feedback_yes, t.feedback_no) == (5, 0.25, 1, 3)
    assert report.since == SINCE and report.until == UNTIL and report.timezone == "JST"


def test_handoffs_by_reason(report: AnalyticsReport) -> None:
    assert [(r.reason, r.label, r.handoffs, r.share, r.rate) for r in report.handoff_reasons] == [
        ("human_request", "担当者との会話を希望", 2, 0.5, 0.1333),
        ("anger", "怒りの表現", 1, 0.25, 0.0667),
        ("complaint", "苦情", 1, 0.25, 0.0667),
        ("unresolved", "ボットで解決できず", 1, 0.25, 0.0667),
    ]


def test_handoffs_by_last_faq_or_category(report: AnalyticsReport) -> None:
    assert [(r.faq_id, r.category, r.handoffs, r.share, r.answered_conversations, r.rate)
            for r in report.handoff_faqs] == [
        ("change-address", "登録情報の変更", 2, 0.5, 10, 0.2),
        ("shipping-fee", "配送", 1, 0.25, 1, 1.0),
        (None, None, 1, 0.25, None, None),  # c13: no FAQ answered, no category
    ]


def test_top_intents(report: AnalyticsReport) -> None:
    assert [(i.intent, i.count, i.share) for i in report.intents] == [
        ("faq_change_address", 10, 0.5),
        ("faq_points", 3, 0.15),
        ("human_request", 2, 0.1),
        ("thanks", 2, 0.1),
        ("complaint", 1, 0.05),
        ("faq_shipping_fee", 1, 0.05),
        ("out_of_scope", 1, 0.05),
    ]


def test_answers_rated_no(report: AnalyticsReport) -> None:
    assert [(f.faq_id, f.answers, f.no, f.yes, f.no_rate) for f in report.feedback] == [
        ("change-address", 10, 2, 1, 0.6667),
        ("shipping-fee", 1, 1, 0, 1.0),
    ]


def test_unanswered_questions_are_grouped_by_similarity(report: AnalyticsReport) -> None:
    assert [(g.representative, g.count, g.examples, g.top_intent, g.reasons) for g in report.unanswered] == [
        ("ポイントの有効期限は？", 3, ["ポイントの有効期限は？", "ポイント有効期限いつまで"], "faq_points",
         {"clarify": 3, "low_confidence": 3}),
        ("送料はいくら？", 1, ["送料はいくら？"], "faq_shipping_fee", {"low_confidence": 1}),
        ("領収書ほしい", 1, ["領収書ほしい"], "out_of_scope", {"out_of_scope": 1}),
    ]
    assert report.unanswered_not_grouped == 0


def test_report_is_json_and_text(report: AnalyticsReport) -> None:
    data = json.loads(json.dumps(report.as_dict(), ensure_ascii=False))
    assert data["days"][0] == {"day": "2024-05-01", "new_conversations": 10, "conversations": 10,
                               "customer_messages": 13, "handoffs": 2, "handoff_rate": 0.2}
    assert data["since"] == "2024-04-30T15:00:00+00:00"
    assert data["unanswered"][0]["examples"] == ["ポイントの有効期限は？", "ポイント有効期限いつまで"]
    text = format_report(report)
    assert "引き継ぎ: 4 件（うち時間外 1 件） 引き継ぎ率 26.7%" in text
    assert "「ポイントの有効期限は？」 3 件" in text


def test_without_since_the_report_starts_at_the_first_record(engine: Engine) -> None:
    report = build_report(engine, until=UNTIL)
    assert report.days[0].day == dt.date(2024, 4, 30)
    assert report.days[0].handoffs == 1 and report.totals.handoffs == 5
    assert report.unanswered[0].count == 4  # c00's question joins its group


def test_empty_period(engine: Engine) -> None:
    report = build_report(engine, dt.datetime(2023, 1, 1, tzinfo=JST), dt.datetime(2023, 1, 3, tzinfo=JST))
    assert [d.day for d in report.days] == [dt.date(2023, 1, 1), dt.date(2023, 1, 2)]
    assert report.totals.handoff_rate is None and report.unanswered == [] and report.intents == []


# ---- grouping and period helpers (no database) ---------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("ポイントの有効期限は？", "ポイントの有効期限は"),
    ("ﾎﾟｲﾝﾄ　有効期限!!", "ポイント有効期限"),
    ("ＡＢＣ－１２３", "abc123"),
    ("😀？", ""),
])
def test_clean_for_grouping(text: str, expected: str) -> None:
    assert clean_for_grouping(text) == expected


def test_grouping_keeps_topics_apart() -> None:
    texts = ["ポイントの有効期限は？", "ポイント有効期限いつまで", "領収書ほしい", "領収書を発行してほしい",
             "配送状況を知りたい", "ポイントの有効期限は？"]
    groups, left_out = group_questions([(t, None, ["clarify"]) for t in texts])
    assert [(g.representative, g.count, sorted(g.examples)) for g in groups] == [
        ("ポイントの有効期限は？", 3, sorted(["ポイントの有効期限は？", "ポイント有効期限いつまで"])),
        ("領収書ほしい", 2, sorted(["領収書ほしい", "領収書を発行してほしい"])),
        ("配送状況を知りたい", 1, ["配送状況を知りたい"]),
    ]
    assert left_out == 0


def test_grouping_edge_cases() -> None:
    assert group_questions([]) == ([], 0)
    assert group_questions([("  ", None, [])]) == ([], 0)
    groups, _ = group_questions([("返品したい", "faq_return", ["low_confidence"])])
    assert [(g.representative, g.count, g.top_intent) for g in groups] == [("返品したい", 1, "faq_return")]
    many = [(f"質問{n}番", None, ["clarify"]) for n in range(30)] + [("質問1番", None, ["clarify"])]
    groups, left_out = group_questions(many, max_texts=10)
    assert sum(g.count for g in groups) + left_out == 31 and left_out == 20


def test_last_days_starts_at_midnight_japan_time() -> None:
    now = dt.datetime(2024, 5, 10, 16, 0, tzinfo=dt.timezone.utc)  # 5/11 01:00 in Japan
    since, until = last_days(30, JST, now)
    assert since == dt.datetime(2024, 4, 12, tzinfo=JST) and until == now
    assert last_days(1, JST, now)[0] == dt.datetime(2024, 5, 11, tzinfo=JST)
    with pytest.raises(ValueError):
        last_days(0)


# ---- export ------------------------------------------------------------------------------------


def empty_report(**tables: Any) -> AnalyticsReport:
    return AnalyticsReport(since=None, until=UNTIL, timezone="JST", generated_at=UNTIL,
                           totals=Totals(0, 0, 0, 0, 0, 0, None, 0, None, 0, 0), **tables)


def read_csv(path: Path) -> list[list[str]]:
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf"), path.name
    return list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))


def test_csv_files_have_bom_japanese_headers_and_rows(report: AnalyticsReport, tmp_path: Path) -> None:
    paths = write_csv(report, tmp_path / "out")
    assert [p.name for p in paths] == list(CSV_FILES.values())
    daily = read_csv(tmp_path / "out" / "daily.csv")
    assert daily[0] == ["日付", "新規会話数", "会話数", "お客さまメッセージ数", "引き継ぎ数", "引き継ぎ率"]
    assert daily[1] == ["2024-05-01", "10", "10", "13", "2", "0.2"]
    assert daily[4] == ["2024-05-04", "0", "0", "0", "0", ""]
    feedback = read_csv(tmp_path / "out" / "feedback.csv")
    assert feedback[0] == ["FAQ", "いいえ", "はい", "いいえの割合", "回答回数"]
    assert feedback[1] == ["change-address", "2", "1", "0.6667", "10"]
    unanswered = read_csv(tmp_path / "out" / "unanswered.csv")
    assert unanswered[0][:6] == ["代表的な質問", "件数", "聞き返し", "対象外", "確からしさが低い", "ボットの判定"]
    # faq_points is no entry of the knowledge base: named by its id, never by the internal label.
    assert unanswered[1] == ["ポイントの有効期限は？", "3", "3", "0", "3", "FAQ points（いまはない項目）",
                             "ポイントの有効期限は？", "ポイント有効期限いつまで", "", "", ""]
    # The other tables, figure by figure (the Japanese label columns are only required to be filled).
    reasons = read_csv(tmp_path / "out" / "handoff_reasons.csv")[1:]
    assert [[code, *figures] for code, _, *figures in reasons] == [
        ["human_request", "2", "0.5", "0.1333"], ["anger", "1", "0.25", "0.0667"],
        ["complaint", "1", "0.25", "0.0667"], ["unresolved", "1", "0.25", "0.0667"]]
    assert all(label.strip() for _, label, *_ in reasons)
    assert read_csv(tmp_path / "out" / "handoff_faqs.csv")[1:] == [
        ["change-address", "登録情報の変更", "2", "0.5", "10", "0.2"],
        ["shipping-fee", "配送", "1", "0.25", "1", "1.0"],
        ["", "", "1", "0.25", "", ""]]  # handed off before any FAQ answer
    intents = read_csv(tmp_path / "out" / "intents.csv")[1:]
    assert [[row[-1], row[1], row[2]] for row in intents] == [
        ["faq_change_address", "10", "0.5"], ["faq_points", "3", "0.15"], ["human_request", "2", "0.1"],
        ["thanks", "2", "0.1"], ["complaint", "1", "0.05"], ["faq_shipping_fee", "1", "0.05"],
        ["out_of_scope", "1", "0.05"]]
    assert all(row[0].strip() for row in intents)


# Texts a spreadsheet would run as a formula (issue #11): = + - @, tab and carriage return, and
# the full-width ＝ ＋ － ＠ that Japanese Excel also takes as the start of a formula.
FORMULAS = ["=HYPERLINK(\"http://x\")", "+81 90", "-1+2", "@SUM(A1)", "＝ＨＹＰＥＲＬＩＮＫ（\"http://x\"）",
            "＋８１", "－５０％", "＠ＳＵＭ（Ａ１）"]


@pytest.mark.parametrize("text", FORMULAS)
def test_csv_defuses_formulas(tmp_path: Path, text: str) -> None:
    groups, _ = group_questions([(text, None, ["clarify"])])
    write_csv(empty_report(unanswered=groups), tmp_path)
    representative, *_, first_example = read_csv(tmp_path / "unanswered.csv")[1][:7]
    assert (representative, first_example) == ("'" + text, "'" + text)


def test_csv_defuses_formulas_in_every_table(tmp_path: Path) -> None:
    """Every text cell of every CSV is defused; numbers and harmless texts are written as they are."""
    tables = {
        "handoff_reasons": [ReasonHandoffs("=cmd|' /C calc'!A0", "\t=1+1", 1, 0.5, 0.25)],
        "handoff_faqs": [FaqHandoffs("－faq", "\r=1+1", 2, 0.5, None, None)],
        "intents": [IntentCount("＠intent", 3, 0.1)],
        "feedback": [FeedbackRow("＋faq", 4, 1, 0, 1.0)],
    }
    write_csv(empty_report(**tables), tmp_path)
    assert read_csv(tmp_path / "handoff_reasons.csv")[1] == ["'=cmd|' /C calc'!A0", "'\t=1+1", "1", "0.5", "0.25"]
    assert read_csv(tmp_path / "handoff_faqs.csv")[1] == ["'－faq", "'\r=1+1", "2", "0.5", "", ""]
    assert read_csv(tmp_path / "intents.csv")[1] == ["'＠intent", "3", "0.1", "'＠intent"]
    assert read_csv(tmp_path / "feedback.csv")[1] == ["'＋faq", "1", "0", "1.0", "4"]
    write_csv(empty_report(intents=[IntentCount("faq_=1", 1, None), IntentCount("'quoted", 2, None)]), tmp_path)
    assert read_csv(tmp_path / "intents.csv")[1:] == [["faq_=1", "1", "", "faq_=1"], ["'quoted", "2", "", "'quoted"]]


def test_bot_report_csv_defuses_customer_texts(tmp_path: Path) -> None:
    """``bot report --csv``: customer messages that look like formulas are written with a leading '."""
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    engine = make_engine(url)
    recorder = Recorder(engine)
    now = dt.datetime.now(dt.timezone.utc)
    for number, text in enumerate(["＝ＷＥＢＳＥＲＶＩＣＥ（\"http://x\"）", "-2+3+cmd|' /C calc'!A0"]):
        recorder.start(f"c{number}", now)
        recorder.customer(f"c{number}", text, now)
        recorder.bot(f"c{number}", "申し訳ありません、その件にはお答えできません。", now, "out_of_scope", "out_of_scope", 0.9)
    engine.dispose()
    assert run_report(url, 1, tmp_path / "csv", None, as_json=True) == 0
    cells = [record[0] for record in read_csv(tmp_path / "csv" / "unanswered.csv")[1:]]
    assert sorted(cells) == sorted(["'＝ＷＥＢＳＥＲＶＩＣＥ（\"http://x\"）", "'-2+3+cmd|' /C calc'!A0"])


def test_chart_png_and_svg(report: AnalyticsReport, tmp_path: Path) -> None:
    png = write_chart(report, tmp_path / "charts" / "daily.png")
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    svg = write_chart(report, tmp_path / "daily.svg")
    assert b"<svg" in svg.read_bytes()[:500]
    with pytest.raises(ValueError):
        write_chart(report, tmp_path / "daily.jpg")


def test_chart_without_japanese_font_and_without_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.analytics import export

    monkeypatch.setattr(export, "JAPANESE_FONT", tmp_path / "missing.ttf")
    assert write_chart(empty_report(), tmp_path / "empty.png").read_bytes().startswith(b"\x89PNG")
    assert b"<svg" in write_chart(empty_report(), tmp_path / "empty.svg").read_bytes()[:500]
    days = [DayVolume(dt.date(2024, 5, 1), 3, 4, 9, 1, 0.25), DayVolume(dt.date(2024, 5, 2), 0, 0, 0, 0, None)]
    assert write_chart(empty_report(days=days), tmp_path / "ascii.png").read_bytes().startswith(b"\x89PNG")


def test_run_report_prints_japanese_and_writes_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    engine = make_engine(url)
    recorder = Recorder(engine)
    recorder.start("today", dt.datetime.now(dt.timezone.utc))
    recorder.customer("today", "ポイントの有効期限は？", dt.datetime.now(dt.timezone.utc))
    recorder.bot("today", "どちらのご質問ですか？", dt.datetime.now(dt.timezone.utc), "clarify", "faq_points", 0.3)
    engine.dispose()
    assert run_report(url, 7, tmp_path / "csv", tmp_path / "chart.png", as_json=False) == 0
    out = capsys.readouterr().out
    assert "AIチャット分析レポート" in out and "「ポイントの有効期限は？」 1 件" in out
    assert (tmp_path / "csv" / "daily.csv").exists() and (tmp_path / "chart.png").exists()
    assert run_report(url, 7, None, None, as_json=True) == 0
    assert json.loads(capsys.readouterr().out)["totals"]["unanswered"] == 1


# ---- API ----------------------------------------------------------------------------------------


def test_api_needs_login_and_returns_the_report(tmp_path: Path) -> None:
    from bot.server.app import Services, create_app, stores_for
    from bot.server.tokens import ConversationTokens

    secret = "analytics-test-secret-" + "x" * 32
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    stores = stores_for(url)
    stores.agents.add("sato", "佐藤", "correct-horse-battery")
    engine = make_engine(url)
    now = dt.datetime.now(dt.timezone.utc)
    recorder = Recorder(engine)
    recorder.start("c1", now)
    recorder.customer("c1", "領収書ほしい", now)
    recorder.bot("c1", "お答えできません。", now, "out_of_scope", "out_of_scope", 0.9)
    recorder.handoff("c1", ["human_request"], now)
    app = create_app(Services(stores, None, ConversationTokens(secret)), secret)  # type: ignore[arg-type]
    app.router.routes[:0] = page.routes
    app.state.analytics_engine = engine
    client = TestClient(app)  # no lifespan: no ticket watcher needed

    assert client.get("/api/analytics").status_code == 401
    assert client.get("/api/analytics.csv.zip").status_code == 401
    assert client.post("/api/agent/login", json={"username": "sato", "password": "correct-horse-battery"}) \
        .status_code == 200
    response = client.get("/api/analytics?days=7")
    assert response.status_code == 200
    data = response.json()
    assert data["days"] == 7 and len(data["report"]["days"]) == 7
    assert data["report"]["totals"]["handoff_rate"] == 1.0
    assert data["report"]["unanswered"][0]["representative"] == "領収書ほしい"
    assert client.get("/api/analytics?days=0").status_code == 422
    assert client.get("/api/analytics?days=abc").status_code == 422

    archive = client.get("/api/analytics.csv.zip?days=7")
    assert archive.status_code == 200 and archive.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(archive.content)) as files:
        assert sorted(files.namelist()) == sorted(CSV_FILES.values())
        assert files.read("daily.csv").startswith(b"\xef\xbb\xbf\xe6\x97\xa5\xe4\xbb\x98")  # BOM + 日付

    paths = client.get("/openapi.json").json()["paths"]
    assert {"/api/analytics", "/api/analytics.csv.zip"} <= set(paths)
    assert paths["/api/analytics"]["get"]["parameters"][0]["name"] == "days"
    page_html = client.get("/console/analytics.html")
    assert page_html.status_code == 200 and "analytics.js" in page_html.text and 'href="/console/"' in page_html.text
    script = client.get("/console/analytics.js").text
    assert ".innerHTML" not in script and "insertAdjacentHTML" not in script and "/api/analytics" in script
    del app.state.analytics_engine
    assert client.get("/api/analytics").status_code == 503
    engine.dispose()
