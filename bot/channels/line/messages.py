"""Our chat messages as LINE message objects.

LINE's limits: a text message holds at most 5,000 characters (counted as UTF-16 units
here, so an emoji outside the BMP counts twice and a bubble is never refused), one reply or push call
carries at most 5 messages, and a quick reply at most 13 items whose labels are at most
20 characters. Only the last message of a call shows its quick reply, so the buttons of
the bot's latest message (the only ones the gateway accepts) go on the last bubble.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from bot import wording

MAX_TEXT = 5000
MAX_MESSAGES = 5
MAX_QUICK_REPLIES = 13
MAX_LABEL = 20
MAX_DATA = 300
MAX_SENDER_NAME = 20
FEEDBACK_PREFIX = "fb:"
BUTTON_PREFIX = "b:"
CSAT_PREFIX = "cs:"  # cs:<ticket id>:<rating 1-5>
# Split after a sentence end or a line break; the text keeps every character.
_SENTENCE_END = re.compile(r"(?<=[。！？!?\n])")


@dataclass(frozen=True)
class Outgoing:
    """One message of our chat on its way to LINE.

    Attributes:
        text: What the widget would show.
        sender: ``bot``, ``system`` or ``agent``.
        buttons: Quick replies offered (``title``, ``payload``).
        feedback_for: The id of an FAQ answer (asks 役に立ちましたか？ with はい / いいえ).
        agent_name: The agent's display name (shown as the bubble's sender).
        survey: The satisfaction survey after a resolved chat (``ticket_id``, ``labels`` of
            ratings 1–5): the ratings become quick replies.
    """

    text: str
    sender: str = "bot"
    buttons: list[dict[str, str]] = field(default_factory=list)
    feedback_for: int | None = None
    agent_name: str | None = None
    survey: dict[str, Any] | None = None

    @classmethod
    def from_frame(cls, message: dict[str, Any]) -> "Outgoing":
        """From the ``<Message>`` of a ``message`` frame (docs/server-api.md)."""
        faq = message.get("faq_id") and message.get("sender") == "bot" and message.get("feedback") is None
        return cls(text=str(message.get("text") or ""), sender=str(message.get("sender") or "bot"),
                   buttons=[b for b in message.get("buttons") or [] if isinstance(b, dict)],
                   feedback_for=int(message["id"]) if faq and isinstance(message.get("id"), int) else None,
                   agent_name=message.get("agent_name"))


def units(text: str) -> int:
    """Length as LINE counts it: UTF-16 code units (an emoji outside the BMP counts twice)."""
    return len(text.encode("utf-16-le")) // 2


def _cut(text: str, limit: int) -> int:
    """The longest prefix of ``text`` within ``limit`` units (never splitting a character)."""
    count = 0
    for index, char in enumerate(text):
        count += 2 if ord(char) > 0xFFFF else 1
        if count > limit:
            return index
    return len(text)


def split_text(text: str, limit: int = MAX_TEXT) -> list[str]:
    """``text`` in pieces of at most ``limit`` units (:func:`units`), cut after sentence ends where possible."""
    text = text.strip()
    if units(text) <= limit:
        return [text] if text else []
    pieces: list[str] = []
    current = ""
    for sentence in _SENTENCE_END.split(text):
        while units(sentence) > limit:  # one sentence longer than a bubble: cut it hard
            if current:
                pieces.append(current)
                current = ""
            cut = _cut(sentence, limit)
            pieces.append(sentence[:cut])
            sentence = sentence[cut:]
        if units(current) + units(sentence) > limit:
            pieces.append(current)
            current = ""
        current += sentence
    if current:
        pieces.append(current)
    return [p.strip() for p in pieces if p.strip()]


def _label(title: str) -> str:
    title = " ".join(title.split())
    return title if units(title) <= MAX_LABEL else title[:_cut(title, MAX_LABEL - 1)] + "…"


def quick_reply(message: Outgoing) -> dict[str, Any] | None:
    """The LINE quick reply for ``message``'s buttons, the survey's ratings, or はい / いいえ under an FAQ answer."""
    items: list[dict[str, Any]] = []
    for button in message.buttons[:MAX_QUICK_REPLIES]:
        title, payload = str(button.get("title") or ""), str(button.get("payload") or "")
        data = BUTTON_PREFIX + payload
        if not title or not payload or len(data) > MAX_DATA:
            continue
        items.append({"type": "action", "action": {"type": "postback", "label": _label(title), "data": data,
                                                   "displayText": title[:300]}})
    if not items and message.survey is not None:
        labels = message.survey.get("labels") or {}
        for rating in range(5, 0, -1):  # best first: the list starts at the left edge of the screen
            title = f"{rating} {labels.get(str(rating), '')}".strip()
            items.append({"type": "action", "action": {
                "type": "postback", "label": _label(title), "displayText": title,
                "data": f"{CSAT_PREFIX}{message.survey['ticket_id']}:{rating}"}})
    if not items and message.feedback_for is not None:
        for answer, flag in ((wording.WIDGET_TEXT["yes"], "1"), (wording.WIDGET_TEXT["no"], "0")):
            items.append({"type": "action", "action": {
                "type": "postback", "label": answer, "displayText": answer,
                "data": f"{FEEDBACK_PREFIX}{message.feedback_for}:{flag}"}})
    return {"items": items} if items else None


def _bubble(text: str, agent_name: str | None) -> dict[str, Any]:
    bubble: dict[str, Any] = {"type": "text", "text": text}
    if agent_name:
        name = wording.WIDGET_TEXT["agentLabel"].format(name=agent_name)
        bubble["sender"] = {"name": name[:MAX_SENDER_NAME]}
    return bubble


def line_messages(batch: list[Outgoing]) -> list[dict[str, Any]]:
    """One call's LINE messages for ``batch``: at most 5 text bubbles, quick reply on the last.

    Long texts are split at sentence ends; beyond 5 bubbles, neighbours from the same
    sender are merged (blank line between) while they fit in one bubble, and whatever
    still does not fit is cut with 「…」 (the whole text stays in the chat log and the
    ticket).
    """
    if not batch:
        return []
    last = batch[-1]
    text_last = last.text
    if last.feedback_for is not None and not last.buttons:
        text_last = f"{text_last}\n\n{wording.WIDGET_TEXT['helpfulQ']}"
    pieces: list[tuple[str, str | None]] = []
    for index, message in enumerate(batch):
        name = message.agent_name if message.sender == "agent" else None
        text = text_last if index == len(batch) - 1 else message.text
        pieces.extend((piece, name) for piece in split_text(text))
    pieces = _fit(pieces)
    bubbles = [_bubble(text, name) for text, name in pieces]
    reply = quick_reply(last)
    if reply and bubbles:
        bubbles[-1]["quickReply"] = reply
    return bubbles


def _fit(pieces: list[tuple[str, str | None]]) -> list[tuple[str, str | None]]:
    while len(pieces) > MAX_MESSAGES:
        pairs = [(units(a) + units(b), i) for i, ((a, na), (b, nb)) in enumerate(zip(pieces, pieces[1:]))
                 if na == nb and units(a) + units(b) + 2 <= MAX_TEXT]
        if not pairs:
            break
        _, i = min(pairs)
        pieces[i:i + 2] = [(pieces[i][0] + "\n\n" + pieces[i + 1][0], pieces[i][1])]
    if len(pieces) > MAX_MESSAGES:
        head, tail = pieces[:MAX_MESSAGES - 1], pieces[MAX_MESSAGES - 1:]
        merged = "\n\n".join(text for text, _ in tail)
        if units(merged) > MAX_TEXT:
            merged = merged[:_cut(merged, MAX_TEXT - 1)] + "…"
        pieces = head + [(merged, tail[0][1])]
    return pieces
