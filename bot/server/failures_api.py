"""Admin API of mails that could not be sent: transcripts and department forwards given up.

The console's 配信の失敗 page (static/console/failures.html) lists them beside the webhook
dead letters (bot/server/webhooks_api.py) so an admin sees every delivery the bot server gave
up, and sends one again once the mail server or the address is fixed (a refusal is the app's
QueueError answer: 404 unknown, 409 not given up). A retry is audited
(``mail.retried``); the mailer is woken so it goes out at once. Agents get 403 with a
Japanese message (the desk's admin check).
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bot import wording
from bot.server.desk_api import _admin
from bot.server.http import int_param
from bot.server.serialize import iso
from bot.store.models import TranscriptMail
from bot.store.transcript_mails import TranscriptMails

TRIGGER_LABELS = {"request": wording.MAIL_ADMIN_TEXT["trigger_request"],
                  "auto": wording.MAIL_ADMIN_TEXT["trigger_auto"],
                  "forward": wording.MAIL_ADMIN_TEXT["trigger_forward"]}


def _mails(request: Request) -> TranscriptMails:
    # The mailer's queue when mail is configured; the rows stay readable without it (settings removed).
    mailer = request.app.state.services.gateway.mailer
    return mailer.mails if mailer is not None else TranscriptMails(request.app.state.services.stores.engine)


def mail_json(row: TranscriptMail) -> dict[str, Any]:
    """A mail as the admin page shows it (no body: the transcript stays in the ticket)."""
    return {"id": row.id, "ticket_id": row.ticket_id, "conversation_id": row.conversation_id,
            "address": row.address, "trigger": row.trigger, "trigger_label": TRIGGER_LABELS.get(row.trigger, row.trigger),
            "status": row.status, "attempts": row.attempts, "last_error": row.last_error,
            "created_at": iso(row.created_at), "next_attempt_at": iso(row.next_attempt_at)}


async def failed_mails(request: Request) -> JSONResponse:
    """Mails given up after their last try, newest first (admins only).
    ---
    summary: Transcript and department mails that could not be sent
    parameters:
      - {name: limit, in: query, schema: {type: integer, minimum: 1, maximum: 200, default: 100}}
      - {name: offset, in: query, schema: {type: integer, minimum: 0, default: 0}}
    responses:
      200: {description: "mails: [{id, ticket_id, address, trigger, trigger_label, attempts, last_error, ...}], count"}
      401: {description: Not logged in}
      403: {description: Not an admin}
    """
    await _admin(request, state_change=False)
    mails = _mails(request)
    limit = int_param(request, "limit", 100, 1, 200)
    offset = int_param(request, "offset", 0, 0, 10**9)
    rows = await run_in_threadpool(mails.failed, limit, offset)
    count = await run_in_threadpool(mails.count_failed)
    return JSONResponse({"mails": [mail_json(r) for r in rows], "count": count})


async def retry_failed_mail(request: Request) -> JSONResponse:
    """Send a given-up mail again (admins only); it is due at once.
    ---
    summary: Send a mail that could not be sent again
    responses:
      200: {description: "mail: the row, pending again"}
      401: {description: Not logged in}
      403: {description: "CSRF, or not an admin"}
      404: {description: Unknown mail}
      409: {description: Not given up (sent, or queued again meanwhile)}
    """
    admin = await _admin(request, state_change=True)
    row = await run_in_threadpool(_mails(request).retry, int(request.path_params["mail_id"]), admin)
    mailer = request.app.state.services.gateway.mailer
    if mailer is not None:
        mailer.wake()
    return JSONResponse({"mail": mail_json(row)})


routes = [
    Route("/api/admin/mails/failed", failed_mails, methods=["GET"]),
    Route("/api/admin/mails/failed/{mail_id:int}/retry", retry_failed_mail, methods=["POST"]),
]
