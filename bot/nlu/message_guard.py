"""Last NLU step: messages without any words (empty, only spaces, emoji or symbols, or a
link alone).

Such messages cannot be classified; whatever the classifier guessed is replaced by
``nlu_fallback`` so the bot asks the customer to type the question, and the reason is
recorded as ``input_issue`` for the clarifying action.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any, Dict, List, Text

from rasa.shared.constants import DEFAULT_NLU_FALLBACK_INTENT_NAME
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import INTENT, INTENT_NAME_KEY, PREDICTED_CONFIDENCE_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message

from bot.dialogue.decisions import NO_WORDS
from bot.nlu.tokenizer import NORMALIZED_TEXT

INPUT_ISSUE = "input_issue"
# A pasted link says where, not what: 「https://…/mypage」 alone is asked back like a message
# without words (the words of a path are not the customer's question).
URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
FALLBACK_INTENT = DEFAULT_NLU_FALLBACK_INTENT_NAME


def has_words(text: str) -> bool:
    """True when ``text`` contains at least one letter or digit of a script customers write in.

    Kana, kanji, Hangul and Latin letters and digits count. Greek and Cyrillic letters and
    modifier letters (ﾟ, ー) do not: in a Japanese chat they are the faces of kaomoji
    (ω, Д, ﾟ∀ﾟ), not words.
    """
    for ch in text:
        category = unicodedata.category(ch)
        if category == "Lm" or category[0] not in {"L", "N"}:
            continue
        name = unicodedata.name(ch, "")
        if not name.startswith(("GREEK", "CYRILLIC")):
            return True
    return False


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=False)
class MessageGuard(GraphComponent):
    """Route word-less messages to ``nlu_fallback`` (see module docstring)."""

    @classmethod
    def create(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> GraphComponent:
        """Create the component (it has no state)."""
        return cls()

    def process(self, messages: List[Message]) -> List[Message]:
        """Mark and re-route messages that carry no words."""
        for message in messages:
            text = message.get(NORMALIZED_TEXT)
            if text is None:
                text = message.get(TEXT) or ""
            if has_words(URL.sub(" ", text)):
                continue
            message.set(INPUT_ISSUE, NO_WORDS, add_to_output=True)
            message.set(INTENT, {INTENT_NAME_KEY: FALLBACK_INTENT, PREDICTED_CONFIDENCE_KEY: 1.0},
                        add_to_output=True)
        return messages

    def process_training_data(self, training_data):  # type: ignore[no-untyped-def]
        """Nothing to learn; training data passes through."""
        return training_data
