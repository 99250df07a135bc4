"""Agent API of the desk: one's own status, load and offers; admins manage agents.

An agent sets their status (対応可能 / 離席 / オフライン), sees their load (chats + offers
against their cap), the tickets offered to them (accepted with ``POST .../claim``, let go
with ``POST .../decline``) and the claimed tickets whose customer waits too long for a
reply (to take over). Admins list every agent and change their role, cap (同時対応数),
status and skills; agents get 403 with a Japanese message there. Skills are the
categories of ``knowledge/``, read at each call.
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bot import wording
from bot.server.auth import check_csrf, current_agent
from bot.server.http import read_json, ticket_id_of
from bot.store.desk import (MAX_CHATS_LIMIT, ROLES, STATUSES, Desk, DeskError, check_role, check_skills,
                            check_status, parse_max_chats)

# Usernames are at most 100 characters (agents.username); the route matches any path segment.
USERNAME_PATH = "/api/admin/agents/{username}"


def _services(request: Request) -> Any:
    return request.app.state.services


def _desk(request: Request) -> Desk:
    return _services(request).stores.desk


def knowledge_categories() -> list[str]:
    """The categories of the configured knowledge folder (agents' skills), in file order."""
    from bot.knowledge.live import shared_knowledge
    from bot.settings import get_settings

    return shared_knowledge(get_settings().knowledge_dir).get().categories


async def is_admin(request: Request, username: str) -> bool:
    """Whether the agent ``username`` is an admin (what a page may offer them, e.g. exports)."""
    return bool(await run_in_threadpool(_desk(request).is_admin, username))


async def _admin(request: Request, state_change: bool) -> str:
    """The logged-in admin's user name.

    Raises:
        HTTPException: 401 not logged in; 403 CSRF, or not an admin (Japanese message).
    """
    username = check_csrf(request) if state_change else current_agent(request)
    if not await is_admin(request, username):
        raise HTTPException(403, wording.DESK_TEXT["admin_only"])
    return username


def _refused(exc: DeskError) -> HTTPException:
    return HTTPException(exc.status, str(exc))


async def my_desk(request: Request) -> JSONResponse:
    """One's own desk.
    ---
    summary: The logged-in agent's role, status, cap and load, the tickets offered to them and the late replies
    responses:
      200: {description: "{agent, offers: [Ticket], overdue: [Ticket], offer_seconds, reply_overdue_minutes, statuses}"}
      401: {description: Not logged in}
    """
    username = current_agent(request)
    services, desk = _services(request), _desk(request)
    me = await run_in_threadpool(desk.agent, username)
    if me is None:
        raise HTTPException(401, wording.STORE_AGENT_TEXT["unknown_agent"].format(username=username))
    offers = await run_in_threadpool(desk.offers_for, username)
    overdue = await run_in_threadpool(desk.overdue)
    return JSONResponse({"agent": me.json(), "offers": [services.gateway.ticket_json(t) for t in offers],
                         "overdue": [services.gateway.ticket_json(t) for t in overdue],
                         "offer_seconds": desk.offer_seconds, "reply_overdue_minutes": desk.reply_overdue_minutes,
                         "statuses": STATUSES})


async def set_my_status(request: Request) -> JSONResponse:
    """Set one's own status.
    ---
    summary: 対応可能 (available) / 離席 (away) / オフライン (offline); leaving 対応可能 hands back one's offers
    requestBody: {content: {application/json: {schema: {type: object, required: [status],
      properties: {status: {type: string, enum: [available, away, offline]}}}}}}
    responses: {200: {description: "{agent}"}, 403: {description: CSRF}, 422: {description: Unknown status}}
    """
    username = check_csrf(request)
    data = await read_json(request)
    try:
        status = check_status(data.get("status"))
        me = await run_in_threadpool(lambda: _desk(request).update(username, status=status))
    except DeskError as exc:
        raise _refused(exc) from None
    return JSONResponse({"agent": me.json()})


async def decline(request: Request) -> JSONResponse:
    """Decline an offer.
    ---
    summary: Let a ticket offered to you go; it is offered to the next agent (accept with POST .../claim)
    responses: {200: {description: "{}"}, 403: {description: CSRF}, 409: {description: Not offered to you}}
    """
    username = check_csrf(request)
    await _services(request).gateway.decline(ticket_id_of(request), username)
    return JSONResponse({})


async def list_agents(request: Request) -> JSONResponse:
    """Agents (admins only).
    ---
    summary: Every agent with role, cap, status, skills and load, and the categories skills are chosen from
    responses:
      200: {description: "{agents, categories, roles, statuses, max_chats_limit}"}
      401: {description: Not logged in}
      403: {description: Not an admin}
    """
    await _admin(request, state_change=False)
    agents = await run_in_threadpool(_desk(request).agents)
    categories = await run_in_threadpool(knowledge_categories)
    return JSONResponse({"agents": [a.json() for a in agents], "categories": categories, "roles": ROLES,
                         "statuses": STATUSES, "max_chats_limit": MAX_CHATS_LIMIT})


async def update_agent(request: Request) -> JSONResponse:
    """Change an agent (admins only).
    ---
    summary: Set an agent's role, cap (同時対応数), status and skills (categories of knowledge/; [] = all)
    requestBody: {content: {application/json: {schema: {type: object, properties: {
      role: {type: string, enum: [agent, admin]}, max_chats: {type: integer, minimum: 1, maximum: 20},
      status: {type: string, enum: [available, away, offline]}, skills: {type: array, items: {type: string}}}}}}}
    responses:
      200: {description: "{agent}"}
      403: {description: "CSRF, or not an admin"}
      404: {description: Unknown agent}
      409: {description: The last admin would become an agent}
      422: {description: "A cap that is not 1-20, an unknown role, status or skill"}
    """
    admin = await _admin(request, state_change=True)
    data = await read_json(request)
    changes: dict[str, Any] = {}
    try:
        if "role" in data:
            changes["role"] = check_role(data["role"])
        if "max_chats" in data:
            changes["max_chats"] = parse_max_chats(data["max_chats"])
        if "status" in data:
            changes["status"] = check_status(data["status"])
        if "skills" in data:
            changes["skills"] = check_skills(data["skills"], await run_in_threadpool(knowledge_categories))
        if not changes:
            raise DeskError(wording.DESK_TEXT["nothing_to_change"])
        username = request.path_params["username"]
        agent = await run_in_threadpool(lambda: _desk(request).update(username, changed_by=admin, **changes))
    except DeskError as exc:
        raise _refused(exc) from None
    return JSONResponse({"agent": agent.json()})


routes = [
    Route("/api/desk/me", my_desk, methods=["GET"]),
    Route("/api/desk/status", set_my_status, methods=["POST"]),
    Route("/api/tickets/{ticket_id:int}/decline", decline, methods=["POST"]),
    Route("/api/admin/agents", list_agents, methods=["GET"]),
    Route(USERNAME_PATH, update_agent, methods=["POST"]),
]
