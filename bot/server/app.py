"""The bot server application: widget gateway, agent API and console, static pages.

``create_app`` takes its dependencies (stores, Rasa client) so tests can build one on a
temporary database; ``bot serve`` / ``bot run`` build the default one from settings.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Sequence

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.schemas import SchemaGenerator
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot import wording
from bot.channels.line import webhook as line_webhook
from bot.polling import poll_queue
from bot.server import (agent_api, analytics_api, audit_api, canned_api, chat_api, desk_api, erasure_api,
                        escalation_api, failures_api, forward_api, settings_api, undelivered_api, webhooks_api)
from bot.server.assigner import Assigner
from bot.server.auth import HSTS_VALUE, AgentSessionMiddleware, LoginThrottle, is_https
from bot.server.chat_api import SocketCounter
from bot.server.events import EventHub
from bot.server.gateway import Gateway
from bot.server.http import origin_allowed
from bot.server.outage import DatabaseOutage
from bot.server.rasa_client import RasaClient
from bot.server.redis_relay import event_relay_key
from bot.server.ticket_watcher import TicketWatcher
from bot.server.tokens import SESSION_KEY_PURPOSE, ConversationTokens, derive_key
from bot.settings import LineSettings, Limits, SmtpSettings, WebhookSettings, get_settings, normalize_origin
from bot.store.database import Stores, stores_for
from bot.store.queue import QueueError
from bot.store.webhooks import WebhookDeliveries, WebhookOutbox
from bot.webhooks.config import WebhookConfig, configured_webhooks
from bot.webhooks.sender import WebhookSender

logger = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    # connect-src 'self' covers ws:/wss: to this host too (CSP Level 3); see csp().
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; "
                               "style-src 'self' 'unsafe-inline'; connect-src 'self'; "
                               "img-src 'self' data:; frame-ancestors 'self'",
}
# The demo page alone carries an inline <script> (the widget's config, as a customer's page would).
DEMO_CSP = SECURITY_HEADERS["Content-Security-Policy"].replace("script-src 'self'", "script-src 'self' 'unsafe-inline'")
CHAT_PATHS = ("/api/chat/", "/ws/chat")
CORS_MAX_AGE = "600"
ORIGIN_REFUSED = wording.ORIGIN_REFUSED


def csp(policy: str, origins: Sequence[str]) -> str:
    """``policy`` with the configured widget origins added to ``connect-src``."""
    if not origins:
        return policy
    return policy.replace("connect-src 'self'", "connect-src 'self' " + " ".join(origins))


@dataclass
class Services:
    """Everything the routes use, reachable as ``request.app.state.services``."""

    stores: Stores
    rasa: RasaClient
    tokens: ConversationTokens
    hub: EventHub = field(default_factory=EventHub)
    throttle: LoginThrottle = field(default_factory=LoginThrottle)
    # Customer limits (BOT_LIMIT_*); the queue of these stores applies the same ones.
    limits: Limits = field(default_factory=lambda: get_settings().limits)
    # A conversation token stops working after this long unused (BOT_CONVERSATION_IDLE_DAYS).
    conversation_idle: dt.timedelta = field(
        default_factory=lambda: dt.timedelta(days=get_settings().conversation_idle_days))
    keep_page_url_query: bool = field(default_factory=lambda: get_settings().keep_page_url_query)
    sockets: SocketCounter = field(default_factory=SocketCounter)
    # The mail server for transcripts (BOT_SMTP_*); not configured: no mail, no button.
    smtp: SmtpSettings = field(default_factory=lambda: get_settings().smtp)
    # Outbound webhooks (BOT_WEBHOOKS_FILE, docs/webhooks.md); None: off.
    webhooks: WebhookConfig | None = field(default_factory=configured_webhooks)
    webhook_settings: WebhookSettings = field(default_factory=lambda: get_settings().webhooks)
    webhook_poll_seconds: float = 1.0
    # Complaint and anger tickets waiting this long are escalated (BOT_ESCALATE_AFTER_SECONDS; 0: off).
    escalate_after_seconds: float = field(default_factory=lambda: get_settings().escalate_after_seconds)
    gateway: Gateway = field(init=False)
    webhook_sender: WebhookSender | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.stores.queue.limits = self.limits
        self.gateway = Gateway(self.stores, self.rasa, self.hub, self.limits)
        self.gateway.configure_mail(self.smtp)
        # The start value of automatic escalation; an admin may change it in the console.
        self.stores.desk_settings.defaults["escalate_after_seconds"] = self.escalate_after_seconds
        # Events are recorded with the ticket changes (same transaction) for these receivers.
        outbox = WebhookOutbox(self.webhooks.routes() if self.webhooks is not None else None)
        self.stores.queue.webhooks = outbox
        self.gateway.surveys.webhooks = outbox
        self.gateway.webhook_config = self.webhooks  # departments' receivers (bot/server/gateway_forward.py)
        if self.webhooks is not None:
            self.webhook_sender = WebhookSender(self.webhooks, WebhookDeliveries(self.stores.engine),
                                                self.stores.queue, self.webhook_settings, self.webhook_poll_seconds)
            self.webhook_sender.on_dead = self.gateway.webhook_dead


# ``stores_for`` (bot/store/database.py) stays importable from here: the server's entry
# points and tests build a server's stores with it.
__all__ = ["Services", "create_app", "stores_for"]


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
               events_url: str = "", https: bool | None = None, session_key_version: int | None = None,
               widget_origins: Sequence[str] | None = None, line: LineSettings | None = None,
               assign_interval: float = 1.0, escalate_interval: float = 1.0,
               retention_interval: float = 600.0) -> Starlette:
    """The ASGI application.

    Args:
        services: Stores, Rasa client, tokens (see :class:`Services`).
        secret_key: The master secret; agent session cookies are signed with a key
            derived from it (:func:`bot.server.tokens.derive_key`), not with it.
        watch_interval: Seconds between polls for tickets filed by the action server.
        events_url: The event backend (:func:`bot.server.events.backend_for_url`):
            ``redis://...`` to share events with other bot servers (scale-out); empty or
            ``memory://``: this server alone.
        https: Published over https (``Secure`` cookie, HSTS); ``None`` reads ``BOT_HTTPS``.
        session_key_version: Version of the session key; ``None`` reads ``BOT_SESSION_KEY_VERSION``.
        widget_origins: Origins of other sites whose pages may use the widget (WebSocket
            ``Origin``, CORS of the chat API, CSP ``connect-src``); ``None`` reads
            ``BOT_WIDGET_ORIGINS``. The bot server's own origin always may.
        line: The LINE channel's settings; ``None`` reads ``LINE_*`` (off without them).
        assign_interval: Seconds between rounds of offering waiting tickets to agents
            (bot/server/assigner.py).
        escalate_interval: Seconds between looks for complaint and anger tickets to escalate
            automatically (bot/store/escalation.py; a round does nothing while the value in force,
            ``escalate_after_seconds`` or an admin's in the console, is 0).
        retention_interval: Seconds between looks whether retention is due
            (bot/store/retention.py: one server runs it every ``BOT_RETENTION_INTERVAL_HOURS``).
    """
    if https is None or session_key_version is None:
        settings = get_settings()
        https = settings.https if https is None else https
        session_key_version = settings.session_key_version if session_key_version is None else session_key_version
    if widget_origins is None:
        widget_origins = get_settings().widget_origins
    origins = tuple(normalize_origin(o) for o in widget_origins)
    session_key = derive_key(secret_key, SESSION_KEY_PURPOSE, session_key_version)
    line_channel = line_webhook.build_channel(services, line)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await services.hub.connect(events_url, key=event_relay_key(secret_key))  # memory:// or redis://
        watcher = TicketWatcher(services.stores.queue, services.gateway.ticket_arrived, watch_interval)
        task = asyncio.create_task(watcher.run())
        assigner = Assigner(services.stores.desk, services.gateway.offers_changed, assign_interval,
                            services.gateway.queue_moved)
        assign_task = asyncio.create_task(assigner.run())
        mailer = services.gateway.mailer
        mail_task = asyncio.create_task(mailer.run()) if mailer is not None else None
        sender = services.webhook_sender
        webhook_task = asyncio.create_task(sender.run()) if sender is not None else None
        # Always running: an admin may turn automatic escalation on in the console (a round with it off reads one row).
        escalate_task = asyncio.create_task(poll_queue(services.gateway.auto_escalate, asyncio.Event(),
                                                       escalate_interval, "automatic escalation"))
        retention = services.stores.retention
        retention_task = asyncio.create_task(poll_queue(lambda: run_in_threadpool(retention.run_if_due),
                                                        asyncio.Event(), retention_interval, "retention"))
        await _record_settings(services)
        if line_channel is not None:
            line_channel.start()
        try:
            yield
        finally:
            task.cancel()
            assign_task.cancel()
            if mail_task is not None:
                mail_task.cancel()
            retention_task.cancel()
            for optional in (webhook_task, escalate_task):
                if optional is not None:
                    optional.cancel()
            if line_channel is not None:
                await line_channel.close()
            await services.hub.disconnect()
            await services.rasa.close()

    routes: list[Any] = [
        Route("/", lambda request: _static_page("demo/index.html"), include_in_schema=False),
        Route("/console", lambda request: RedirectResponse("/console/"), include_in_schema=False),
        Route("/healthz", healthz, include_in_schema=False),
        Route("/openapi.json", openapi, include_in_schema=False),
        *chat_api.routes, *agent_api.routes, *desk_api.routes, *canned_api.routes, *undelivered_api.routes,
        *webhooks_api.routes, *failures_api.routes, *escalation_api.routes, *audit_api.routes, *erasure_api.routes,
        *forward_api.routes, *settings_api.routes,
        *analytics_api.routes,
        *line_webhook.routes,
        Mount("/console", StaticFiles(directory=STATIC / "console", html=True), name="console"),
        Mount("/widget", StaticFiles(directory=STATIC / "widget"), name="widget"),
    ]
    app = Starlette(
        routes=routes, lifespan=lifespan,
        middleware=[Middleware(SecurityHeaders, https=https, origins=origins),
                    Middleware(CustomerOrigins, origins=origins),
                    Middleware(DatabaseOutage),  # 503 in Japanese while the database is down
                    Middleware(AgentSessionMiddleware, sessions=services.stores.agents.sessions, key=session_key,
                               https=https)],
        exception_handlers={HTTPException: _http_error, QueueError: _queue_error},
    )
    app.state.services = services
    app.state.line = line_channel
    app.state.analytics_engine = services.stores.engine
    return app


async def _record_settings(services: Services) -> None:
    """A changed setting goes into the audit log when a server starts (never stops the start)."""
    try:
        await run_in_threadpool(services.stores.audit.record_settings, get_settings().audited())
    except Exception:  # noqa: BLE001 - the database may be down at start; the next start records it
        logger.exception("could not record the settings in the audit log")


class SecurityHeaders:
    """Adds :data:`SECURITY_HEADERS` to every HTTP response (pure ASGI: SSE keeps streaming).

    Over https (``BOT_HTTPS=1``, or an https request scheme) it adds HSTS as well.
    """

    def __init__(self, app: ASGIApp, https: bool = False, origins: Sequence[str] = ()) -> None:
        """Wrap ``app``; ``https``: always send HSTS; ``origins``: widget origins for ``connect-src``."""
        self._app = app
        self._https = https
        self._headers = {**SECURITY_HEADERS,
                         "Content-Security-Policy": csp(SECURITY_HEADERS["Content-Security-Policy"], origins)}
        self._demo_csp = csp(DEMO_CSP, origins)

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
                for name, value in self._headers.items():
                    headers.setdefault(name, self._demo_csp if demo and name == "Content-Security-Policy" else value)
                if hsts:
                    headers.setdefault("Strict-Transport-Security", HSTS_VALUE)
            await send(message)

        await self._app(scope, receive, send_with_headers)


class CustomerOrigins:
    """Lets only allowed pages use the customers' chat API and WebSocket.

    Allowed: the bot server's own origin and ``BOT_WIDGET_ORIGINS``. A browser request
    from any other page (its ``Origin`` header) is refused: 403 on HTTP, a refused
    handshake on the WebSocket (close code 4403), so another site cannot open or drive
    conversations from its visitors' browsers. Allowed cross-origin pages get CORS
    headers (no credentials: the widget sends its token, never a cookie), and their
    preflight requests are answered here. Requests without ``Origin`` (not a
    browser's cross-site request) pass.
    """

    def __init__(self, app: ASGIApp, origins: Sequence[str] = ()) -> None:
        """Wrap ``app``; ``origins``: the configured widget origins (normalized)."""
        self._app = app
        self._origins = frozenset(origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the origin of chat requests; pass everything else through."""
        if scope["type"] not in ("http", "websocket") or not str(scope.get("path", "")).startswith(CHAT_PATHS):
            await self._app(scope, receive, send)
            return
        if not origin_allowed(scope, self._origins):
            logger.info("chat request from a page whose origin is not allowed refused")
            if scope["type"] == "websocket":
                await receive()  # websocket.connect
                await send({"type": "websocket.close", "code": 4403})
            else:
                await JSONResponse({"error": ORIGIN_REFUSED}, status_code=403)(scope, receive, send)
            return
        origin = Headers(scope=scope).get("origin")
        if scope["type"] == "websocket" or origin is None:
            await self._app(scope, receive, send)
            return
        cors = {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}
        if scope["method"] == "OPTIONS":  # preflight of a cross-origin call (JSON body, Authorization)
            await Response(status_code=204, headers={
                **cors, "Access-Control-Allow-Methods": "GET, POST, DELETE",
                "Access-Control-Allow-Headers": "Authorization, Content-Type",
                "Access-Control-Max-Age": CORS_MAX_AGE})(scope, receive, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in cors.items():
                    headers[name] = value
                headers["Access-Control-Expose-Headers"] = "Retry-After"
            await send(message)

        await self._app(scope, receive, send_with_cors)


def _static_page(relative: str) -> Response:
    return FileResponse(STATIC / relative)
