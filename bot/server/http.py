"""Reading requests safely (JSON bodies, paging parameters → clear 4xx) and checking origins."""

from __future__ import annotations

import json
from typing import Any, Iterable

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Scope

from bot import wording

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
        data = parse_json(body)
    except ValueError:
        raise HTTPException(400, "JSON の形式が正しくありません。") from None
    if not isinstance(data, dict):
        raise HTTPException(400, "JSON オブジェクト（{...}）を送ってください。")
    return data


def parse_json(raw: str | bytes) -> Any:
    """Parse client JSON, refusing what the server could not store or compare.

    Raises:
        ValueError: Not JSON (also: absurd nesting, integers over 4,300 digits, invalid UTF-8),
            or a string holding a lone surrogate (``\\ud800``: no UTF-8 form) or a NUL
            character (PostgreSQL refuses it).
    """
    try:
        data = json.loads(raw)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    if not _storable(data):
        raise ValueError("JSON string with a lone surrogate or a NUL character")
    return data


def _storable(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item or any("\ud800" <= ch <= "\udfff" for ch in item):
                return False
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return True


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
        raise HTTPException(404, wording.STORE_AGENT_TEXT["not_found"].format(ticket_id=ticket_id))
    return ticket_id


def int_param(request: Request, name: str, default: int, minimum: int, maximum: int) -> int:
    """An optional whole-number query parameter (``limit``, ``offset``, ``before`` ...).

    Raises:
        HTTPException: 422 when it is not a whole number from ``minimum`` to ``maximum``.
    """
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isascii() or not raw.isdigit() or not minimum <= int(raw) <= maximum:
        raise HTTPException(422, f"「{name}」には {minimum} から {maximum} までの整数を指定してください。")
    return int(raw)


def download(content: bytes, media_type: str, filename: str) -> Response:
    """A file for the browser to save (an export): not cached, saved as ``filename`` (ASCII)."""
    return Response(content, media_type=media_type,
                    headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"})


def _default_port(scheme: str) -> str:
    return "443" if scheme in ("https", "wss") else "80"


def same_origin(origin: str, scope: Scope) -> bool:
    """Whether ``origin`` (an ``Origin`` header) names the host the request was sent to.

    Compares host and port with the ``Host`` header (a default port may be left out on
    either side). Behind a proxy the ``Host`` header must be the public one (nginx:
    ``proxy_set_header Host $host;``), or the public origin is listed in
    ``BOT_WIDGET_ORIGINS``.
    """
    scheme, _, rest = origin.partition("://")
    host = Headers(scope=scope).get("host", "").lower()
    if not rest or not host:
        return False
    default = _default_port(scheme)
    return _with_port(rest, default) == _with_port(host, default)


def _with_port(authority: str, default: str) -> str:
    if authority.endswith("]") or ":" not in authority.rsplit("]", 1)[-1]:
        return f"{authority}:{default}"
    return authority


def origin_allowed(scope: Scope, allowed: Iterable[str]) -> bool:
    """Whether a customer's request may come from the page it comes from.

    Browsers send ``Origin`` on every WebSocket and on cross-origin or state-changing
    HTTP requests; a request without one is not a browser's cross-site request. Allowed:
    the bot server's own origin and the configured widget origins.
    """
    origin = Headers(scope=scope).get("origin")
    if origin is None:
        return True
    origin = origin.strip().lower()
    return origin in allowed or same_origin(origin, scope)
