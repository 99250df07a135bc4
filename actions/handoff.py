"""Hands the conversation to a person (request for a person, complaint, anger)."""

from __future__ import annotations

from typing import Any, Dict, List, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.common import default_knowledge, send
from bot.dialogue.decisions import reply_for
from bot.dialogue.routes import ACTION_HANDOFF


class ActionHandoff(Action):
    """Tell the customer a person takes over, with a message that fits the reason.

    The agent queue (ticket with transcript) is tracked in issue #3; until it lands this
    action only replies, but the route and the reason code are final.
    """

    def name(self) -> Text:
        """The action name used in rules and the domain."""
        return ACTION_HANDOFF

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
            domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        """Reply with the handoff message for the reason found in the latest message."""
        send(dispatcher, reply_for(ACTION_HANDOFF, tracker.latest_message, default_knowledge().get()))
        return []
