"""What the bot says on each route, built in one place for the actions and `bot ask`."""

from __future__ import annotations

import json
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
# Offered when the customer gives up: the handoff is filed with reason `unresolved`.
HUMAN_AFTER_MISS_BUTTON = {"title": "担当者と話す", "payload": "/request_human_unresolved"}
PREAMBLE_TEXT = "はい、どうぞ。ご質問をお書きください。よくあるご質問はこちらです。"
PREAMBLE_TOPICS = 4
OFFER_HUMAN_TEXT = ("お役に立てず申し訳ありません。担当者がご相談をお受けします。"
                    "ご希望でしたら「担当者と話す」を押してください。別のご質問もお書きいただけます。")
OFFER_HUMAN_OFFLINE_TEXT = ("お役に立てず申し訳ありません。ただいま担当者の受付時間外のため、"
                            "「担当者と話す」を押してご連絡先をお知らせいただければ、受付時間内に担当者からご連絡いたします。")
# Non-Japanese messages: one sentence in the customer's language, then the same in Japanese.
LANGUAGE_TEXT = {
    "en": "Sorry, this chat can only answer questions in Japanese. For help in English, please use "
          "our contact page, or press the button to talk to a person.",
    "zh": "抱歉，本聊天仅支持日语。如需帮助，请访问我们的联系页面，或点击按钮与工作人员联系。",
    "ko": "죄송합니다. 이 채팅은 일본어로만 답변할 수 있습니다. 문의 페이지를 이용하시거나 버튼을 눌러 담당자와 상담해 주세요.",
}
LANGUAGE_TEXT_JA = ("申し訳ありません。このチャットは日本語でのご質問にのみお答えできます。"
                    "お問い合わせページをご利用いただくか、ボタンから担当者にご相談ください。")
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


def preamble_reply(kb: KnowledgeBase) -> Reply:
    """「質問です」: please go ahead, with the main topics as buttons."""
    topics = main_topics(kb, PREAMBLE_TOPICS)
    return Reply(PREAMBLE_TEXT, [faq_button(e) for e in topics],
                 {"route": Route.CLARIFY.value, "suggestions": [e.id for e in topics]})


def offer_human_reply(hours: StaffedHours | None, now: datetime | None = None) -> Reply:
    """The customer gives up: apologise and offer a person (a contact form outside hours)."""
    now = now or datetime.now(JST)
    staffed = hours is None or hours.is_open(now)
    return Reply(OFFER_HUMAN_TEXT if staffed else OFFER_HUMAN_OFFLINE_TEXT, [HUMAN_AFTER_MISS_BUTTON],
                 {"route": Route.OFFER_HUMAN.value, "staffed": staffed})


def language_reply(language: str, contact: FaqEntry | None) -> Reply:
    """A message not in Japanese: say so in that language and in Japanese; contact page and a person."""
    lines = [LANGUAGE_TEXT.get(language, LANGUAGE_TEXT["en"]), LANGUAGE_TEXT_JA]
    if contact is not None:
        lines += [f"▶ {link.title}: {link.url}" for link in contact.links]
    return Reply("\n".join(lines), [HUMAN_BUTTON], {"route": Route.OFFER_HUMAN.value, "language": language})
