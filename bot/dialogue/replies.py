"""What the bot says on each route, built in one place for the actions and `bot ask`."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable, Sequence

from bot.dialogue.routes import Route
from bot.knowledge.model import FaqEntry, KnowledgeBase
from bot.triage.hours import JST, StaffedHours

TRUNCATION_NOTE = "（メッセージが長かったため、最初の{limit}文字までを読んでお答えしています。）"
CLARIFY_TEXT = "申し訳ありません、ご質問の内容を確かめさせてください。次のうち近いものはありますか？"
NO_WORDS_TEXT = "メッセージが空か、記号だけのようです。ご質問を文章で入力してください。よくあるご質問はこちらです。"
HUMAN_BUTTON = {"title": "担当者と話したい", "payload": "/request_human"}
HANDOFF_TEXT = {
    "human_request": "承知しました。担当者におつなぎします。これまでのやり取りは担当者に引き継ぎますので、同じ内容を繰り返していただく必要はありません。",
    "complaint": "ご不便とご不快な思いをおかけし、誠に申し訳ございません。担当者が内容を確認し、対応いたします。これまでのやり取りはそのまま引き継ぎます。",
    "anger": "ご不快な思いをおかけし、誠に申し訳ございません。担当者が直接対応いたしますので、少々お待ちください。これまでのやり取りはそのまま引き継ぎます。",
    "unresolved": "お役に立てず申し訳ありません。担当者におつなぎします。これまでのやり取りは担当者に引き継ぎます。",
}
SUGGESTION_COUNT = 3
# The hours themselves live in knowledge/hours.yml; only the next opening is named here.
OUT_OF_HOURS_TEXT = "なお、ただいま担当者の受付時間外です。{next_opening}以降、順番にご連絡いたします。"
WEEKDAYS_JA = "月火水木金土日"


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


def answer_reply(entry: FaqEntry) -> Reply:
    """The knowledge-base answer for ``entry``, links appended as plain lines."""
    lines = [entry.answer]
    lines += [f"▶ {link.title}: {link.url}" for link in entry.links]
    return Reply(
        text="\n".join(lines),
        custom={"route": Route.ANSWER.value, "faq_id": entry.id, "category": entry.category},
    )


def suggestions_from_ranking(ranking: Iterable[dict[str, Any]], kb: KnowledgeBase,
                             count: int = SUGGESTION_COUNT) -> list[FaqEntry]:
    """The ``count`` likeliest FAQ entries in an NLU intent ranking.

    When the ranking names fewer FAQs (e.g. it is empty), the first entries of the
    knowledge base fill the list, so a clarifying reply is never a dead end.
    """
    picked: list[FaqEntry] = []
    for item in ranking:
        entry = kb.by_intent(item.get("name"))
        if entry and entry not in picked:
            picked.append(entry)
        if len(picked) == count:
            return picked
    for entry in kb.entries:
        if len(picked) == count:
            break
        if entry not in picked:
            picked.append(entry)
    return picked


def clarify_reply(suggestions: Sequence[FaqEntry], no_words: bool = False) -> Reply:
    """Ask back, offering FAQ titles as buttons (payload triggers the FAQ intent) and a person."""
    buttons = [{"title": e.title, "payload": f"/{e.intent}"} for e in suggestions]
    return Reply(
        text=NO_WORDS_TEXT if no_words else CLARIFY_TEXT,
        buttons=buttons + [HUMAN_BUTTON],
        custom={"route": Route.CLARIFY.value, "suggestions": [e.id for e in suggestions]},
    )


NOT_HELPFUL_TEXT = ("お役に立てず申し訳ありません。次のご案内が近いかもしれません。"
                    "解決しない場合は「担当者と話したい」を押してください。")


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


def out_of_hours_note(next_opening: datetime | None) -> str:
    """Sentence added to a handoff reply when no person is on duty."""
    if next_opening is None:
        return OUT_OF_HOURS_TEXT.format(next_opening="受付再開")
    when = f"{next_opening.month}月{next_opening.day}日（{WEEKDAYS_JA[next_opening.weekday()]}）{next_opening:%H:%M}"
    return OUT_OF_HOURS_TEXT.format(next_opening=when)


def staffed_handoff_reply(reason: str, hours: StaffedHours | None, now: datetime | None = None) -> Reply:
    """The handoff reply, with the out-of-hours note when no person is on duty at ``now``."""
    reply = handoff_reply(reason)
    if hours is None:
        return reply
    now = now or datetime.now(JST)
    if hours.is_open(now):
        return reply
    next_opening = hours.next_opening(now)
    return Reply(f"{reply.text}\n{out_of_hours_note(next_opening)}", reply.buttons,
                 {**reply.custom, "staffed": False,
                  "next_opening": next_opening.isoformat() if next_opening else None})
