"""Answers FAQ intents and clarifies low-confidence messages from the knowledge base."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.common import default_knowledge, send
from bot.dialogue.decisions import reply_for
from bot.dialogue.routes import ACTION_ANSWER_FAQ, ACTION_CLARIFY
from bot.knowledge.live import LiveKnowledge


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
        send(dispatcher, reply_for(self.action_name, tracker.latest_message, knowledge.get()))
        return []


class ActionAnswerFaq(_KnowledgeAction):
    """Answer the FAQ whose intent was recognised; its id travels in the custom payload."""

    action_name = ACTION_ANSWER_FAQ


class ActionClarify(_KnowledgeAction):
    """Ask back with the three likeliest FAQ titles as buttons (and a "person" button)."""

    action_name = ACTION_CLARIFY
