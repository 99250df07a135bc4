"""The LINE Messaging API over aiohttp (already in the lock; line-bot-sdk needs pydantic 2).

Replies and pushes are retried on HTTP 429 and 5xx and on network errors, with exponential
back-off (``Retry-After`` when LINE sends one). Push calls carry an ``X-Line-Retry-Key``
so a retried push is delivered once even when the first attempt did arrive. The extras
(profile, loading animation, 既読) are tried once, with a short timeout: they must never
hold up an answer while its reply token ages.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import aiohttp

logger = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
EXTRA_TIMEOUT = 3.0  # seconds for profile, loading and 既読 (tried once)


class LineApiError(RuntimeError):
    """A call that failed for good; ``status`` is 0 when LINE could not be reached."""

    def __init__(self, message: str, status: int = 0, ambiguous: bool = False) -> None:
        super().__init__(message)
        self.status = status
        # An earlier attempt may have been carried out (timeout or 5xx before this answer).
        self.ambiguous = ambiguous


class ReplyTokenRejected(LineApiError):
    """LINE refused the reply token (used, expired or unknown): send by push instead."""


class LineApi:
    """Calls of the Messaging API the channel uses."""

    def __init__(self, base_url: str, access_token: str, attempts: int = 4, backoff: float = 0.5,
                 timeout: float = 10.0) -> None:
        """Call ``base_url`` with the channel access token.

        Args:
            base_url: ``https://api.line.me`` or the local stand-in.
            access_token: The channel access token.
            attempts: Tries per call (429 / 5xx / network errors are retried).
            backoff: Seconds before the first retry; doubled after each.
            timeout: Seconds per attempt.
        """
        self._base = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {access_token}"}
        self._attempts = max(1, attempts)
        self._backoff = backoff
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None
        self.retries = 0  # retried attempts so far (tests and logs)

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout, headers=self._headers)
        return self._session

    async def close(self) -> None:
        """Close the connection pool."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def reply(self, reply_token: str, messages: list[dict[str, Any]]) -> None:
        """Answer a webhook event (free of charge; the token works once).

        Raises:
            ReplyTokenRejected: The token is used or expired: push instead.
            LineApiError: Still failing after the retries.
        """
        await self._call("POST", "/v2/bot/message/reply", {"replyToken": reply_token, "messages": messages},
                         reply=True)

    async def push(self, to: str, messages: list[dict[str, Any]]) -> None:
        """Send to a user without a reply token (billed; one call counts as one message).

        Raises:
            LineApiError: Still failing after the retries.
        """
        await self._call("POST", "/v2/bot/message/push", {"to": to, "messages": messages},
                         headers={"X-Line-Retry-Key": str(uuid.uuid4())}, retry_key=True)

    async def loading(self, user_id: str, seconds: int = 20) -> None:
        """Show the loading animation in the user's chat (5-60 s, a multiple of 5)."""
        seconds = min(60, max(5, seconds - seconds % 5))
        await self._call("POST", "/v2/bot/chat/loading/start", {"chatId": user_id, "loadingSeconds": seconds},
                         extra=True)

    async def profile(self, user_id: str) -> dict[str, Any]:
        """The user's profile (``displayName``, ``pictureUrl``, ...)."""
        result = await self._call("GET", f"/v2/bot/profile/{user_id}", None, extra=True)
        return result if isinstance(result, dict) else {}

    async def mark_as_read(self, mark_as_read_token: str) -> None:
        """Show 既読 for the user's messages up to the one that carried the token."""
        await self._call("POST", "/v2/bot/chat/markAsRead", {"markAsReadToken": mark_as_read_token}, extra=True)

    async def _call(self, method: str, path: str, body: Any, headers: dict[str, str] | None = None,
                    reply: bool = False, retry_key: bool = False, extra: bool = False) -> Any:
        delay = self._backoff
        ambiguous = False
        attempts = 1 if extra else self._attempts
        timeout = aiohttp.ClientTimeout(total=EXTRA_TIMEOUT) if extra else None
        for attempt in range(1, attempts + 1):
            wait = delay
            try:
                async with self._client().request(method, self._base + path, json=body, headers=headers,
                                                  timeout=timeout) as response:
                    text = await response.text()
                    if response.status < 300:
                        try:
                            return await response.json(content_type=None) if text else {}
                        except ValueError:
                            return {}
                    if retry_key and response.status == 409 and attempt > 1:
                        return {}  # the retry key was accepted by an earlier attempt: delivered once
                    if reply and response.status == 400 and "reply token" in text.lower():
                        raise ReplyTokenRejected(f"reply token refused: {text[:200]}", 400, ambiguous)
                    if response.status not in RETRY_STATUSES or attempt == attempts:
                        raise LineApiError(f"LINE API {path}: HTTP {response.status} {text[:200]}",
                                           response.status, ambiguous)
                    ambiguous = ambiguous or response.status >= 500
                    retry_after = response.headers.get("Retry-After", "")
                    if retry_after.isdigit():
                        wait = max(wait, min(float(retry_after), 30.0))
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                ambiguous = True
                if attempt == attempts:
                    raise LineApiError(f"LINE API {path}: {type(exc).__name__}", 0, True) from exc
            self.retries += 1
            logger.info("LINE API %s: retry %d in %.1f s", path, attempt, wait)
            await asyncio.sleep(wait)
            delay *= 2
        raise LineApiError(f"LINE API {path}: no attempt made")  # attempts >= 1: never reached
