"""Rasa's LogisticRegressionClassifier, safe for messages that yield no features.

The stock component hands scikit-learn a 1x0 matrix when a message has no tokens
(empty text, only spaces, only an HTML tag) and the whole request fails with a
stack trace. Here such messages get no intent (confidence 0), which the
FallbackClassifier after it turns into a clarifying reply.
"""

from __future__ import annotations

from typing import List

from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.nlu.classifiers.logistic_regression_classifier import LogisticRegressionClassifier
from rasa.shared.nlu.constants import INTENT, INTENT_NAME_KEY, INTENT_RANKING_KEY, PREDICTED_CONFIDENCE_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message


def _has_features(message: Message) -> bool:
    sparse = message.get_sparse_features(attribute=TEXT)[1]
    dense = message.get_dense_features(attribute=TEXT)[1]
    return sparse is not None or dense is not None


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=True)
class SafeLogisticRegressionClassifier(LogisticRegressionClassifier):
    """Logistic regression over the sparse features; featureless input -> no intent."""

    def process(self, messages: List[Message]) -> List[Message]:
        """Classify messages with features; mark the others as unknown."""
        with_features = [m for m in messages if _has_features(m)]
        if with_features:
            super().process(with_features)
        for message in messages:
            if not _has_features(message):
                message.set(INTENT, {INTENT_NAME_KEY: None, PREDICTED_CONFIDENCE_KEY: 0.0}, add_to_output=True)
                message.set(INTENT_RANKING_KEY, [], add_to_output=True)
        return messages
