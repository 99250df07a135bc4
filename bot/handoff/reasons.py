"""Why a conversation is handed to a person: the reason codes, their labels, the priority.

One place for what a reason means, so the packet's summary, the console and the
analytics report use the same Japanese label, and the queue orders by the same rule.
The codes come from :func:`bot.dialogue.decisions.handoff_reason`.
"""

from __future__ import annotations

from typing import Iterable

from bot.store.models import PRIORITY_HIGH, PRIORITY_NORMAL

REASON_LABELS = {
    "human_request": "担当者との会話を希望",
    "complaint": "苦情",
    "anger": "怒りの表現",
    "unresolved": "ボットで解決できず",
}
# An upset customer waits less: these reasons put the ticket before every normal one.
HIGH_PRIORITY_REASONS = frozenset({"anger", "complaint"})


def reason_label(reason: str) -> str:
    """The Japanese label of ``reason`` (the code itself when it has none)."""
    return REASON_LABELS.get(reason, reason)


def priority_for(reasons: Iterable[str]) -> int:
    """The ticket priority for a handoff with ``reasons`` (lower comes first)."""
    return PRIORITY_HIGH if HIGH_PRIORITY_REASONS & set(reasons) else PRIORITY_NORMAL
