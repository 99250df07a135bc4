"""After a conversation load run: what the database says (#12).

Checked against the run's customers (:class:`benchmarks.load_customers.CustomerLog`):

- **tickets:** exactly one per customer who asked for a person, none for the others;
- **customer messages lost:** every ``client_id`` a customer sent (messages and buttons) is a
  stored customer message of its conversation (the transcript the widget and the console show);
- **never routed:** stored customer messages that reached neither the bot nor a person;
- **not in Rasa's tracker:** every text that should have reached Rasa (messages, button
  payloads, 「いいえ」's ``/answer_not_helpful``) is a ``user`` event of the conversation in the
  shared tracker store (Rasa's SQL ``events`` table, same database);
- **turns:** how each step was answered (bot, agent, feedback saved, only a notice, nothing).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from typing import Any, Iterable

from benchmarks.load_customers import CustomerLog


def verify(database_url: str, logs: Iterable[CustomerLog]) -> dict[str, Any]:
    """The checks of the module docstring; counts plus a few example conversation ids."""
    from sqlalchemy import create_engine, text

    logs = [log for log in logs if log.conversation_id]
    ids = [log.conversation_id for log in logs]
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT conversation_id, reasons FROM tickets WHERE conversation_id = ANY(:ids)"),
                                {"ids": ids}).all()
            tickets = Counter(row[0] for row in rows)
            reasons = {row[0]: row[1] for row in rows}
            stored: dict[str, set[str]] = defaultdict(set)
            unrouted: Counter[str] = Counter()
            for cid, client_id, routed in conn.execute(text(
                    "SELECT conversation_id, client_id, routed_at FROM chat_messages "
                    "WHERE sender = 'customer' AND conversation_id = ANY(:ids)"), {"ids": ids}):
                stored[cid].add(client_id)
                unrouted[cid] += routed is None
            tracked: dict[str, list[str]] = defaultdict(list)
            for sender, data in conn.execute(text(
                    "SELECT sender_id, data FROM events WHERE type_name = 'user' AND sender_id = ANY(:ids)"),
                    {"ids": ids}):
                tracked[sender].append(str(json.loads(data).get("text") or ""))
    finally:
        engine.dispose()
    lost = {log.conversation_id: sorted(set(log.sent_client_ids) - stored[log.conversation_id]) for log in logs}
    untracked = {log.conversation_id: [t for t in log.rasa_texts if t not in tracked[log.conversation_id]]
                 for log in logs}
    handing = [log for log in logs if log.handed_off]
    others = [log for log in logs if not log.handed_off]
    outcomes = Counter(turn.outcome for log in logs for turn in log.turns)
    unanswered = [log.conversation_id for log in logs
                  if log.error or any(t.outcome in ("notice", "timeout") for t in log.turns)]
    return {
        "customers": len(logs),
        "handing_off_customers": len(handing),
        "tickets_exactly_one": sum(tickets[log.conversation_id] == 1 for log in handing),
        "tickets_lost": sum(tickets[log.conversation_id] == 0 for log in handing),
        "tickets_duplicated": sum(tickets[log.conversation_id] > 1 for log in handing),
        "tickets_unexpected": sum(tickets[log.conversation_id] for log in others),
        "customer_messages_sent": sum(len(set(log.sent_client_ids)) for log in logs),
        "customer_messages_lost": sum(len(v) for v in lost.values()),
        "customer_messages_never_routed": sum(unrouted.values()),
        "rasa_texts_expected": sum(len(log.rasa_texts) for log in logs),
        "rasa_texts_not_in_tracker": sum(len(v) for v in untracked.values()),
        "turn_outcomes": dict(sorted(outcomes.items())),
        "agent_replies_received": sum(1 for log in handing for t in log.turns if t.outcome == "agent"),
        "customers_with_an_unanswered_turn": len(unanswered),
        "customers_failed": sum(1 for log in logs if log.error),
        "examples": {
            "lost_messages": [cid for cid, v in lost.items() if v][:5],
            "not_in_tracker": dict([(cid, v) for cid, v in untracked.items() if v][:5]),
            "unanswered": unanswered[:5],
            "unanswered_turns": [(log.conversation_id, t.kind, t.outcome, (t.notice or "")[:30], t.retried)
                                 for log in logs for t in log.turns if t.outcome in ("notice", "timeout")][:10],
            "errors": [log.error for log in logs if log.error][:3],
            # Who got a ticket without asking for a person, and why (the reasons the action filed).
            "unexpected_tickets": [(log.conversation_id, reasons.get(log.conversation_id))
                                   for log in others if tickets[log.conversation_id]][:5],
        },
    }
