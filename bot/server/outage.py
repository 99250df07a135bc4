"""The bot server while its own database is unreachable: a clear Japanese answer, then recovery.

Every request the server answers needs the database (agent sessions, the chat log, the queue).
When it is down (connection refused or cut, a restarted PostgreSQL, an unreadable SQLite file),
SQLAlchemy raises :data:`DATABASE_DOWN`; instead of a bare 500 or a dropped WebSocket:

- HTTP answers 503 with ``Retry-After`` and a Japanese ``error`` (customers' wording on the chat
  API, the agents' elsewhere): :class:`DatabaseOutage`;
- the widget's WebSocket gets an ``error`` frame (code ``unavailable``, without the message's
  ``client_id``: the widget keeps the message unconfirmed) and is closed with 1013 (try again
  later), so the widget reconnects with back-off and sends what it kept once it gets a history
  (bot/server/chat_api.py). A message stored before the database went away is routed when the
  customer's next connection opens (:meth:`bot.server.gateway_customer.CustomerSide.route_unanswered`).

Nothing is kept in memory meanwhile: the database is the only state, and the engine's pool
(``pool_pre_ping`` on PostgreSQL) reconnects by itself once it is back.
"""

from __future__ import annotations

import logging
import time

from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot import wording

logger = logging.getLogger(__name__)

# What SQLAlchemy raises when the database cannot be reached or used at all (not a refused row).
DATABASE_DOWN = (OperationalError, InterfaceError, PoolTimeout)
RETRY_AFTER_SECONDS = 5
CLOSE_TRY_AGAIN_LATER = 1013  # RFC 6455: the widget reconnects with back-off
CUSTOMER_PATHS = ("/api/chat/",)
LOG_EVERY_SECONDS = 10.0
_last_logged = [0.0]


def customer_text() -> str:
    """What a customer is told (with the phone number and hours of the fact sheet)."""
    return wording.CHAT_ERRORS["unavailable"].format(contact=wording.fallback_contact())


def unavailable_frame() -> dict[str, str]:
    """The WebSocket ``error`` frame; no ``client_id``, so the widget sends the message again later."""
    return {"type": "error", "code": "unavailable", "message": customer_text()}


def log_outage(exc: BaseException, where: str) -> None:
    """One warning line (no statement parameters, no traceback) at most every LOG_EVERY_SECONDS."""
    now = time.monotonic()
    if now - _last_logged[0] >= LOG_EVERY_SECONDS:
        _last_logged[0] = now
        cause = getattr(exc, "orig", None) or exc
        first_line = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
        logger.warning("database unreachable (%s: %s) at %s", type(cause).__name__, first_line, where)


class DatabaseOutage:
    """Answers 503 with a Japanese message when a request fails because the database is down.

    Pure ASGI (the console's event stream keeps streaming). A response already started (an
    event stream) cannot be turned into a 503: the error goes on to the server as before.
    """

    def __init__(self, app: ASGIApp) -> None:
        """Wrap ``app`` (inside the origin check, outside the agent sessions that read the database)."""
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass through; turn a database outage before the response into a 503."""
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = False

        async def noting_start(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self._app(scope, receive, noting_start)
        except DATABASE_DOWN as exc:
            if started:
                raise
            path = str(scope.get("path", ""))
            log_outage(exc, path)
            text = customer_text() if path.startswith(CUSTOMER_PATHS) else wording.AGENT_UNAVAILABLE
            response = JSONResponse({"error": text, "code": "unavailable"}, status_code=503,
                                    headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
            await response(scope, receive, send)
