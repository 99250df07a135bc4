"""The held-out sets must not regress (slow: needs a trained model).

The floors below are the figures measured once, at the end of the work on the model
(README "Measured", `python -m benchmarks.old_vs_new`), minus a small margin; where an
issue's target is higher, it is named and NOT met yet. They guard against regressions;
they are not tuned on (the held-out texts are never read to change the model).
"""

from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.evaluation.report import heldout_sets, load_labelled, plot_confusion, score, training_texts, unseen_only
from bot.settings import PROJECT_ROOT

pytestmark = pytest.mark.slow

DATA = PROJECT_ROOT / "tests" / "data"
NLU_DIR = PROJECT_ROOT / "data" / "nlu"
TUNING_DIR = PROJECT_ROOT / "benchmarks" / "data"


@pytest.fixture(scope="module")
def results(assistant):  # type: ignore[no-untyped-def]
    out = {}
    for path in heldout_sets(DATA):
        rows, _ = unseen_only(load_labelled(path), NLU_DIR, TUNING_DIR)
        out[path.stem] = score(rows, [assistant.decide(r["text"]).as_dict() for r in rows])
    return out


def test_messages_seen_in_training_are_not_scored(tmp_path: Path) -> None:
    (tmp_path / "x.yml").write_text('nlu:\n  - intent: greet\n    examples: |\n      - こんにちは\n',
                                    encoding="utf-8")
    rows = [{"text": "ｺﾝﾆﾁﾊ", "label": "greet"}, {"text": "こんにちは！", "label": "greet"},
            {"text": "やあ", "label": "greet"}]
    kept, dropped = unseen_only(rows, tmp_path)
    # Punctuation does not make a seen text unseen; katakana is another spelling, kept.
    assert [r["text"] for r in kept] == ["ｺﾝﾆﾁﾊ", "やあ"] and dropped == 1
    assert training_texts(tmp_path) == {"こんにちは"}


def test_every_heldout_set_is_mostly_unseen() -> None:
    for path in heldout_sets(DATA):
        rows = load_labelled(path)
        kept, dropped = unseen_only(rows, NLU_DIR, TUNING_DIR)
        assert len(kept) >= 0.7 * len(rows), f"{path.name}: {dropped} of {len(rows)} seen in training or tuning"


def test_customer_questions(results) -> None:  # type: ignore[no-untyped-def]
    demo = results["heldout"]
    # Targets: route accuracy >= 0.96 (issues #9, #10), NOT met: measured 0.888 (one intent per
    # FAQ entry scored 0.949 on the same messages).
    assert demo.route_accuracy >= 0.87, demo.summary()
    # Target: answers >= 0.98 precise at coverage >= 0.85; measured 0.966 at 0.886 (NOT met).
    assert demo.answer_precision >= 0.95 and demo.coverage >= 0.86, demo.summary()
    assert demo.ordinary_handed_off <= 0.02, demo.summary()  # target met: 0.016
    # Target >= 0.98 (complaints and requests for a person never answered with an FAQ), NOT met: 0.949.
    assert demo.handoff_never_faq >= 0.93, demo.summary()


def test_everyday_text_is_neither_answered_nor_handed_off(results) -> None:  # type: ignore[no-untyped-def]
    everyday = results["heldout_everyday"]
    assert everyday.answered <= 0.03, everyday.summary()  # target <= 0.03, met: 0.021
    # Target <= 0.02, NOT met: measured 0.043 (the model before this work: 0.363).
    assert everyday.handed_off <= 0.06, everyday.summary()


def test_complaints_go_to_a_person(results) -> None:  # type: ignore[no-untyped-def]
    complaints = results["heldout_complaint"]
    # Target >= 0.98, NOT met: measured 0.863 (before: 0.808).
    assert complaints.handoff_recall >= 0.84, complaints.summary()


def test_other_languages_give_up_and_vague_messages(results) -> None:  # type: ignore[no-untyped-def]
    assert results["heldout_foreign"].route_accuracy >= 0.94, results["heldout_foreign"].summary()
    assert results["heldout_foreign"].answered == 0.0
    # A person offered (or given) to customers who give up: 0.613 (before: 0.293).
    assert results["heldout_giveup"].route_accuracy >= 0.58, results["heldout_giveup"].summary()
    assert results["heldout_giveup"].answered == 0.0
    vague = results["heldout_vague"]
    assert vague.route_accuracy >= 0.75 and vague.answer_precision >= 0.93, vague.summary()


def _score_generation(assistant, folder: Path) -> dict:  # type: ignore[no-untyped-def]
    """Each held-out set of ``folder`` scored on its unseen messages, by file stem."""
    out = {}
    for path in heldout_sets(folder):
        rows, _ = unseen_only(load_labelled(path), NLU_DIR, TUNING_DIR)
        out[path.stem] = score(rows, [assistant.decide(r["text"]).as_dict() for r in rows])
    return out


@dataclass(frozen=True)
class Floors:
    """Regression floors of one held-out generation: the figures measured when it was read
    (README), minus a small margin. ``measured`` keeps what was read, beside the issue's
    targets, so a reader sees which targets are NOT met without opening the README."""

    route_accuracy: float
    precision: float
    coverage: float
    faq_handed_max: float
    everyday_handed_max: float
    everyday_answered_max: float
    complaint_recall: float
    foreign: float
    giveup: float
    vague: float
    measured: str


# Generation -> floors. Targets (issue #9): route accuracy >= 0.96, precision >= 0.98 at
# coverage >= 0.85, FAQ questions handed off <= 0.02, everyday text handed off <= 0.02 and
# answered <= 0.03, complaints handed off >= 0.98.
GENERATION_FLOORS = {
    # An eighth writer, frozen at c367222 (written while that session's rules and routing
    # changes were made, never read before them), read once at the end of that session.
    "heldout_v7": Floors(0.88, 0.98, 0.87, 0.02, 0.03, 0.02, 0.83, 0.98, 0.95, 0.72,
                         measured="route 0.891, precision 0.996 at coverage 0.880, FAQ handed 0.015, "
                                  "everyday handed 0.027 / answered 0.012, complaints 0.842"),
    # A ninth writer, frozen at b9bd33c, read once to judge the model that learned generations
    # 2-6 (benchmarks/retire_heldout.py) with re-chosen thresholds; generations 2-6 left this
    # table then (training data now, not held out).
    # Vague floor 0.64 -> 0.62 when the second round of writer batches was adopted: generation 8's
    # vague route accuracy 0.642 -> 0.635 (one message), judged against complaints +2.1 points on
    # generation 10 (README, tenth generation).
    "heldout_v8": Floors(0.84, 0.98, 0.83, 0.03, 0.035, 0.02, 0.93, 0.97, 0.92, 0.62,
                         measured="route 0.855, precision 0.996 at coverage 0.842, FAQ handed 0.022, "
                                  "everyday handed 0.030 / answered 0.015, complaints 0.948"),
    # A tenth writer, frozen at 33a1209, read once to judge the model that learned the four writer
    # batches (benchmarks/writer_batches.py).
    "heldout_v9": Floors(0.84, 0.97, 0.85, 0.025, 0.03, 0.03, 0.88, 0.98, 0.94, 0.70,
                         measured="route 0.858, precision 0.984 at coverage 0.869, FAQ handed 0.014, "
                                  "everyday handed 0.019 / answered 0.019, complaints 0.898"),
    # An eleventh writer, frozen at 112c9f6, read once to judge the second round of writer batches.
    "heldout_v10": Floors(0.82, 0.98, 0.81, 0.03, 0.03, 0.03, 0.92, 0.98, 0.95, 0.74,
                          measured="route 0.831, precision 0.992 at coverage 0.826, FAQ handed 0.021, "
                                   "everyday handed 0.024 / answered 0.022, complaints 0.938"),
    # A twelfth writer, frozen at 069c2bb, read once to judge the FAQ search matching customers'
    # phrasings (knowledge/phrasings.yml) with problem_report 0.7; everyday_override 0.3 -> 0.35
    # was chosen after that reading, on the tuning sets (README, eleventh generation).
    "heldout_v11": Floors(0.94, 0.98, 0.93, 0.02, 0.045, 0.03, 0.93, 0.96, 0.95, 0.78,
                          measured="route 0.956, precision 1.000 at coverage 0.951, FAQ handed 0.013, "
                                   "everyday handed 0.037 / answered 0.022, complaints 0.952"),
    # A thirteenth writer, frozen at 0c4b837, read once (2026-12-01, old_vs_new) to judge the
    # polite_question rule, which it did not support (reverted); these are the kept model's figures.
    "heldout_v12": Floors(0.94, 0.98, 0.94, 0.03, 0.055, 0.055, 0.87, 0.96, 0.97, 0.76,
                          measured="route 0.956, precision 1.000 at coverage 0.961, FAQ handed 0.019, "
                                   "everyday handed 0.045 / answered 0.045, complaints 0.894"),
}


@pytest.mark.parametrize("generation", sorted(GENERATION_FLOORS))
def test_later_heldout_generations_do_not_regress(assistant, generation: str) -> None:  # type: ignore[no-untyped-def]
    """Each later generation (written 2026-11-30 by a writer who saw no repository data) stays
    above its floors; the targets of issue #9 that were not met are in ``measured``."""
    floors = GENERATION_FLOORS[generation]
    results = _score_generation(assistant, DATA / generation)
    demo = results["heldout"]
    context = {"measured when read": floors.measured, **demo.summary()}
    assert demo.route_accuracy >= floors.route_accuracy, context
    assert demo.answer_precision >= floors.precision and demo.coverage >= floors.coverage, context
    assert demo.ordinary_handed_off <= floors.faq_handed_max, context
    everyday = results["heldout_everyday"]
    assert everyday.handed_off <= floors.everyday_handed_max, everyday.summary()
    assert everyday.answered <= floors.everyday_answered_max, everyday.summary()
    assert results["heldout_complaint"].handoff_recall >= floors.complaint_recall, results["heldout_complaint"].summary()
    assert results["heldout_foreign"].route_accuracy >= floors.foreign, results["heldout_foreign"].summary()
    assert results["heldout_giveup"].route_accuracy >= floors.giveup, results["heldout_giveup"].summary()
    assert results["heldout_vague"].route_accuracy >= floors.vague, results["heldout_vague"].summary()


def test_report_files(results, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    plot_confusion(results["heldout"], tmp_path / "confusion.png")
    assert (tmp_path / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = results["heldout"].summary()
    assert summary["total"] == results["heldout"].total and 0 < summary["route_accuracy"] <= 1


def test_score_counts_wrong_faq_as_wrong_route() -> None:
    rows = [{"text": "a", "label": "change-address"}, {"text": "b", "label": "complaint"}]
    decisions = [
        {"route": "answer", "faq_id": "change-phone", "intent": "faq"},
        {"route": "answer", "faq_id": "change-address", "intent": "faq"},
    ]
    result = score(rows, decisions)
    assert result.route_accuracy == 0.0
    assert result.handoff_never_faq == 0.0
    assert result.answered == 1.0 and result.answer_precision == 0.0 and result.coverage == 1.0


def test_score_vague_and_give_up_semantics() -> None:
    rows = [{"text": "パスワードが…", "label": "vague", "topics": ["reset-password"]},
            {"text": "カードの件で", "label": "vague", "topics": ["change-payment"]},
            {"text": "もういいです", "label": "give_up"}, {"text": "話にならない、もういい", "label": "give_up"}]
    decisions = [{"route": "answer", "faq_id": "reset-password"}, {"route": "answer", "faq_id": "cancel"},
                 {"route": "offer_human", "faq_id": None}, {"route": "handoff", "faq_id": None}]
    result = score(rows, decisions)
    assert result.route_accuracy == 0.75  # an answer outside the topics is wrong
    assert result.answer_precision == 0.5
