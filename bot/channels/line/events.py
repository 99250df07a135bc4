"""The webhook body as typed events.

Only what the channel acts on is read; anything else (unknown event or message types,
missing fields, wrong JSON types) becomes an :class:`LineEvent` of kind ``other`` or is
skipped, never an exception: LINE adds event types over time, and one odd event must
not stop the others of the same request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Message types answered with "only text is understood" (and noted in a ticket).
MEDIA_TYPES = frozenset({"image", "video", "audio", "file", "location", "sticker"})


@dataclass(frozen=True)
class LineEvent:
    """One webhook event.

    Attributes:
        kind: ``text``, ``postback``, ``follow``, ``unfollow``, ``media`` or ``other``
            (a group's ``join`` / ``leave`` are ``follow`` / ``unfollow``).
        event_id: ``webhookEventId`` (redeliveries carry the same one); ``""`` when absent.
        user_id: The chat the event belongs to and answers go to: the user's id in a 1:1
            chat (``U…``), the group's (``C…``) or room's (``R…``) when groups are enabled.
        reply_token: Usable once, shortly after the event; ``""`` when the event has none.
        text: The message text (``text``), the postback's ``data`` (``postback``), or the
            media type (``media``).
        timestamp_ms: When LINE received it (milliseconds since the epoch).
        redelivery: ``deliveryContext.isRedelivery``.
        mark_as_read_token: The message's ``markAsReadToken`` (for 既読), if any.
    """

    kind: str
    event_id: str = ""
    user_id: str = ""
    reply_token: str = ""
    text: str = ""
    timestamp_ms: int = 0
    redelivery: bool = False
    mark_as_read_token: str = ""


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def parse_event(raw: Any, groups: bool = False) -> LineEvent | None:
    """One element of ``events``; ``None`` when it is not an object or is not for this channel.

    Events in ``standby`` mode (another channel, e.g. a chat module, is active) are skipped,
    and so are events from groups or rooms unless ``groups`` (``LINE_GROUPS=1``).
    """
    if not isinstance(raw, dict):
        return None
    if raw.get("mode", "active") != "active":
        return None
    source = raw.get("source") if isinstance(raw.get("source"), dict) else {}
    chat_key = {"user": "userId", "group": "groupId", "room": "roomId"}.get(str(source.get("type")))
    if chat_key is None or (chat_key != "userId" and not groups):
        return None
    context = raw.get("deliveryContext") if isinstance(raw.get("deliveryContext"), dict) else {}
    timestamp = raw.get("timestamp")
    common: dict[str, Any] = {
        "event_id": _str(raw.get("webhookEventId"))[:100], "user_id": _str(source.get(chat_key))[:100],
        "reply_token": _str(raw.get("replyToken"))[:200],
        "timestamp_ms": timestamp if isinstance(timestamp, int) and not isinstance(timestamp, bool) else 0,
        "redelivery": context.get("isRedelivery") is True,
    }
    if not common["user_id"]:
        return None
    kind = raw.get("type")
    if kind == "message":
        message = raw.get("message") if isinstance(raw.get("message"), dict) else {}
        read_token = _str(message.get("markAsReadToken"))[:500]
        if message.get("type") == "text" and isinstance(message.get("text"), str):
            return LineEvent("text", text=message["text"], mark_as_read_token=read_token, **common)
        if _str(message.get("type")) in MEDIA_TYPES:  # _str: a list or object here must not raise
            return LineEvent("media", text=str(message["type"]), mark_as_read_token=read_token, **common)
        return LineEvent("other", **common)
    if kind == "postback":
        postback = raw.get("postback") if isinstance(raw.get("postback"), dict) else {}
        return LineEvent("postback", text=_str(postback.get("data"))[:300], **common)
    if kind in ("follow", "unfollow"):
        return LineEvent(str(kind), **common)
    if kind in ("join", "leave"):  # the account was added to / removed from a group or room
        return LineEvent("follow" if kind == "join" else "unfollow", **common)
    return LineEvent("other", **common)


def parse_body(body: Any, groups: bool = False) -> list[LineEvent]:
    """Every usable event of a webhook body (``{"destination": ..., "events": [...]}``).

    ``groups``: see :func:`parse_event`.

    Raises:
        ValueError: The body is not an object with an ``events`` list.
    """
    if not isinstance(body, dict) or not isinstance(body.get("events"), list):
        raise ValueError("not a LINE webhook body")
    return [event for event in (parse_event(raw, groups) for raw in body["events"]) if event is not None]
