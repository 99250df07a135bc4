"""Answers FAQ questions, clarifies unsure ones, and the conversation moves around them."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.common import default_hours, default_knowledge, send
from actions.handoff import HandoffDesk
from bot.dialogue.decisions import faq_id_of, ranked_faq_ids, reply_for
from bot.dialogue.replies import not_helpful_reply, suggestions_from_ids
from bot.dialogue.routes import ACTION_ANSWER_FAQ, ACTION_CLARIFY, ACTION_HANDOFF as ACTION_HANDOFF_NAME
from bot.dialogue.routes import (ACTION_GREET, ACTION_IAMABOT, ACTION_LANGUAGE_NOTICE, ACTION_NOT_HELPFUL,
                                 ACTION_OFFER_HUMAN, ACTION_OUT_OF_SCOPE, ACTION_PREAMBLE, INTENT_FAQ,
                                 INTENT_NOT_HELPFUL)
from bot.handoff.outbox import Outbox
from bot.knowledge.live import LiveKnowledge
from bot.store.queue import Queue


class _KnowledgeAction(Action):
    """An action whose reply is built by :func:`bot.dialogue.decisions.reply_for`."""

    action_name = ""

    def __init__(self, knowledge: Optional[LiveKnowledge] = None) -> None:
        """Use ``knowledge`` (tests pass their own) or the process-wide one."""
        self._knowledge = knowledge

    def name(self) -> Text:
        """The action name used in rules and the domain."""
        return self.action_name

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
            domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        """Reply to the latest customer message."""
        knowledge = self._knowledge or default_knowledge()
        send(dispatcher, reply_for(self.action_name, tracker.latest_message, knowledge.get(), default_hours(),
                                   search=knowledge.find), tracker.latest_message)
        return []


class ActionAnswerFaq(_KnowledgeAction):
    """Answer the FAQ entry the search chose (``faq_id``); its id travels in the custom payload."""

    action_name = ACTION_ANSWER_FAQ


class ActionGreet(_KnowledgeAction):
    """The greeting: which chat this is (the knowledge folder's facts.yml), the main topics as buttons."""

    action_name = ACTION_GREET


class ActionIamABot(_KnowledgeAction):
    """「AIですか」: yes, which chat this is, and how to reach a person."""

    action_name = ACTION_IAMABOT


class ActionPreamble(_KnowledgeAction):
    """「質問です」: please go ahead, with the main topics as buttons."""

    action_name = ACTION_PREAMBLE


class ActionOfferHuman(_KnowledgeAction):
    """The customer gives up (「もういいです」): apologise and offer a person (reason ``unresolved``)."""

    action_name = ACTION_OFFER_HUMAN


class ActionOutOfScope(_KnowledgeAction):
    """Outside what the chat answers: the knowledge base's main topics as buttons, and a person."""

    action_name = ACTION_OUT_OF_SCOPE


class ActionLanguageNotice(_KnowledgeAction):
    """A message in English, Chinese or Korean: the chat works in Japanese; contact page and a person."""

    action_name = ACTION_LANGUAGE_NOTICE


class ActionClarify(_KnowledgeAction):
    """Ask back with the three likeliest FAQ titles as buttons (and a "person" button).

    The second not-understood message in a row goes to a person instead (reason
    ``unresolved``): asking back twice is where customers give up.
    """

    action_name = ACTION_CLARIFY

    def __init__(self, knowledge: Optional[LiveKnowledge] = None, queue: Optional[Queue] = None,
                 outbox: Optional[Outbox] = None) -> None:
        """Use the given knowledge, queue and outbox (tests) or the configured ones."""
        super().__init__(knowledge)
        self._desk = HandoffDesk(queue, outbox)

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
            domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        """Clarify, or hand off after two unsure turns in a row."""
        if unsure_turns_in_a_row(tracker.events) >= UNSURE_TURNS_BEFORE_HANDOFF:
            return self._desk.hand_off(dispatcher, tracker, "unresolved")
        return super().run(dispatcher, tracker, domain)


UNSURE_TURNS_BEFORE_HANDOFF = 2


def unsure_turns_in_a_row(events: List[Dict[Text, Any]]) -> int:
    """How many of the latest customer messages in a row the NLU did not understand.

    The latest message counts as it is. An earlier one counts only if the bot replied to it
    (asked back): when the action server was down, Rasa records the clarify action without its
    messages, the customer heard nothing and writes again, and that second try is not a second
    turn the bot failed to understand (issue #12's fault runs: 6 hand-offs nobody asked for).
    """
    count = 0
    replied = False  # a bot message since the (later) user message last looked at
    for event in reversed(events):
        if _ends_a_handoff_span(event):
            break  # turns before a handoff were already dealt with by a person
        if event.get("event") == "bot":
            replied = True
            continue
        if event.get("event") != "user":
            continue
        intent = ((event.get("parse_data") or {}).get("intent") or {}).get("name")
        if intent != "nlu_fallback" or (count and not replied):
            break
        count += 1
        replied = False
    return count


def _ends_a_handoff_span(event: Dict[Text, Any]) -> bool:
    """Pause / resume, or our handoff action (offline handoffs do not pause)."""
    return event.get("event") in ("pause", "resume") or (
        event.get("event") == "action" and event.get("name") == ACTION_HANDOFF_NAME) or (
        event.get("event") == "bot" and _route_of(event) == "handoff")


class ActionNotHelpful(Action):
    """The customer answered 「いいえ」 to 役に立ちましたか？ under an FAQ answer.

    The first time the bot apologises and offers the likeliest other FAQs and a person;
    the second time (since the last handoff) a person takes over (reason ``unresolved``).
    """

    def __init__(self, knowledge: Optional[LiveKnowledge] = None, queue: Optional[Queue] = None,
                 outbox: Optional[Outbox] = None) -> None:
        """Use the given knowledge, queue and outbox (tests) or the configured ones."""
        self._knowledge = knowledge
        self._desk = HandoffDesk(queue, outbox)

    def name(self) -> Text:
        """The action name used in rules and the domain."""
        return ACTION_NOT_HELPFUL

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
            domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        """Apologise and offer other answers, or hand off on the second 「いいえ」."""
        if not_helpful_since_handoff(tracker.events) >= NOT_HELPFUL_BEFORE_HANDOFF:
            return self._desk.hand_off(dispatcher, tracker, "unresolved")
        kb = (self._knowledge or default_knowledge()).get()
        answered, candidates = _last_answered(tracker.events)
        related = _related_first(answered, kb)
        others = [i for i in candidates + related if i not in answered]
        send(dispatcher, not_helpful_reply(suggestions_from_ids(others, kb)), tracker.latest_message)
        return []


NOT_HELPFUL_BEFORE_HANDOFF = 2


def not_helpful_since_handoff(events: List[Dict[Text, Any]]) -> int:
    """How many FAQ answers the customer rated 「いいえ」 since the conversation last went to a person.

    A 「いいえ」 rates the answer before it, and the widget takes one rating per answer, so two
    「いいえ」 with no FAQ answer between them are one rating sent twice: the bot server sends it
    again when it never stored Rasa's reply (it died in between; issue #12's fault runs). Counting
    it twice would hand the customer to a person who asked for nobody.
    """
    count = 0
    answered_since = False  # an FAQ answer after the earlier 「いいえ」 looked at next
    for event in reversed(events):
        if _ends_a_handoff_span(event):
            break
        if event.get("event") == "bot" and _route_of(event) == "answer":
            answered_since = True
            continue
        intent = ((event.get("parse_data") or {}).get("intent") or {}).get("name")
        if event.get("event") == "user" and intent == INTENT_NOT_HELPFUL:
            if count == 0 or answered_since:
                count += 1
            answered_since = False
    return count


def _route_of(event: Dict[Text, Any]) -> Optional[str]:
    """The route a bot message carried in its custom payload (``answer``, ``handoff``…)."""
    return ((event.get("data") or {}).get("custom") or {}).get("route")


def _last_answered(events: List[Dict[Text, Any]]) -> tuple[List[str], List[str]]:
    """FAQ ids answered in the conversation (latest first), and the search's other
    candidates for the latest question that was answered."""
    answered: List[str] = []
    candidates: List[str] = []
    for event in reversed(events):
        parse_data = event.get("parse_data") or {}
        intent = (parse_data.get("intent") or {}).get("name")
        faq_id = faq_id_of(parse_data) if event.get("event") == "user" and intent == INTENT_FAQ else None
        if faq_id and faq_id not in answered:
            if not answered:
                candidates = ranked_faq_ids(parse_data)
            answered.append(faq_id)
    return answered, candidates


def _related_first(answered: List[str], kb: Any) -> List[str]:
    """The ``related`` entries of the latest answered FAQ (what editors said is close)."""
    entry = kb.get(answered[0]) if answered else None
    return list(entry.related) if entry else []
