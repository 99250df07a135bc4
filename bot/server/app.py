"""The bot server application: widget gateway, agent API and console, static pages.

``create_app`` takes its dependencies (stores, Rasa client) so tests can build one on a
temporary database; ``bot serve`` / ``bot run`` build the default one from settings.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator

from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.schemas import SchemaGenerator
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot.analytics import page as analytics_page
from bot.server import agent_api, chat_api
from bot.server.auth import HSTS_VALUE, AgentSessionMiddleware, LoginThrottle, is_https
from bot.server.events import EventHub, RedisRelay
from bot.server.gateway import Gateway, Stores, TicketWatcher
from bot.server.rasa_client import RasaClient
from bot.server.tokens import SESSION_KEY_PURPOSE, ConversationTokens, derive_key
from bot.store.agents import AgentDirectory
from bot.store.chat_log import ChatLog
from bot.store.queue import Queue, QueueError, make_engine

logger = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; "
                               "style-src 'self' 'unsafe-inline'; connect-src 'self' ws: wss:; "
                               "img-src 'self' data:; frame-ancestors 'self'",
}
# The demo page alone carries an inline <script> (the widget's config, as a customer's page would).
DEMO_CSP = SECURITY_HEADERS["Content-Security-Policy"].replace("script-src 'self'", "script-src 'self' 'unsafe-inline'")


@dataclass
class Services:
    """Everything the routes use, reachable as ``request.app.state.services``."""

    stores: Stores
    rasa: RasaClient
    tokens: ConversationTokens
    hub: EventHub = field(default_factory=EventHub)
    throttle: LoginThrottle = field(default_factory=LoginThrottle)
    gateway: Gateway = field(init=False)

    def __post_init__(self) -> None:
        self.gateway = Gateway(self.stores, self.rasa, self.hub)


def stores_for(database_url: str) -> Stores:
    """Queue, chat log and agents on one (migrated) database."""
    engine = make_engine(database_url)
    return Stores(Queue(engine), ChatLog(engine), AgentDirectory(engine), engine)


schemas = SchemaGenerator({"openapi": "3.0.0",
                           "info": {"title": "Japanese support bot server", "version": "1.0"}})


def openapi(request: Request) -> Response:
    """OpenAPI description (JSON) built from the endpoints' docstrings."""
    return JSONResponse(schemas.get_schema(routes=request.app.routes))


def healthz(request: Request) -> JSONResponse:
    """Liveness probe."""
    return JSONResponse({"status": "ok"})


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)


async def _queue_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, QueueError)
    return JSONResponse({"error": str(exc)}, status_code=exc.status)


def create_app(services: Services, secret_key: str, watch_interval: float = 0.2,
               events_url: str = "", https: bool | None = None, session_key_version: int | None = None) -> Starlette:
    """The ASGI application.

    Args:
        services: Stores, Rasa client, tokens (see :class:`Services`).
        secret_key: The master secret; agent session cookies are signed with a key
            derived from it (:func:`bot.server.tokens.derive_key`), not with it.
        watch_interval: Seconds between polls for tickets filed by the action server.
        events_url: ``redis://...`` to share events with other bot servers (scale-out);
            empty: this server alone.
        https: Published over https (``Secure`` cookie, HSTS); ``None`` reads ``BOT_HTTPS``.
        session_key_version: Version of the session key; ``None`` reads ``BOT_SESSION_KEY_VERSION``.
    """
    if https is None or session_key_version is None:
        from bot.settings import get_settings

        settings = get_settings()
        https = settings.https if https is None else https
        session_key_version = settings.session_key_version if session_key_version is None else session_key_version
    session_key = derive_key(secret_key, SESSION_KEY_PURPOSE, session_key_version)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        relay = RedisRelay(events_url, services.hub) if events_url else None
        if relay is not None:
            await relay.start()
            services.hub.use_relay(relay)
        watcher = TicketWatcher(services.stores.queue, services.gateway.ticket_arrived, watch_interval)
        task = asyncio.create_task(watcher.run())
        try:
            yield
        finally:
            task.cancel()
            if relay is not None:
                await relay.stop()
            await services.rasa.close()

    routes: list[Any] = [
        Route("/", lambda request: _static_page("demo/index.html"), include_in_schema=False),
        Route("/console", lambda request: RedirectResponse("/console/"), include_in_schema=False),
        Route("/healthz", healthz, include_in_schema=False),
        Route("/openapi.json", openapi, include_in_schema=False),
        *chat_api.routes, *agent_api.routes, *analytics_page.routes,
        Mount("/console", StaticFiles(directory=STATIC / "console", html=True), name="console"),
        Mount("/widget", StaticFiles(directory=STATIC / "widget"), name="widget"),
    ]
    app = Starlette(
        routes=routes, lifespan=lifespan,
        middleware=[Middleware(SecurityHeaders, https=https),
                    Middleware(AgentSessionMiddleware, sessions=services.stores.agents.sessions, key=session_key,
                               https=https)],
        exception_handlers={HTTPException: _http_error, QueueError: _queue_error},
    )
    app.state.services = services
    app.state.analytics_engine = services.stores.engine
    return app


class SecurityHeaders:
    """Adds :data:`SECURITY_HEADERS` to every HTTP response (pure ASGI: SSE keeps streaming).

    Over https (``BOT_HTTPS=1``, or an https request scheme) it adds HSTS as well.
    """

    def __init__(self, app: ASGIApp, https: bool = False) -> None:
        """Wrap ``app``; ``https``: always send HSTS."""
        self._app = app
        self._https = https

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass through, adding the headers to ``http.response.start``."""
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return

        demo = scope.get("path") == "/"
        hsts = is_https(scope, self._https)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, DEMO_CSP if demo and name == "Content-Security-Policy" else value)
                if hsts:
                    headers.setdefault("Strict-Transport-Security", HSTS_VALUE)
            await send(message)

        await self._app(scope, receive, send_with_headers)


def _static_page(relative: str) -> Response:
    return FileResponse(STATIC / relative)
