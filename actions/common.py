"""Helpers shared by the actions: the live knowledge base, staffed hours and sending a Reply.

The handoff queue and outbox are the handoff's own (bot/handoff/delivery.py).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Dict, Optional

from rasa_sdk.executor import CollectingDispatcher

from bot.dialogue.decisions import intent_label
from bot.dialogue.replies import Reply
from bot.knowledge.live import LiveKnowledge, shared_knowledge
from bot.settings import get_settings
from bot.triage.hours import StaffedHours, load_hours


@lru_cache(maxsize=1)
def default_hours() -> StaffedHours:
    """Staffed hours from ``knowledge/hours.yml``."""
    return load_hours(get_settings().hours_file)


@lru_cache(maxsize=1)
def default_knowledge() -> LiveKnowledge:
    """The process-wide knowledge base, reloaded when editors save ``knowledge/``."""
    return shared_knowledge(get_settings().knowledge_dir)


def send(dispatcher: CollectingDispatcher, reply: Reply, parse_data: Optional[Dict[str, Any]] = None) -> None:
    """Send ``reply`` with its buttons and its machine-readable custom payload.

    The intent and confidence of the message answered travel in the payload too, so the
    bot server can store them with the conversation for editors' analytics.
    """
    intent = (parse_data or {}).get("intent") or {}
    custom = {**reply.custom, "intent": intent_label(parse_data or {}), "confidence": intent.get("confidence")}
    dispatcher.utter_message(text=reply.text, buttons=reply.buttons or None, json_message=custom)
