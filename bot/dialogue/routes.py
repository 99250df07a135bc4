"""The five routes a customer message can take, and which bot action stands for each.

The dialogue rules in ``data/stories/`` map intents to the actions below; ``bot ask``
asks the trained policies which action comes next and reads the route from this table,
so both always agree (tests/test_rules_routes.py checks the rule files against it).
"""

from __future__ import annotations

from enum import Enum


class Route(str, Enum):
    """What happens to a customer message."""

    ANSWER = "answer"  # an FAQ answer from knowledge/
    HANDOFF = "handoff"  # a person takes over
    SMALLTALK = "smalltalk"  # greeting, thanks, "are you a bot?" ...
    CLARIFY = "clarify"  # not sure: ask back with the likeliest FAQ titles as buttons
    OUT_OF_SCOPE = "out_of_scope"  # outside what the bot can help with
    OFFER_HUMAN = "offer_human"  # the bot cannot help (gave up, not Japanese): a person is offered


ACTION_ANSWER_FAQ = "action_answer_faq"
ACTION_CLARIFY = "action_clarify"
ACTION_HANDOFF = "action_handoff"
ACTION_NOT_HELPFUL = "action_not_helpful"
ACTION_PREAMBLE = "action_preamble"
ACTION_OFFER_HUMAN = "action_offer_human"
ACTION_LANGUAGE_NOTICE = "action_language_notice"
ACTION_GREET = "action_greet"
ACTION_IAMABOT = "action_iamabot"
ACTION_OUT_OF_SCOPE = "action_out_of_scope"
# Our actions (the action server's; `bot ask` builds their replies with bot.dialogue.decisions.reply_for).
CUSTOM_ACTIONS = (ACTION_ANSWER_FAQ, ACTION_CLARIFY, ACTION_HANDOFF, ACTION_NOT_HELPFUL, ACTION_PREAMBLE,
                  ACTION_OFFER_HUMAN, ACTION_LANGUAGE_NOTICE, ACTION_OUT_OF_SCOPE, ACTION_GREET, ACTION_IAMABOT)
INTENT_FAQ = "faq"
# Sent by the widget's 「いいえ」 button under an FAQ answer (no NLU examples: button only).
INTENT_NOT_HELPFUL = "answer_not_helpful"
# Sent by the 「担当者と話す」 button the bot offers after a customer gives up (button only).
INTENT_HUMAN_AFTER_MISS = "request_human_unresolved"

# Bot action -> route. Anything a policy predicts that is not listed here is a bug
# caught by the tests.
ROUTE_OF_ACTION: dict[str, Route] = {
    ACTION_ANSWER_FAQ: Route.ANSWER,
    ACTION_CLARIFY: Route.CLARIFY,
    ACTION_HANDOFF: Route.HANDOFF,
    ACTION_NOT_HELPFUL: Route.CLARIFY,
    ACTION_PREAMBLE: Route.CLARIFY,
    ACTION_OFFER_HUMAN: Route.OFFER_HUMAN,
    ACTION_LANGUAGE_NOTICE: Route.OFFER_HUMAN,
    ACTION_OUT_OF_SCOPE: Route.OUT_OF_SCOPE,
    "action_default_fallback": Route.CLARIFY,
    ACTION_GREET: Route.SMALLTALK,
    "utter_goodbye": Route.SMALLTALK,
    "utter_thanks": Route.SMALLTALK,
    "utter_affirm": Route.SMALLTALK,
    "utter_deny": Route.SMALLTALK,
    ACTION_IAMABOT: Route.SMALLTALK,
    # Rasa's built-in actions, reachable when a message is a "/command" (e.g. "/restart").
    "action_restart": Route.SMALLTALK,
    "action_back": Route.SMALLTALK,
    "action_session_start": Route.SMALLTALK,
}

# Built-in actions -> the domain response they utter (Rasa utters it if the domain has it).
RESPONSE_OF_BUILTIN_ACTION: dict[str, str] = {
    "action_default_fallback": "utter_default",
    "action_restart": "utter_restart",
    "action_back": "utter_back",
}

# Intent -> the action its rule must run (data/stories/rules.yml; checked by tests).
ACTION_OF_INTENT: dict[str, str] = {
    INTENT_FAQ: ACTION_ANSWER_FAQ,
    "greet": ACTION_GREET,
    "goodbye": "utter_goodbye",
    "thanks": "utter_thanks",
    "affirm": "utter_affirm",
    "deny": "utter_deny",
    "bot_challenge": ACTION_IAMABOT,
    "out_of_scope": ACTION_OUT_OF_SCOPE,
    "nlu_fallback": ACTION_CLARIFY,
    "request_human": ACTION_HANDOFF,
    "complaint": ACTION_HANDOFF,
    INTENT_NOT_HELPFUL: ACTION_NOT_HELPFUL,
    "not_that": ACTION_NOT_HELPFUL,
    "preamble": ACTION_PREAMBLE,
    "give_up": ACTION_OFFER_HUMAN,
    "non_japanese": ACTION_LANGUAGE_NOTICE,
    INTENT_HUMAN_AFTER_MISS: ACTION_HANDOFF,
}

# Why a conversation is handed to a person (codes shared with the agent queue).
HANDOFF_REASON_OF_INTENT: dict[str, str] = {
    "request_human": "human_request",
    "complaint": "complaint",
    INTENT_NOT_HELPFUL: "unresolved",
    INTENT_HUMAN_AFTER_MISS: "unresolved",
}
