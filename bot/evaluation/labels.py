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
