"""Agent API: login, tickets (list, read, claim, take over, reply, note, resolve) and the SSE feed.

Each endpoint's docstring carries its OpenAPI description (served at /openapi.json).
Lists and transcripts come a page at a time (``limit`` / ``offset``, ``entries`` /
``before``), so a long queue or a long conversation costs the same per request.
"""

from __future__ import annotations

import asyncio
import contextlib
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
from bot.server.http import MAX_ID, int_param, read_json, text_field, ticket_id_of
from bot.server.serialize import entry_json
from bot.store.agents import AgentError, SessionInfo
from bot.store.desk import DeskError

SSE_PING_SECONDS = 15
# An open event stream re-checks its session this often, and ends once it was logged out,
# the agent removed or the password changed elsewhere.
SESSION_RECHECK_SECONDS = 15.0
TICKETS_PAGE = 50  # tickets per page of the list, unless ``limit`` says otherwise
MAX_TICKETS_PAGE = 200
ENTRIES_PAGE = 100  # latest transcript entries sent with a ticket
MAX_ENTRIES_PAGE = 500


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
        # No transaction to share: the failure is written on its own (the name as typed, cut to size).
        await run_in_threadpool(services.stores.audit.write, "auth.login_failed", username or None, username or None,
                                None, address)
        raise HTTPException(401, "ユーザー名またはパスワードが違います。")
    await services.throttle.succeeded(attempts, address, username)
    session = await log_in(request, profile.username)
    await run_in_threadpool(forget_first_password, profile.username)
    return _me(session)


async def logout(request: Request) -> JSONResponse:
    """Log out.
    ---
    summary: End the agent session (the agent's desk status becomes offline, so no more offers)
    responses: {200: {description: Logged out}, 403: {description: CSRF}}
    """
    username = check_csrf(request)
    await log_out(request)
    desk = _services(request).stores.desk
    with contextlib.suppress(DeskError):  # removed meanwhile: nothing to set
        await run_in_threadpool(lambda: desk.update(username, status="offline"))
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
    """List tickets, a page at a time.
    ---
    summary: Tickets by status (open = waiting and claimed, high priority first, then oldest; others newest first)
    parameters:
      - {name: status, in: query, schema: {type: string, enum: [open, resolved, all]}}
      - {name: limit, in: query, schema: {type: integer, minimum: 1, maximum: 200, default: 50}}
      - {name: offset, in: query, schema: {type: integer, minimum: 0, default: 0}}
    responses: {200: {description: "{tickets, has_more, next_offset}"}, 401: {description: Not logged in},
      422: {description: Unknown status or bad limit/offset}}
    """
    current_agent(request)
    services = _services(request)
    limit = int_param(request, "limit", TICKETS_PAGE, 1, MAX_TICKETS_PAGE)
    offset = int_param(request, "offset", 0, 0, 1_000_000)
    tickets = await run_in_threadpool(services.stores.queue.tickets, request.query_params.get("status", "open"),
                                      limit + 1, offset)
    more = len(tickets) > limit
    return JSONResponse({"tickets": [services.gateway.ticket_json(t) for t in tickets[:limit]],
                         "has_more": more, "next_offset": offset + limit if more else None})


async def _ticket_page(request: Request, ticket_id: int, entries: int = ENTRIES_PAGE) -> JSONResponse:
    """``{"ticket"}`` with the latest ``entries`` transcript entries."""
    services = _services(request)
    queue = services.stores.queue
    ticket = await run_in_threadpool(queue.get, ticket_id, False)
    page, earlier = await run_in_threadpool(queue.entries, ticket_id, None, entries)
    return JSONResponse({"ticket": services.gateway.ticket_json(ticket, page, earlier)})


async def get_ticket(request: Request) -> JSONResponse:
    """One ticket with the latest page of its transcript.
    ---
    summary: A ticket with its latest transcript entries (older ones via /entries?before=)
    parameters: [{name: entries, in: query, schema: {type: integer, minimum: 1, maximum: 500, default: 100}}]
    responses: {200: {description: "{ticket} (ticket.has_earlier_entries: older entries exist)"},
      401: {description: Not logged in}, 404: {description: Unknown id}}
    """
    current_agent(request)
    entries = int_param(request, "entries", ENTRIES_PAGE, 1, MAX_ENTRIES_PAGE)
    response = await _ticket_page(request, ticket_id_of(request), entries)
    line = getattr(request.app.state, "line", None)
    if line is not None:  # the agent opened the ticket: a LINE customer may see 既読
        line.agent_opened(json.loads(bytes(response.body))["ticket"]["conversation_id"])
    return response


async def ticket_entries(request: Request) -> JSONResponse:
    """Older transcript entries.
    ---
    summary: The transcript entries before entry `before` (oldest first), a page at a time
    parameters:
      - {name: before, in: query, schema: {type: integer}, description: "id of the oldest entry shown"}
      - {name: limit, in: query, schema: {type: integer, minimum: 1, maximum: 500, default: 100}}
    responses: {200: {description: "{entries, has_earlier_entries}"}, 401: {description: Not logged in},
      404: {description: Unknown ticket or entry}}
    """
    current_agent(request)
    services = _services(request)
    before = int_param(request, "before", 0, 1, MAX_ID) or None
    limit = int_param(request, "limit", ENTRIES_PAGE, 1, MAX_ENTRIES_PAGE)
    page, earlier = await run_in_threadpool(services.stores.queue.entries, ticket_id_of(request), before, limit)
    return JSONResponse({"entries": [entry_json(e) for e in page], "has_earlier_entries": earlier})


async def _ticket_answer(request: Request, ticket: Any) -> JSONResponse:
    return await _ticket_page(request, ticket.id)


async def claim(request: Request) -> JSONResponse:
    """Claim.
    ---
    summary: Take a waiting ticket (the customer sees the agent join)
    responses: {200: {description: "{ticket}"}, 403: {description: CSRF}, 404: {description: Unknown id},
      409: {description: Not waiting}}
    """
    username = check_csrf(request)
    return await _ticket_answer(request, await _services(request).gateway.claim(ticket_id_of(request), username))


async def take_over(request: Request) -> JSONResponse:
    """Take over.
    ---
    summary: Take a ticket another agent claimed (recorded in its transcript; the customer sees the new name)
    responses: {200: {description: "{ticket}"}, 403: {description: CSRF}, 404: {description: Unknown id},
      409: {description: Not claimed, or already yours}}
    """
    username = check_csrf(request)
    return await _ticket_answer(request, await _services(request).gateway.take_over(ticket_id_of(request), username))


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
    return await _ticket_answer(request, ticket)


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
    return await _ticket_answer(request,
                                await _services(request).gateway.agent_note(ticket_id_of(request), username, text))


async def resolve(request: Request) -> JSONResponse:
    """Resolve.
    ---
    summary: Close the ticket; the conversation returns to the bot
    responses: {200: {description: "{ticket}"}, 403: {description: "CSRF, or claimed by another agent (take it over first)"},
      404: {description: Unknown id}, 409: {description: Already resolved}}
    """
    username = check_csrf(request)
    return await _ticket_answer(request, await _services(request).gateway.resolve(ticket_id_of(request), username))


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
    Route(TICKET + "/entries", ticket_entries, methods=["GET"]),
    Route(TICKET + "/claim", claim, methods=["POST"]),
    Route(TICKET + "/takeover", take_over, methods=["POST"]),
    Route(TICKET + "/reply", reply, methods=["POST"]),
    Route(TICKET + "/notes", note, methods=["POST"]),
    Route(TICKET + "/resolve", resolve, methods=["POST"]),
    Route("/api/events", events, methods=["GET"]),
]
