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
from typing import Awaitable, Callable

import httpx
from starlette.concurrency import run_in_threadpool

from bot.polling import poll_queue
from bot.settings import WebhookSettings
from bot.store.models import WebhookDelivery
from bot.store.queue import Queue, QueueError
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


class WebhookSender:
    """Sends the webhook deliveries of one database to the configured receivers."""

    def __init__(self, config: WebhookConfig, deliveries: WebhookDeliveries, queue: Queue,
                 settings: WebhookSettings, poll_seconds: float = 1.0) -> None:
        """Send ``deliveries`` to ``config``'s receivers, reading tickets from ``queue``.

        Args:
            config: The receivers (the webhooks file).
            deliveries: The delivery queue.
            queue: The tickets (their transcripts).
            settings: Tries, first retry wait, timeout (``BOT_WEBHOOK_*``).
            poll_seconds: Longest wait between looks at the queue.
        """
        self.config = config
        self.deliveries = deliveries
        self._queue = queue
        self.settings = settings
        self._poll = poll_seconds
        self._wake = asyncio.Event()
        self._client: httpx.AsyncClient | None = None
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
            await self._client.aclose()
            self._client = None

    async def send_due(self) -> int:
        """POST every delivery due now; how many arrived.

        Rounds go on while a round delivered something: a delivered event lets the
        ticket's next one go in the following round.
        """
        sent = 0
        while True:
            rows = await run_in_threadpool(self.deliveries.claim_due)
            if not rows:
                return sent
            results = await asyncio.gather(*(self._send_one(row) for row in rows))
            sent += sum(results)
            if not any(results):
                return sent

    async def _send_one(self, row: WebhookDelivery) -> bool:
        endpoint = self.config.endpoint(row.endpoint)
        try:
            if endpoint is None:
                raise DeliveryFailed(f"receiver {row.endpoint!r} is no longer in the webhooks file")
            ticket = await run_in_threadpool(self._queue.get, row.ticket_id, True)
            body = encode(event_payload(row, ticket, current_masking_settings()))
            await self._post(endpoint.url, endpoint.secret, row, body)
        except (DeliveryFailed, QueueError) as exc:
            first_wait = dt.timedelta(seconds=self.settings.retry_seconds)
            dead = await run_in_threadpool(self.deliveries.failed_try, row.id, str(exc), self.settings.attempts,
                                           first_wait)
            logger.warning("webhook %s (%s of ticket %s) to %s: try %s failed (%s)%s", row.event_id, row.event_type,
                           row.ticket_id, row.endpoint, row.attempts, exc,
                           "; dead-lettered" if dead else "; will retry")
            if dead and self.on_dead is not None:
                try:
                    await self.on_dead(row, str(exc))
                except Exception:  # noqa: BLE001 - a note in the history must not stop the sender
                    logger.exception("webhook %s: could not record the dead letter in the ticket", row.event_id)
            return False
        await run_in_threadpool(self.deliveries.delivered, row.id)
        return True

    async def _post(self, url: str, secret: str, row: WebhookDelivery, body: bytes) -> None:
        """One signed POST; a 2xx answer within the timeout, else :class:`DeliveryFailed`."""
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.settings.timeout, follow_redirects=False,
                                             headers={"User-Agent": USER_AGENT})
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
        except httpx.HTTPError as exc:
            raise DeliveryFailed(f"{type(exc).__name__}: {exc}"[:300]) from None

    async def _exchange(self, url: str, headers: dict[str, str], body: bytes) -> None:
        assert self._client is not None
        async with self._client.stream("POST", url, content=body, headers=headers) as response:
            read = 0
            async for chunk in response.aiter_raw():
                read += len(chunk)
                if read >= MAX_RESPONSE_BYTES:
                    break  # the status is what counts; the rest of a huge answer is dropped
            if not 200 <= response.status_code < 300:
                raise DeliveryFailed(f"HTTP {response.status_code}")
