"""Typed view of the FAQ knowledge base (``knowledge/faq/*.yml``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

FAQ_INTENT_PREFIX = "faq_"


def intent_for(faq_id: str) -> str:
    """Label of an FAQ answer in transcripts and analytics (``change-address`` -> ``faq_change_address``).

    The classifier has one intent, ``faq``, for every FAQ question; the entry is chosen
    by the FAQ search. This label keeps the entry visible to agents and editors.

    Args:
        faq_id: Stable FAQ id (lower-case ASCII letters, digits, hyphens).

    Returns:
        The intent name.
    """
    return FAQ_INTENT_PREFIX + faq_id.replace("-", "_")


@dataclass(frozen=True)
class Link:
    """A link shown under an answer (only http(s) URLs are accepted by the loader)."""

    title: str
    url: str


@dataclass(frozen=True)
class FaqEntry:
    """One FAQ: what customers ask and what the bot answers.

    Attributes:
        id: Stable id; never reuse or rename (analytics and links refer to it).
        category: Category shown to customers and agents (e.g. 登録情報の変更).
        title: Short title used as a button label in clarifying replies.
        questions: Customer phrasings; the FAQ search matches them, and they train the ``faq`` intent.
        answer: The answer text, read at run time (editing it needs no retraining).
        links: Optional links shown under the answer.
        related: Ids of related entries.
        source: File the entry was loaded from.
        phrasings: Customers' own wordings of this question (``knowledge/phrasings.yml``,
            :mod:`bot.knowledge.phrasings`): the FAQ search matches them like ``questions``;
            they are not training data of the classifier.
    """

    id: str
    category: str
    title: str
    questions: tuple[str, ...]
    answer: str
    links: tuple[Link, ...] = ()
    related: tuple[str, ...] = ()
    source: Path = field(default=Path("."), compare=False)
    phrasings: tuple[str, ...] = ()

    @property
    def intent(self) -> str:
        """This entry's label in transcripts and analytics (see :func:`intent_for`)."""
        return intent_for(self.id)


@dataclass(frozen=True)
class KnowledgeBase:
    """All FAQ entries, in file order, with lookups by id and by intent."""

    entries: tuple[FaqEntry, ...]
    # What the chat calls itself in the greeting: 「<service.name>の<service.chat_name>」 from the
    # folder's own facts.yml; a folder without one (a city's imported sheet) must not borrow
    # the demo service's name, so it is only the chat name.
    assistant_name: str = "AIチャット"

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_id", {e.id: e for e in self.entries})
        object.__setattr__(self, "_by_intent", {e.intent: e for e in self.entries})

    def get(self, faq_id: str) -> FaqEntry | None:
        """The entry with this id, or ``None``."""
        return self._by_id.get(faq_id)  # type: ignore[attr-defined]

    def by_intent(self, intent: str | None) -> FaqEntry | None:
        """The entry labelled ``intent`` (:func:`intent_for`), or ``None`` for other intents."""
        return self._by_intent.get(intent or "")  # type: ignore[attr-defined]

    @property
    def ids(self) -> list[str]:
        """All ids in file order."""
        return [e.id for e in self.entries]

    @property
    def categories(self) -> list[str]:
        """Every category once, in file order (agents' skills are chosen from these)."""
        return list(dict.fromkeys(e.category for e in self.entries))
