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

from bot.server.auth import (check_csrf, client_address, current_agent, current_session, log_in, log_out,
                             still_logged_in)
from bot.server.events import CLOSED
from bot.server.first_agent import forget_first_password
from bot.server.http import read_json, text_field, ticket_id_of
from bot.store.agents import AgentError, SessionInfo

SSE_PING_SECONDS = 15
# An open event stream re-checks its session this often, and ends once it was logged out,
# the agent removed or the password changed elsewhere.
SESSION_RECHECK_SECONDS = 15.0


def _services(request: Request) -> Any:
    return request.app.state.services


def _me(session: SessionInfo, **extra: Any) -> JSONResponse:
    return JSONResponse({"agent": {"username": session.username, "display_name": session.display_name},
                         "csrf_token": session.csrf_token, **extra})


async def login(request: Request) -> JSONResponse:
    """Log in.
    ---
    summary: Log in as an agent (sets the session cookie)
    requestBody: {content: {application/json: {schema: {type: object, required: [username, password],
      properties: {username: {type: string}, password: {type: string}}}}}}
    responses:
      200: {description: "{agent, csrf_token}"}
      401: {description: Wrong user name or password}
      429: {description: "Too many wrong passwords from this address or for this name: wait Retry-After seconds"}
      503: {description: "Too many password checks at once: retry after Retry-After seconds"}
    """
    data = await read_json(request)
    username, password = data.get("username"), data.get("password")
    if not isinstance(username, str) or not isinstance(password, str):
        raise HTTPException(422, "ユーザー名とパスワードを入力してください。")
    services = _services(request)
    attempts, address = services.stores.agents.login_attempts, client_address(request)
    services.throttle.ensure_capacity()
    await services.throttle.begin(attempts, address, username)
    profile = await services.throttle.check_password(services.stores.agents.authenticate, username, password)
    if profile is None:
        raise HTTPException(401, "ユーザー名またはパスワードが違います。")
    await services.throttle.succeeded(attempts, address, username)
    session = await log_in(request, profile.username)
    await run_in_threadpool(forget_first_password, profile.username)
    return _me(session)


async def logout(request: Request) -> JSONResponse:
    """Log out.
    ---
    summary: End the agent session
    responses: {200: {description: Logged out}, 403: {description: CSRF}}
    """
    check_csrf(request)
    await log_out(request)
    return JSONResponse({})


async def change_password(request: Request) -> JSONResponse:
    """Change one's own password.
    ---
    summary: Change the logged-in agent's password (their other sessions end; this one goes on)
    requestBody: {content: {application/json: {schema: {type: object, required: [current_password, new_password],
      properties: {current_password: {type: string}, new_password: {type: string, minLength: 8}}}}}}
    responses:
      200: {description: "{agent, csrf_token, ended_sessions}"}
      401: {description: Not logged in}
      403: {description: CSRF}
      422: {description: Wrong current password or too short a new one}
      429: {description: Too many wrong passwords (Retry-After)}
    """
    username = check_csrf(request)
    session = current_session(request)
    data = await read_json(request)
    current, new = data.get("current_password"), data.get("new_password")
    if not isinstance(current, str) or not isinstance(new, str) or not current or not new:
        raise HTTPException(422, "現在のパスワードと新しいパスワードを入力してください。")
    services = _services(request)
    agents, address = services.stores.agents, client_address(request)
    services.throttle.ensure_capacity()
    await services.throttle.begin(agents.login_attempts, address, username)
    if await services.throttle.check_password(agents.authenticate, username, current) is None:
        raise HTTPException(422, "現在のパスワードが違います。")
    await services.throttle.succeeded(agents.login_attempts, address, username)
    try:
        ended = await services.throttle.check_password(agents.set_password, username, new, session.session_id)
    except AgentError as exc:
        raise HTTPException(422, str(exc)) from None
    await run_in_threadpool(forget_first_password, username)
    return _me(session, ended_sessions=ended)


async def me(request: Request) -> JSONResponse:
    """Who is logged in.
    ---
    summary: The logged-in agent and the CSRF token
    responses: {200: {description: "{agent, csrf_token}"}, 401: {description: Not logged in}}
    """
    return _me(current_session(request))


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
        loop = asyncio.get_running_loop()
        checked = loop.time()
        getter: asyncio.Future[Any] | None = None
        try:
            yield {"event": "ready", "data": "{}"}
            while True:
                if getter is None:
                    getter = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait({getter}, timeout=SESSION_RECHECK_SECONDS)
                if getter in done:
                    item, getter = getter.result(), None
                    if item is CLOSED:  # fell too far behind: end the stream; the console reconnects and reloads
                        return
                    yield {"event": "ticket", "data": json.dumps(item, ensure_ascii=False)}
                if loop.time() - checked >= SESSION_RECHECK_SECONDS:
                    checked = loop.time()
                    if not await still_logged_in(request):  # the console reconnects, gets 401, shows the login
                        return
        except asyncio.CancelledError:
            raise
        finally:
            if getter is not None:
                getter.cancel()
            hub.unsubscribe_agents(queue)

    return EventSourceResponse(stream(), ping=SSE_PING_SECONDS)


TICKET = "/api/tickets/{ticket_id:int}"
routes = [
    Route("/api/agent/login", login, methods=["POST"]),
    Route("/api/agent/logout", logout, methods=["POST"]),
    Route("/api/agent/me", me, methods=["GET"]),
    Route("/api/agent/password", change_password, methods=["POST"]),
    Route("/api/tickets", list_tickets, methods=["GET"]),
    Route(TICKET, get_ticket, methods=["GET"]),
    Route(TICKET + "/claim", claim, methods=["POST"]),
    Route(TICKET + "/reply", reply, methods=["POST"]),
    Route(TICKET + "/notes", note, methods=["POST"]),
    Route(TICKET + "/resolve", resolve, methods=["POST"]),
    Route("/api/events", events, methods=["GET"]),
]
