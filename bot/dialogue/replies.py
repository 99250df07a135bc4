"""What the bot says on each route, built in one place for the actions and `bot ask`."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable, Sequence

from bot import wording
from bot.dialogue.routes import Route
from bot.knowledge.model import FaqEntry, KnowledgeBase
from bot.triage.hours import StaffedHours, japan_now

# The texts themselves live in bot/wording.py (one place for every customer-facing sentence).
TRUNCATION_NOTE = wording.TRUNCATION_NOTE
CLARIFY_TEXT = wording.CLARIFY_TEXT
NO_WORDS_TEXT = wording.NO_WORDS_TEXT
HUMAN_BUTTON = {"title": wording.HUMAN_BUTTON_TITLE, "payload": "/request_human"}
# Offered when the customer gives up: the handoff is filed with reason `unresolved`.
HUMAN_AFTER_MISS_BUTTON = {"title": wording.HUMAN_AFTER_MISS_BUTTON_TITLE, "payload": "/request_human_unresolved"}
PREAMBLE_TEXT = wording.PREAMBLE_TEXT
PREAMBLE_TOPICS = 4
OFFER_HUMAN_TEXT = wording.OFFER_HUMAN_TEXT
OFFER_HUMAN_OFFLINE_TEXT = wording.OFFER_HUMAN_OFFLINE_TEXT
LANGUAGE_TEXT = wording.LANGUAGE_TEXT
LANGUAGE_TEXT_JA = wording.LANGUAGE_TEXT_JA
HANDOFF_TEXT = wording.HANDOFF_TEXT
SUGGESTION_COUNT = 3


@dataclass(frozen=True)
class Reply:
    """One bot message.

    Attributes:
        text: Japanese text shown to the customer.
        buttons: Quick replies (``title`` shown, ``payload`` sent back).
        custom: Machine-readable payload: route, FAQ id, handoff reason.
    """

    text: str
    buttons: list[dict[str, str]] = field(default_factory=list)
    custom: dict[str, Any] = field(default_factory=dict)


def with_truncation_note(text: str, truncated: bool, limit: int) -> str:
    """Prefix the polite "I only read the first N characters" note when input was cut."""
    return f"{TRUNCATION_NOTE.format(limit=limit)}\n{text}" if truncated else text


def answer_reply(entry: FaqEntry, upset: bool = False) -> Reply:
    """The knowledge-base answer for ``entry``, each link once on its own 「▶ …はこちら」 line.

    Args:
        entry: The FAQ entry that answers.
        upset: The customer is upset or reports a problem: an apology comes first.
    """
    lines = ([wording.UPSET_ANSWER_OPENING] if upset else []) + [entry.answer]
    lines += [wording.LINK_LINE.format(title=link.title, url=link.url) for link in entry.links]
    return Reply(
        text="\n".join(lines),
        custom={"route": Route.ANSWER.value, "faq_id": entry.id, "category": entry.category},
    )


def suggestions_from_ids(ids: Iterable[str | None], kb: KnowledgeBase, count: int = SUGGESTION_COUNT,
                         fill: bool = True) -> list[FaqEntry]:
    """The first ``count`` distinct entries of ``ids`` that exist in ``kb``.

    Args:
        ids: FAQ ids, likeliest first (e.g. the FAQ search's ranking).
        kb: The knowledge base.
        count: How many entries at most.
        fill: When fewer are found, fill up with the first entry of each category, so a
            clarifying reply is never a dead end.
    """
    picked: list[FaqEntry] = []
    for faq_id in ids:
        entry = kb.get(faq_id or "")
        if entry and entry not in picked:
            picked.append(entry)
        if len(picked) == count:
            return picked
    if fill:
        for entry in main_topics(kb, count):
            if len(picked) == count:
                break
            if entry not in picked:
                picked.append(entry)
    return picked


def main_topics(kb: KnowledgeBase, count: int) -> list[FaqEntry]:
    """The first entry of each category, then the following ones, up to ``count``."""
    firsts: dict[str, FaqEntry] = {}
    for entry in kb.entries:
        firsts.setdefault(entry.category, entry)
    ordered = list(firsts.values()) + [e for e in kb.entries if e not in firsts.values()]
    return ordered[:count]


def faq_button(entry: FaqEntry) -> dict[str, str]:
    """A quick reply that answers ``entry`` (the FAQ intent with the entry's id)."""
    return {"title": entry.title, "payload": "/faq" + json.dumps({"faq_id": entry.id})}


def clarify_reply(suggestions: Sequence[FaqEntry], no_words: bool = False) -> Reply:
    """Ask back, offering FAQ titles as buttons (payload answers that FAQ) and a person."""
    buttons = [faq_button(e) for e in suggestions]
    return Reply(
        text=NO_WORDS_TEXT if no_words else CLARIFY_TEXT,
        buttons=buttons + [HUMAN_BUTTON],
        custom={"route": Route.CLARIFY.value, "suggestions": [e.id for e in suggestions]},
    )


NOT_HELPFUL_TEXT = wording.NOT_HELPFUL_TEXT


def not_helpful_reply(suggestions: Sequence[FaqEntry]) -> Reply:
    """After 「いいえ」 under an answer: other likely FAQs and a person."""
    reply = clarify_reply(suggestions)
    return Reply(NOT_HELPFUL_TEXT, reply.buttons, reply.custom)


def handoff_reply(reason: str) -> Reply:
    """The message shown when a person takes over; worded for the reason."""
    return Reply(
        text=HANDOFF_TEXT.get(reason, HANDOFF_TEXT["human_request"]),
        custom={"route": Route.HANDOFF.value, "handoff_reason": reason},
    )


def out_of_hours_text(reason: str, next_opening: datetime | None) -> str:
    """The whole handoff reply when no person is on duty: nobody now, the form, then a call-back.

    It replaces the staffed reply instead of being appended to it, so it never says
    「おつなぎします」 or 「少々お待ちください」 and then takes it back.
    """
    when = wording.format_time(next_opening) if next_opening else wording.NEXT_OPENING_UNKNOWN
    opening = wording.OFFLINE_HANDOFF_OPENING.get(reason, wording.OFFLINE_HANDOFF_OPENING["human_request"])
    return wording.OFFLINE_HANDOFF_TEXT.format(opening=opening, hours=wording.fact("hours.staffed", default="受付時間"),
                                              next_opening=when)


def staffed_handoff_reply(reason: str, hours: StaffedHours | None, now: datetime | None = None) -> Reply:
    """The handoff reply; outside staffed hours (at ``now``) the out-of-hours reply instead."""
    reply = handoff_reply(reason)
    if hours is None:
        return reply
    now = now or japan_now()
    if hours.is_open(now):
        return reply
    next_opening = hours.next_opening(now)
    return Reply(out_of_hours_text(reason, next_opening), reply.buttons,
                 {**reply.custom, "staffed": False,
                  "next_opening": next_opening.isoformat() if next_opening else None})


def greet_reply(kb: KnowledgeBase) -> Reply:
    """The greeting: who the chat is, and the main topics as buttons."""
    return _with_topics(wording.GREET_TEXT.format(assistant=kb.assistant_name), kb, Route.SMALLTALK)


def iamabot_reply(kb: KnowledgeBase) -> Reply:
    """「AIですか」: yes, which chat this is, and how to reach a person."""
    return Reply(wording.IAMABOT_TEXT.format(assistant=kb.assistant_name), custom={"route": Route.SMALLTALK.value})


def _with_topics(text: str, kb: KnowledgeBase, route: Route) -> Reply:
    """``text`` with the knowledge base's main topics as buttons."""
    topics = main_topics(kb, PREAMBLE_TOPICS)
    return Reply(text, [faq_button(e) for e in topics], {"route": route.value, "suggestions": [e.id for e in topics]})


def preamble_reply(kb: KnowledgeBase) -> Reply:
    """「質問です」: please go ahead, with the main topics as buttons."""
    return _with_topics(PREAMBLE_TEXT, kb, Route.CLARIFY)


def out_of_scope_reply(kb: KnowledgeBase) -> Reply:
    """Outside what the chat answers: say so, with the knowledge base's main topics and a person."""
    topics = main_topics(kb, PREAMBLE_TOPICS)
    return Reply(wording.OUT_OF_SCOPE_TEXT, [faq_button(e) for e in topics] + [HUMAN_BUTTON],
                 {"route": Route.OUT_OF_SCOPE.value, "suggestions": [e.id for e in topics]})


def offer_human_reply(hours: StaffedHours | None, now: datetime | None = None) -> Reply:
    """The customer gives up: apologise and offer a person (a contact form outside hours)."""
    now = now or japan_now()
    staffed = hours is None or hours.is_open(now)
    return Reply(OFFER_HUMAN_TEXT if staffed else OFFER_HUMAN_OFFLINE_TEXT, [HUMAN_AFTER_MISS_BUTTON],
                 {"route": Route.OFFER_HUMAN.value, "staffed": staffed})


def language_reply(language: str, contact: FaqEntry | None) -> Reply:
    """A message not in Japanese: say so in that language and in Japanese; contact page and a person."""
    lines = [LANGUAGE_TEXT.get(language, LANGUAGE_TEXT["en"]), LANGUAGE_TEXT_JA]
    if contact is not None:
        lines += [wording.LINK_LINE.format(title=link.title, url=link.url) for link in contact.links]
    return Reply("\n".join(lines), [HUMAN_BUTTON], {"route": Route.OFFER_HUMAN.value, "language": language})
