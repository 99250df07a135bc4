"""Anger score of a customer message from editable rules (``knowledge/triage.yml``).

The score combines rule weights and the classifier's ``complaint`` probability with a
noisy-or, ``1 - Π(1 - w)``: one strong phrase is enough, several weak signals add up,
and the score stays in [0, 1]. Phrases are matched on text folded to NFKC lower-case
hiragana, so ﾌｻﾞｹﾙﾅ, フザケルナ and ふざけるな all match the phrase ふざけるな.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jaconv
import yaml

from bot.errors import KnowledgeError
from bot.text.normalize import fold
from bot.text.romaji import romaji_to_hiragana

_HALFWIDTH_RUN = re.compile(r"[\uff66-\uff9f]{4,}")


def _match_form(text: str) -> str:
    """The form both phrases and messages are compared in."""
    return jaconv.kata2hira(romaji_to_hiragana(fold(text)))


# A phrase written in kanji also matches its reading in kana (ｶﾈｶｴｾ for 金返せ), but only
# from this many kana: shorter readings are other words too (詐欺 さぎ in うさぎ, 遺憾 いかん).
MIN_READING_CHARS = 4


def _match_forms(phrase: str) -> set[str]:
    """The forms a phrase is matched in: as written, and its kana reading when that is long
    enough to be unambiguous (:data:`MIN_READING_CHARS`)."""
    from bot.text.sudachi import tokenize

    forms = {_match_form(phrase)}
    if any("\u4e00" <= ch <= "\u9fff" for ch in phrase):
        reading = _match_form("".join(m.reading for m in tokenize(fold(phrase))))
        if len(reading) >= MIN_READING_CHARS:
            forms.add(reading)
    return forms


@dataclass(frozen=True)
class AngerRules:
    """Weights and threshold read from ``knowledge/triage.yml``.

    Attributes:
        threshold: Score at or above which a message is handed to a person.
        model_weight: Factor applied to the classifier's ``complaint`` probability.
        phrases: Folded phrase -> weight.
        patterns: Compiled regex (on NFKC text, punctuation not collapsed) -> weight.
        halfwidth_shouting: Weight of a run of 4+ half-width katakana.

    What an unsure complaint without angry words becomes (a calm problem report answered
    from the FAQ) is the router's decision: ``complaint_sure`` / ``problem_report`` in
    ``config.yml`` (:class:`bot.triage.routing.RoutingThresholds`).
    """

    threshold: float = 0.6
    model_weight: float = 1.0
    phrases: dict[str, float] = field(default_factory=dict)
    patterns: dict[re.Pattern[str], float] = field(default_factory=dict)
    halfwidth_shouting: float = 0.0


# At most this many letters besides the angry words: the message is a bare insult
# (「クソ」「ポンコツ！！」「さいてー」), which in a support chat is aimed at us.
BARE_REST = 3


@dataclass(frozen=True)
class AngerScore:
    """Result of :func:`score_anger`.

    Attributes:
        score: The combined anger score.
        signals: The phrases, patterns and model share that contributed.
        bare: The message is little more than its angry words (:data:`BARE_REST`).
    """

    score: float
    signals: list[str]
    bare: bool = False

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form stored in the NLU parse data."""
        return {"score": round(self.score, 4), "signals": self.signals, "bare": self.bare}


def _letters(text: str) -> int:
    """Letters and digits in ``text`` (what is left once punctuation, emoji and spaces go)."""
    return sum(1 for ch in text if unicodedata.category(ch)[0] in {"L", "N"})


def _weight(value: Any, path: Path, key: str) -> float:
    if not isinstance(value, (int, float)) or not 0 <= float(value) <= 1:
        raise KnowledgeError(path, key, f"重み {value!r} は 0〜1 の数値ではありません。",
                             "0 から 1 までの数（例: 0.7）を書いてください。")
    return float(value)


def load_anger_rules(path: Path) -> AngerRules:
    """Read the ``anger:`` section of a triage file (missing file: model only).

    Raises:
        KnowledgeError: Malformed weights, threshold or regular expressions.
    """
    if not path.exists():
        return AngerRules()
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise KnowledgeError(path, None, f"YAML として読めません: {exc}",
                             "インデントと記号（: や -）を確認してください。") from exc
    section = doc.get("anger") if isinstance(doc, dict) else None
    if not isinstance(section, dict):
        raise KnowledgeError(path, "anger", "`anger:` の設定がありません。", "ファイル先頭に `anger:` を書いてください。")
    phrases: dict[str, float] = {}
    for phrase, weight in (section.get("phrases") or {}).items():
        value = _weight(weight, path, f"phrases.{phrase}")
        for key in _match_forms(str(phrase)):
            phrases[key] = max(phrases.get(key, 0.0), value)
    patterns: dict[re.Pattern[str], float] = {}
    for pattern, weight in (section.get("patterns") or {}).items():
        try:
            compiled = re.compile(str(pattern))
        except re.error as exc:
            raise KnowledgeError(path, f"patterns.{pattern}", f"正規表現として読めません: {exc}",
                                 "記号の前に \\ が必要か確認してください。") from exc
        patterns[compiled] = _weight(weight, path, f"patterns.{pattern}")
    return AngerRules(
        threshold=_weight(section.get("threshold", 0.6), path, "threshold"),
        model_weight=_weight(section.get("model_weight", 1.0), path, "model_weight"),
        phrases=phrases,
        patterns=patterns,
        halfwidth_shouting=_weight(section.get("halfwidth_shouting", 0.0), path, "halfwidth_shouting"),
    )


def score_anger(raw_text: str, complaint_probability: float, rules: AngerRules) -> AngerScore:
    """Anger score of one message.

    Args:
        raw_text: The message as the customer typed it (widths and "！！！" intact).
        complaint_probability: The classifier's probability for ``complaint`` (0 if unknown).
        rules: Editable weights.

    Returns:
        The score and the signals that contributed (for agents and for tuning).
    """
    keep = 1.0
    signals: list[str] = []
    covered = 0  # letters inside the angry words found
    folded = _match_form(raw_text)
    for phrase, weight in rules.phrases.items():
        if phrase in folded:
            keep *= 1 - weight
            signals.append(phrase)
            covered += _letters(phrase)
    nfkc = unicodedata.normalize("NFKC", raw_text)
    for pattern, weight in rules.patterns.items():
        found = pattern.search(nfkc)
        if found:
            keep *= 1 - weight
            signals.append(f"/{pattern.pattern}/")
            covered += _letters(found.group())
    bare = covered > 0 and _letters(folded) - covered <= BARE_REST
    if rules.halfwidth_shouting and _HALFWIDTH_RUN.search(raw_text):
        keep *= 1 - rules.halfwidth_shouting
        signals.append("半角カナの連続")
    model = min(1.0, max(0.0, complaint_probability * rules.model_weight))
    if model > 0:
        keep *= 1 - model
        signals.append(f"model:{complaint_probability:.2f}")
    return AngerScore(score=1 - keep, signals=signals, bare=bare)
