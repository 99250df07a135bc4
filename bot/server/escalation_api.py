"""Agent API of escalation (#15 items 1 and 2): transfer, escalate, join, whisper, history, supervisor view.

Agents transfer and escalate their own claimed chats; supervisors and admins (role
``supervisor`` / ``admin``) join chats, whisper to their agents and read the supervisor
view of every open chat. Agents get 403 with a Japanese message there. Notes and whispers
are internal (never shown to the customer), at most 1,000 characters, stored as written and
rendered as text by the console.
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bot import wording
from bot.server import agent_api
from bot.server.auth import check_csrf, current_agent
from bot.server.desk_api import knowledge_categories
from bot.server.http import read_json, ticket_id_of
from bot.server.serialize import event_json
from bot.store.escalation import Transfer
from bot.store.models import as_utc
from bot.store.ticket_events import NOTE_MAX_CHARS

TEXT = wording.ESCALATION_TEXT
TICKET = "/api/tickets/{ticket_id:int}"
OVERVIEW_LIMIT = 200


def _services(request: Request) -> Any:
    return request.app.state.services


async def _is_supervisor(request: Request, username: str) -> bool:
    return bool(await run_in_threadpool(_services(request).stores.desk.is_supervisor, username))


async def _supervisor(request: Request, state_change: bool) -> str:
    """The logged-in supervisor's (or admin's) user name.

    Raises:
        HTTPException: 401 not logged in; 403 CSRF, or not a supervisor (Japanese message).
    """
    username = check_csrf(request) if state_change else current_agent(request)
    if not await _is_supervisor(request, username):
        raise HTTPException(403, TEXT["supervisor_only"])
    return username


def internal_text(data: dict[str, Any], name: str, field: str, required: bool) -> str | None:
    """An internal note or whisper of a request: stripped, at most :data:`NOTE_MAX_CHARS`.

    Args:
        data: The request's JSON object.
        name: Its key.
        field: ``note`` or ``whisper`` (how the message names it).
        required: Blank or missing is refused (else ``None``).

    Raises:
        HTTPException: 422 missing (when required), not text, or too long (the length is given).
    """
    what = TEXT["fields"][field]
    value = data.get(name)
    if value is not None and not isinstance(value, str):
        raise HTTPException(422, TEXT["not_text"].format(what=what))
    value = (value or "").strip()
    if not value:
        if required:
            raise HTTPException(422, TEXT["note_required"] if field == "note" else
                                TEXT["text_required"].format(what=what))
        return None
    if len(value) > NOTE_MAX_CHARS:
        raise HTTPException(422, TEXT["too_long"].format(what=what, limit=NOTE_MAX_CHARS, length=len(value)))
    return value


async def _transfer_of(data: dict[str, Any]) -> Transfer:
    """The transfer a request asks for (checked; the agent's existence is the store's to check)."""
    agent, to_queue, category = data.get("to_agent"), data.get("to_queue"), data.get("category")
    if agent in (None, "") and to_queue is not True:
        raise HTTPException(422, TEXT["no_target"])
    if agent not in (None, "") and to_queue is True:
        raise HTTPException(422, TEXT["two_targets"])
    if agent not in (None, "") and not isinstance(agent, str):
        raise HTTPException(422, TEXT["no_target"])
    note = internal_text(data, "note", "note", required=True) or ""  # required: never empty here
    if category not in (None, ""):
        known = await run_in_threadpool(knowledge_categories)
        if not isinstance(category, str) or category not in known:
            raise HTTPException(422, TEXT["unknown_category"].format(category=str(category)[:40],
                                                                     known="、".join(known)))
    if to_queue is True:
        return Transfer(note=note, category=category or None)
    return Transfer(note=note, agent=str(agent).strip())


async def transfer(request: Request) -> JSONResponse:
    """Transfer.
    ---
    summary: Hand your claimed chat to another agent (対応可能, with a free slot) or back to the queue (for a category)
    requestBody: {content: {application/json: {schema: {type: object, required: [note], properties: {
      to_agent: {type: string}, to_queue: {type: boolean}, category: {type: string},
      note: {type: string, maxLength: 1000, description: "why (internal, never shown to the customer)"}}}}}}
    responses:
      200: {description: "{ticket}"}
      403: {description: CSRF}
      404: {description: Unknown ticket or agent}
      409: {description: "Resolved, not yours, the agent is away, offline or at their cap, or changed meanwhile"}
      422: {description: "No or two targets, no note, a note over 1,000 characters, an unknown category"}
    """
    username = check_csrf(request)
    to = await _transfer_of(await read_json(request))
    supervisor = await _is_supervisor(request, username)
    ticket = await _services(request).gateway.transfer(ticket_id_of(request), username, to, supervisor)
    return await agent_api._ticket_page(request, ticket.id)


async def escalate(request: Request) -> JSONResponse:
    """Escalate.
    ---
    summary: Ask the supervisors to step in (priority 至急; you stay in the chat until one joins)
    requestBody: {content: {application/json: {schema: {type: object, properties: {
      note: {type: string, maxLength: 1000, description: "why (internal)"}}}}}}
    responses:
      200: {description: "{ticket}"}
      404: {description: Unknown ticket}
      409: {description: "Resolved, not yours, or escalated already"}
      422: {description: A note over 1,000 characters}
    """
    username = check_csrf(request)
    note = internal_text(await read_json(request), "note", "note", required=False)
    ticket = await _services(request).gateway.escalate(ticket_id_of(request), username, note)
    return await agent_api._ticket_page(request, ticket.id)


async def join(request: Request) -> JSONResponse:
    """Join (supervisors).
    ---
    summary: Take an open chat, escalated or not (the customer reads 「責任者が対応します」); one supervisor per escalation
    responses:
      200: {description: "{ticket}"}
      403: {description: "CSRF, or not a supervisor"}
      404: {description: Unknown ticket}
      409: {description: "Another supervisor joined first, resolved, or yours already"}
    """
    username = await _supervisor(request, state_change=True)
    ticket = await _services(request).gateway.join(ticket_id_of(request), username)
    return await agent_api._ticket_page(request, ticket.id)


async def whisper(request: Request) -> JSONResponse:
    """Whisper (supervisors).
    ---
    summary: A ささやき to the agent of a claimed chat (in the ticket's history; never shown to the customer)
    requestBody: {content: {application/json: {schema: {type: object, required: [text],
      properties: {text: {type: string, maxLength: 1000}}}}}}
    responses:
      200: {description: "{events}: the ticket's history"}
      403: {description: "CSRF, or not a supervisor"}
      404: {description: Unknown ticket}
      409: {description: "Nobody's chat now, or your own"}
      422: {description: "Empty, or over 1,000 characters"}
    """
    username = await _supervisor(request, state_change=True)
    text = internal_text(await read_json(request), "text", "whisper", required=True)
    ticket_id = ticket_id_of(request)
    await _services(request).gateway.whisper(ticket_id, username, text)
    return await _history(request, ticket_id, username, supervisor=True)


async def _history(request: Request, ticket_id: int, username: str, supervisor: bool) -> JSONResponse:
    services = _services(request)
    events = await run_in_threadpool(services.stores.escalations.history, ticket_id, username, supervisor)
    gateway = services.gateway

    def department_name(department_id: str) -> str:
        return gateway.department_of(department_id).name

    return JSONResponse({"events": [event_json(e, gateway.display_name, department_name) for e in events]})


async def history(request: Request) -> JSONResponse:
    """A ticket's history.
    ---
    summary: Every step (claimed, transferred, escalated, joined, whispers, forwarded, resolved) with who, when and why
    responses:
      200: {description: "{events: [{id, kind, kind_label, actor, actor_name, target, target_name, note, at}]}"}
      401: {description: Not logged in}
      404: {description: Unknown ticket}
    """
    username = current_agent(request)
    return await _history(request, ticket_id_of(request), username, await _is_supervisor(request, username))


async def transfer_targets(request: Request) -> JSONResponse:
    """Where a chat can be transferred.
    ---
    summary: Every agent with status and load against the cap, and the knowledge categories
    responses: {200: {description: "{agents, categories}"}, 401: {description: Not logged in}}
    """
    current_agent(request)
    agents = await run_in_threadpool(_services(request).stores.desk.agents)
    return JSONResponse({"agents": [a.json() for a in agents],
                         "categories": await run_in_threadpool(knowledge_categories)})


async def overview(request: Request) -> JSONResponse:
    """The supervisor view (supervisors).
    ---
    summary: Every open chat (waiting / claimed by whom, escalation, the customer's latest message) and each agent's load
    responses:
      200: {description: "{tickets: [Ticket + last_customer_at], agents, escalate_after_seconds}"}
      401: {description: Not logged in}
      403: {description: Not a supervisor}
    """
    await _supervisor(request, state_change=False)
    services = _services(request)
    tickets = [t for t in await run_in_threadpool(services.stores.queue.open_tickets, OVERVIEW_LIMIT)
               if not t.offline]
    latest = await run_in_threadpool(services.stores.escalations.last_customer_messages, [t.id for t in tickets])
    agents = await run_in_threadpool(services.stores.desk.agents)
    def last(ticket_id: int) -> str | None:
        return as_utc(latest[ticket_id]).isoformat() if ticket_id in latest else None

    return JSONResponse({
        "tickets": [{**services.gateway.ticket_json(t), "last_customer_at": last(t.id)} for t in tickets],
        "agents": [a.json() for a in agents],
        "escalate_after_seconds": await run_in_threadpool(services.gateway.escalate_after),
    })


routes = [
    Route(TICKET + "/transfer", transfer, methods=["POST"]),
    Route(TICKET + "/escalate", escalate, methods=["POST"]),
    Route(TICKET + "/join", join, methods=["POST"]),
    Route(TICKET + "/whisper", whisper, methods=["POST"]),
    Route(TICKET + "/history", history, methods=["GET"]),
    Route("/api/transfer-targets", transfer_targets, methods=["GET"]),
    Route("/api/supervisor/overview", overview, methods=["GET"]),
]
