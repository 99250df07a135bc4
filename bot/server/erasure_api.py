"""Admin API of 個人情報の削除: `bot data delete` from the console (#14 item 5).

An admin names a customer by a conversation id or an e-mail address, sees what would be
deleted (a dry run: rows per kind, and the conversations found with the customer's name so
they can tell it is the right person), types the id or address again, and deletes. The
erasure itself is bot/store/erasure.py's, as for the command line: one transaction, the
audit line ``data.deleted`` (the admin, the client address, counts, a hash of the id or
address, never the content), and the same refusals — a customer with an open ticket is
refused with 409 until an agent resolves it.

Both calls are POST with the CSRF header so the address never lands in a URL (access logs,
browser history). Agents and supervisors get 403 with a Japanese message.
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bot.server.auth import client_address
from bot.server.desk_api import _admin
from bot.server.http import read_json
from bot.store.erasure import (BY_CONVERSATION, BY_EMAIL, KINDS, TEXT as ERASURE_TEXT, Erasure, ErasureError,
                               ErasureResult, FoundConversation, normalise)

# ErasureError.reason -> HTTP status (the command line's exit codes 2 / 3 / 1).
STATUS = {"input": 422, "unknown": 404, "open": 409}
TEXT = {
    "by": "「by」には conversation（会話 ID）または email（メールアドレス）を指定してください。",
    "value": "「value」に削除するお客さまの会話 ID またはメールアドレスを文字列で指定してください。",
    "confirm": "確認の入力が削除するお客さまの{by}と一致しません。何も削除していません。"
               "同じ{by}をもう一度入力してください。",
}


def _erasure(request: Request) -> Erasure:
    # The stores' one instance: Rasa's SQLite tracker file gets one engine per server, not one per request.
    return request.app.state.services.stores.erasure


def _request(data: dict[str, Any]) -> tuple[str, str]:
    """The ``by`` and ``value`` of a request body.

    Raises:
        HTTPException: 422 for an unknown ``by`` or a ``value`` that is not a string.
    """
    by, value = data.get("by"), data.get("value")
    if by not in (BY_CONVERSATION, BY_EMAIL):
        raise HTTPException(422, TEXT["by"])
    if not isinstance(value, str):
        raise HTTPException(422, TEXT["value"])
    return by, value


def _confirmed(by: str, value: str, confirm: Any) -> None:
    """Refuse unless ``confirm`` names the same customer (compared as the erasure compares them).

    Raises:
        ErasureError: ``value`` itself is blank or not an address (its own message, not a mismatch).
        HTTPException: 422 when the confirmation is missing or differs.
    """
    wanted = normalise(by, value)
    try:
        same = isinstance(confirm, str) and normalise(by, confirm) == wanted
    except ErasureError:
        same = False
    if not same:
        raise HTTPException(422, TEXT["confirm"].format(by=ERASURE_TEXT[f"by_{by}"]))


def _found_json(found: FoundConversation) -> dict[str, Any]:
    return {"conversation_id": found.conversation_id, "name": found.name, "tickets": found.tickets,
            "started_at": found.started_at.isoformat() if found.started_at else None}


def result_json(result: ErasureResult, found: list[FoundConversation] | None = None) -> dict[str, Any]:
    """An erasure (or a dry run) as the console shows it: the CLI's kinds and labels, in its order."""
    answer: dict[str, Any] = {
        "by": result.by, "dry_run": result.dry_run, "conversation_count": len(result.conversations),
        "summary": result.lines()[0], "counts": [{"kind": kind, "label": label, "count": result.counts.get(kind, 0)}
                                               for kind, label in KINDS.items()],
        "total": result.total,
    }
    if found is not None:
        answer["conversations"] = [_found_json(f) for f in found]
    return answer


async def _erase(request: Request, dry_run: bool) -> JSONResponse:
    """Check the admin (and CSRF), read the body, run the erasure; its refusals become 4xx."""
    admin = await _admin(request, state_change=True)
    data = await read_json(request)
    by, value = _request(data)
    erasure = _erasure(request)
    try:
        if not dry_run:
            _confirmed(by, value, data.get("confirm"))
        result = await run_in_threadpool(erasure.erase, by, value, dry_run, admin, client_address(request))
    except ErasureError as exc:
        raise HTTPException(STATUS.get(exc.reason, 422), str(exc)) from None
    found = await run_in_threadpool(erasure.describe, result.conversations) if dry_run else None
    return JSONResponse(result_json(result, found))


async def preview_erasure(request: Request) -> JSONResponse:
    """What deleting a customer's data would delete (admins only; nothing is changed or logged).
    ---
    summary: Dry run of an erasure by conversation id or e-mail address
    requestBody: {content: {application/json: {schema: {type: object, required: [by, value], properties: {
      by: {type: string, enum: [conversation, email]}, value: {type: string}}}}}}
    responses:
      200: {description: "{by, dry_run: true, conversation_count, summary, counts: [{kind, label, count}], total,
        conversations: [{conversation_id, name, started_at, tickets}] (the first 20)}"}
      400: {description: Not a JSON object}
      401: {description: Not logged in}
      403: {description: "CSRF, or not an admin"}
      404: {description: No data of that conversation or address}
      409: {description: An open ticket (waiting or being answered); resolve it first}
      422: {description: "Unknown by, blank value, an address without @"}
    """
    return await _erase(request, dry_run=True)


async def erase_customer(request: Request) -> JSONResponse:
    """Delete a customer's data (admins only; audited without the content).
    ---
    summary: Erase every row of a customer, named by conversation id or e-mail address, typed twice
    requestBody: {content: {application/json: {schema: {type: object, required: [by, value, confirm], properties: {
      by: {type: string, enum: [conversation, email]}, value: {type: string},
      confirm: {type: string, description: the same id or address typed again}}}}}}
    responses:
      200: {description: "{by, dry_run: false, conversation_count, summary, counts: [{kind, label, count}], total}"}
      400: {description: Not a JSON object}
      401: {description: Not logged in}
      403: {description: "CSRF, or not an admin"}
      404: {description: No data of that conversation or address; nothing deleted}
      409: {description: An open ticket (waiting or being answered); nothing deleted}
      422: {description: "Unknown by, blank value, an address without @, or a confirmation that differs"}
    """
    return await _erase(request, dry_run=False)


routes = [
    Route("/api/admin/erasure/preview", preview_erasure, methods=["POST"]),
    Route("/api/admin/erasure", erase_customer, methods=["POST"]),
]
