"""The Redis backend of the event fan-out: events carried between bot servers over pub/sub.

Several bot servers (scale-out: a customer's socket on one, the agent's console on
another) relay every event through one Redis pub/sub channel
(``BOT_EVENTS_URL=redis://...``, chosen by :func:`bot.server.events.backend_for_url`):
each server delivers its own events to its own subscribers at once, publishes them, and
delivers what it hears from the *other* servers, so every event reaches every tab once.

Relayed events are signed (HMAC-SHA256 with the *event-relay key*, derived from the
secret file like every other key, see :func:`bot.server.tokens.derive_key`) and carry a
timestamp and a nonce: anything else that can write to the Redis channel cannot inject,
alter or replay events. Unsigned, badly signed, stale and replayed messages are dropped
with a warning that never contains their payload.

While Redis is unreachable each server keeps delivering its own events; when the
connection is back every subscriber on every server is told to resync (the
:data:`bot.server.events.CLOSED` marker: widgets reconnect and reload the history,
consoles reload their lists), since events of other servers may have been missed
meanwhile.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import hmac
import json
import logging
import math
import secrets
import time
from typing import Any, Callable

from bot.server.events import SUBSCRIBER_BACKLOG, EventHub
from bot.server.tokens import derive_key

logger = logging.getLogger(__name__)

EVENT_KEY_PURPOSE = "event-relay"
WIRE_VERSION = b"v1"
MAX_EVENT_AGE_SECONDS = 30.0  # relayed events older (or further in the future) than this are refused
MAX_RELAYED_BYTES = 4 * 1024 * 1024
PUBLISH_BATCH = 200  # events published in one round trip at most


def event_relay_key(secret: str, version: int = 1) -> str:
    """The key that signs relayed events, derived from the master secret.

    Args:
        secret: The master secret (the secret key file's content), the same on every server.
        version: Raise it to rotate this key alone (every server at once).

    Returns:
        64 hex characters, unrelated to the session and token keys.
    """
    return derive_key(secret, EVENT_KEY_PURPOSE, version)


class RejectedEvent(ValueError):
    """A relayed message that must not be delivered; the message says why (never the payload)."""


class EventSealer:
    """Signs relayed events and checks them: signature, age and nonce (no replay).

    Wire format (one Redis message)::

        v1.<hex HMAC-SHA256>.<JSON body>

    The JSON body is ``{"origin", "ts", "nonce", "event"}``; the MAC covers the channel
    name, a newline, the version, a dot and the body's exact bytes, so nothing is
    re-serialized before it is checked.
    """

    def __init__(self, key: str, channel: str, max_age: float = MAX_EVENT_AGE_SECONDS,
                 clock: Callable[[], float] = time.time) -> None:
        """Sign for ``channel`` with ``key``.

        Args:
            key: The event-relay key (:func:`event_relay_key`).
            channel: The Redis channel; a message signed for another channel is refused.
            max_age: Seconds a message stays acceptable (the servers' clocks must agree
                to within this, e.g. with NTP).
            clock: Wall clock, seconds since the epoch (tests pass their own).
        """
        self._key = key.encode("utf-8")
        self._channel = channel.encode("utf-8")
        self._max_age = max_age
        self._clock = clock
        self._seen: collections.OrderedDict[str, float] = collections.OrderedDict()  # nonce -> received at

    def _mac(self, body: bytes) -> bytes:
        return hmac.new(self._key, self._channel + b"\n" + WIRE_VERSION + b"." + body, hashlib.sha256) \
            .hexdigest().encode("ascii")

    def seal(self, origin: str, event: dict[str, Any]) -> bytes:
        """The signed wire message carrying ``event`` from server ``origin``."""
        body = json.dumps({"origin": origin, "ts": self._clock(), "nonce": secrets.token_hex(16), "event": event},
                          ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        return WIRE_VERSION + b"." + self._mac(body) + b"." + body

    @staticmethod
    def claims_origin(data: bytes, origin: str) -> bool:
        """Whether a wire message *says* it comes from server ``origin`` (nothing is checked).

        Only for skipping a server's own messages, which come back on the channel, without the
        cost of checking them: a genuine one was delivered here when it was published, and a
        forged one must not be delivered either.
        """
        _, _, rest = data.partition(b".")
        _, _, body = rest.partition(b".")
        return body.startswith(b'{"origin":"' + origin.encode("ascii") + b'",')

    def open(self, data: bytes | str) -> tuple[str, dict[str, Any]]:
        """Check a wire message.

        Returns:
            The origin server's id and the event.

        Raises:
            RejectedEvent: Too large, unsigned, badly signed, malformed, stale or replayed.
        """
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogateescape")
        if len(data) > MAX_RELAYED_BYTES:
            raise RejectedEvent("too large")
        version, _, rest = data.partition(b".")
        mac, _, body = rest.partition(b".")
        if version != WIRE_VERSION or not hmac.compare_digest(mac, self._mac(body)):
            raise RejectedEvent("unsigned or badly signed")
        try:
            envelope = json.loads(body)
            origin, sent, nonce, event = envelope["origin"], envelope["ts"], envelope["nonce"], envelope["event"]
        except (ValueError, TypeError, KeyError, RecursionError):
            raise RejectedEvent("malformed") from None
        if not (isinstance(origin, str) and isinstance(nonce, str) and isinstance(event, dict)
                and isinstance(sent, (int, float)) and math.isfinite(sent)):
            raise RejectedEvent("malformed")
        now = self._clock()
        if abs(now - sent) > self._max_age:
            raise RejectedEvent("stale (older than %g s, or the servers' clocks disagree)" % self._max_age)
        self._forget_before(now - 2 * self._max_age)
        if nonce in self._seen:
            raise RejectedEvent("replayed")
        self._seen[nonce] = now
        return origin, event

    def _forget_before(self, limit: float) -> None:
        # A nonce received at r came with |ts - r| <= max_age, so a replay of it is refused
        # as stale from r + 2 * max_age on: older nonces need not be kept.
        while self._seen:
            nonce, received = next(iter(self._seen.items()))
            if received >= limit:
                break
            del self._seen[nonce]


class RedisRelay:
    """Carries :class:`EventHub` events between bot servers over one Redis pub/sub channel.

    Events are published by one task in the order they were sent (frames of a
    conversation must not overtake each other), each signed by :class:`EventSealer`.
    While Redis is unreachable nothing is published (this server's subscribers still get
    this server's events) and the connection is retried every ``retry_seconds``; once it
    is back, a signed ``resync`` event asks every server to make its subscribers reload.
    """

    CHANNEL = "bot:events"

    def __init__(self, url: str, hub: EventHub, key: str | None = None, *, retry_seconds: float = 1.0,
                 start_timeout: float = 5.0, clock: Callable[[], float] = time.time) -> None:
        """Relay ``hub``'s events through the Redis server at ``url``.

        Args:
            url: ``redis://...`` (``BOT_EVENTS_URL``).
            hub: This server's hub.
            key: The event-relay key (:func:`event_relay_key` of the master secret);
                ``None``: derived from the secret key file of the settings, as every
                server of a deployment shares it.
            retry_seconds: Pause between attempts to reach Redis again.
            start_timeout: :meth:`start` waits this long for the subscription, then
                carries on without Redis (retrying in the background).
            clock: Wall clock for the signatures' timestamps (tests).
        """
        import redis.asyncio as redis

        if key is None:
            from bot.server.tokens import load_secret_key
            from bot.settings import get_settings

            key = event_relay_key(load_secret_key(get_settings().secret_key_file))
        self._redis = redis.from_url(url, socket_connect_timeout=max(retry_seconds, 2.0), socket_keepalive=True,
                                     health_check_interval=30)
        self._hub = hub
        self._channel = self.CHANNEL
        self._sealer = EventSealer(key, self._channel, clock=clock)
        self._origin = secrets.token_hex(8)  # this server; its own events come back and are skipped
        self._retry_seconds = retry_seconds
        self._start_timeout = start_timeout
        self._outgoing: asyncio.Queue[dict[str, Any]] = asyncio.Queue(SUBSCRIBER_BACKLOG * 10)
        self._tasks: list[asyncio.Task[None]] = []
        self._subscribed = asyncio.Event()
        self._first_attempt = asyncio.Event()  # the first subscription succeeded or failed
        self._down = False  # Redis unreachable since the last failure: nothing is published
        self._missed = False  # events were not relayed: every server resyncs once Redis works
        self._rejected = 0
        self._rejected_logged_at = -math.inf

    @property
    def connected(self) -> bool:
        """Subscribed and publishing (False while Redis is unreachable)."""
        return self._subscribed.is_set() and not self._down

    def send(self, event: dict[str, Any]) -> None:
        """Queue ``event`` for publishing."""
        try:
            self._outgoing.put_nowait(event)
        except asyncio.QueueFull:
            logger.warning("event relay backlog full; dropping an event (every server resyncs)")
            self._missed = True

    async def start(self) -> None:
        """Subscribe and start publishing.

        Returns once subscribed; when Redis is unreachable (the first attempt failed, or
        gave no answer within ``start_timeout``) it returns anyway: this server then
        delivers its own events only, and keeps trying in the background.
        """
        self._tasks = [asyncio.create_task(self._listen()), asyncio.create_task(self._publish())]
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._first_attempt.wait(), timeout=self._start_timeout)
        if not self._subscribed.is_set():
            self._mark_down()

    async def stop(self) -> None:
        """Cancel both tasks and close the connection."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self._redis.close()
            await self._redis.connection_pool.disconnect()

    def _mark_down(self) -> None:
        if not self._down:
            logger.warning("event relay: Redis unreachable; this server delivers its own events only, "
                           "clients resync when it is back")
        self._down = self._missed = True

    async def _publish(self) -> None:
        while True:
            batch = [await self._outgoing.get()]
            while len(batch) < PUBLISH_BATCH and not self._outgoing.empty():
                batch.append(self._outgoing.get_nowait())
            if self._down:
                continue  # not sent: the resync after the outage covers it
            try:
                # One round trip for every event queued meanwhile, in order: one at a time, the
                # relay fell behind under load (issue #12's profile: 795 events queued at N=50).
                async with self._redis.pipeline(transaction=False) as pipe:
                    for event in batch:
                        pipe.publish(self._channel, self._sealer.seal(self._origin, event))
                    await pipe.execute()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - Redis down: the listener retries and resyncs
                self._mark_down()

    async def _listen(self) -> None:
        while True:
            pubsub = self._redis.pubsub()
            try:
                await pubsub.subscribe(self._channel)
                self._subscribed.set()
                self._first_attempt.set()
                while True:
                    if self._missed:
                        await self._recover()
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=self._retry_seconds)
                    if message is not None and message.get("type") == "message":
                        self._receive(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - Redis down: retry, resync once it is back
                self._mark_down()
                self._first_attempt.set()
                await asyncio.sleep(self._retry_seconds)
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.shield(pubsub.reset())

    async def _recover(self) -> None:
        """Redis works (again): every server's subscribers reload, since events were not relayed."""
        await self._redis.publish(self._channel, self._sealer.seal(self._origin, {"kind": "resync"}))
        if self._down:
            logger.warning("event relay: Redis reachable again; clients resync")
        self._down = self._missed = False
        self._hub.resync()

    def _receive(self, data: bytes) -> None:
        """Deliver one message heard on the channel, if it is signed, fresh and from another server."""
        if isinstance(data, bytes) and self._sealer.claims_origin(data, self._origin):
            return  # this server's own: delivered here when it was published
        try:
            origin, event = self._sealer.open(data)
        except RejectedEvent as exc:
            self._rejected += 1
            now = time.monotonic()
            if now - self._rejected_logged_at >= 10:  # at most one warning per 10 s, never the payload
                logger.warning("event relay: dropped %d message(s) on %s: %s (latest %d bytes)",
                               self._rejected, self._channel, exc, len(data))
                self._rejected, self._rejected_logged_at = 0, now
            return
        if origin == self._origin:
            return  # delivered here when it was published
        if event.get("kind") == "resync":
            self._hub.resync()
        else:
            self._hub.deliver(event)
