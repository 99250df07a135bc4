"""Agent login: a server-side session behind a signed cookie, a CSRF token for every state change.

The cookie (HttpOnly, SameSite=Strict, ``Secure`` over https) holds only a random
session id, signed with the agent-session key (itsdangerous). The session itself is a
row of ``agent_sessions`` (see :class:`bot.store.agents.AgentSessions`): logging out,
removing the agent or changing the password deletes it, so a copied cookie stops working
at once. A session also ends after 30 minutes without a request and 12 hours after login.

:class:`AgentSessionMiddleware` looks the session up once per request (in a worker
thread) and leaves it in the ASGI scope; :func:`current_agent` and :func:`check_csrf`
read it from there. The CSRF token is handed to the console in the login answer and must
come back in the ``X-CSRF-Token`` header of each POST.

Wrong passwords are slowed down per client address and per user name with an exponential
back-off (:class:`LoginThrottle`, counters in the database), and at most two bcrypt
checks run at a time so guessing cannot starve the customers' requests.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import math
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

from itsdangerous import BadSignature, TimestampSigner
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot.store.agents import SESSION_MAX_SECONDS, AgentSessions, Backoff, LoginAttempts, SessionInfo

CSRF_HEADER = "x-csrf-token"
SESSION_COOKIE = "bot_agent_session"
SCOPE_KEY = "bot.agent_auth"
MAX_COOKIE_CHARS = 512
HSTS_VALUE = "max-age=31536000"
# Per client address: 5 wrong passwords free, then 1 s, 2 s, 4 s ... up to an hour.
ADDRESS_BACKOFF = Backoff(free_failures=5, base_seconds=1, max_seconds=3600)
# Per user name (guesses from many addresses): 10 free, then 1 s, 2 s ... up to 5 minutes.
NAME_BACKOFF = Backoff(free_failures=10, base_seconds=1, max_seconds=300)
MAX_CONCURRENT_CHECKS = 2
MAX_WAITING_CHECKS = 32

T = TypeVar("T")


def is_https(scope: Scope, https_setting: bool) -> bool:
    """Whether the browser reached us over https.

    True with ``BOT_HTTPS=1``, or when the request's scheme is https: uvicorn sets it from
    ``X-Forwarded-Proto`` only for proxies listed in ``FORWARDED_ALLOW_IPS`` (loopback by
    default), so a client cannot claim it.
    """
    return https_setting or scope.get("scheme") in ("https", "wss")


@dataclass
class _AuthState:
    """What the middleware and the endpoints of one request share (in the scope)."""

    sessions: AgentSessions
    sign: Callable[[str], str]  # session id -> cookie value
    session: SessionInfo | None = None
    new_cookie: str | None = None  # set at login
    clear_cookie: bool = False  # set at logout, or when the browser sent a dead cookie


class AgentSessionMiddleware:
    """Reads the agent session cookie, looks the session up, writes the cookie back.

    Pure ASGI (the console's event stream keeps streaming). Only ``http`` requests are
    looked at; the customers' WebSocket never carries an agent session.
    """

    def __init__(self, app: ASGIApp, sessions: AgentSessions, key: str, https: bool = False) -> None:
        """Wrap ``app``.

        Args:
            app: The application.
            sessions: Where sessions live.
            key: The agent-session key (see :func:`bot.server.tokens.derive_key`).
            https: ``BOT_HTTPS``: always mark the cookie ``Secure``.
        """
        self._app = app
        self._sessions = sessions
        self._signer = TimestampSigner(key, salt="agent-session-cookie")
        self._https = https

    def sign(self, session_id: str) -> str:
        """The cookie value for ``session_id``."""
        return self._signer.sign(session_id).decode("ascii")

    def _session_id(self, cookie: str) -> str | None:
        if not cookie or len(cookie) > MAX_COOKIE_CHARS:
            return None
        try:
            return self._signer.unsign(cookie, max_age=SESSION_MAX_SECONDS).decode("ascii")
        except (BadSignature, UnicodeDecodeError):
            return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Resolve the session, run the app, set or clear the cookie on the response."""
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        state = _AuthState(self._sessions, self.sign)
        scope[SCOPE_KEY] = state
        cookie = HTTPConnection(scope).cookies.get(SESSION_COOKIE)
        if cookie is not None:
            session_id = self._session_id(cookie)
            if session_id is not None:
                state.session = await run_in_threadpool(self._sessions.lookup, session_id)
            state.clear_cookie = state.session is None  # tampered, expired or revoked: drop it
        secure = is_https(scope, self._https)

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                flags = "Path=/; HttpOnly; SameSite=Strict" + ("; Secure" if secure else "")
                headers = MutableHeaders(scope=message)
                if state.new_cookie is not None:
                    headers.append("Set-Cookie",
                                   f"{SESSION_COOKIE}={state.new_cookie}; Max-Age={SESSION_MAX_SECONDS}; {flags}")
                elif state.clear_cookie:
                    headers.append("Set-Cookie", f"{SESSION_COOKIE}=; Max-Age=0; {flags}")
            await send(message)

        await self._app(scope, receive, send_with_cookie)


def _state(connection: HTTPConnection) -> _AuthState:
    state = connection.scope.get(SCOPE_KEY)
    if not isinstance(state, _AuthState):
        raise HTTPException(401, "ログインしてください。")
    return state


def current_session(connection: HTTPConnection) -> SessionInfo:
    """The logged-in agent's session.

    Raises:
        HTTPException: 401 without a live session.
    """
    session = _state(connection).session
    if session is None:
        raise HTTPException(401, "ログインしてください。")
    return session


def current_agent(connection: HTTPConnection) -> str:
    """User name of the logged-in agent.

    Raises:
        HTTPException: 401 without a live session.
    """
    return current_session(connection).username


def csrf_token(connection: HTTPConnection) -> str:
    """The session's CSRF token (401 without a session)."""
    return current_session(connection).csrf_token


def check_csrf(connection: HTTPConnection) -> str:
    """User name of the agent, after checking the CSRF header of a state change.

    Raises:
        HTTPException: 401 without a session; 403 missing or wrong CSRF token.
    """
    session = current_session(connection)
    sent = connection.headers.get(CSRF_HEADER, "")
    if not sent or not hmac.compare_digest(sent.encode("utf-8", "replace"), session.csrf_token.encode("utf-8")):
        raise HTTPException(403, "CSRF トークンがありません、または正しくありません。ページを再読み込みしてください。")
    return session.username


async def log_in(connection: HTTPConnection, username: str) -> SessionInfo:
    """Start a new session for ``username`` (ending the one the browser had).

    Raises:
        HTTPException: 401 when the agent was removed meanwhile.
    """
    state = _state(connection)
    if state.session is not None:
        await run_in_threadpool(state.sessions.end, state.session.session_id)
    session = await run_in_threadpool(state.sessions.start, username, client_address(connection))
    if session is None:
        raise HTTPException(401, "ユーザー名またはパスワードが違います。")
    state.session, state.new_cookie, state.clear_cookie = session, state.sign(session.session_id), False
    return session


async def log_out(connection: HTTPConnection) -> None:
    """End the session (on every server: the row is deleted) and clear the cookie; the logout
    goes into the audit log with the deletion."""
    state = _state(connection)
    if state.session is not None:
        await run_in_threadpool(state.sessions.end, state.session.session_id,
                                (state.session.username, client_address(connection)))
    state.session, state.new_cookie, state.clear_cookie = None, None, True


async def still_logged_in(connection: HTTPConnection) -> bool:
    """Whether the request's session is still live, without counting it as activity."""
    state = _state(connection)
    if state.session is None:
        return False
    return await run_in_threadpool(state.sessions.lookup, state.session.session_id, False) is not None


def client_address(connection: HTTPConnection) -> str:
    """The client's address as the throttle counts it.

    IPv6 clients are counted per /64 (one subscriber usually holds a whole /64).
    Behind a proxy, uvicorn gives the address from ``X-Forwarded-For`` when it trusts the
    proxy (``FORWARDED_ALLOW_IPS``).
    """
    host = connection.client.host if connection.client else ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host[:100] or "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{address}/64", strict=False))
    return str(address)


def _wait_text(seconds: int) -> str:
    return f"{seconds} 秒後" if seconds < 60 else f"約 {math.ceil(seconds / 60)} 分後"


class LoginThrottle:
    """Slows down password guessing without locking the agent out.

    Every attempt is counted against the client address and the user name (in the
    database, so every bot server sees the same counts); after a few failures each one
    must wait, twice as long after each further failure (:data:`ADDRESS_BACKOFF`,
    :data:`NAME_BACKOFF`). Guesses from one address are stopped by the address's wait
    long before they add up for the name, so one attacker cannot lock a well-known user
    name out. A right password clears both counters.

    :meth:`check_password` lets at most ``max_concurrent_checks`` bcrypt checks run at a
    time; the rest wait without holding a worker thread, and beyond ``max_waiting``
    waiting checks :meth:`ensure_capacity` answers 503 at once.
    """

    def __init__(self, address_backoff: Backoff = ADDRESS_BACKOFF, name_backoff: Backoff = NAME_BACKOFF,
                 max_concurrent_checks: int = MAX_CONCURRENT_CHECKS, max_waiting: int = MAX_WAITING_CHECKS) -> None:
        """Use the given back-offs and bcrypt limits."""
        self._address_backoff = address_backoff
        self._name_backoff = name_backoff
        self._max_checks = max_concurrent_checks
        self._max_waiting = max_waiting
        self._waiting = 0
        self._semaphore: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @staticmethod
    def keys(address: str, username: str) -> tuple[str, str]:
        """The counter keys of an attempt."""
        return f"address:{address}", f"name:{username[:200]}"

    async def begin(self, attempts: LoginAttempts, address: str, username: str) -> None:
        """Count an attempt.

        Raises:
            HTTPException: 429 with ``Retry-After`` while the address or the name must wait.
        """
        address_key, name_key = self.keys(address, username)
        wait = await run_in_threadpool(attempts.begin, [(address_key, self._address_backoff),
                                                        (name_key, self._name_backoff)])
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            raise HTTPException(429, f"ログインの失敗が続いたため、しばらくお待ちください。{_wait_text(seconds)}に"
                                     f"もう一度お試しください。",
                                headers={"Retry-After": str(seconds)})

    async def succeeded(self, attempts: LoginAttempts, address: str, username: str) -> None:
        """Forget the counters after a right password."""
        await run_in_threadpool(attempts.succeeded, self.keys(address, username))

    def _gate(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if self._semaphore is None or self._loop is not loop:
            self._semaphore, self._loop = asyncio.Semaphore(self._max_checks), loop
        return self._semaphore

    def ensure_capacity(self) -> None:
        """Refuse at once when too many password checks are already waiting.

        Called before :meth:`begin`, so a refused attempt is not counted as a failure.

        Raises:
            HTTPException: 503 with ``Retry-After``.
        """
        if self._waiting >= self._max_waiting:
            raise HTTPException(503, "ただいまログインが混み合っています。少し待ってからもう一度お試しください。",
                                headers={"Retry-After": "2"})

    async def check_password(self, func: Callable[..., T], *args: Any) -> T:
        """Run ``func(*args)`` (a bcrypt check or hash) in a worker thread, a few at a time.

        Waiting callers hold no worker thread, so customers' requests keep theirs.
        """
        self._waiting += 1
        waiting = True
        try:
            async with self._gate():
                self._waiting -= 1
                waiting = False
                return await run_in_threadpool(func, *args)
        finally:
            if waiting:
                self._waiting -= 1

