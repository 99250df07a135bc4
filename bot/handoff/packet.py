"""Build the handoff packet from a conversation: transcript, reasons, summary, category.

Pure functions over Rasa tracker events (dicts as rasa_sdk passes them), so the action
server and tests share them. The summary is deterministic (no model): reason, what the
customer asked, what the bot answered.

Everything the customer typed is masked here, when the packet is built, before it is
written anywhere (outbox file, queue database): card numbers and マイナンバー always,
telephone numbers and e-mail addresses when editors turn that on (docs/masking.md).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from bot.dialogue.decisions import intent_label
from bot.handoff.reasons import priority_for, reason_label
from bot.knowledge.model import KnowledgeBase
from bot.text.masking import mask_sensitive
from bot.text.masking_settings import MaskingSettings, current_masking_settings

SNIPPET_CHARS = 80


@dataclass(frozen=True)
class Turn:
    """One transcript turn as the action server sends it."""

    sender: str
    text: str
    intent: str | None = None
    confidence: float | None = None
    at: float | None = None  # UNIX time of the turn


@dataclass(frozen=True)
class HandoffPacket:
    """Everything an agent needs, so the customer never repeats themselves.

    The queue (:meth:`bot.store.queue.Queue.enqueue`) reads these fields by name and
    never imports this type: persistence does not depend on the handoff.
    """

    idempotency_key: str
    conversation_id: str
    reasons: list[str]
    transcript: list[Turn]
    summary: str = ""
    category: str | None = None
    customer: dict[str, Any] = field(default_factory=dict)
    offline: bool = False  # filed outside staffed hours

    @property
    def priority(self) -> int:
        """The ticket's priority, from the reasons (:func:`bot.handoff.reasons.priority_for`)."""
        return priority_for(self.reasons)


def transcript_from_events(events: Iterable[Mapping[str, Any]]) -> list[Turn]:
    """Customer and bot turns, in order, with time, intent and confidence."""
    turns = []
    for event in events:
        kind = event.get("event")
        if kind == "user":
            parse_data = event.get("parse_data") or {}
            intent = parse_data.get("intent") or {}
            turns.append(Turn("customer", event.get("text") or "", intent_label(parse_data),
                              intent.get("confidence"), event.get("timestamp")))
        elif kind == "bot" and event.get("text"):
            turns.append(Turn("bot", event["text"], at=event.get("timestamp")))
    return turns


def _snippet(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= SNIPPET_CHARS else flat[: SNIPPET_CHARS - 1] + "…"


def summarize(reasons: list[str], transcript: list[Turn], masking: MaskingSettings | None = None) -> str:
    """Three-line Japanese summary for the agent's queue view.

    Texts are masked before they are cut, so a cut never leaves part of a number readable.

    Args:
        reasons: Reason codes of the handoff.
        transcript: The conversation.
        masking: Extra masking options (default: card numbers and マイナンバー only).
    """
    mask = (masking or MaskingSettings()).mask
    asked = [mask(t.text) for t in transcript if t.sender == "customer" and t.text.strip()][-2:]
    answered = [mask(t.text) for t in transcript if t.sender == "bot"][-1:]
    lines = [
        "理由: " + "、".join(reason_label(r) for r in reasons),
        "お客さま: " + (" / ".join(_snippet(a) for a in asked) or "（メッセージなし）"),
        "ボット: " + (_snippet(answered[0]) if answered else "（回答なし）"),
    ]
    return "\n".join(lines)


def last_category(transcript: list[Turn], kb: KnowledgeBase) -> str | None:
    """Category of the last FAQ the customer asked about, if any."""
    for turn in reversed(transcript):
        entry = kb.by_intent(turn.intent) if turn.sender == "customer" else None
        if entry:
            return entry.category
    return None


def _mask_customer(customer: Mapping[str, Any]) -> dict[str, Any]:
    """Customer details with card numbers and マイナンバー masked (a masked non-string becomes text).

    Telephone numbers and e-mail addresses stay: they are how agents reach the customer.
    """
    masked = {}
    for key, value in customer.items():
        text = mask_sensitive(str(value))
        masked[key] = value if not isinstance(value, str) and text == str(value) else text
    return masked


def mask_packet(packet: HandoffPacket, masking: MaskingSettings | None = None) -> HandoffPacket:
    """``packet`` with transcript, summary and customer details masked (idempotent).

    Args:
        packet: A packet, masked or not.
        masking: Extra options for transcript and summary (default: card numbers and
            マイナンバー only).
    """
    mask = (masking or MaskingSettings()).mask
    return dataclasses.replace(
        packet,
        transcript=[dataclasses.replace(turn, text=mask(turn.text)) for turn in packet.transcript],
        summary=mask(packet.summary),
        customer=_mask_customer(packet.customer),
    )


def handoff_key(conversation_id: str, events: Iterable[Mapping[str, Any]]) -> str:
    """The idempotency key of the handoff triggered by the latest customer message.

    A retry of the same action sees the same latest message and gets the same key. The
    key is the conversation plus that message's id (Rasa gives every user event a random
    ``message_id``), so it never repeats, even after the conversation's history was lost
    (a Rasa restart without a tracker store would restart a turn count at 1 and find an
    old, resolved ticket). Without message ids (older events), the customer-turn count.
    """
    users = [e for e in events if e.get("event") == "user"]
    message_id = users[-1].get("message_id") if users else None
    if message_id:
        return f"{conversation_id}:m:{message_id}"
    return f"{conversation_id}:{len(users)}"


def build_packet(conversation_id: str, events: list[Mapping[str, Any]], reasons: list[str],
                 kb: KnowledgeBase, customer: Mapping[str, Any] | None = None,
                 offline: bool = False, masking: MaskingSettings | None = None) -> HandoffPacket:
    """Packet for the handoff triggered by the latest customer message, already masked.

    The idempotency key is the conversation id plus the number of customer messages so
    far: a retry of the same handoff gets the same key, a later handoff a new one.

    Args:
        conversation_id: The Rasa sender id.
        events: Tracker events (the transcript).
        reasons: Reason codes.
        kb: Knowledge base (category of the last FAQ asked).
        customer: Details the widget passed (name, e-mail, page...).
        offline: Filed outside staffed hours.
        masking: Extra masking options (default: the editors' ``masking:`` section of
            triage.yml, see :func:`current_masking_settings`).
    """
    masking = masking or current_masking_settings()
    transcript = [dataclasses.replace(turn, text=masking.mask(turn.text)) for turn in transcript_from_events(events)]
    return mask_packet(HandoffPacket(
        idempotency_key=handoff_key(conversation_id, events),
        conversation_id=conversation_id,
        reasons=reasons,
        transcript=transcript,
        summary=summarize(reasons, transcript, masking),
        category=last_category(transcript, kb),
        customer=dict(customer or {}),
        offline=offline,
    ), masking)
