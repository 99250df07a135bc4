"""JSON shapes of tickets for the agent API (``<Ticket>`` in docs/server-api.md)."""

from __future__ import annotations

import datetime as dt
from typing import Any, Callable, Sequence

from bot import wording
from bot.handoff.reasons import reason_label
from bot.store.models import PRIORITY_ESCALATED, PRIORITY_HIGH, Ticket, TicketEvent, TranscriptEntry, as_utc, utcnow

PRIORITY_LABELS = {PRIORITY_ESCALATED: "至急", PRIORITY_HIGH: "高"}


def iso(moment: dt.datetime | None) -> str | None:
    """A stored moment as ISO 8601 in UTC, or ``None``."""
    return as_utc(moment).isoformat() if moment else None


def entry_json(entry: TranscriptEntry) -> dict[str, Any]:
    """One transcript entry (``id`` is the paging cursor of ``/entries?before=``).

    ``decision`` is what agents read of the bot's decision, in Japanese
    (「ボットの判定: 住所を変更したい（確からしさ 53%）」); ``intent`` and ``confidence`` stay for programs.
    """
    decision = wording.decision_label(entry.intent, entry.confidence) if entry.intent else None
    return {"id": entry.id, "position": entry.position, "sender": entry.sender, "text": entry.text,
            "intent": entry.intent, "confidence": entry.confidence, "decision": decision,
            "at": iso(entry.at), "author": entry.author}


def ticket_json(ticket: Ticket, display_name: Callable[[str], str], with_entries: bool = False,
                now: dt.datetime | None = None, entries: Sequence[TranscriptEntry] | None = None,
                has_earlier_entries: bool = False) -> dict[str, Any]:
    """A ticket as the console reads it.

    Args:
        ticket: The ticket (with entries loaded when ``with_entries``).
        display_name: Agent user name → display name.
        with_entries: Include the whole transcript (``ticket.entries``).
        now: Current time for ``waiting_seconds`` (tests pass a fixed one).
        entries: Include these entries (a page of the transcript) instead.
        has_earlier_entries: With ``entries``: older entries exist (``/entries?before=``).
    """
    end = ticket.claimed_at or ticket.resolved_at or now or utcnow()
    data: dict[str, Any] = {
        "id": ticket.id, "conversation_id": ticket.conversation_id, "status": ticket.status,
        "priority": ticket.priority, "priority_label": PRIORITY_LABELS.get(ticket.priority, "通常"),
        "reasons": list(ticket.reasons or []),
        "reason_labels": [reason_label(r) for r in ticket.reasons or []],
        "category": ticket.category, "summary": ticket.summary, "customer": dict(ticket.customer or {}),
        "offline": bool(ticket.offline), "resolution": ticket.resolution,
        "claimed_by": ticket.claimed_by,
        "claimed_by_name": display_name(ticket.claimed_by) if ticket.claimed_by else None,
        "created_at": iso(ticket.created_at), "claimed_at": iso(ticket.claimed_at),
        "resolved_at": iso(ticket.resolved_at), "resolved_by": ticket.resolved_by,
        "waiting_seconds": max(0, int((as_utc(end) - as_utc(ticket.created_at)).total_seconds())),
        "escalation": ticket.escalation,
        "escalation_label": wording.ESCALATION_TEXT["states"].get(ticket.escalation) if ticket.escalation else None,
        "escalated_at": iso(ticket.escalated_at), "escalated_by": ticket.escalated_by,
        "escalated_by_name": display_name(ticket.escalated_by) if ticket.escalated_by else None,
        "joined_by": ticket.joined_by, "joined_by_name": display_name(ticket.joined_by) if ticket.joined_by else None,
    }
    if entries is not None:
        data["entries"] = [entry_json(e) for e in entries]
        data["has_earlier_entries"] = has_earlier_entries
    elif with_entries:
        data["entries"] = [entry_json(e) for e in ticket.entries]
        data["has_earlier_entries"] = False
    return data


def desk_json(ticket: Ticket, desk: Any, display_name: Callable[[str], str]) -> dict[str, Any]:
    """The desk's part of a ticket (bot/store/desk.py): its offer and whether a reply is late.

    Args:
        ticket: The ticket.
        desk: The :class:`bot.store.desk.Desk` (offer time-out, reply flag).
        display_name: Agent user name → display name.
    """
    expires = desk.offer_expires_at(ticket)
    offered_to = ticket.offered_to if expires else None
    return {"offered_to": offered_to, "offered_to_name": display_name(offered_to) if offered_to else None,
            "offer_expires_at": iso(expires), "awaiting_reply_since": iso(ticket.awaiting_reply_since),
            "reply_overdue": desk.is_overdue(ticket)}


def event_json(event: TicketEvent, display_name: Callable[[str], str],
               department_name: Callable[[str], str] | None = None) -> dict[str, Any]:
    """One step of a ticket's history (``GET /api/tickets/{id}/history``): who, when, what, why.

    ``target_name`` is an agent's display name, the category of a ticket sent back to the
    queue, or the department a ticket was forwarded to (``department_name``: id → name).
    """
    text = wording.ESCALATION_TEXT
    if event.kind == "requeued":
        name: Callable[[str], str] = str
    elif event.kind == "forwarded":
        name = department_name or str
    else:
        name = display_name
    return {"id": event.id, "kind": event.kind, "kind_label": text["kinds"].get(event.kind, event.kind),
            "actor": event.actor, "actor_name": display_name(event.actor) if event.actor else text["system"],
            "target": event.target, "target_name": name(event.target) if event.target else None,
            "note": event.note, "at": iso(event.at)}
