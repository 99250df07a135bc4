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
    staffed_handoff_reply,
    suggestions_from_ranking,
    with_truncation_note,
)
from bot.dialogue.routes import (
    ACTION_ANSWER_FAQ,
    ACTION_CLARIFY,
    ACTION_HANDOFF,
    HANDOFF_REASON_OF_INTENT,
)
from bot.knowledge.model import KnowledgeBase, intent_for
from bot.triage.hours import StaffedHours

NO_WORDS = "no_words"
# Text -> ids of the FAQ entries that best answer it (see bot.knowledge.live.LiveKnowledge.find).
FaqFinder = Callable[[str], list[str]]  # `input_issue` set by bot.nlu.message_guard on word-less messages


def intent_name(parse_data: Mapping[str, Any]) -> str | None:
    """The intent the NLU settled on."""
    return (parse_data.get("intent") or {}).get("name")


def handoff_reason(parse_data: Mapping[str, Any]) -> str:
    """Reason code for handing this message to a person (``human_request`` by default)."""
    explicit = parse_data.get("handoff_reason")
    if explicit:
        return str(explicit)
    return HANDOFF_REASON_OF_INTENT.get(intent_name(parse_data) or "", "human_request")


def reply_for(action: str, parse_data: Mapping[str, Any], kb: KnowledgeBase,
              hours: StaffedHours | None = None, search: FaqFinder | None = None) -> Reply:
    """Build the reply of one of our custom actions.

    Args:
        action: ``action_answer_faq``, ``action_clarify`` or ``action_handoff``.
        parse_data: NLU result of the customer's latest message.
        kb: The knowledge base.
        hours: Staffed hours; a handoff outside them says when a person will answer.
        search: FAQ search (``bot kb search``): its best entries for the message come first
            among clarify suggestions, then the classifier's runners-up.

    Returns:
        The reply. An FAQ intent that is not (or no longer) in the knowledge base
        falls back to a clarifying reply rather than an empty message.

    Raises:
        ValueError: ``action`` is not one of ours.
    """
    truncated_at = parse_data.get("input_truncated_at")
    if action == ACTION_ANSWER_FAQ:
        entry = kb.by_intent(intent_name(parse_data))
        reply = answer_reply(entry) if entry else _clarify(parse_data, kb, search)
    elif action == ACTION_CLARIFY:
        reply = _clarify(parse_data, kb, search)
    elif action == ACTION_HANDOFF:
        return staffed_handoff_reply(handoff_reason(parse_data), hours)
    else:
        raise ValueError(f"reply_for: '{action}' is not a custom action of this bot")
    if truncated_at:
        reply = Reply(with_truncation_note(reply.text, True, int(truncated_at)), reply.buttons, reply.custom)
    return reply


def _clarify(parse_data: Mapping[str, Any], kb: KnowledgeBase, search: FaqFinder | None) -> Reply:
    ranking = list(parse_data.get("intent_ranking") or [])
    if search is not None and parse_data.get("text"):
        found = [{"name": intent_for(faq_id)} for faq_id in search(str(parse_data["text"]))]
        ranking = found + ranking
    suggestions = suggestions_from_ranking(ranking, kb)
    return clarify_reply(suggestions, no_words=parse_data.get("input_issue") == NO_WORDS)
