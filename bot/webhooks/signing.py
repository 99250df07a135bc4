"""``X-Signature`` of a webhook POST: HMAC-SHA256 over ``<timestamp>.<body>``.

The timestamp travels in ``X-Webhook-Timestamp`` (UNIX seconds) and is part of what is
signed, so a receiver that refuses old timestamps refuses replayed requests too.
docs/webhooks.md shows the receiver's side in Python and JavaScript.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-Signature"
TIMESTAMP_HEADER = "X-Webhook-Timestamp"
EVENT_ID_HEADER = "X-Webhook-Id"
EVENT_TYPE_HEADER = "X-Webhook-Event"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Signature`` value: ``sha256=`` and the hex HMAC of ``<timestamp>.<body>``."""
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode("ascii") + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()
