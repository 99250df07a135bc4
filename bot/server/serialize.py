"""JSON shapes of tickets for the agent API (``<Ticket>`` in docs/server-api.md)."""

from __future__ import annotations

import datetime as dt
from typing import Any, Callable

from bot.handoff.packet import REASON_LABELS
from bot.store.models import PRIORITY_HIGH, Ticket, as_utc, utcnow

PRIORITY_LABELS = {PRIORITY_HIGH: "高"}


def _iso(moment: dt.datetime | None) -> str | None:
    return as_utc(moment).isoformat() if moment else None


def ticket_json(ticket: Ticket, display_name: Callable[[str], str], with_entries: bool = False,
                now: dt.datetime | None = None) -> dict[str, Any]:
    """A ticket as the console reads it.

    Args:
        ticket: The ticket (with entries loaded when ``with_entries``).
        display_name: Agent user name → display name.
        with_entries: Include the transcript.
        now: Current time for ``waiting_seconds`` (tests pass a fixed one).
    """
    end = ticket.claimed_at or ticket.resolved_at or now or utcnow()
    data: dict[str, Any] = {
        "id": ticket.id, "conversation_id": ticket.conversation_id, "status": ticket.status,
        "priority": ticket.priority, "priority_label": PRIORITY_LABELS.get(ticket.priority, "通常"),
        "reasons": list(ticket.reasons or []),
        "reason_labels": [REASON_LABELS.get(r, r) for r in ticket.reasons or []],
        "category": ticket.category, "summary": ticket.summary, "customer": dict(ticket.customer or {}),
        "offline": bool(ticket.offline), "resolution": ticket.resolution,
        "claimed_by": ticket.claimed_by,
        "claimed_by_name": display_name(ticket.claimed_by) if ticket.claimed_by else None,
        "created_at": _iso(ticket.created_at), "claimed_at": _iso(ticket.claimed_at),
        "resolved_at": _iso(ticket.resolved_at),
        "waiting_seconds": max(0, int((as_utc(end) - as_utc(ticket.created_at)).total_seconds())),
    }
    if with_entries:
        data["entries"] = [{"position": e.position, "sender": e.sender, "text": e.text, "intent": e.intent,
                            "confidence": e.confidence, "at": _iso(e.at), "author": e.author}
                           for e in ticket.entries]
    return data
