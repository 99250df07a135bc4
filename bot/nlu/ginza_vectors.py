"""Dense features from GiNZA's word vectors (the ``ja_ginza`` package), without its pipeline.

Running the full GiNZA spaCy pipeline (parser, NER, morphologizer) costs most of the stock
pipeline's latency; intent classification only needs word meaning. This featurizer looks up
the static vectors of ``ja_ginza`` for each token's Sudachi normalised form (the same
dictionary GiNZA itself uses), so paraphrases such as 転居 / 引っ越し land close together.
Sentence feature = mean of the token vectors (zeros when no token has a vector). The table
is read by :mod:`bot.text.vectors`, shared with the FAQ search.

Per-token (sequence) features are off by default: the intent classifier reads only the
sentence feature, and at 18,500 training examples the per-token rows held ~300 MB during
``rasa train`` and were fingerprinted by Rasa's training cache after every later component
(README, "Training cost"). A DIET-style classifier that reads token features needs
``sequence_features: true``.
"""

from __future__ import annotations

from typing import Any, Dict, List, Text

import numpy as np

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.featurizers.dense_featurizer.dense_featurizer import DenseFeaturizer
from rasa.nlu.tokenizers.tokenizer import Tokenizer
from rasa.nlu.constants import TOKENS_NAMES
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.text.vectors import load_static_vectors


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER, is_trainable=False)
class GinzaVectorFeaturizer(DenseFeaturizer, GraphComponent):
    """Mean GiNZA word vector of the message (see module docstring)."""

    @classmethod
    def required_components(cls) -> List[type]:
        """Needs tokens."""
        return [Tokenizer]

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        """``model``: the spaCy package whose vectors are used; ``sequence_features``: also add
        one vector per token (only classifiers that read token features need them)."""
        return {**DenseFeaturizer.get_default_config(), "model": "ja_ginza", "sequence_features": False}

    @classmethod
    def validate_config(cls, config: Dict[Text, Any]) -> None:
        """Nothing to validate beyond the package name."""

    def __init__(self, config: Dict[Text, Any], name: Text) -> None:
        """Load the vectors now, with the model, so the first customer does not wait."""
        super().__init__(name, {**self.get_default_config(), **config})
        vectors = load_static_vectors(self._config["model"])
        if vectors is None:
            raise FileNotFoundError(f"spaCy model package '{self._config['model']}' with word vectors is not "
                                    f"installed; fix: run `make setup` (it installs ja-ginza from requirements/lock.txt)")
        self._vectors = vectors
        self._zeros = np.zeros(vectors.width, dtype=np.float32)

    @classmethod
    def create(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> "GinzaVectorFeaturizer":
        """Create the component."""
        return cls(config, execution_context.node_name)

    def _vector(self, word: str) -> np.ndarray:
        vector = self._vectors.get(word)
        return self._zeros if vector is None else vector

    def _featurize(self, message: Message) -> None:
        tokens = message.get(TOKENS_NAMES[TEXT]) or []
        width = self._zeros.shape[0]
        rows = [self._vector(t.lemma) for t in tokens]
        known = [r for r in rows if r.any()]
        sentence = (np.mean(known, axis=0) if known else np.zeros(width, dtype=np.float32)).reshape(1, -1)
        sequence = None
        if self._config["sequence_features"]:
            sequence = np.vstack(rows) if rows else np.zeros((0, width), dtype=np.float32)
        self.add_features_to_message(sequence, sentence, TEXT, message)

    def process(self, messages: List[Message]) -> List[Message]:
        """Add dense features to each message with text."""
        for message in messages:
            if message.get(TEXT):
                self._featurize(message)
        return messages

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        """Add dense features to every training example."""
        self.process(training_data.training_examples)
        return training_data
