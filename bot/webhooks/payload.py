"""The JSON body of a webhook POST (schema in docs/webhooks.md).

Built from the delivery row (the ticket's state at the event) and the ticket's stored
transcript up to the event, so every retry of an event sends the same body. Texts are
stored masked already (card numbers, マイナンバー); they are masked again here with the
configured rules (bot/text/masking_settings.py: phone numbers and e-mail addresses
when turned on), so nothing unmasked can leave through a webhook.
"""

from __future__ import annotations

import json
from typing import Any

from bot.store.models import Ticket, WebhookDelivery, as_utc
from bot.text.masking_settings import MaskingSettings

SCHEMA_VERSION = 1


def _iso(moment: Any) -> str | None:
    return as_utc(moment).isoformat() if moment is not None else None


def event_payload(row: WebhookDelivery, ticket: Ticket, masking: MaskingSettings) -> dict[str, Any]:
    """The event as the receiver reads it (``ticket`` loaded with its entries)."""
    state = dict(row.data or {})
    count = int(state.get("entry_count") or 0)
    body: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "id": row.event_id,
        "type": row.event_type,
        "occurred_at": _iso(row.occurred_at),
        "ticket": {
            "id": ticket.id,
            "conversation_id": ticket.conversation_id,
            "status": state.get("status"),
            "priority": ticket.priority,
            "reasons": list(ticket.reasons or []),
            "category": ticket.category,
            "summary": masking.mask(ticket.summary or ""),
            "customer": {str(k): masking.mask(str(v)) for k, v in (ticket.customer or {}).items()},
            "offline": bool(ticket.offline),
            "created_at": _iso(ticket.created_at),
            "claimed_by": state.get("claimed_by"),
            "claimed_at": state.get("claimed_at"),
            "resolved_by": state.get("resolved_by"),
            "resolved_at": state.get("resolved_at"),
            "resolution": state.get("resolution"),
        },
        "transcript": [{"sender": e.sender, "text": masking.mask(e.text), "at": _iso(e.at), "author": e.author}
                       for e in ticket.entries if e.position < count],
    }
    if "forward" in state:  # ticket.forwarded: the department, the agent's note for it (masked), the promise
        forward = dict(state["forward"])
        forward["note"] = masking.mask(str(forward.get("note") or ""))
        body["forward"] = forward
    if "csat" in state:
        csat = dict(state["csat"])
        if csat.get("comment"):
            csat["comment"] = masking.mask(str(csat["comment"]))
        body["csat"] = csat
    return body


def encode(payload: dict[str, Any]) -> bytes:
    """The body's bytes: UTF-8 JSON, Japanese as is, compact (what is signed is what is sent)."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
