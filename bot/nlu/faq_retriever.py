"""NLU step: rank the FAQ entries of ``knowledge/`` for the message (no training).

The ranking is read from the knowledge folder at run time (``BOT_KNOWLEDGE_DIR``), through
the same search as ``bot kb search`` (:mod:`bot.knowledge.search`). An entry an editor adds
or imports is ranked within a second of being saved: nothing about entries is learnt at
training time, so training time and memory do not grow with the knowledge base.

The result is stored in the parse data as ``faq_ranking``: ``[{"faq_id", "title",
"category", "score", "matched"}, ...]``, best first. :mod:`bot.nlu.router` decides from it.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any, Dict, List, Text

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message

from bot.errors import KnowledgeError
from bot.knowledge.live import LiveKnowledge, shared_knowledge
from bot.nlu.tokenizer import TRUNCATED_AT
from bot.settings import get_settings

logger = logging.getLogger(__name__)
FAQ_RANKING = "faq_ranking"


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=False)
class FaqRetriever(GraphComponent):
    """Set ``faq_ranking`` on every message (see module docstring)."""

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        """``ranking_length``: how many entries are kept (clarify shows the first three)."""
        return {"ranking_length": 5}

    def __init__(self, knowledge: LiveKnowledge, ranking_length: int = 5) -> None:
        """Search ``knowledge`` and keep ``ranking_length`` entries per message."""
        self._knowledge = knowledge
        self._ranking_length = ranking_length

    @classmethod
    def create(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> GraphComponent:
        """Search the configured knowledge folder (``BOT_KNOWLEDGE_DIR``, default ``knowledge/``)."""
        return cls._configured(config)

    @classmethod
    def load(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
             execution_context: ExecutionContext, **kwargs: Any) -> GraphComponent:
        """The component of a loaded model, its search index built before Rasa takes messages.

        Built by the first message instead, the index (seconds) would stall Rasa's event loop
        and with it every conversation. Training uses :meth:`create` and builds nothing.
        """
        component = cls._configured(config)
        try:
            component._knowledge.prepare()
        except KnowledgeError:  # the first search raises it again, naming the file and entry
            logger.exception("FAQ search index not built at start")
        return component

    @classmethod
    def _configured(cls, config: Dict[Text, Any]) -> FaqRetriever:
        merged = {**cls.get_default_config(), **config}
        return cls(shared_knowledge(get_settings().knowledge_dir), int(merged["ranking_length"]))

    def process(self, messages: List[Message]) -> List[Message]:
        """Rank the entries for each message (the part the tokenizer read, if it was cut)."""
        for message in messages:
            text = (message.get(TEXT) or "")[: message.get(TRUNCATED_AT) or None]
            hits = self._knowledge.search(text, top=self._ranking_length) if text.strip() else []
            message.set(FAQ_RANKING, [asdict(h) for h in hits], add_to_output=True)
        return messages

    def process_training_data(self, training_data):  # type: ignore[no-untyped-def]
        """Nothing to learn; training data passes through."""
        return training_data
