"""NLU step: the final intent, from the classifier, the FAQ ranking and the language.

* A message in English, Chinese or Korean gets ``non_japanese`` (with ``language``), so it
  is never answered with a Japanese FAQ picked at random (:mod:`bot.text.language`).
* Otherwise :func:`bot.triage.routing.route` decides: ``faq`` with ``faq_id`` (answer),
  ``nlu_fallback`` (clarify with the top entries), ``out_of_scope``, or the classifier's
  own intent (small talk, person, complaint, conversation moves).

The thresholds are in ``config.yml`` (chosen on the tuning sets, see
``benchmarks/routing_thresholds.py``).
"""

from __future__ import annotations

from typing import Any, Dict, List, Text

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

from bot.knowledge.search import SearchHit
from bot.nlu.faq_retriever import FAQ_RANKING
from bot.text.language import JAPANESE, detect_language
from bot.text.asking import asks_something
from bot.text.unfinished import is_unfinished
from bot.nlu.anger import ANGER
from bot.triage.routing import NON_JAPANESE_INTENT, Anger, RoutingThresholds, route

FAQ_ID = "faq_id"
LANGUAGE = "language"
ROUTING = "routing"


def classifier_ranking(ranking: Any) -> list[tuple[str, float]]:
    """The classifier's ``intent_ranking`` as (intent, confidence) pairs."""
    return [(str(i[INTENT_NAME_KEY]), float(i.get(PREDICTED_CONFIDENCE_KEY) or 0.0))
            for i in ranking or [] if i.get(INTENT_NAME_KEY)]


def anger_of(data: Any) -> Anger:
    """The anger score stored by :class:`bot.nlu.anger.AngerScorer` (none: not angry)."""
    if not data:
        return Anger()
    return Anger(float(data.get("score") or 0.0), float(data.get("rule_score") or 0.0),
                 float(data.get("threshold") or 0.6), bool(data.get("bare")))


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=False)
class Router(GraphComponent):
    """Set the final ``intent`` (and ``faq_id``) of every message (see module docstring)."""

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        """The thresholds of :class:`bot.triage.routing.RoutingThresholds`."""
        defaults = RoutingThresholds()
        return {name: getattr(defaults, name) for name in RoutingThresholds.__dataclass_fields__}

    def __init__(self, thresholds: RoutingThresholds) -> None:
        """Route with ``thresholds``."""
        self._thresholds = thresholds

    @classmethod
    def create(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> GraphComponent:
        """Read the thresholds from the component's configuration."""
        merged = {**cls.get_default_config(), **config}
        return cls(RoutingThresholds(**{k: float(merged[k]) for k in RoutingThresholds.__dataclass_fields__}))

    def process(self, messages: List[Message]) -> List[Message]:
        """Decide each message's intent."""
        for message in messages:
            language = detect_language(message.get(TEXT) or "")
            message.set(LANGUAGE, language, add_to_output=True)
            if language != JAPANESE:
                message.set(INTENT, {INTENT_NAME_KEY: NON_JAPANESE_INTENT, PREDICTED_CONFIDENCE_KEY: 1.0},
                            add_to_output=True)
                message.set(ROUTING, "language", add_to_output=True)
                continue
            routed = route(classifier_ranking(message.get(INTENT_RANKING_KEY)),
                           [SearchHit(**h) for h in message.get(FAQ_RANKING) or []],
                           self._thresholds, anger_of(message.get(ANGER)),
                           unfinished=is_unfinished(message.get(TEXT) or ""),
                           asking=asks_something(message.get(TEXT) or ""))
            message.set(INTENT, {INTENT_NAME_KEY: routed.name, PREDICTED_CONFIDENCE_KEY: routed.confidence},
                        add_to_output=True)
            message.set(FAQ_ID, routed.faq_id, add_to_output=True)
            message.set(ROUTING, routed.reason, add_to_output=True)
            if routed.handoff_reason:
                message.set("handoff_reason", routed.handoff_reason, add_to_output=True)
        return messages

    def process_training_data(self, training_data):  # type: ignore[no-untyped-def]
        """Nothing to learn; training data passes through."""
        return training_data
