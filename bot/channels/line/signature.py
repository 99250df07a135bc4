"""``X-Line-Signature``: base64 HMAC-SHA256 of the raw request body with the channel secret."""

from __future__ import annotations

import base64
import hashlib
import hmac


def sign(channel_secret: str, body: bytes) -> str:
    """The signature LINE puts in ``X-Line-Signature`` for ``body`` (tests and the stand-in use it)."""
    digest = hmac.new(channel_secret.encode("utf-8"), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def valid_signature(channel_secret: str, body: bytes, header: str | None) -> bool:
    """Whether ``header`` is the signature of the exact bytes ``body``.

    Checked on the raw bytes before the body is parsed (re-serialized JSON would differ),
    with a constant-time comparison so the signature cannot be guessed byte by byte.

    Args:
        channel_secret: The channel secret (LINE Developers console).
        body: The request body as received.
        header: The ``X-Line-Signature`` header; ``None`` or empty: not valid.
    """
    if not header or not channel_secret:
        return False
    expected = sign(channel_secret, body).encode("ascii")
    return hmac.compare_digest(expected, header.strip().encode("utf-8", "replace"))
