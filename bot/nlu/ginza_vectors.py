"""Dense features from GiNZA's word vectors (the ``ja_ginza`` package), without its pipeline.

Running the full GiNZA spaCy pipeline (parser, NER, morphologizer) costs most of the stock
pipeline's latency; intent classification only needs word meaning. This featurizer looks up
the static vectors of ``ja_ginza`` for each token's Sudachi normalised form (the same
dictionary GiNZA itself uses), so paraphrases such as 転居 / 引っ越し land close together.
Sentence feature = mean of the token vectors (zeros when no token has a vector).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Dict, List, Text

import numpy as np
from spacy.strings import hash_string

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


@lru_cache(maxsize=2)
def load_vectors(package: str) -> Any:
    """The static vector table of an installed spaCy model package, loaded once per process.

    Only ``vocab/vectors`` and ``vocab/key2row`` are read (~1.4 s, ~220 MB): words are
    looked up by spaCy's string hash, so neither the 17 MB string table nor the
    pipeline (and its second Sudachi dictionary) is loaded.

    Raises:
        FileNotFoundError: The package is not installed or has no vectors; names the fix.
    """
    import spacy.util
    from spacy.vectors import Vectors

    try:
        package_dir = spacy.util.get_package_path(package)
    except (ImportError, ModuleNotFoundError) as exc:
        raise FileNotFoundError(f"spaCy model package '{package}' is not installed; fix: run `make setup` "
                                f"(it installs ja-ginza from requirements/lock.txt)") from exc
    found = sorted(package_dir.glob("*/vocab/vectors"))
    if not found:
        raise FileNotFoundError(f"{package_dir}: no vocab/vectors in package '{package}'; fix: use a model "
                                f"package with word vectors (config.yml, GinzaVectorFeaturizer.model)")
    return Vectors().from_disk(found[0].parent)


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER, is_trainable=False)
class GinzaVectorFeaturizer(DenseFeaturizer, GraphComponent):
    """Mean GiNZA word vector of the message (see module docstring)."""

    @classmethod
    def required_components(cls) -> List[type]:
        """Needs tokens."""
        return [Tokenizer]

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        """``model``: the spaCy package whose vectors are used."""
        return {**DenseFeaturizer.get_default_config(), "model": "ja_ginza"}

    @classmethod
    def validate_config(cls, config: Dict[Text, Any]) -> None:
        """Nothing to validate beyond the package name."""

    def __init__(self, config: Dict[Text, Any], name: Text) -> None:
        """Load the vectors now, with the model, so the first customer does not wait."""
        super().__init__(name, {**self.get_default_config(), **config})
        self._vectors = load_vectors(self._config["model"])
        self._zeros = np.zeros(self._vectors.shape[1], dtype=np.float32)

    @classmethod
    def create(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> "GinzaVectorFeaturizer":
        """Create the component."""
        return cls(config, execution_context.node_name)

    def _vector(self, word: str) -> np.ndarray:
        key = hash_string(word)
        return self._vectors[key] if key in self._vectors else self._zeros

    def _featurize(self, message: Message) -> None:
        tokens = message.get(TOKENS_NAMES[TEXT]) or []
        width = self._zeros.shape[0]
        rows = [self._vector(t.lemma) for t in tokens]
        sequence = np.vstack(rows) if rows else np.zeros((0, width), dtype=np.float32)
        known = [r for r in rows if r.any()]
        sentence = (np.mean(known, axis=0) if known else np.zeros(width, dtype=np.float32)).reshape(1, -1)
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
