"""Agent login: a signed session cookie plus a CSRF token for every state change.

The cookie (Starlette's SessionMiddleware, itsdangerous-signed, HttpOnly,
SameSite=Strict) says who is logged in; the CSRF token is handed to the console in the
login answer and must come back in the ``X-CSRF-Token`` header of each POST. Repeated
wrong passwords for one user name are slowed down with a lockout.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections import OrderedDict, deque

from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection

from bot.store.agents import AgentProfile

CSRF_HEADER = "x-csrf-token"
MAX_FAILURES = 5
LOCKOUT_SECONDS = 300


def log_in(connection: HTTPConnection, agent: AgentProfile) -> str:
    """Start a session for ``agent``; returns its CSRF token."""
    csrf = secrets.token_urlsafe(32)
    connection.session.clear()
    connection.session.update({"agent": agent.username, "csrf": csrf})
    return csrf


def log_out(connection: HTTPConnection) -> None:
    """End the session."""
    connection.session.clear()


def current_agent(connection: HTTPConnection) -> str:
    """User name of the logged-in agent.

    Raises:
        HTTPException: 401 without a session.
    """
    username = connection.session.get("agent")
    if not username:
        raise HTTPException(401, "ログインしてください。")
    return str(username)


def csrf_token(connection: HTTPConnection) -> str:
    """The session's CSRF token (401 without a session)."""
    current_agent(connection)
    return str(connection.session.get("csrf", ""))


def check_csrf(connection: HTTPConnection) -> str:
    """User name of the agent, after checking the CSRF header of a state change.

    Raises:
        HTTPException: 401 without a session; 403 missing or wrong CSRF token.
    """
    username = current_agent(connection)
    sent = connection.headers.get(CSRF_HEADER, "")
    expected = str(connection.session.get("csrf", ""))
    if not sent or not hmac.compare_digest(sent.encode("utf-8", "replace"), expected.encode("utf-8")):
        raise HTTPException(403, "CSRF トークンがありません、または正しくありません。ページを再読み込みしてください。")
    return username


class LoginThrottle:
    """Locks a user name for a while after too many wrong passwords.

    An attempt is counted *before* the password is checked (and forgotten on success),
    so parallel guesses cannot all slip in before the first failure is recorded. At most
    ``max_names`` user names are tracked (oldest dropped), so made-up names cannot grow
    memory without bound.
    """

    def __init__(self, max_failures: int = MAX_FAILURES, lockout_seconds: float = LOCKOUT_SECONDS,
                 max_names: int = 10_000) -> None:
        """Allow ``max_failures`` wrong passwords per ``lockout_seconds``."""
        self._attempts: OrderedDict[str, deque[float]] = OrderedDict()
        self._max = max_failures
        self._window = lockout_seconds
        self._max_names = max_names

    def begin(self, username: str) -> None:
        """Count an attempt for ``username``.

        Raises:
            HTTPException: 429 while ``username`` is locked.
        """
        key = username[:200]
        recent = self._attempts.pop(key, deque())
        now = time.monotonic()
        while recent and now - recent[0] > self._window:
            recent.popleft()
        if len(recent) >= self._max:
            self._attempts[key] = recent
            raise HTTPException(429, "ログインの失敗が続いたため、しばらくログインできません。5 分ほど待ってからお試しください。")
        recent.append(now)
        self._attempts[key] = recent
        while len(self._attempts) > self._max_names:
            self._attempts.popitem(last=False)

    def succeeded(self, username: str) -> None:
        """Forget the attempts after a right password."""
        self._attempts.pop(username[:200], None)
