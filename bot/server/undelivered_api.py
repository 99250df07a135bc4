"""Agent API: handoffs the action servers' outboxes could not deliver (「配信できなかった引き継ぎ」).

A packet the database refused for a reason a retry cannot cure, or a line of the outbox file
that could not be read, is set aside by the outbox (bot/handoff/outbox.py) and recorded in
the database (bot/store/undelivered.py). Listing also records what this machine's
``<outbox>.bad`` still holds (set aside while the database was away), so it is listed too.
An agent sends a refused packet again once its cause is fixed (it becomes a ticket, announced
as any other), or dismisses the record. Only masked texts are stored, and they are masked
once more here before they are sent.
"""

from __future__ import annotations

from typing import Any, Mapping

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bot.handoff.outbox import is_transient
from bot.handoff.reasons import reason_label
from bot.handoff.undelivered import KIND_LABELS, KIND_REFUSED, retry, set_aside_lines, set_aside_record
from bot.server.auth import check_csrf, current_agent
from bot.server.http import MAX_ID, int_param
from bot.settings import get_settings
from bot.store.models import UndeliveredHandoff, as_utc
from bot.store.undelivered import ALREADY_HANDLED, NOT_FOUND, STATUS_JA
from bot.text.masking import mask_sensitive

PAGE = 100
EXCERPT_SHOWN = 300  # characters of an unreadable line shown in the console
TEXT = {
    "no_packet": "この記録には引き継ぎの内容が残っていないため、再送できません。内容を確認して、不要なら破棄してください。",
    "database_away": "データベースに接続できません。しばらくしてから、もう一度再送してください。",
    "refused_again": "再送しましたが、データベースが受け付けませんでした。原因を直してから再送するか、不要なら破棄してください。"
                     "（詳細: {reason}）",
    "unknown_status": "「status」には open または all を指定してください。",
}


def _text(value: Any) -> str | None:
    return mask_sensitive(value) if isinstance(value, str) else None


def record_json(row: UndeliveredHandoff) -> dict[str, Any]:
    """One record as the console shows it (every text masked again)."""
    packet: Mapping[str, Any] = row.packet if isinstance(row.packet, Mapping) else {}
    customer = packet.get("customer") if isinstance(packet.get("customer"), Mapping) else {}
    reasons = packet.get("reasons") if isinstance(packet.get("reasons"), list) else []
    excerpt = _text(row.excerpt)
    return {
        "id": row.id, "kind": row.kind, "status": row.status, "status_ja": STATUS_JA.get(str(row.status), ""),
        "reason_label": KIND_LABELS.get(str(row.kind), ""), "reason": _text(row.reason),
        "set_aside_at": as_utc(row.set_aside_at).isoformat(),
        "conversation_id": _text(row.conversation_id), "summary": _text(row.summary) or "",
        "customer_name": _text(customer.get("name")), "category": _text(packet.get("category")),
        "reasons": [reason_label(str(r)) for r in reasons],
        "excerpt": excerpt[:EXCERPT_SHOWN] + ("…" if len(excerpt) > EXCERPT_SHOWN else "") if excerpt else None,
        "can_retry": row.kind == KIND_REFUSED and isinstance(row.packet, Mapping) and row.status == "open",
        "handled_by": row.handled_by, "handled_at": as_utc(row.handled_at).isoformat() if row.handled_at else None,
        "ticket_id": row.ticket_id,
    }


def _record_id(request: Request) -> int:
    record_id = int(request.path_params["record_id"])
    if record_id > MAX_ID:
        raise HTTPException(404, NOT_FOUND.format(id=record_id))
    return record_id


def _list(stores: Any, status: str) -> dict[str, Any]:
    """Record what this machine's ``.bad`` file holds, then list from the database."""
    store = stores.undelivered
    from_file = store.record(set_aside_record(line) for line in set_aside_lines(get_settings().outbox_file))
    return {"items": [record_json(row) for row in store.list(status, PAGE)], "open_count": store.count_open(),
            "recorded_from_file": from_file}


async def list_undelivered(request: Request) -> JSONResponse:
    """Handoffs that could not be delivered.
    ---
    summary: Packets the outbox set aside (refused by the database, or unreadable), newest first, masked
    parameters: [{name: status, in: query, schema: {type: string, enum: [open, all], default: open}}]
    responses:
      200: {description: "{items: [{id, kind, reason_label, reason, set_aside_at, summary, customer_name, excerpt,
        can_retry, status, ...}], open_count, recorded_from_file}"}
      401: {description: Not logged in}
      422: {description: Unknown status}
    """
    current_agent(request)
    status = request.query_params.get("status", "open")
    if status not in ("open", "all"):
        raise HTTPException(422, TEXT["unknown_status"])
    return JSONResponse(await run_in_threadpool(_list, request.app.state.services.stores, status))


def _retry(stores: Any, record_id: int, agent: str) -> dict[str, Any]:
    store = stores.undelivered
    row = store.get(record_id)
    if row.status != "open":
        raise HTTPException(409, ALREADY_HANDLED.format(id=record_id, status=STATUS_JA.get(str(row.status), "")))
    if row.kind != KIND_REFUSED or not isinstance(row.packet, Mapping):
        raise HTTPException(409, TEXT["no_packet"])
    try:
        ticket, _ = retry(stores.queue, row.packet)
    except ValueError:
        raise HTTPException(409, TEXT["no_packet"]) from None
    except Exception as exc:  # noqa: BLE001 - whatever the queue refuses, the record stays open with the reason
        if is_transient(exc):
            raise HTTPException(503, TEXT["database_away"]) from None
        reason = f"{type(exc).__name__}: {str(exc)[:300]}"
        store.refused_again(record_id, reason)
        raise HTTPException(409, TEXT["refused_again"].format(reason=mask_sensitive(reason))) from None
    return {"item": record_json(store.mark_retried(record_id, agent, ticket.id)), "ticket_id": ticket.id}


async def retry_undelivered(request: Request) -> JSONResponse:
    """Send again.
    ---
    summary: Send a refused packet to the queue again; it becomes a ticket (announced as any other)
    responses:
      200: {description: "{item, ticket_id}"}
      403: {description: CSRF}
      404: {description: Unknown id}
      409: {description: "Already retried or dismissed, nothing to send (unreadable line), or refused again (reason kept)"}
      503: {description: Database unreachable}
    """
    agent = check_csrf(request)
    return JSONResponse(await run_in_threadpool(_retry, request.app.state.services.stores, _record_id(request), agent))


async def dismiss_undelivered(request: Request) -> JSONResponse:
    """Dismiss.
    ---
    summary: Mark a record as needing no ticket (kept, with who and when; no longer listed as open)
    responses: {200: {description: "{item}"}, 403: {description: CSRF}, 404: {description: Unknown id},
      409: {description: Already retried or dismissed}}
    """
    agent = check_csrf(request)
    row = await run_in_threadpool(request.app.state.services.stores.undelivered.dismiss, _record_id(request), agent)
    return JSONResponse({"item": record_json(row)})


RECORD = "/api/undelivered-handoffs/{record_id:int}"
routes = [
    Route("/api/undelivered-handoffs", list_undelivered, methods=["GET"]),
    Route(RECORD + "/retry", retry_undelivered, methods=["POST"]),
    Route(RECORD + "/dismiss", dismiss_undelivered, methods=["POST"]),
]
