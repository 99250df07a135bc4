"""Agent API: canned replies (定型文) and FAQ answers for one ticket, placeholders filled in.

The console asks once per ticket it opens and searches the list itself (the picker of the reply
box). Texts are sent as they are, never HTML-escaped: the console puts them into the reply box
and renders them with ``textContent``.
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bot.knowledge.canned import read_canned, render
from bot.server.auth import current_session
from bot.server.http import ticket_id_of


def canned_for(customer_name: str | None, agent_name: str | None) -> dict[str, list[dict[str, str]]]:
    """The canned replies and FAQ answers of the configured knowledge folder, filled in.

    Read at each call, so an editor's change is used at the next ticket without a restart.
    An entry whose placeholder cannot be filled (an FAQ id that is gone) is left out, as is a
    second entry with the same shortcut; `bot kb validate` reports both.
    """
    from bot import wording
    from bot.knowledge.canned import faq_text
    from bot.knowledge.live import shared_knowledge
    from bot.settings import get_settings

    directory = get_settings().knowledge_dir
    kb = shared_knowledge(directory).get()
    facts = wording.facts(directory)
    replies, _ = read_canned(directory)
    seen: set[str] = set()
    filled = []
    for reply in replies:
        text = render(reply.text, kb, facts, customer_name, agent_name)
        if text is None or reply.shortcut in seen:
            continue
        seen.add(reply.shortcut)
        filled.append({"shortcut": reply.shortcut, "title": reply.title, "text": text})
    faqs = [{"id": entry.id, "title": entry.title, "category": entry.category, "text": faq_text(kb, entry.id) or ""}
            for entry in kb.entries]
    return {"replies": filled, "faqs": faqs}


async def ticket_canned(request: Request) -> JSONResponse:
    """Canned replies for a ticket.
    ---
    summary: Canned replies (knowledge/canned.yml) and FAQ answers with {customer_name}, {agent_name}, {faq:id} and facts filled in
    responses:
      200: {description: "{replies: [{shortcut, title, text}], faqs: [{id, title, category, text}]}"}
      401: {description: Not logged in}
      404: {description: Unknown ticket}
    """
    session = current_session(request)
    queue: Any = request.app.state.services.stores.queue
    ticket = await run_in_threadpool(queue.get, ticket_id_of(request), False)  # 404 in Japanese (QueueError)
    name = (ticket.customer or {}).get("name") if isinstance(ticket.customer, dict) else None
    body = await run_in_threadpool(canned_for, name if isinstance(name, str) else None,
                                   session.display_name or session.username)
    return JSONResponse(body)


routes = [Route("/api/tickets/{ticket_id:int}/canned", ticket_canned, methods=["GET"])]
