"""Customer side: start a conversation, read its history, chat over a WebSocket, end it.

Frames are described in docs/server-api.md. A bad frame gets an ``error`` frame in
Japanese and changes nothing; the socket stays open.

The token never travels in a URL: HTTP calls carry it in ``Authorization: Bearer``, the
WebSocket in its first frame (``{"type": "auth", "token": ...}``). A token works until
the conversation has been idle for ``BOT_CONVERSATION_IDLE_DAYS`` or the customer ended
it. Customers are not logged in, so what one address or conversation can open is
limited (:class:`bot.settings.Limits`): over a limit, HTTP answers 429 with
``Retry-After`` and the WebSocket an ``error`` frame, both in polite Japanese.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
from collections import Counter
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from bot import wording
from bot.handoff.contact import ContactError
from bot.server.auth import client_address
from bot.server.events import CLOSED, conversation_channel
from bot.server.gateway import MAX_MESSAGE_CHARS, CustomerError, Gateway, RateLimited
from bot.server.http import parse_json, read_json
from bot.server.outage import CLOSE_TRY_AGAIN_LATER, DATABASE_DOWN, log_outage, unavailable_frame
from bot.store.queue import QueueError

logger = logging.getLogger(__name__)

CLOSE_BAD_TOKEN = 4401
CLOSE_RESYNC = 4000
CLOSE_ENDED = 4410  # the customer ended the conversation (in this tab or another)
CLOSE_TOO_MANY = 4429  # too many open sockets for this conversation
# The widget sends its token in the first frame; a socket that stays silent is closed.
AUTH_TIMEOUT_SECONDS = 10.0
# JSON escapes (\n, \", \uXXXX) can make a 10,000-character message up to 6× longer as a frame.
MAX_FRAME_BYTES = MAX_MESSAGE_CHARS * 6 + 2_000
CUSTOMER_FIELDS = ("name", "email", "page_url")
HOUR = dt.timedelta(hours=1)
# Customer-facing texts live in bot/wording.py.
TEXT = wording.CHAT_ERRORS


def _services(connection: Request | WebSocket) -> Any:
    return connection.app.state.services


def _wait_text(seconds: int) -> str:
    return f"{seconds} 秒後" if seconds < 60 else f"約 {math.ceil(seconds / 60)} 分後"


class SocketCounter:
    """Open WebSockets per conversation on this server (:attr:`Limits.sockets_per_conversation`)."""

    def __init__(self) -> None:
        """Start with none open."""
        self._open: Counter[str] = Counter()

    def acquire(self, conversation_id: str, limit: int) -> bool:
        """Count one more socket; False (nothing counted) when ``limit`` are open already."""
        if limit and self._open[conversation_id] >= limit:
            return False
        self._open[conversation_id] += 1
        return True

    def release(self, conversation_id: str) -> None:
        """One socket of the conversation closed."""
        self._open[conversation_id] -= 1
        if self._open[conversation_id] <= 0:
            del self._open[conversation_id]

    def count(self, conversation_id: str) -> int:
        """Sockets of the conversation open now."""
        return self._open[conversation_id]


def clean_page_url(value: str, keep_query: bool = False) -> str:
    """The page the customer chatted from, as stored: no fragment, no user name or password,
    and no query string unless ``keep_query`` (``BOT_KEEP_PAGE_URL_QUERY=1``).

    Query strings and fragments often carry e-mail addresses, order numbers, search
    words or sign-in tokens; the path is enough to tell which page it was.
    """
    text = value.strip()
    parts = urlsplit(text)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        text = text.split("#", 1)[0]
        return text if keep_query else text.split("?", 1)[0]
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = host + (f":{port}" if port else "")
    return urlunsplit((parts.scheme.lower(), netloc, parts.path, parts.query if keep_query else "", ""))


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    return header[7:].strip() if header.lower().startswith("bearer ") else None


async def _conversation_for(services: Any, token: str | None) -> str | None:
    """The conversation of a token that still works (noting the use), else ``None``."""
    conversation_id = services.tokens.conversation_of(token)
    if conversation_id is None:
        return None
    if not await run_in_threadpool(services.stores.chat_log.use_conversation, conversation_id,
                                   services.conversation_idle):
        return None
    return str(conversation_id)


async def start_session(request: Request) -> JSONResponse:
    """Start a conversation.
    ---
    summary: New conversation id and the token that alone can read it
    requestBody: {content: {application/json: {schema: {type: object, properties: {customer: {type: object,
      properties: {name: {type: string}, email: {type: string}, page_url: {type: string}}}}}}}}
    responses:
      201: {description: "{conversation_id, token}"}
      400: {description: Malformed JSON}
      403: {description: "Sent from a page whose origin is not allowed (BOT_WIDGET_ORIGINS)"}
      429: {description: "Too many new conversations from this address: wait Retry-After seconds"}
    """
    data = await read_json(request)
    given = data.get("customer") if isinstance(data.get("customer"), dict) else {}
    services = _services(request)
    customer = {k: str(given[k])[:2000] for k in CUSTOMER_FIELDS if given.get(k)}
    if "page_url" in customer:
        customer["page_url"] = clean_page_url(customer["page_url"], services.keep_page_url_query)
    customer = {k: v[:500] for k, v in customer.items() if v}
    chat_log = services.stores.chat_log
    address_key = services.tokens.address_key(client_address(request))
    limit = services.limits.sessions_per_address_per_hour
    if limit:
        count, oldest = await run_in_threadpool(chat_log.started_from, address_key, HOUR)
        if count >= limit:
            age = chat_log.clock() - oldest if oldest else dt.timedelta()
            seconds = max(1, math.ceil((HOUR - age).total_seconds()))
            logger.info("new conversation refused: %d started from one address within the hour", count)
            raise HTTPException(429, TEXT["too_many_sessions"].format(wait=_wait_text(seconds),
                                                                   contact=wording.fallback_contact()),
                                headers={"Retry-After": str(seconds)})
    conversation_id, token = services.tokens.new_conversation()
    await run_in_threadpool(chat_log.start_conversation, conversation_id, customer, address_key)
    return JSONResponse({"conversation_id": conversation_id, "token": token}, status_code=201)


async def history(request: Request) -> JSONResponse:
    """Conversation history.
    ---
    summary: Every message of the caller's conversation and who answers now
    parameters: [{name: Authorization, in: header, required: true, schema: {type: string}, description: Bearer token}]
    responses: {200: {description: "{conversation_id, state, messages}"},
      401: {description: "Bad, expired or ended token"}}
    """
    services = _services(request)
    conversation_id = await _conversation_for(services, _bearer(request))
    if conversation_id is None:
        raise HTTPException(401, TEXT["bad_token"])
    frame = await services.gateway.history(conversation_id)
    return JSONResponse({"conversation_id": conversation_id, "state": frame["state"], "messages": frame["messages"]})


async def end_session(request: Request) -> JSONResponse:
    """End the conversation (「会話を終了」).
    ---
    summary: The token stops working at once; open tabs of the conversation are told (frame `ended`)
    parameters: [{name: Authorization, in: header, required: true, schema: {type: string}, description: Bearer token}]
    responses: {200: {description: "{}"}, 401: {description: Bad token}}
    """
    services = _services(request)
    conversation_id = services.tokens.conversation_of(_bearer(request))
    if conversation_id is None:
        raise HTTPException(401, TEXT["bad_token"])
    await services.gateway.end_conversation(conversation_id)
    return JSONResponse({})


async def _first_frame_token(websocket: WebSocket) -> tuple[str | None, bool]:
    """The token of the ``auth`` frame the widget sends first.

    Returns:
        The token (``None``: silent, not an ``auth`` frame) and whether the client is
        still connected.
    """
    try:
        message = await asyncio.wait_for(websocket.receive(), AUTH_TIMEOUT_SECONDS)
    except asyncio.TimeoutError:
        return None, True
    if message["type"] == "websocket.disconnect":
        return None, False
    raw = message.get("text")
    if raw is None or len(raw) > 1_000:
        return None, True
    try:
        frame = parse_json(raw)
    except ValueError:
        return None, True
    if isinstance(frame, dict) and frame.get("type") == "auth" and isinstance(frame.get("token"), str):
        return frame["token"], True
    return None, True


async def chat_socket(websocket: WebSocket) -> None:
    """The widget's WebSocket: an ``auth`` frame first, then frames both ways (see docs/server-api.md)."""
    services = _services(websocket)
    await websocket.accept()
    # Deprecated: older clients put the token in the URL (it ends up in logs); the widget never does.
    token = websocket.query_params.get("token")
    if token is None:
        token, connected = await _first_frame_token(websocket)
        if not connected:
            return
    try:
        conversation_id = await _conversation_for(services, token)
    except DATABASE_DOWN as exc:
        await _unavailable(websocket, exc)
        return
    if conversation_id is None:
        await websocket.close(code=CLOSE_BAD_TOKEN, reason="bad token")
        return
    sockets: SocketCounter = services.sockets
    if not sockets.acquire(conversation_id, services.limits.sockets_per_conversation):
        logger.info("socket refused: %d already open for one conversation", sockets.count(conversation_id))
        await websocket.send_json({"type": "error", "code": "too_many_connections",
                                   "message": TEXT["too_many_sockets"]})
        await websocket.close(code=CLOSE_TOO_MANY)
        return
    try:
        # Subscribed before the history is read: no frame falls between the two.
        async with services.hub.subscribe(conversation_channel(conversation_id)) as outgoing:
            sender = asyncio.create_task(_forward(websocket, outgoing))
            try:
                await _serve(websocket, services, conversation_id)
            finally:
                sender.cancel()
    except DATABASE_DOWN as exc:
        await _unavailable(websocket, exc)
    finally:
        sockets.release(conversation_id)


async def _unavailable(websocket: WebSocket, exc: BaseException) -> None:
    """The database is down: say so in Japanese and close with 1013; the widget reconnects later."""
    log_outage(exc, "chat socket")
    try:
        await websocket.send_json(unavailable_frame())
        await websocket.close(code=CLOSE_TRY_AGAIN_LATER)
    except (WebSocketDisconnect, RuntimeError):
        pass  # the customer left meanwhile


async def _serve(websocket: WebSocket, services: Any, conversation_id: str) -> None:
    """Send the history, then handle the customer's frames until the socket closes.

    A message the history shows but nobody answered (stored just before the database or this
    server went away) is routed now: the widget saw it delivered and will not send it again.
    """
    try:
        await websocket.send_json(await services.gateway.history(conversation_id))
        await services.gateway.route_unanswered(conversation_id)
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            raw = message.get("text")
            error = (await _handle_frame(services.gateway, conversation_id, raw) if raw is not None
                     else {"type": "error", "message": TEXT["not_text"]})
            if error:
                await websocket.send_json(error)
    except (WebSocketDisconnect, RuntimeError):  # RuntimeError: closed meanwhile (conversation ended)
        pass


async def _forward(websocket: WebSocket, outgoing: asyncio.Queue[dict[str, Any]]) -> None:
    try:
        while True:
            frame = await outgoing.get()
            if frame is CLOSED:  # fell too far behind: the widget reconnects and reloads its history
                await websocket.close(code=CLOSE_RESYNC)
                return
            await websocket.send_json(frame)
            if frame.get("type") == "ended":  # the customer ended the conversation: no reconnect
                await websocket.close(code=CLOSE_ENDED)
                return
    except (WebSocketDisconnect, RuntimeError):
        pass  # the socket closed; the receive loop cleans up


async def _handle_frame(gateway: Gateway, conversation_id: str, raw: str) -> dict[str, Any] | None:
    """Carry out one client frame; the ``error`` frame to send back, if any."""
    if len(raw) > MAX_FRAME_BYTES:  # uvicorn's ws_max_size caps bytes too; the text limit is the gateway's
        return {"type": "error", "message": TEXT["too_long"].format(limit=MAX_MESSAGE_CHARS)}
    try:
        frame = parse_json(raw)
    except ValueError:  # not JSON, or text the server could not store
        return {"type": "error", "message": TEXT["bad_frame"]}
    if not isinstance(frame, dict):
        return {"type": "error", "message": TEXT["bad_frame"]}
    kind = frame.get("type")
    client_id = frame.get("client_id") if isinstance(frame.get("client_id"), str) else None
    client_id = client_id[:100] if client_id else None
    try:
        if kind == "message" and isinstance(frame.get("text"), str):
            await gateway.customer_message(conversation_id, frame["text"], client_id)
        elif kind == "button" and isinstance(frame.get("payload"), str):
            await gateway.button(conversation_id, frame["payload"], str(frame.get("title") or ""), client_id)
        elif kind == "feedback" and isinstance(frame.get("message_id"), int) \
                and 0 < frame["message_id"] < 2**63 and isinstance(frame.get("helpful"), bool):
            await gateway.feedback(conversation_id, frame["message_id"], frame["helpful"])
        elif kind == "cancel_handoff":
            await gateway.cancel_handoff(conversation_id)
        elif kind == "contact":
            await gateway.contact(conversation_id, frame)
        elif kind == "csat":
            await gateway.rate(conversation_id, frame.get("ticket_id"), frame.get("rating"), frame.get("comment"))
        elif kind == "transcript":
            await gateway.request_transcript(conversation_id, frame.get("ticket_id"), frame.get("email"))
        elif kind == "end":
            await gateway.end_conversation(conversation_id)
        elif kind == "auth":
            pass  # already authenticated (a client that sent its token twice)
        else:
            return {"type": "error", "message": TEXT["bad_frame"]}
    except RateLimited as exc:
        return {"type": "error", "code": "rate_limited", "message": str(exc), "retry_after": exc.retry_after,
                "client_id": client_id}
    except (CustomerError, ContactError, QueueError) as exc:
        error: dict[str, Any] = {"type": "error", "message": str(exc)}
        if client_id:
            error["client_id"] = client_id
        return error
    return None


routes = [
    Route("/api/chat/sessions", start_session, methods=["POST"]),
    Route("/api/chat/history", history, methods=["GET"]),
    Route("/api/chat/session", end_session, methods=["DELETE"]),
    WebSocketRoute("/ws/chat", chat_socket),
]
