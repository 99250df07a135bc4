"""Handoff packet from tracker events (groundwork for #3)."""

from bot.handoff.packet import build_packet, summarize, transcript_from_events
from bot.knowledge.loader import load_knowledge
from bot.settings import PROJECT_ROOT
from bot.store.queue import Turn

KB = load_knowledge(PROJECT_ROOT / "knowledge")
EVENTS = [
    {"event": "action", "name": "action_session_start"},
    {"event": "user", "text": "住所を変えたい", "timestamp": 1700000000.0,
     "parse_data": {"intent": {"name": "faq_change_address", "confidence": 0.97}}},
    {"event": "bot", "text": "ご登録の住所は、マイページから変更いただけます。", "timestamp": 1700000001.0},
    {"event": "user", "text": "変えたのに反映されてない、ふざけるな", "timestamp": 1700000060.0,
     "parse_data": {"intent": {"name": "complaint", "confidence": 0.93}}},
]


def test_transcript_keeps_every_turn_with_intent_and_time() -> None:
    turns = transcript_from_events(EVENTS)
    assert [(t.sender, t.intent) for t in turns] == [("customer", "faq_change_address"), ("bot", None),
                                                       ("customer", "complaint")]
    assert turns[0].at == 1700000000.0 and turns[2].confidence == 0.93


def test_packet_has_reason_category_summary_and_stable_key() -> None:
    packet = build_packet("conv-1", EVENTS, ["anger"], KB, {"email": "a@example.com"})
    assert packet.idempotency_key == "conv-1:2"
    assert packet.category == "登録情報の変更"
    assert packet.summary.splitlines() == [
        "理由: 怒りの表現",
        "お客さま: 住所を変えたい / 変えたのに反映されてない、ふざけるな",
        "ボット: ご登録の住所は、マイページから変更いただけます。",
    ]
    assert build_packet("conv-1", EVENTS, ["anger"], KB).idempotency_key == packet.idempotency_key


def test_summary_of_an_empty_conversation() -> None:
    assert summarize(["human_request"], []).splitlines()[1:] == ["お客さま: （メッセージなし）", "ボット: （回答なし）"]


def test_long_messages_are_cut_in_the_summary() -> None:
    summary = summarize(["complaint"], [Turn("customer", "あ" * 500)])
    assert len(summary.splitlines()[1]) < 100
