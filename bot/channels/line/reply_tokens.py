"""Which reply token of a conversation can still be used.

A reply token is valid once, and only for a limited time after its webhook event (about a
minute; ``LINE_REPLY_TOKEN_SECONDS``, default 50 s, stays inside it, counted from the
webhook's arrival, not from when its turn is handled).
Replies are free while push messages are billed, so the newest unused token of a
conversation is kept: an agent who answers within that time answers by reply too.
Tokens live in this server's memory only: a token belongs to the webhook request this
server received, and an expired one is worthless after a restart anyway.
"""

from __future__ import annotations

import time
from typing import Callable


class ReplyTokens:
    """The newest unused reply token per conversation, with its arrival time."""

    def __init__(self, valid_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        """Keep tokens for ``valid_seconds``; ``clock``: seconds, monotonic (tests pass their own)."""
        self._valid = valid_seconds
        self._clock = clock
        self._tokens: dict[str, tuple[str, float]] = {}

    def remember(self, conversation_id: str, token: str, received_at: float | None = None) -> None:
        """A new event's token replaces the previous one (LINE accepts any unused one; the newest lasts longest)."""
        if token:
            self._tokens[conversation_id] = (token, self._clock() if received_at is None else received_at)
        self._forget_expired()

    def take(self, conversation_id: str) -> str | None:
        """The conversation's usable token, marked used (``None``: none, or expired: push instead)."""
        entry = self._tokens.pop(conversation_id, None)
        if entry is None or self._clock() - entry[1] > self._valid:
            return None
        return entry[0]

    def peek(self, conversation_id: str) -> bool:
        """Whether a usable token is waiting (nothing is marked used)."""
        entry = self._tokens.get(conversation_id)
        return entry is not None and self._clock() - entry[1] <= self._valid

    def _forget_expired(self) -> None:
        if len(self._tokens) < 1000:
            return
        limit = self._clock() - self._valid
        for key in [k for k, (_, at) in self._tokens.items() if at < limit]:
            del self._tokens[key]
