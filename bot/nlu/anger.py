"""NLU step after classification: anger beats topic.

A message whose anger score (``bot.triage.anger``) reaches the threshold in
``knowledge/triage.yml`` is re-labelled ``complaint`` with ``handoff_reason: anger``,
even when it also matches an FAQ: 「二回も住所変更したのに反映されてない、ふざけるな」 goes
to a person. Conversely an unsure ``complaint`` guess that no anger signal supports is
replaced by the next likeliest intent (a calm 「カード変更が反映されない」 gets the card FAQ),
or by ``nlu_fallback`` (a clarifying reply with a "talk to a person" button). The score is kept in the parse data (``anger``) for agents and tuning.
"""

from __future__ import annotations

from typing import Any, Dict, List, Text

from rasa.shared.constants import DEFAULT_NLU_FALLBACK_INTENT_NAME
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import (
    INTENT,
    INTENT_NAME_KEY,
    INTENT_RANKING_KEY,
    PREDICTED_CONFIDENCE_KEY,
    TEXT,
)
from rasa.shared.nlu.training_data.message import Message

from bot.nlu.tokenizer import TRUNCATED_AT
from bot.settings import get_settings
from bot.triage.anger import AngerRules, load_anger_rules, score_anger

COMPLAINT = "complaint"
FALLBACK_INTENT = DEFAULT_NLU_FALLBACK_INTENT_NAME
HANDOFF_INTENTS = {"complaint", "request_human"}


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=False)
class AngerOverride(GraphComponent):
    """Score anger and re-route angry messages to ``complaint`` (see module docstring)."""

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        """``runner_up_threshold``: least confidence of the intent that replaces an unsure complaint."""
        return {"runner_up_threshold": 0.2}

    def __init__(self, rules: AngerRules, runner_up_threshold: float = 0.2) -> None:
        """Use ``rules`` (weights and threshold from knowledge/triage.yml)."""
        self._rules = rules
        self._runner_up_threshold = runner_up_threshold

    @classmethod
    def create(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> GraphComponent:
        """Create the component with the editors' rules from ``knowledge/triage.yml``."""
        merged = {**cls.get_default_config(), **config}
        return cls(load_anger_rules(get_settings().knowledge_dir / "triage.yml"),
                   float(merged["runner_up_threshold"]))

    def process(self, messages: List[Message]) -> List[Message]:
        """Score every message; re-label it when the score reaches the threshold."""
        for message in messages:
            ranking = message.get(INTENT_RANKING_KEY) or []
            p_complaint = next((float(i[PREDICTED_CONFIDENCE_KEY]) for i in ranking
                                if i.get(INTENT_NAME_KEY) == COMPLAINT), 0.0)
            # Read anger in the same part of the message the tokenizer classified.
            text = (message.get(TEXT) or "")[: message.get(TRUNCATED_AT) or None]
            anger = score_anger(text, p_complaint, self._rules)
            message.set("anger", anger.as_dict(), add_to_output=True)
            current = message.get(INTENT) or {}
            angry = anger.score >= self._rules.threshold
            if angry and current.get(INTENT_NAME_KEY) not in HANDOFF_INTENTS:
                message.set("handoff_reason", "anger", add_to_output=True)
                message.set(INTENT, {INTENT_NAME_KEY: COMPLAINT, PREDICTED_CONFIDENCE_KEY: anger.score},
                            add_to_output=True)
            elif (current.get(INTENT_NAME_KEY) == COMPLAINT and not angry
                  and p_complaint < self._rules.complaint_min_confidence):
                # An unsure "complaint" with no anger signal: take the next likeliest intent
                # (a calm "it does not work" usually names its topic), else ask back.
                runner_up = next((i for i in ranking if i.get(INTENT_NAME_KEY) not in
                                  {COMPLAINT, FALLBACK_INTENT}), None)
                if runner_up and float(runner_up[PREDICTED_CONFIDENCE_KEY]) >= self._runner_up_threshold:
                    message.set(INTENT, dict(runner_up), add_to_output=True)
                else:
                    message.set(INTENT, {INTENT_NAME_KEY: FALLBACK_INTENT, PREDICTED_CONFIDENCE_KEY: p_complaint},
                                add_to_output=True)
        return messages

    def process_training_data(self, training_data):  # type: ignore[no-untyped-def]
        """Nothing to learn; training data passes through."""
        return training_data
