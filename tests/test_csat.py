"""Satisfaction survey (CSAT) after a chat: store, editors' texts, gateway frames, KPIs.

The gateway-level test drives the bot server over its WebSocket with the scripted Rasa of
tests/test_server.py: handoff, claim, resolve, the survey in the state, bad ratings, one
rating per ticket, and the figures on the analytics page's API.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from bot import wording
from bot.analytics.kpis import build_kpis
from bot.handoff.packet import HandoffPacket, Turn
from bot.knowledge.csat import DEFAULT_TEXTS, csat_texts, read_csat
from bot.knowledge.style import load_style
from bot.knowledge.validate import validate_knowledge
from bot.store.csat import MAX_COMMENT_CHARS, Surveys
from bot.store.database import Stores, stores_for
from bot.store.queue import QueueError
from test_server import frames_until, login, open_chat, server  # noqa: F401 - the server fixture

PROJECT = Path(__file__).resolve().parent.parent
JST = dt.timezone(dt.timedelta(hours=9))


@pytest.fixture()
def stores(tmp_path: Path) -> Stores:
    found = stores_for(f"sqlite:///{tmp_path / 'bot.db'}")
    found.agents.add("sato", "佐藤", "correct-horse-battery")
    found.agents.add("suzuki", "鈴木", "correct-horse-battery")
    return found


def resolved_ticket(stores: Stores, conversation_id: str, agent: str = "sato", offline: bool = False) -> int:
    ticket, _ = stores.queue.enqueue(HandoffPacket(f"{conversation_id}:1", conversation_id, ["anger"],
                                                   [Turn("customer", "ふざけるな")], offline=offline))
    stores.queue.claim(ticket.id, agent)
    stores.queue.resolve(ticket.id, "resolved", agent)
    return ticket.id


@pytest.mark.parametrize("rating", [0, 6, -1, "abc", "", None, True, 4.5, "10", [5], {"n": 5}])
def test_a_bad_rating_gets_a_japanese_message_and_stores_nothing(stores: Stores, rating: Any) -> None:
    ticket_id = resolved_ticket(stores, "c1")
    surveys = Surveys(stores.engine)
    with pytest.raises(QueueError) as caught:
        surveys.record("c1", ticket_id, rating, "とても丁寧でした")
    assert caught.value.status == 422 and str(caught.value) == wording.CSAT_TEXT["bad_rating"]
    assert surveys.for_ticket(ticket_id) is None
    assert surveys.record("c1", ticket_id, "5").rating == 5  # the digit as text (LINE postback) is fine


def test_a_long_comment_is_refused_whole_and_html_is_kept_as_text(stores: Stores) -> None:
    ticket_id = resolved_ticket(stores, "c1")
    surveys = Surveys(stores.engine)
    with pytest.raises(QueueError) as caught:
        surveys.record("c1", ticket_id, 4, "あ" * 10_000)
    assert caught.value.status == 422 and "1,000 文字まで" in str(caught.value) and "10,000 文字" in str(caught.value)
    assert surveys.for_ticket(ticket_id) is None  # nothing cut and stored behind the customer's back
    html = '<img src=x onerror="alert(1)"><script>alert(2)</script> カード 4111 1111 1111 1111'
    row = surveys.record("c1", ticket_id, 4, html + "あ" * (MAX_COMMENT_CHARS - len(html)))
    assert row.comment.startswith('<img src=x onerror="alert(1)"><script>alert(2)</script> カード **** **** **** 1111')
    assert len(row.comment) == MAX_COMMENT_CHARS and row.agent == "sato" and row.channel == "web"


def test_one_rating_per_ticket_and_only_for_the_conversations_resolved_ticket(stores: Stores) -> None:
    ticket_id = resolved_ticket(stores, "c1")
    surveys = Surveys(stores.engine)
    with pytest.raises(QueueError) as other:
        surveys.record("someone-else", ticket_id, 5)
    assert other.value.status == 404
    waiting, _ = stores.queue.enqueue(HandoffPacket("c2:1", "c2", ["anger"], [Turn("customer", "x")]))
    with pytest.raises(QueueError) as open_ticket:
        surveys.record("c2", waiting.id, 5)
    assert open_ticket.value.status == 409 and str(open_ticket.value) == wording.CSAT_TEXT["not_resolved"]
    cancelled, _ = stores.queue.enqueue(HandoffPacket("c3:1", "c3", ["anger"], [Turn("customer", "x")]))
    stores.queue.resolve(cancelled.id, "cancelled")
    with pytest.raises(QueueError):
        surveys.record("c3", cancelled.id, 5)  # nobody answered: nothing to rate
    surveys.record("c1", ticket_id, 2, None)
    with pytest.raises(QueueError) as twice:
        surveys.record("c1", ticket_id, 5, "やっぱり満足")
    assert twice.value.status == 409 and str(twice.value) == wording.CSAT_TEXT["already_rated"]
    assert surveys.for_ticket(ticket_id).rating == 2


def test_the_projects_survey_texts_are_valid_and_read_at_run_time(tmp_path: Path) -> None:
    texts, findings = read_csat(PROJECT / "knowledge", load_style(PROJECT / "knowledge"))
    assert findings == [] and texts is not None and len(texts.labels) == 5
    folder = tmp_path / "kb"
    folder.mkdir()
    assert csat_texts(folder) == DEFAULT_TEXTS  # no csat.yml: the defaults
    (folder / "csat.yml").write_text((PROJECT / "knowledge" / "csat.yml").read_text(encoding="utf-8")
                                     .replace("今回の担当者の対応はいかがでしたか？", "担当者の対応に満足しましたか？"),
                                     encoding="utf-8")
    assert csat_texts(folder).question == "担当者の対応に満足しましたか？"


def test_bot_kb_validate_names_each_problem_of_csat_yml(tmp_path: Path) -> None:
    folder = tmp_path / "kb"
    (folder / "faq").mkdir(parents=True)
    (folder / "faq" / "a.yml").write_text(sorted((PROJECT / "knowledge" / "faq").glob("*.yml"))[0].read_text(encoding="utf-8"),
                                          encoding="utf-8")
    (folder / "style.yml").write_text((PROJECT / "knowledge" / "style.yml").read_text(encoding="utf-8"),
                                      encoding="utf-8")
    (folder / "csat.yml").write_text(
        "question: オペレーターの対応はいかがでしたか？\n"
        "labels:\n  1: とても不満\n  2: 不満\n  3: ふつう\n  5: とても満足です、本当にありがとう\n"
        "comment_label: ご意見\nsubmit: 送信\nthanks: ありがとうございました。\ncolour: red\n", encoding="utf-8")
    errors = [p for p in validate_knowledge(folder, check_published=False)
              if p.severity == "error" and p.path.name == "csat.yml"]
    text = "\n".join(p.format() for p in errors)
    assert "csat.yml:1（エントリ: question）" in text and "「オペレーター」は使わない言い方" in text
    assert "評価 4 の意味がありません" in text and "評価 5 の意味が 16 文字" in text
    assert "閉じるボタンの文字（skip）がありません" in text and "「colour」という項目はありません" in text
    assert csat_texts(folder) == DEFAULT_TEXTS  # the bot keeps asking with the defaults meanwhile


def test_kpis_average_distribution_per_agent_and_response_rate(stores: Stores) -> None:
    surveys = Surveys(stores.engine)
    rated = [("a", "sato", 5), ("b", "sato", 4), ("c", "suzuki", 1)]
    for conversation_id, agent, rating in rated:
        surveys.record(conversation_id, resolved_ticket(stores, conversation_id, agent), rating, f"{rating}点")
    resolved_ticket(stores, "d", "suzuki")  # asked, not answered
    resolved_ticket(stores, "e", "suzuki", offline=True)  # offline: never asked, not in the rate
    until = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=1)
    csat = build_kpis(stores.engine, None, until, JST).csat
    assert (csat.asked, csat.responses, csat.response_rate) == (4, 3, 0.75)
    assert csat.average == pytest.approx(3.33, abs=0.01) and csat.distribution == [1, 0, 0, 1, 1]
    per_agent = {a.agent: (a.asked, a.responses, a.average, a.distribution) for a in csat.agents}
    assert per_agent == {"佐藤": (2, 2, 4.5, [0, 0, 0, 1, 1]), "鈴木": (2, 1, 1.0, [1, 0, 0, 0, 0])}
    assert [c.comment for c in csat.comments] == ["1点", "4点", "5点"]  # newest first


def test_csat_in_the_csv_export(stores: Stores, tmp_path: Path) -> None:
    import csv

    from bot.analytics.export import write_csv
    from bot.analytics.report import build_report

    surveys = Surveys(stores.engine)
    surveys.record("a", resolved_ticket(stores, "a", "sato"), 5, "=HYPERLINK(\"x\") とても助かりました")
    surveys.record("b", resolved_ticket(stores, "b", "suzuki"), 2, "返事が遅い")
    resolved_ticket(stores, "c", "suzuki")  # asked, not answered
    until = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=1)
    write_csv(build_report(stores.engine, None, until), tmp_path)

    def rows(name: str) -> list[list[str]]:
        return list(csv.reader((tmp_path / name).read_text(encoding="utf-8-sig").splitlines()))

    assert rows("csat.csv") == [
        ["担当者", "アンケートを表示した問い合わせ", "回答数", "回答率", "平均（1〜5）",
         "評価1の件数", "評価2の件数", "評価3の件数", "評価4の件数", "評価5の件数"],
        ["全体", "3", "2", "0.6667", "3.5", "0", "1", "0", "0", "1"],
        ["佐藤", "1", "1", "1.0", "5.0", "0", "0", "0", "0", "1"],
        ["鈴木", "2", "1", "0.5", "2.0", "0", "1", "0", "0", "0"]]
    comments = rows("csat_comments.csv")
    assert comments[0] == ["日時", "担当者", "評価", "コメント"]
    # A comment that Excel would run as a formula is kept as text.
    assert [(c[1], c[2], c[3]) for c in comments[1:]] == [("鈴木", "2", "返事が遅い"),
                                                         ("佐藤", "5", "'=HYPERLINK(\"x\") とても助かりました")]


def test_survey_over_the_websocket_bad_input_one_rating_and_analytics(server: Any) -> None:  # noqa: F811
    client, _, services = server
    headers = {"X-CSRF-Token": login(client)}
    with open_chat(client) as (_, ws):
        ws.send_json({"type": "message", "text": "ふざけるな", "client_id": "1"})
        ticket_id = frames_until(ws, lambda f: f["type"] == "state")[-1]["state"]["ticket_id"]
        assert client.post(f"/api/tickets/{ticket_id}/claim", headers=headers).status_code == 200
        frames_until(ws, lambda f: f["type"] == "state" and f["state"]["mode"] == "agent")
        ws.send_json({"type": "csat", "ticket_id": ticket_id, "rating": 5})  # not resolved yet
        assert frames_until(ws, lambda f: f["type"] == "error")[-1]["message"] == wording.CSAT_TEXT["not_resolved"]
        assert client.post(f"/api/tickets/{ticket_id}/resolve", headers=headers).status_code == 200
        state = frames_until(ws, lambda f: f["type"] == "state" and f["state"]["mode"] == "bot")[-1]["state"]
        survey = state["survey"]
        assert survey["ticket_id"] == ticket_id and survey["texts"] == csat_texts().as_dict()
        assert state["transcript"] is None  # no mail server configured: no e-mail button
        for bad in (0, 6, "abc"):
            ws.send_json({"type": "csat", "ticket_id": ticket_id, "rating": bad, "comment": "よかった"})
            assert frames_until(ws, lambda f: f["type"] == "error")[-1]["message"] == wording.CSAT_TEXT["bad_rating"]
        ws.send_json({"type": "csat", "ticket_id": ticket_id, "rating": 4, "comment": "x" * 10_000})
        assert "1,000 文字まで" in frames_until(ws, lambda f: f["type"] == "error")[-1]["message"]
        ws.send_json({"type": "csat", "ticket_id": ticket_id, "rating": 4, "comment": "<b>丁寧</b>でした"})
        saved = frames_until(ws, lambda f: f["type"] == "survey_saved")[-1]
        assert saved == {"type": "survey_saved", "ticket_id": ticket_id, "thanks": csat_texts().thanks}
        ws.send_json({"type": "csat", "ticket_id": ticket_id, "rating": 1})
        assert frames_until(ws, lambda f: f["type"] == "error")[-1]["message"] == wording.CSAT_TEXT["already_rated"]
    token_history = client.post("/api/chat/sessions", json={}).json()["token"]
    assert client.get("/api/chat/history", headers={"Authorization": f"Bearer {token_history}"}).json()[
        "state"]["survey"] is None
    report = client.get("/api/analytics?days=1").json()["report"]["kpis"]["csat"]
    assert (report["responses"], report["asked"], report["average"]) == (1, 1, 4.0)
    assert report["distribution"] == [0, 0, 0, 1, 0] and report["agents"][0]["agent"] == "佐藤"
    assert report["comments"][0]["comment"] == "<b>丁寧</b>でした"  # stored as written; the page renders text
