"""The resolution rate (解決率) of a period's conversations.

Which conversations: those in which the customer wrote in ``[since, until)`` (the same
conversations as the other KPIs). Only their messages of the period are read, customers' and
the bot's (``chat_messages``), and nothing after ``until``: the figures are those known at
the end of the period, so a period's figures do not change with the day the report is built.

Each conversation gets exactly one outcome, the first that applies:

1. **handed off** (``handed_off``): a ticket was filed for it in the period (the handoffs of
   自己解決率). Not resolved by the bot, whatever the customer answered before.
2. **confirmed** (``confirmed``, resolved): the latest FAQ answer the customer rated with
   役に立ちましたか？ was rated 「はい」. The rating belongs to its answer (when the customer
   clicked is not stored), so a 「はい」 on an answer of the period counts.
3. **rated no** (``rated_no``): the latest rated answer was rated 「いいえ」. The customer said
   the matter is not settled; silence afterwards does not make it resolved. A later answer
   rated 「はい」 makes the conversation *confirmed* instead.
4. Without any rating, the bot's **last answer** (its latest message of the period) decides:

   - **unanswered** (``unanswered``): the bot did not answer in the period (Rasa down, or a
     person owned the conversation through a ticket filed before the period);
   - **came back** (``came_back``): the customer wrote again within 24 h after the last
     answer (at most :data:`QUIET_PERIOD` later; the bot did not answer that message, or its
     answer would be the last one). Not resolved;
   - **assumed** (``assumed``, resolved): 24 h passed after the last answer, before the end of
     the period, without a customer message in them. A customer message more than 24 h later
     does not undo it (the matter was settled; a new one started);
   - **pending** (``pending``): fewer than 24 h lie between the last answer and the end of the
     period and the customer has not written since. Not decided yet: left out of the rate's
     denominator (and counted on its own).

**resolution rate** = (confirmed + assumed) ÷ (conversations − pending).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from bot.analytics.periods import ratio
from bot.store.models import as_utc

QUIET_PERIOD = dt.timedelta(hours=24)  # silence after the bot's last answer that counts as resolved

HANDED_OFF, CONFIRMED, RATED_NO = "handed_off", "confirmed", "rated_no"
UNANSWERED, CAME_BACK, ASSUMED, PENDING = "unanswered", "came_back", "assumed", "pending"
# Japanese names of the outcomes (analytics page, `bot report`, kpi_summary.csv), in the order shown.
OUTCOME_LABELS = {
    CONFIRMED: "「はい」で解決",
    ASSUMED: "24 時間メッセージなし（解決とみなす）",
    RATED_NO: "「いいえ」",
    HANDED_OFF: "引き継ぎ",
    CAME_BACK: "24 時間以内に再びメッセージ",
    UNANSWERED: "ボットの回答なし",
    PENDING: "未確定（最後の回答から 24 時間たっていない）",
}


@dataclass(frozen=True)
class Message:
    """What the resolution reads of one chat message (customer or bot) of the period.

    Attributes:
        id: The row id (orders messages stored in the same instant).
        sender: ``customer`` or ``bot``.
        at: When it was stored (aware UTC).
        rated: The customer's 役に立ちましたか？ answer on an FAQ answer (``None``: not rated).
    """

    id: int
    sender: str
    at: dt.datetime
    rated: bool | None = None

    @classmethod
    def of(cls, row: Any) -> "Message":
        """From a ``chat_messages`` row (``id, sender, created_at, faq_id, feedback``)."""
        return cls(row.id, row.sender, as_utc(row.created_at), row.feedback if row.faq_id else None)


def outcome(messages: Iterable[Message], handed_off: bool, until: dt.datetime) -> str:
    """The outcome of one conversation (see the module docstring for the rules, in order).

    Args:
        messages: The conversation's customer and bot messages of the period (any order).
        handed_off: Whether a ticket was filed for it in the period.
        until: End of the period (exclusive), aware UTC.

    Returns:
        One of :data:`OUTCOME_LABELS`' keys.
    """
    if handed_off:
        return HANDED_OFF
    ordered = sorted(messages, key=lambda m: (m.at, m.id))
    ratings = [m.rated for m in ordered if m.sender == "bot" and m.rated is not None]
    if ratings:
        return CONFIRMED if ratings[-1] else RATED_NO
    answers = [m for m in ordered if m.sender == "bot"]
    if not answers:
        return UNANSWERED
    last = answers[-1]
    deadline = last.at + QUIET_PERIOD
    after = [m.at for m in ordered[ordered.index(last) + 1:] if m.sender == "customer"]
    if any(at <= deadline for at in after):
        return CAME_BACK
    return ASSUMED if deadline <= until else PENDING


@dataclass(frozen=True)
class Resolution:
    """The resolution rate of a period with its outcomes.

    Attributes:
        conversations: Conversations of the period.
        confirmed: Resolved with 「はい」.
        assumed: Resolved by 24 h of silence after the bot's last answer.
        rated_no: The latest rating was 「いいえ」.
        handed_off: Handed off to a person.
        came_back: The customer wrote again within 24 h after the bot's last answer.
        unanswered: The bot did not answer in the period.
        pending: Not decided yet (left out of ``rate``).
        resolved: ``confirmed + assumed``.
        decided: ``conversations - pending``.
        rate: ``resolved / decided`` (``None`` without a decided conversation).
    """

    conversations: int = 0
    confirmed: int = 0
    assumed: int = 0
    rated_no: int = 0
    handed_off: int = 0
    came_back: int = 0
    unanswered: int = 0
    pending: int = 0
    resolved: int = 0
    decided: int = 0
    rate: float | None = None

    @classmethod
    def of(cls, outcomes: Sequence[str]) -> "Resolution":
        """The figures of the conversations' ``outcomes``."""
        counts = {key: outcomes.count(key) for key in OUTCOME_LABELS}
        resolved = counts[CONFIRMED] + counts[ASSUMED]
        decided = len(outcomes) - counts[PENDING]
        return cls(conversations=len(outcomes), **counts, resolved=resolved, decided=decided,
                   rate=ratio(resolved, decided))


def build_resolution(conversations: Iterable[str], handed_off: set[str], rows: Iterable[Any],
                     until: dt.datetime) -> Resolution:
    """The resolution of ``conversations``.

    Args:
        conversations: The period's conversation ids.
        handed_off: Those with a ticket filed in the period.
        rows: Customer and bot ``chat_messages`` rows of the period (``conversation_id, id, sender,
            created_at, faq_id, feedback``); rows of other conversations are ignored.
        until: End of the period (exclusive), aware UTC.

    Returns:
        The figures.
    """
    wanted = set(conversations)
    messages: dict[str, list[Message]] = {conversation: [] for conversation in wanted}
    for row in rows:
        if row.conversation_id in wanted:
            messages[row.conversation_id].append(Message.of(row))
    return Resolution.of([outcome(messages[c], c in handed_off, until) for c in sorted(wanted)])


def summary_lines(resolution: Resolution) -> list[tuple[str, int]]:
    """``(Japanese outcome name, conversations)`` in :data:`OUTCOME_LABELS`' order."""
    values: Mapping[str, int] = {key: getattr(resolution, key) for key in OUTCOME_LABELS}
    return [(label, values[key]) for key, label in OUTCOME_LABELS.items()]
