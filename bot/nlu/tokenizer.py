"""Rasa tokenizer for Japanese: shared normalisation, then SudachiPy morphemes.

Each token carries two views of a morpheme, so that the two CountVectorsFeaturizers in
``config.yml`` see different things:

* ``token.lemma`` is Sudachi's normalised form (引越し -> 引っ越し): word features
  (``use_lemma: true``).
* ``token.text`` is the reading in hiragana (住所 -> じゅうしょ): character n-gram
  features (``use_lemma: false``), so "じゅうしょ", "ジュウショ" and "住所" share features
  and typos only break a few n-grams.

Offsets refer to the normalised text; the pipeline extracts no entities, so they are
never mapped back to the raw message.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Dict, List, Optional, Text

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.tokenizers.tokenizer import Token, Tokenizer
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message

from bot.nlu.rasa_fingerprint import HashedToken
from bot.settings import get_settings
from bot.text import sudachi
from bot.text.normalize import Normalizer
from bot.text.synonyms import load_normalizer

NORMALIZED_TEXT = "normalized_text"
TRUNCATED_AT = "input_truncated_at"


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.MESSAGE_TOKENIZER, is_trainable=False)
class JapaneseTokenizer(Tokenizer):
    """Normalise with :mod:`bot.text.normalize` and split with SudachiPy (mode C)."""

    @staticmethod
    def supported_languages() -> Optional[List[Text]]:
        """Only Japanese."""
        return ["ja"]

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        """Defaults; ``max_chars`` bounds what is classified (longer input is cut)."""
        return {
            "intent_tokenization_flag": False,
            "intent_split_symbol": "_",
            "token_pattern": None,
            "prefix_separator_symbol": None,
            "max_chars": 1000,
        }

    def __init__(self, config: Dict[Text, Any], normalizer: Normalizer) -> None:
        """Build the tokenizer.

        Args:
            config: Component config from ``config.yml``.
            normalizer: Shared normaliser with the editors' synonym table.
        """
        super().__init__(config)
        self._normalizer = normalizer
        self._max_chars = int(config["max_chars"])

    @classmethod
    def fingerprint_addon(cls, config: Dict[Text, Any]) -> Optional[str]:
        """Make Rasa's training cache notice edits of the synonym table and of bot/text.

        Rasa fingerprints a component by its class and config only; without this a
        `make train` after a synonym edit would reuse features built with the old table.
        """
        digest = hashlib.sha256()
        synonyms = get_settings().synonyms_file
        if synonyms.exists():
            digest.update(synonyms.read_bytes())
        for source in sorted(Path(sudachi.__file__).parent.glob("*.py")):
            digest.update(source.read_bytes())
        return digest.hexdigest()

    @classmethod
    def create(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> GraphComponent:
        """Create the component, loading the synonym table from the knowledge directory."""
        return cls(config, load_normalizer(get_settings().synonyms_file))

    def tokenize(self, message: Message, attribute: Text) -> List[Token]:
        """Normalise and tokenise one attribute of ``message``.

        For the user text the normalised string and whether it was cut are recorded
        on the message (``normalized_text``, ``input_truncated_at``) for `bot ask` and
        the actions.
        """
        raw = message.get(attribute) or ""
        truncated = len(raw) > self._max_chars
        text = self._normalizer(raw[: self._max_chars])
        if attribute == TEXT:
            message.set(NORMALIZED_TEXT, text, add_to_output=True)
            message.set(TRUNCATED_AT, self._max_chars if truncated else None, add_to_output=True)
        return [
            HashedToken(text=m.reading, start=m.start, end=m.end, lemma=m.normalized)
            for m in sudachi.tokenize(text)
        ]
