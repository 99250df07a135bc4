"""Admin API of outbound webhooks: dead letters (deliveries given up) and their replay.

Agents get 403 with a Japanese message (the desk's admin check). A replayed dead letter
keeps its event id, so a receiver that got it after all drops the repeat.
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bot.server.desk_api import _admin
from bot.server.http import int_param
from bot.server.serialize import iso
from bot.store.models import WebhookDelivery
from bot.store.webhooks import WebhookDeliveries

NOT_CONFIGURED = "Webhook は設定されていません（BOT_WEBHOOKS_FILE）。"


def _deliveries(request: Request) -> WebhookDeliveries:
    sender = request.app.state.services.webhook_sender
    if sender is None:
        raise HTTPException(404, NOT_CONFIGURED)
    return sender.deliveries


def delivery_json(row: WebhookDelivery) -> dict[str, Any]:
    """A delivery as the admin API shows it (no body, no secret)."""
    return {"id": row.id, "event_id": row.event_id, "type": row.event_type, "ticket_id": row.ticket_id,
            "endpoint": row.endpoint, "status": row.status, "attempts": row.attempts,
            "last_error": row.last_error, "occurred_at": iso(row.occurred_at),
            "next_attempt_at": iso(row.next_attempt_at), "retried_by": row.retried_by}


async def dead_letters(request: Request) -> JSONResponse:
    """Webhook deliveries given up after the last try, newest first (admins only).
    ---
    summary: Dead-lettered webhook deliveries
    parameters:
      - {name: limit, in: query, schema: {type: integer, minimum: 1, maximum: 200, default: 100}}
      - {name: offset, in: query, schema: {type: integer, minimum: 0, default: 0}}
    responses:
      200: {description: "dead_letters: [{id, event_id, type, ticket_id, endpoint, attempts, last_error, ...}], count"}
      401: {description: Not logged in}
      403: {description: Not an admin}
      404: {description: Webhooks are not configured}
    """
    await _admin(request, state_change=False)
    deliveries = _deliveries(request)
    limit = int_param(request, "limit", 100, 1, 200)
    offset = int_param(request, "offset", 0, 0, 10**9)
    rows = await run_in_threadpool(deliveries.dead_letters, limit, offset)
    count = await run_in_threadpool(deliveries.count, "dead")
    return JSONResponse({"dead_letters": [delivery_json(r) for r in rows], "count": count})


async def retry_dead_letter(request: Request) -> JSONResponse:
    """Send a dead-lettered delivery again, with the same event id (admins only).
    ---
    summary: Replay a dead-lettered webhook delivery
    responses:
      200: {description: "delivery: the row, pending again"}
      401: {description: Not logged in}
      403: {description: "CSRF, or not an admin"}
      404: {description: Unknown delivery, or webhooks are not configured}
      409: {description: Not dead-lettered (replayed or delivered meanwhile)}
    """
    admin = await _admin(request, state_change=True)
    deliveries = _deliveries(request)
    row = await run_in_threadpool(deliveries.retry, int(request.path_params["delivery_id"]), admin)
    request.app.state.services.webhook_sender.wake()
    return JSONResponse({"delivery": delivery_json(row)})


routes = [
    Route("/api/admin/webhooks/dead-letters", dead_letters, methods=["GET"]),
    Route("/api/admin/webhooks/dead-letters/{delivery_id:int}/retry", retry_dead_letter, methods=["POST"]),
]
