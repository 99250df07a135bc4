"""Customer side: start a conversation, read its history, chat over a WebSocket.

Frames are described in docs/server-api.md. A bad frame gets an ``error`` frame in
Japanese and changes nothing; the socket stays open.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from bot.handoff.contact import ContactError
from bot.server.events import CLOSED
from bot.server.gateway import MAX_MESSAGE_CHARS, CustomerError, Gateway
from bot.server.http import read_json
from bot.store.queue import QueueError

logger = logging.getLogger(__name__)

CLOSE_BAD_TOKEN = 4401
CLOSE_RESYNC = 4000
# JSON escapes (\n, \", \uXXXX) can make a 10,000-character message up to 6× longer as a frame.
MAX_FRAME_BYTES = MAX_MESSAGE_CHARS * 6 + 2_000
CUSTOMER_FIELDS = ("name", "email", "page_url")


def _services(connection: Request | WebSocket) -> Any:
    return connection.app.state.services


async def start_session(request: Request) -> JSONResponse:
    """Start a conversation.
    ---
    summary: New conversation id and the token that alone can read it
    requestBody: {content: {application/json: {schema: {type: object, properties: {customer: {type: object,
      properties: {name: {type: string}, email: {type: string}, page_url: {type: string}}}}}}}}
    responses: {201: {description: "{conversation_id, token}"}, 400: {description: Malformed JSON}}
    """
    data = await read_json(request)
    given = data.get("customer") if isinstance(data.get("customer"), dict) else {}
    customer = {k: str(given[k])[:500] for k in CUSTOMER_FIELDS if given.get(k)}
    services = _services(request)
    conversation_id, token = services.tokens.new_conversation()
    await run_in_threadpool(services.stores.chat_log.start_conversation, conversation_id, customer)
    return JSONResponse({"conversation_id": conversation_id, "token": token}, status_code=201)


async def history(request: Request) -> JSONResponse:
    """Conversation history.
    ---
    summary: Every message of the caller's conversation and who answers now
    parameters: [{name: Authorization, in: header, required: true, schema: {type: string}, description: Bearer token}]
    responses: {200: {description: "{conversation_id, state, messages}"}, 401: {description: Bad token}}
    """
    header = request.headers.get("authorization", "")
    token = header[7:] if header.lower().startswith("bearer ") else None
    conversation_id = _services(request).tokens.conversation_of(token)
    if conversation_id is None:
        raise HTTPException(401, "会話のトークンが正しくありません。新しい会話を始めてください。")
    frame = await _services(request).gateway.history(conversation_id)
    return JSONResponse({"conversation_id": conversation_id, "state": frame["state"], "messages": frame["messages"]})


async def chat_socket(websocket: WebSocket) -> None:
    """The widget's WebSocket: frames in both directions (see docs/server-api.md)."""
    services = _services(websocket)
    conversation_id = services.tokens.conversation_of(websocket.query_params.get("token"))
    await websocket.accept()
    if conversation_id is None:
        await websocket.close(code=CLOSE_BAD_TOKEN, reason="bad token")
        return
    outgoing = services.hub.subscribe_conversation(conversation_id)
    sender = asyncio.create_task(_forward(websocket, outgoing))
    try:
        await websocket.send_json(await services.gateway.history(conversation_id))
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            raw = message.get("text")
            error = (await _handle_frame(services.gateway, conversation_id, raw) if raw is not None
                     else "テキスト形式で送信してください。")
            if error:
                await websocket.send_json({"type": "error", "message": error})
    except WebSocketDisconnect:
        pass
    finally:
        services.hub.unsubscribe_conversation(conversation_id, outgoing)
        sender.cancel()


async def _forward(websocket: WebSocket, outgoing: asyncio.Queue[dict[str, Any]]) -> None:
    try:
        while True:
            frame = await outgoing.get()
            if frame is CLOSED:  # fell too far behind: the widget reconnects and reloads its history
                await websocket.close(code=CLOSE_RESYNC)
                return
            await websocket.send_json(frame)
    except (WebSocketDisconnect, RuntimeError):
        pass  # the socket closed; the receive loop cleans up


async def _handle_frame(gateway: Gateway, conversation_id: str, raw: str) -> str | None:
    """Carry out one client frame; the Japanese error to show, if any."""
    if len(raw) > MAX_FRAME_BYTES:  # uvicorn's ws_max_size caps bytes too; the text limit is the gateway's
        return f"メッセージが長すぎます（{MAX_MESSAGE_CHARS:,} 文字まで）。分けて送ってください。"
    try:
        frame = json.loads(raw)
    except (json.JSONDecodeError, RecursionError):
        return "送信内容の形式が正しくありません。"
    if not isinstance(frame, dict):
        return "送信内容の形式が正しくありません。"
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
        else:
            return "送信内容の形式が正しくありません。"
    except (CustomerError, ContactError, QueueError) as exc:
        return str(exc)
    return None


routes = [
    Route("/api/chat/sessions", start_session, methods=["POST"]),
    Route("/api/chat/history", history, methods=["GET"]),
    WebSocketRoute("/ws/chat", chat_socket),
]
