"""Agent API of the department hand-off without chat (#15 item 4): the departments, and forwarding.

``GET /api/departments`` lists ``knowledge/departments.yml`` with whether each can be
reached from this server (the console greys out the others and says why);
``POST /api/tickets/{id}/forward`` hands the agent's claimed chat to one (a supervisor or
admin may hand any agent's claimed chat; the history names who did it), with an internal
note for the department (required, at most 1,000 characters; never shown to the customer).
Every refusal is a Japanese message and changes nothing (the note stays in the console's box).
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
from bot.server.escalation_api import internal_text
from bot.server.http import read_json, ticket_id_of
from bot.store.queue import QueueError

TEXT = wording.FORWARD_TEXT


def _services(request: Request) -> Any:
    return request.app.state.services


async def departments(request: Request) -> JSONResponse:
    """Departments.
    ---
    summary: The departments of knowledge/departments.yml a claimed chat can be forwarded to
    responses:
      200: {description: "{departments: [{id, name, promise, email, webhook, available, problem}]}"}
      401: {description: Not logged in}
    """
    current_agent(request)
    gateway = _services(request).gateway
    listed = []
    for department in await run_in_threadpool(gateway.departments):
        try:
            await run_in_threadpool(gateway.delivery_for, department)
            problem = None
        except QueueError as exc:
            problem = str(exc)
        listed.append({**department.json(), "available": problem is None, "problem": problem})
    return JSONResponse({"departments": listed})


async def forward(request: Request) -> JSONResponse:
    """Forward to a department.
    ---
    summary: Hand your claimed chat (supervisors and admins, any agent's claimed chat) to a department (e-mail and/or signed webhook ticket.forwarded); the ticket is resolved as forwarded and the customer reads the department's promise
    requestBody: {content: {application/json: {schema: {type: object, required: [department, note], properties: {
      department: {type: string, description: "an id of knowledge/departments.yml"},
      note: {type: string, maxLength: 1000, description: "for the department (internal, never shown to the customer)"}}}}}}
    responses:
      200: {description: "{ticket}"}
      403: {description: CSRF}
      404: {description: Unknown ticket or department}
      409: {description: "No usable delivery for the department, resolved, not claimed, not yours (agents), or changed meanwhile"}
      422: {description: "No department, no note, a note over 1,000 characters"}
    """
    username = check_csrf(request)
    data = await read_json(request)
    department = data.get("department")
    if not isinstance(department, str) or not department.strip():
        raise HTTPException(422, TEXT["no_department"])
    given = data.get("note")
    if given is None or (isinstance(given, str) and not given.strip()):
        raise HTTPException(422, TEXT["note_required"])
    note = internal_text(data, "note", "note", required=True) or ""  # not text, or too long: 422
    services = _services(request)
    supervisor = bool(await run_in_threadpool(services.stores.desk.is_supervisor, username))
    ticket = await services.gateway.forward(ticket_id_of(request), username, department.strip(), note, supervisor)
    return await agent_api._ticket_page(request, ticket.id)


routes = [
    Route("/api/departments", departments, methods=["GET"]),
    Route("/api/tickets/{ticket_id:int}/forward", forward, methods=["POST"]),
]
