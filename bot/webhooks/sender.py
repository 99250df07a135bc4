"""The background webhook sender of a bot server: POSTs queued events, retries, dead-letters.

It wakes on :meth:`WebhookSender.wake` or every ``poll_seconds`` (an event queued by the
action server or another bot server, a retry that came due, a row a dead server left),
claims the due rows (:meth:`bot.store.webhooks.WebhookDeliveries.claim_due`: each by one
server, a ticket's events in order) and POSTs them at once, each bounded by the timeout.
The chat never waits for it: events are rows written with the ticket change, and
nothing here raises out of :meth:`run`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from dataclasses import dataclass
from typing import Awaitable, Callable

import aiohttp
from starlette.concurrency import run_in_threadpool

from bot.polling import poll_queue
from bot.settings import WebhookSettings
from bot.store.models import WebhookDelivery
from bot.store.queue import Queue
from bot.store.webhooks import WebhookDeliveries
from bot.text.masking_settings import current_masking_settings
from bot.webhooks.config import WebhookConfig
from bot.webhooks.payload import encode, event_payload
from bot.webhooks.signing import (EVENT_ID_HEADER, EVENT_TYPE_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER,
                                  signature)

logger = logging.getLogger(__name__)

MAX_RESPONSE_BYTES = 64 * 1024  # a receiver's answer is read this far at most (then dropped)
USER_AGENT = "support-bot-webhooks/1"


class DeliveryFailed(Exception):
    """One try did not reach a 2xx answer; the message is stored with the row."""


@dataclass(frozen=True)
class Request:
    """One prepared POST: where, the signing key, the body (JSON bytes)."""

    url: str
    secret: str
    body: bytes

    def __repr__(self) -> str:  # never the secret in a log line
        return f"Request(url={self.url!r}, {len(self.body)} bytes)"


class WebhookSender:
    """Sends the webhook deliveries of one database to the configured receivers."""

    def __init__(self, config: WebhookConfig, deliveries: WebhookDeliveries, queue: Queue,
                 settings: WebhookSettings, poll_seconds: float = 1.0) -> None:
        """Send ``deliveries`` to ``config``'s receivers, reading tickets from ``queue``.

        Args:
            config: The receivers (the webhooks file).
            deliveries: The delivery queue.
            queue: The tickets' queue (the same database; a round reads its tickets in one query
                through ``deliveries``).
            settings: Tries, first retry wait, timeout (``BOT_WEBHOOK_*``).
            poll_seconds: Longest wait between looks at the queue.
        """
        self.config = config
        self.deliveries = deliveries
        self._queue = queue
        self.settings = settings
        self._poll = poll_seconds
        self._wake = asyncio.Event()
        self._client: aiohttp.ClientSession | None = None
        # Told of each dead-lettered row (the gateway notes a forward's failure in the ticket's history).
        self.on_dead: Callable[[WebhookDelivery, str], Awaitable[None]] | None = None

    def wake(self) -> None:
        """An event was queued here: look now instead of at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        """Send due deliveries until cancelled."""
        try:
            await poll_queue(self.send_due, self._wake, self._poll, "webhooks")
        finally:
            await self.close()

    async def close(self) -> None:
        """Close the HTTP client."""
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def send_due(self) -> int:
        """POST every delivery due now; how many arrived.

        Rounds go on while a round delivered something: a delivered event lets the
        ticket's next one go in the following round. A round's database work is three
        calls on one worker thread at a time (claim; tickets and bodies; outcomes), never
        one per row: the chat's own database calls share those threads and the database.
        """
        sent = 0
        while True:
            rows = await run_in_threadpool(self.deliveries.claim_due)
            if not rows:
                return sent
            prepared = await run_in_threadpool(self._prepare, rows)
            outcomes = await asyncio.gather(*(self._attempt(row, request) for row, request in prepared))
            delivered = [row.id for row, error in zip(rows, outcomes) if error is None]
            await run_in_threadpool(self.deliveries.delivered, *delivered)
            for row, error in zip(rows, outcomes):
                if error is not None:
                    await self._failed(row, error)
            sent += len(delivered)
            if not delivered:
                return sent

    def _prepare(self, rows: list[WebhookDelivery]) -> list[tuple[WebhookDelivery, Request | str]]:
        """Each row's receiver and signed-to-be body, or why it cannot be sent (in a worker thread)."""
        tickets = self.deliveries.tickets(row.ticket_id for row in rows)
        masking = current_masking_settings()
        prepared: list[tuple[WebhookDelivery, Request | str]] = []
        for row in rows:
            endpoint = self.config.endpoint(row.endpoint)
            ticket = tickets.get(row.ticket_id)
            if endpoint is None:
                prepared.append((row, f"receiver {row.endpoint!r} is no longer in the webhooks file"))
            elif ticket is None:
                prepared.append((row, f"ticket {row.ticket_id} no longer exists"))
            else:
                prepared.append((row, Request(endpoint.url, endpoint.secret, encode(event_payload(row, ticket, masking)))))
        return prepared

    async def _attempt(self, row: WebhookDelivery, request: Request | str) -> str | None:
        """POST one prepared row; ``None`` when it arrived, else why not."""
        if isinstance(request, str):
            return request
        try:
            await self._post(request.url, request.secret, row, request.body)
        except DeliveryFailed as exc:
            return str(exc)
        return None

    async def _failed(self, row: WebhookDelivery, error: str) -> None:
        """Record a failed try: retried later, or dead-lettered (and ``on_dead`` told)."""
        first_wait = dt.timedelta(seconds=self.settings.retry_seconds)
        dead = await run_in_threadpool(self.deliveries.failed_try, row.id, error, self.settings.attempts, first_wait)
        logger.warning("webhook %s (%s of ticket %s) to %s: try %s failed (%s)%s", row.event_id, row.event_type,
                       row.ticket_id, row.endpoint, row.attempts, error, "; dead-lettered" if dead else "; will retry")
        if dead and self.on_dead is not None:
            try:
                await self.on_dead(row, error)
            except Exception:  # noqa: BLE001 - a note in the history must not stop the sender
                logger.exception("webhook %s: could not record the dead letter in the ticket", row.event_id)

    async def _post(self, url: str, secret: str, row: WebhookDelivery, body: bytes) -> None:
        """One signed POST; a 2xx answer within the timeout, else :class:`DeliveryFailed`."""
        timestamp = int(time.time())
        headers = {"Content-Type": "application/json; charset=utf-8", EVENT_ID_HEADER: row.event_id,
                   EVENT_TYPE_HEADER: row.event_type, TIMESTAMP_HEADER: str(timestamp),
                   SIGNATURE_HEADER: signature(secret, timestamp, body)}
        try:
            # The whole exchange is bounded: a receiver that trickles an endless body
            # keeps neither this row nor the others of the round waiting.
            await asyncio.wait_for(self._exchange(url, headers, body), self.settings.timeout)
        except asyncio.TimeoutError:
            raise DeliveryFailed(f"no complete answer within {self.settings.timeout:g} s") from None
        except (aiohttp.ClientError, ValueError) as exc:  # ValueError: a URL aiohttp cannot use
            raise DeliveryFailed(f"{type(exc).__name__}: {exc}"[:300]) from None

    async def _exchange(self, url: str, headers: dict[str, str], body: bytes) -> None:
        if self._client is None:
            # aiohttp, not httpx: a POST costs the event loop ~0.2 ms of CPU instead of ~3 ms
            # (measured, benchmarks/webhook_load.py), and this loop also serves the chat.
            # trust_env: proxies from HTTP(S)_PROXY / NO_PROXY, as httpx did.
            self._client = aiohttp.ClientSession(headers={"User-Agent": USER_AGENT}, trust_env=True,
                                                 auto_decompress=False, timeout=aiohttp.ClientTimeout(total=None))
        async with self._client.post(url, data=body, headers=headers, allow_redirects=False) as response:
            read = 0
            async for chunk in response.content.iter_any():
                read += len(chunk)
                if read >= MAX_RESPONSE_BYTES:
                    response.close()  # the status is what counts; the rest of a huge answer is dropped
                    break
            if not 200 <= response.status < 300:
                raise DeliveryFailed(f"HTTP {response.status}")
