"""Handoff packet from tracker events (groundwork for #3)."""

from bot.handoff.packet import Turn, build_packet, summarize, transcript_from_events
from bot.knowledge.loader import load_knowledge
from bot.settings import PROJECT_ROOT

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


def test_handoff_key_is_the_latest_message_id_and_never_repeats_after_history_is_lost() -> None:
    first = [{"event": "user", "text": "ふざけるな", "message_id": "a1"}]
    assert build_packet("conv-1", first, ["anger"], KB).idempotency_key == "conv-1:m:a1"
    # A retry of the same action: same key. The same count after a restart: another key.
    assert build_packet("conv-1", list(first), ["anger"], KB).idempotency_key == "conv-1:m:a1"
    after_restart = [{"event": "user", "text": "まだですか", "message_id": "b2"}]
    assert build_packet("conv-1", after_restart, ["anger"], KB).idempotency_key == "conv-1:m:b2"


def test_summary_of_an_empty_conversation() -> None:
    assert summarize(["human_request"], []).splitlines()[1:] == ["お客さま: （メッセージなし）", "ボット: （回答なし）"]


def test_long_messages_are_cut_in_the_summary() -> None:
    summary = summarize(["complaint"], [Turn("customer", "あ" * 500)])
    assert len(summary.splitlines()[1]) < 100


# --- issue #11: the packet is masked when it is built, before anything is written -------

CARD = "4111 1111 1111 1111"
CARD_EVENTS = [
    {"event": "user", "text": f"カードは{CARD}です。090-1234-5678 に電話ください", "timestamp": 1700000000.0,
     "parse_data": {"intent": {"name": "request_human", "confidence": 0.9}}},
    {"event": "bot", "text": f"カード番号 {CARD} を確認しました", "timestamp": 1700000001.0},
    {"event": "user", "text": "マイナンバーは123456789018です、mail: taro@example.com", "timestamp": 1700000002.0,
     "parse_data": {"intent": {"name": "request_human", "confidence": 0.9}}},
]


def test_packet_texts_summary_and_customer_fields_are_masked_when_built() -> None:
    packet = build_packet("conv-9", CARD_EVENTS, ["human_request"], KB,
                          {"name": "山田", "note": f"カード {CARD}", "card": 4111111111111111})
    texts = [t.text for t in packet.transcript] + [packet.summary] + [str(v) for v in packet.customer.values()]
    assert not any("4111" in text or "123456789018" in text for text in texts)
    assert packet.transcript[0].text.startswith("カードは**** **** **** 1111です")
    assert packet.transcript[1].text == "カード番号 **** **** **** 1111 を確認しました"
    assert packet.customer["note"] == "カード **** **** **** 1111" and packet.customer["name"] == "山田"
    assert "090-1234-5678" in packet.transcript[0].text and "taro@example.com" in packet.transcript[2].text


def test_summary_masks_before_it_cuts() -> None:
    """A card number across the 80-character cut must not leave its first digits readable."""
    text = "あ" * 66 + CARD
    summary = summarize(["complaint"], [Turn("customer", text)])
    line = summary.splitlines()[1]
    assert line.endswith("…") and "**** ****" in line
    assert sum(ch.isdigit() for ch in line) <= 4


def test_phone_and_email_masking_follow_the_editors_setting() -> None:
    from bot.text.masking_settings import MaskingSettings

    packet = build_packet("conv-9", CARD_EVENTS, ["human_request"], KB, {"email": "taro@example.com"},
                          masking=MaskingSettings(phone=True, email=True))
    assert "***-****-5678" in packet.transcript[0].text and "090-1234" not in packet.summary
    assert "***@example.com" in packet.transcript[2].text and "taro@" not in packet.summary
    assert packet.customer == {"email": "taro@example.com"}  # contact details stay usable for agents
