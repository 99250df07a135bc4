"""Agent API: login, tickets (list, read, claim, reply, note, resolve) and the SSE feed.

Each endpoint's docstring carries its OpenAPI description (served at /openapi.json).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, AsyncIterator

from sse_starlette.sse import EventSourceResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bot.server.auth import check_csrf, csrf_token, current_agent, log_in, log_out
from bot.server.events import CLOSED
from bot.server.http import read_json, text_field, ticket_id_of

SSE_PING_SECONDS = 15


def _services(request: Request) -> Any:
    return request.app.state.services


def _me(request: Request, username: str, csrf: str) -> JSONResponse:
    profile = _services(request).stores.agents.get(username)
    if profile is None:  # the agent was removed while logged in
        log_out(request)
        raise HTTPException(401, "ログインしてください。")
    return JSONResponse({"agent": {"username": profile.username, "display_name": profile.display_name},
                         "csrf_token": csrf})


async def login(request: Request) -> JSONResponse:
    """Log in.
    ---
    summary: Log in as an agent (sets the session cookie)
    requestBody: {content: {application/json: {schema: {type: object, required: [username, password],
      properties: {username: {type: string}, password: {type: string}}}}}}
    responses:
      200: {description: "{agent, csrf_token}"}
      401: {description: Wrong user name or password}
      429: {description: Too many wrong passwords}
    """
    data = await read_json(request)
    username, password = data.get("username"), data.get("password")
    if not isinstance(username, str) or not isinstance(password, str):
        raise HTTPException(422, "ユーザー名とパスワードを入力してください。")
    services = _services(request)
    services.throttle.begin(username)
    profile = await run_in_threadpool(services.stores.agents.authenticate, username, password)
    if profile is None:
        raise HTTPException(401, "ユーザー名またはパスワードが違います。")
    services.throttle.succeeded(username)
    return _me(request, profile.username, log_in(request, profile))


async def logout(request: Request) -> JSONResponse:
    """Log out.
    ---
    summary: End the agent session
    responses: {200: {description: Logged out}, 403: {description: CSRF}}
    """
    check_csrf(request)
    log_out(request)
    return JSONResponse({})


async def me(request: Request) -> JSONResponse:
    """Who is logged in.
    ---
    summary: The logged-in agent and the CSRF token
    responses: {200: {description: "{agent, csrf_token}"}, 401: {description: Not logged in}}
    """
    return _me(request, current_agent(request), csrf_token(request))


async def list_tickets(request: Request) -> JSONResponse:
    """List tickets.
    ---
    summary: Tickets by status (open = waiting and claimed, high priority first, then oldest)
    parameters: [{name: status, in: query, schema: {type: string, enum: [open, resolved, all]}}]
    responses: {200: {description: "{tickets}"}, 401: {description: Not logged in}, 422: {description: Unknown status}}
    """
    current_agent(request)
    services = _services(request)
    tickets = await run_in_threadpool(services.stores.queue.tickets, request.query_params.get("status", "open"))
    return JSONResponse({"tickets": [services.gateway.ticket_json(t) for t in tickets]})


async def get_ticket(request: Request) -> JSONResponse:
    """One ticket with its transcript.
    ---
    summary: A ticket with every transcript entry
    responses: {200: {description: "{ticket}"}, 401: {description: Not logged in}, 404: {description: Unknown id}}
    """
    current_agent(request)
    services = _services(request)
    ticket = await run_in_threadpool(services.stores.queue.get, ticket_id_of(request))
    return JSONResponse({"ticket": services.gateway.ticket_json(ticket, with_entries=True)})


def _ticket_answer(request: Request, ticket: Any) -> JSONResponse:
    return JSONResponse({"ticket": _services(request).gateway.ticket_json(ticket, with_entries=True)})


async def claim(request: Request) -> JSONResponse:
    """Claim.
    ---
    summary: Take a waiting ticket (the customer sees the agent join)
    responses: {200: {description: "{ticket}"}, 403: {description: CSRF}, 404: {description: Unknown id},
      409: {description: Not waiting}}
    """
    username = check_csrf(request)
    return _ticket_answer(request, await _services(request).gateway.claim(ticket_id_of(request), username))


async def reply(request: Request) -> JSONResponse:
    """Reply.
    ---
    summary: Send a reply to the customer's chat
    requestBody: {content: {application/json: {schema: {type: object, required: [text],
      properties: {text: {type: string, maxLength: 10000}}}}}}
    responses: {200: {description: "{ticket}"}, 404: {description: Unknown id},
      409: {description: Not claimed by this agent}, 422: {description: Empty or too long}}
    """
    username = check_csrf(request)
    text = text_field(await read_json(request), "text")
    ticket = await _services(request).gateway.agent_reply(ticket_id_of(request), username, text)
    return _ticket_answer(request, ticket)


async def note(request: Request) -> JSONResponse:
    """Internal note.
    ---
    summary: Add an internal note (never shown to the customer)
    requestBody: {content: {application/json: {schema: {type: object, required: [text],
      properties: {text: {type: string}}}}}}
    responses: {200: {description: "{ticket}"}, 404: {description: Unknown id}, 409: {description: Resolved}}
    """
    username = check_csrf(request)
    text = text_field(await read_json(request), "text")
    return _ticket_answer(request, await _services(request).gateway.agent_note(ticket_id_of(request), username, text))


async def resolve(request: Request) -> JSONResponse:
    """Resolve.
    ---
    summary: Close the ticket; the conversation returns to the bot
    responses: {200: {description: "{ticket}"}, 404: {description: Unknown id}, 409: {description: Already resolved}}
    """
    check_csrf(request)
    return _ticket_answer(request, await _services(request).gateway.resolve(ticket_id_of(request)))


async def events(request: Request) -> EventSourceResponse:
    """Live ticket feed.
    ---
    summary: Server-Sent Events, one `ticket` event per change (created, claimed, message, resolved, ...)
    responses: {200: {description: text/event-stream}, 401: {description: Not logged in}}
    """
    current_agent(request)
    hub = _services(request).hub
    queue = hub.subscribe_agents()

    async def stream() -> AsyncIterator[dict[str, str]]:
        try:
            yield {"event": "ready", "data": "{}"}
            while True:
                item = await queue.get()
                if item is CLOSED:  # fell too far behind: end the stream; the console reconnects and reloads
                    return
                yield {"event": "ticket", "data": json.dumps(item, ensure_ascii=False)}
        except asyncio.CancelledError:
            raise
        finally:
            hub.unsubscribe_agents(queue)

    return EventSourceResponse(stream(), ping=SSE_PING_SECONDS)


TICKET = "/api/tickets/{ticket_id:int}"
routes = [
    Route("/api/agent/login", login, methods=["POST"]),
    Route("/api/agent/logout", logout, methods=["POST"]),
    Route("/api/agent/me", me, methods=["GET"]),
    Route("/api/tickets", list_tickets, methods=["GET"]),
    Route(TICKET, get_ticket, methods=["GET"]),
    Route(TICKET + "/claim", claim, methods=["POST"]),
    Route(TICKET + "/reply", reply, methods=["POST"]),
    Route(TICKET + "/notes", note, methods=["POST"]),
    Route(TICKET + "/resolve", resolve, methods=["POST"]),
    Route("/api/events", events, methods=["GET"]),
]
