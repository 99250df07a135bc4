"""Expected outcome of a labelled evaluation message (labels: FAQ ids or intent names)."""

from __future__ import annotations

from typing import Any, Mapping

from bot.dialogue.routes import ACTION_OF_INTENT, HANDOFF_REASON_OF_INTENT, ROUTE_OF_ACTION, Route

SMALLTALK_INTENTS = ("greet", "goodbye", "thanks", "affirm", "deny", "bot_challenge")
# Vague or partial customer messages (「カードの件で」): the bot should ask back.
VAGUE = "vague"


def expected_route(label: str) -> Route:
    """Route the bot should take for a message labelled ``label``.

    Intent labels map through the dialogue rules' table, ``vague`` to clarify; anything
    else is an FAQ id.
    """
    if label == VAGUE:
        return Route.CLARIFY
    action = ACTION_OF_INTENT.get(label)
    return ROUTE_OF_ACTION[action] if action else Route.ANSWER


def is_faq_label(label: str) -> bool:
    """True when ``label`` is an FAQ id (the message should be answered)."""
    return label != VAGUE and label not in ACTION_OF_INTENT


def predicted_label(route: str, faq_id: str | None, intent: str | None) -> str:
    """Fine-grained label of a decision, comparable with the evaluation labels."""
    if route == Route.ANSWER.value:
        return faq_id or "?"
    if route == Route.CLARIFY.value:
        return "(clarify)"
    if route == Route.HANDOFF.value and intent not in HANDOFF_REASON_OF_INTENT:
        return "complaint"  # handed off by a triage override (e.g. anger)
    return intent or "?"


def relevant_ids(row: Mapping[str, Any]) -> set[str]:
    """FAQ ids that answer a labelled row: ``relevant`` if given, its label, or the ``topics``
    of a vague message."""
    if row.get("relevant"):
        return set(row["relevant"])
    label = row["label"]
    if is_faq_label(label):
        return {label}
    return set(row.get("topics") or [])


# Routes that serve a message with this label as well as the expected one.
ALSO_RIGHT: dict[str, frozenset[str]] = {
    # Everyday text: a small-talk reply (「おやすみなさい」) is as good as "I can help with…".
    "out_of_scope": frozenset({Route.SMALLTALK.value}),
    # A customer who gives up: a person is offered, or (angry words) given at once.
    "give_up": frozenset({Route.HANDOFF.value}),
}


def is_right(row: Mapping[str, Any], route: str, faq_id: str | None) -> bool:
    """Whether a decision serves a labelled message.

    The expected route (:func:`expected_route`) with, for answers, a right entry; or a
    route in :data:`ALSO_RIGHT`; for a vague message, also an answer from its ``topics``
    (「パスワード忘れたかも」 answered with the password FAQ).
    """
    label = row["label"]
    want = expected_route(label).value
    if route == want:
        return want != Route.ANSWER.value or faq_id in relevant_ids(row)
    if label == VAGUE and route == Route.ANSWER.value:
        return faq_id in relevant_ids(row)
    return route in ALSO_RIGHT.get(label, frozenset())
