"""Our Rasa NLU components on hand-made messages (no trained model)."""

import pytest
from rasa.shared.nlu.training_data.message import Message

from bot.nlu.anger import AngerScorer
from bot.nlu.message_guard import MessageGuard, has_words
from bot.triage.anger import AngerRules

RULES = AngerRules(threshold=0.6, model_weight=1.0, phrases={"ふざけるな": 1.0})


def message(text: str, ranking: list[tuple[str, float]]) -> Message:
    msg = Message(data={"text": text})
    items = [{"name": n, "confidence": c} for n, c in ranking]
    msg.set("intent", items[0] if items else {"name": None, "confidence": 0.0})
    msg.set("intent_ranking", items)
    return msg


def test_anger_scorer_stores_combined_and_rule_scores() -> None:
    msg = message("住所変更したのに反映されない、ふざけるな", [("faq", 0.9), ("complaint", 0.05)])
    AngerScorer(RULES).process([msg])
    anger = msg.get("anger")
    assert anger["rule_score"] == 1.0 and anger["score"] == 1.0 and anger["threshold"] == 0.6
    assert "ふざけるな" in anger["signals"]


def test_anger_scorer_adds_the_classifier_complaint_probability() -> None:
    msg = message("対応が遅い", [("complaint", 0.8), ("faq", 0.1)])
    AngerScorer(RULES).process([msg])
    assert msg.get("anger")["rule_score"] == 0.0
    assert msg.get("anger")["score"] == pytest.approx(0.8)
    assert msg.get("intent")["name"] == "complaint"  # scoring never relabels; the router decides


@pytest.mark.parametrize(("text", "expected"), [("", False), ("  ", False), ("😀!?", False), ("〜", False),
                                                ("a", True), ("住所", True), ("ｱ", True), ("1", True),
                                                ("(´・ω・｀)", False), ("(ﾟДﾟ)", False), ("ｷﾀ(ﾟ∀ﾟ)", True)])
def test_has_words(text: str, expected: bool) -> None:
    assert has_words(text) is expected


def test_guard_marks_wordless_messages() -> None:
    msg = message("😀😀", [("greet", 0.9)])
    msg.set("normalized_text", "😀😀")
    MessageGuard().process([msg])
    assert msg.get("intent")["name"] == "nlu_fallback"
    assert msg.get("input_issue") == "no_words"


@pytest.mark.parametrize(
    ("text", "guarded"),
    [
        ("https://members.mirai-net.example/mypage", True),  # a link alone: asked what it is about
        ("www.example.com/help", True),
        ("住所変更 https://members.mirai-net.example/mypage", False),  # words beside the link count
    ],
)
def test_guard_treats_a_link_alone_as_wordless(text: str, guarded: bool) -> None:
    msg = message(text, [("faq", 0.9)])
    msg.set("normalized_text", text)
    MessageGuard().process([msg])
    assert (msg.get("input_issue") == "no_words") is guarded
    assert (msg.get("intent")["name"] == "nlu_fallback") is guarded
