"""The bot's reply for a predicted action, shared by the action server and `bot ask`.

Both call :func:`reply_for` with the NLU parse data of the latest message, so what
`bot ask` prints is what the live bot says on the first turn.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from bot.dialogue.replies import (
    Reply,
    answer_reply,
    clarify_reply,
    greet_reply,
    iamabot_reply,
    language_reply,
    not_helpful_reply,
    offer_human_reply,
    out_of_scope_reply,
    preamble_reply,
    staffed_handoff_reply,
    suggestions_from_ids,
    with_truncation_note,
)
from bot.dialogue.routes import (
    ACTION_ANSWER_FAQ,
    ACTION_CLARIFY,
    ACTION_GREET,
    ACTION_HANDOFF,
    ACTION_IAMABOT,
    ACTION_LANGUAGE_NOTICE,
    ACTION_NOT_HELPFUL,
    ACTION_OFFER_HUMAN,
    ACTION_OUT_OF_SCOPE,
    ACTION_PREAMBLE,
    HANDOFF_REASON_OF_INTENT,
    INTENT_FAQ,
)
from bot.knowledge.model import KnowledgeBase, intent_for
from bot.triage.hours import StaffedHours
from bot.triage.routing import PROBLEM_REPORT

NO_WORDS = "no_words"  # `input_issue` set by bot.nlu.message_guard on word-less messages
# Text -> ids of the FAQ entries that best answer it (see bot.knowledge.live.LiveKnowledge.find).
FaqFinder = Callable[[str], list[str]]


def intent_name(parse_data: Mapping[str, Any]) -> str | None:
    """The intent the NLU settled on."""
    return (parse_data.get("intent") or {}).get("name")


def faq_id_of(parse_data: Mapping[str, Any]) -> str | None:
    """The FAQ entry chosen for this message: by the router, or by a clarify button's entity."""
    if parse_data.get("faq_id"):
        return str(parse_data["faq_id"])
    for entity in parse_data.get("entities") or []:
        if entity.get("entity") == "faq_id" and entity.get("value"):
            return str(entity["value"])
    return None


def intent_label(parse_data: Mapping[str, Any]) -> str | None:
    """The intent as transcripts and analytics show it: ``faq_<id>`` for an FAQ answer."""
    name = intent_name(parse_data)
    faq_id = faq_id_of(parse_data) if name == INTENT_FAQ else None
    return intent_for(faq_id) if faq_id else name


def ranked_faq_ids(parse_data: Mapping[str, Any]) -> list[str]:
    """The FAQ search's ranking of this message (set by bot.nlu.faq_retriever)."""
    return [str(h.get("faq_id")) for h in parse_data.get("faq_ranking") or [] if h.get("faq_id")]


def handoff_reason(parse_data: Mapping[str, Any]) -> str:
    """Reason code for handing this message to a person (``human_request`` by default)."""
    explicit = parse_data.get("handoff_reason")
    if explicit:
        return str(explicit)
    return HANDOFF_REASON_OF_INTENT.get(intent_name(parse_data) or "", "human_request")


def is_upset(parse_data: Mapping[str, Any]) -> bool:
    """The customer is upset (anger score at its threshold) or reports a problem the FAQ answers.

    Args:
        parse_data: NLU result of the message (``anger`` from bot.nlu.anger, ``routing`` from
            bot.nlu.router).
    """
    anger = parse_data.get("anger") or {}
    angry = float(anger.get("score") or 0.0) >= float(anger.get("threshold") or 0.6)
    return angry or parse_data.get("routing") == PROBLEM_REPORT


def reply_for(action: str, parse_data: Mapping[str, Any], kb: KnowledgeBase,
              hours: StaffedHours | None = None, search: FaqFinder | None = None) -> Reply:
    """Build the reply of one of our custom actions.

    Args:
        action: One of the custom actions in :mod:`bot.dialogue.routes`.
        parse_data: NLU result of the customer's latest message.
        kb: The knowledge base.
        hours: Staffed hours; a handoff outside them says when a person will answer.
        search: FAQ search, used for clarify suggestions when the parse data has no
            ranking (e.g. a message that arrived as a button payload).

    Returns:
        The reply. An FAQ id that is not (or no longer) in the knowledge base falls back
        to a clarifying reply rather than an empty message.

    Raises:
        ValueError: ``action`` is not one of ours.
    """
    truncated_at = parse_data.get("input_truncated_at")
    if action == ACTION_ANSWER_FAQ:
        entry = kb.get(faq_id_of(parse_data) or "")
        reply = answer_reply(entry, upset=is_upset(parse_data)) if entry else _clarify(parse_data, kb, search)
    elif action == ACTION_CLARIFY:
        reply = _clarify(parse_data, kb, search)
    elif action == ACTION_HANDOFF:
        return staffed_handoff_reply(handoff_reason(parse_data), hours)
    elif action == ACTION_GREET:
        reply = greet_reply(kb)
    elif action == ACTION_IAMABOT:
        reply = iamabot_reply(kb)
    elif action == ACTION_PREAMBLE:
        reply = preamble_reply(kb)
    elif action == ACTION_OFFER_HUMAN:
        reply = offer_human_reply(hours)
    elif action == ACTION_OUT_OF_SCOPE:
        reply = out_of_scope_reply(kb)
    elif action == ACTION_NOT_HELPFUL:
        # First turn only (`bot ask`); in a conversation the action also leaves out the
        # answers already given (actions/faq.py).
        reply = not_helpful_reply(suggestions_from_ids(ranked_faq_ids(parse_data), kb))
    elif action == ACTION_LANGUAGE_NOTICE:
        return language_reply(str(parse_data.get("language") or "en"), kb.get("contact"))
    else:
        raise ValueError(f"reply_for: '{action}' is not a custom action of this bot")
    if truncated_at:
        reply = Reply(with_truncation_note(reply.text, True, int(truncated_at)), reply.buttons, reply.custom)
    return reply


def _clarify(parse_data: Mapping[str, Any], kb: KnowledgeBase, search: FaqFinder | None) -> Reply:
    ranked = ranked_faq_ids(parse_data)
    if not ranked and search is not None and parse_data.get("text"):
        ranked = search(str(parse_data["text"]))
    no_words = parse_data.get("input_issue") == NO_WORDS
    return clarify_reply(suggestions_from_ids(ranked, kb), no_words=no_words)
