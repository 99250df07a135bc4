"""Our Rasa NLU components on hand-made messages (no trained model)."""

import pytest
from rasa.shared.nlu.training_data.message import Message

from bot.nlu.anger import AngerOverride
from bot.nlu.message_guard import MessageGuard, has_words
from bot.triage.anger import AngerRules

RULES = AngerRules(threshold=0.6, model_weight=1.0, phrases={"ふざけるな": 1.0}, complaint_min_confidence=0.6)


def message(text: str, ranking: list[tuple[str, float]]) -> Message:
    msg = Message(data={"text": text})
    items = [{"name": n, "confidence": c} for n, c in ranking]
    msg.set("intent", items[0] if items else {"name": None, "confidence": 0.0})
    msg.set("intent_ranking", items)
    return msg


def test_anger_beats_faq_topic() -> None:
    msg = message("住所変更したのに反映されない、ふざけるな", [("faq_change_address", 0.9), ("complaint", 0.05)])
    AngerOverride(RULES).process([msg])
    assert msg.get("intent")["name"] == "complaint"
    assert msg.get("handoff_reason") == "anger"
    assert msg.get("anger")["score"] >= 0.6


def test_confident_complaint_is_kept_without_rules() -> None:
    msg = message("対応が遅い", [("complaint", 0.8), ("faq_hours", 0.1)])
    AngerOverride(RULES).process([msg])
    assert msg.get("intent")["name"] == "complaint"
    assert msg.get("handoff_reason") is None  # the classifier's own complaint, reason "complaint"


def test_unsure_complaint_without_anger_takes_the_runner_up() -> None:
    msg = message("カード変更が反映されません", [("complaint", 0.5), ("faq_change_payment", 0.3)])
    AngerOverride(RULES).process([msg])
    assert msg.get("intent")["name"] == "faq_change_payment"


def test_unsure_complaint_without_runner_up_asks_back() -> None:
    msg = message("alert(1)", [("complaint", 0.5), ("greet", 0.1)])
    AngerOverride(RULES, runner_up_threshold=0.2).process([msg])
    assert msg.get("intent")["name"] == "nlu_fallback"


def test_request_human_is_never_relabelled() -> None:
    msg = message("ふざけるな、人間を出せ", [("request_human", 0.7), ("complaint", 0.2)])
    AngerOverride(RULES).process([msg])
    assert msg.get("intent")["name"] == "request_human"


@pytest.mark.parametrize(("text", "expected"), [("", False), ("  ", False), ("😀!?", False), ("〜", False),
                                                ("a", True), ("住所", True), ("ｱ", True), ("1", True)])
def test_has_words(text: str, expected: bool) -> None:
    assert has_words(text) is expected


def test_guard_marks_wordless_messages() -> None:
    msg = message("😀😀", [("greet", 0.9)])
    msg.set("normalized_text", "😀😀")
    MessageGuard().process([msg])
    assert msg.get("intent")["name"] == "nlu_fallback"
    assert msg.get("input_issue") == "no_words"
