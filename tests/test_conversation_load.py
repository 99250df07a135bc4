"""The conversation load's scripts (benchmarks/load_customers.py): what issue #12 asks of them."""

from __future__ import annotations

from benchmarks.load_customers import HUMAN, hands_off, script


def test_every_script_has_4_to_6_steps_with_a_question_a_clarify_click_and_feedback() -> None:
    for customer in range(200):
        kinds = [step.kind for step in script(customer)]
        assert 4 <= len(kinds) <= 6
        assert kinds[kinds.index("vague") + 1] == "button"  # the click on a button it was offered
        assert kinds.index("feedback") > kinds.index("button")  # on an answer
        assert "text" in kinds


def test_about_one_customer_in_ten_asks_for_a_person_then_thanks_the_bot() -> None:
    handing = [c for c in range(1000) if hands_off(c)]
    assert len(handing) == 100
    for customer in range(1000):
        steps = script(customer)
        asks = [s for s in steps if s.kind == "human"]
        assert len(asks) == (1 if customer in handing else 0)
        if asks:
            assert asks[0].text == HUMAN and steps[-1].kind == "after_agent"


def test_no_unsure_turn_follows_a_no() -> None:
    """A 「いいえ」 is answered by asking back; a vague question right after it would be the second
    unsure turn in a row, which hands the conversation to a person (tests/test_e2e.py)."""
    for customer in range(200):
        steps = script(customer)
        for before, after in zip(steps, steps[1:]):
            assert not (before.kind == "feedback" and not before.helpful and after.kind == "vague")
