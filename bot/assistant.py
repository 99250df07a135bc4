"""Load a trained Rasa model once and decide, per message, what the live bot would do.

Used by ``bot ask``, ``bot eval`` and the benchmarks. The decision is taken exactly as
the Rasa server takes it on the first turn of a new conversation: the model's NLU
pipeline parses the text, the model's policies predict the next action on a fresh
tracker, and the reply is built by the same function the action server uses.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bot.dialogue.decisions import faq_id_of, handoff_reason, intent_name, reply_for
from bot.knowledge.live import shared_knowledge
from bot.dialogue.routes import (
    CUSTOM_ACTIONS,
    RESPONSE_OF_BUILTIN_ACTION,
    ROUTE_OF_ACTION,
    Route,
)
from bot.knowledge.loader import load_knowledge
from bot.knowledge.model import KnowledgeBase
from bot.settings import get_settings
from bot.triage.hours import load_hours

SENDER_ID = "bot-ask"


@dataclass(frozen=True)
class Decision:
    """What the bot does with one message (the JSON printed by ``bot ask``)."""

    text: str
    normalized: str
    intent: str | None
    confidence: float
    route: str
    faq_id: str | None
    answer: str
    handoff_reason: str | None
    action: str
    suggestions: list[str]
    ranking: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


class ModelNotFoundError(FileNotFoundError):
    """No trained model; the message says how to make one."""


def latest_model(models_dir: Path) -> Path:
    """The newest ``*.tar.gz`` in ``models_dir``.

    Raises:
        ModelNotFoundError: There is none.
    """
    models = sorted(models_dir.glob("*.tar.gz"), key=lambda p: p.stat().st_mtime)
    if not models:
        raise ModelNotFoundError(f"{models_dir}: 学習済みモデルがありません。`make train` を実行してください。")
    return models[-1]


def intent_confidence(parse_data: dict[str, Any]) -> float:
    """Confidence of the intent the NLU settled on (after fallback, guard and anger steps)."""
    return float((parse_data.get("intent") or {}).get("confidence") or 0.0)


class Assistant:
    """A loaded model plus the knowledge base; :meth:`decide` is one customer turn."""

    def __init__(self, model_path: Path | None = None, kb: KnowledgeBase | None = None) -> None:
        """Load the model (default: newest in ``models/``) and the knowledge base.

        Args:
            model_path: A model archive made by ``rasa train``.
            kb: The knowledge base (default: ``knowledge/``).
        """
        settings = get_settings()
        self.model_path = model_path or latest_model(settings.models_dir)
        if not self.model_path.is_file():
            raise ModelNotFoundError(f"{self.model_path}: モデルファイルがありません。`make train` で作るか、"
                                     "--model に models/ の .tar.gz を指定してください。")
        self.kb = kb or load_knowledge(settings.knowledge_dir)
        self.knowledge = shared_knowledge(settings.knowledge_dir) if kb is None else None
        self.hours = load_hours(settings.hours_file)
        os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")
        from rasa.core.agent import Agent  # heavy import, only when a model is really loaded
        from rasa.utils.log_utils import configure_structlog

        # Rasa logs to stdout at debug level by default; stdout carries our JSON only.
        configure_structlog(logging.WARNING)
        logging.getLogger("rasa").setLevel(logging.WARNING)
        for handler in logging.root.handlers:  # Rasa points the root logger at stdout
            if isinstance(handler, logging.StreamHandler) and handler.stream is sys.stdout:
                handler.setStream(sys.stderr)

        self._loop = asyncio.new_event_loop()
        self._agent = Agent.load(str(self.model_path))
        self._responses = self._agent.domain.responses

    def close(self) -> None:
        """Release the event loop."""
        self._loop.close()

    def parse(self, text: str) -> dict[str, Any]:
        """Run the model's NLU pipeline on ``text`` (as the Rasa server does)."""
        from rasa.core.channels.channel import UserMessage

        message = UserMessage(text, sender_id=SENDER_ID)
        return self._loop.run_until_complete(self._agent.processor.parse_message(message))

    def predict_action(self, text: str, parse_data: dict[str, Any]) -> str:
        """The first action the policies predict after ``text`` in a new conversation."""
        from rasa.shared.core.constants import ACTION_LISTEN_NAME, ACTION_SESSION_START_NAME
        from rasa.shared.core.events import ActionExecuted, SessionStarted, UserUttered
        from rasa.shared.core.trackers import DialogueStateTracker

        events = [
            ActionExecuted(ACTION_SESSION_START_NAME),
            SessionStarted(),
            ActionExecuted(ACTION_LISTEN_NAME),
            UserUttered(text, parse_data.get("intent"), parse_data.get("entities"), parse_data),
        ]
        domain = self._agent.domain
        tracker = DialogueStateTracker.from_events(SENDER_ID, events, domain.slots)
        prediction = self._agent.processor._predict_next_with_tracker(tracker)  # noqa: SLF001
        return domain.action_names_or_texts[prediction.max_confidence_index]

    def decide(self, text: str) -> Decision:
        """Decide what the live bot does with ``text`` as the first message of a conversation."""
        parse_data = self.parse(text)
        action = self.predict_action(text, parse_data)
        if action not in ROUTE_OF_ACTION:
            raise RuntimeError(f"policy predicted '{action}', which has no route in bot/dialogue/routes.py")
        route = ROUTE_OF_ACTION[action]
        suggestions: list[str] = []
        if action not in CUSTOM_ACTIONS:
            # Domain responses, and Rasa's built-in actions that utter one (if the domain has it).
            response = RESPONSE_OF_BUILTIN_ACTION.get(action, action)
            answer = (self._responses.get(response) or [{"text": ""}])[0]["text"]
        else:
            reply = reply_for(action, parse_data, self.kb, self.hours,
                              search=self.knowledge.find if self.knowledge else None)
            answer = reply.text
            suggestions = list(reply.custom.get("suggestions", []))
            route = Route(reply.custom.get("route", route.value))
        entry = self.kb.get(faq_id_of(parse_data) or "") if route is Route.ANSWER else None
        return Decision(
            text=text,
            normalized=parse_data.get("normalized_text", ""),
            intent=intent_name(parse_data),
            confidence=round(intent_confidence(parse_data), 4),
            route=route.value,
            faq_id=entry.id if entry else None,
            answer=answer,
            handoff_reason=handoff_reason(parse_data) if route is Route.HANDOFF else None,
            action=action,
            suggestions=suggestions,
            ranking=[{"faq_id": h["faq_id"], "score": h["score"]} for h in parse_data.get("faq_ranking") or []],
        )
