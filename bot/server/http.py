"""Reading JSON request bodies safely: size limit, malformed JSON, wrong shapes → clear 4xx."""

from __future__ import annotations

import json
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request

MAX_BODY_BYTES = 64 * 1024


async def read_json(request: Request, max_bytes: int = MAX_BODY_BYTES) -> dict[str, Any]:
    """The request's JSON object.

    Raises:
        HTTPException: 413 body too large; 400 not JSON or not an object.
    """
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise HTTPException(413, f"リクエストが大きすぎます（{max_bytes // 1024} KB まで）。")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise HTTPException(413, f"リクエストが大きすぎます（{max_bytes // 1024} KB まで）。")
    if not body.strip():
        return {}
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):  # RecursionError: absurd nesting
        raise HTTPException(400, "JSON の形式が正しくありません。") from None
    if not isinstance(data, dict):
        raise HTTPException(400, "JSON オブジェクト（{...}）を送ってください。")
    return data


def text_field(data: dict[str, Any], name: str) -> str:
    """A required string field.

    Raises:
        HTTPException: 422 when missing, not a string or blank.
    """
    value = data.get(name)
    if not isinstance(value, str) or not value.strip():
        raise HTTPException(422, f"「{name}」に文字列を指定してください。")
    return value


MAX_ID = 2**63 - 1


def ticket_id_of(request: Request) -> int:
    """The ``{ticket_id}`` path parameter (the route only matches digits).

    Raises:
        HTTPException: 404 for an id no database column can hold.
    """
    ticket_id = int(request.path_params["ticket_id"])
    if ticket_id > MAX_ID:
        raise HTTPException(404, f"チケット {ticket_id} はありません。")
    return ticket_id
