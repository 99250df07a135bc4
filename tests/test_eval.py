"""Accuracy on the independent held-out set must not regress (slow: needs a trained model)."""

import json
from pathlib import Path

import pytest

from bot.evaluation.report import load_labelled, plot_confusion, score, training_texts, unseen_only
from bot.settings import PROJECT_ROOT

pytestmark = pytest.mark.slow

HELDOUT = PROJECT_ROOT / "tests" / "data" / "heldout.jsonl"


NLU_DIR = PROJECT_ROOT / "data" / "nlu"


@pytest.fixture(scope="module")
def heldout_result(assistant):  # type: ignore[no-untyped-def]
    rows, _ = unseen_only(load_labelled(HELDOUT), NLU_DIR)
    return score(rows, [assistant.decide(r["text"]).as_dict() for r in rows])


def test_messages_seen_in_training_are_not_scored(tmp_path: Path) -> None:
    (tmp_path / "x.yml").write_text('nlu:\n  - intent: greet\n    examples: |\n      - こんにちは\n',
                                    encoding="utf-8")
    rows = [{"text": "ｺﾝﾆﾁﾊ", "label": "greet"}, {"text": "こんにちは", "label": "greet"},
            {"text": "やあ", "label": "greet"}]
    kept, dropped = unseen_only(rows, tmp_path)
    assert [r["text"] for r in kept] == ["ｺﾝﾆﾁﾊ", "やあ"] and dropped == 1
    assert training_texts(tmp_path) == {"こんにちは"}


def test_heldout_set_is_mostly_unseen() -> None:
    rows, dropped = unseen_only(load_labelled(HELDOUT), NLU_DIR)
    assert len(rows) >= 250, f"only {len(rows)} unseen held-out messages ({dropped} also in training data)"


def test_route_accuracy_meets_target(heldout_result) -> None:  # type: ignore[no-untyped-def]
    assert heldout_result.route_accuracy >= 0.95, heldout_result.summary()


def test_complaints_and_requests_for_a_person_are_not_answered_with_faq(heldout_result) -> None:  # type: ignore[no-untyped-def]
    # Target (issue #2) is >= 0.98, NOT met yet: measured 0.952 on the 62 unseen
    # complaint / request-a-person messages (3 answered with an FAQ). This floor only
    # guards against regressions until the target is reached; see README "Measured".
    assert heldout_result.handoff_never_faq >= 0.95, heldout_result.summary()


def test_ordinary_questions_are_rarely_handed_off(heldout_result) -> None:  # type: ignore[no-untyped-def]
    assert heldout_result.ordinary_handed_off <= 0.02, heldout_result.summary()


def test_report_files(heldout_result, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    plot_confusion(heldout_result, tmp_path / "confusion.png")
    assert (tmp_path / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.dumps(heldout_result.summary())


def test_score_counts_wrong_faq_as_wrong_route() -> None:
    rows = [{"text": "a", "label": "change-address"}, {"text": "b", "label": "complaint"}]
    decisions = [
        {"route": "answer", "faq_id": "change-phone", "intent": "faq_change_phone"},
        {"route": "answer", "faq_id": "change-address", "intent": "faq_change_address"},
    ]
    result = score(rows, decisions)
    assert result.route_accuracy == 0.0
    assert result.handoff_never_faq == 0.0
