"""NLU step after classification: score anger (``knowledge/triage.yml`` rules + classifier).

The score is stored in the parse data as ``anger`` (``score``: rules and the classifier's
``complaint`` probability combined; ``rule_score``: the editors' phrases and patterns
alone; ``threshold``; ``signals``) for agents, for tuning and for :mod:`bot.nlu.router`,
which decides what anger changes: an angry message goes to a person even when it names
an FAQ topic (「二回も住所変更したのに反映されてない、ふざけるな」), unless the classifier is
sure it is everyday text about something else (「電車が遅れて最悪」).
"""

from __future__ import annotations

from typing import Any, Dict, List, Text

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import INTENT_NAME_KEY, INTENT_RANKING_KEY, PREDICTED_CONFIDENCE_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message

from bot.nlu.tokenizer import TRUNCATED_AT
from bot.settings import get_settings
from bot.triage.anger import AngerRules, load_anger_rules, score_anger

COMPLAINT = "complaint"
ANGER = "anger"


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=False)
class AngerScorer(GraphComponent):
    """Store the anger score of every message (see module docstring)."""

    def __init__(self, rules: AngerRules) -> None:
        """Use ``rules`` (weights and threshold from knowledge/triage.yml)."""
        self._rules = rules

    @classmethod
    def create(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> GraphComponent:
        """Create the component with the editors' rules from ``knowledge/triage.yml``."""
        return cls(load_anger_rules(get_settings().triage_file))

    def process(self, messages: List[Message]) -> List[Message]:
        """Score every message."""
        for message in messages:
            ranking = message.get(INTENT_RANKING_KEY) or []
            p_complaint = next((float(i[PREDICTED_CONFIDENCE_KEY]) for i in ranking
                                if i.get(INTENT_NAME_KEY) == COMPLAINT), 0.0)
            # Read anger in the same part of the message the tokenizer classified.
            text = (message.get(TEXT) or "")[: message.get(TRUNCATED_AT) or None]
            combined = score_anger(text, p_complaint, self._rules)
            rules_only = score_anger(text, 0.0, self._rules)
            message.set(ANGER, {**combined.as_dict(), "rule_score": round(rules_only.score, 4),
                                "threshold": self._rules.threshold}, add_to_output=True)
        return messages

    def process_training_data(self, training_data):  # type: ignore[no-untyped-def]
        """Nothing to learn; training data passes through."""
        return training_data
