"""The event relay between bot servers: signed events only, local delivery while Redis is down.

Redis at 127.0.0.1:6379 is never stopped: an outage is a relay pointed at a closed port,
or at :class:`RedisProxy`, a small TCP forwarder these tests start and stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import os
import secrets
import socket
import threading
import time
import uuid
from typing import Any, AsyncIterator, Awaitable, Callable, Iterator

import pytest

from bot.server.events import AGENTS, CLOSED, EventHub, conversation_channel
from bot.server.redis_relay import RedisRelay
from bot.server.tokens import derive_key, load_secret_key
from bot.settings import get_settings

REDIS_URL = "redis://127.0.0.1:6379/0"
FRAME = {"type": "message", "message": {"id": 1, "sender": "agent", "text": "確認いたします。"}}


def redis_available() -> bool:
    import redis

    try:
        return bool(redis.from_url(REDIS_URL, socket_connect_timeout=2).ping())
    except redis.RedisError:
        return False


# On CI (CI=true, set by .ci/run) a missing Redis fails the tests instead of skipping them.
needs_redis = pytest.mark.skipif(not redis_available() and os.environ.get("CI", "").lower() != "true",
                                 reason=f"!!! Redis is not running at {REDIS_URL} !!!")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisProxy:
    """A TCP forwarder to Redis on a port of its own; :meth:`stop` is a Redis outage.

    It runs its own event loop in a thread, so both asyncio tests and apps behind
    Starlette's TestClient (another thread, another loop) can use it.
    """

    def __init__(self, target: tuple[str, int] = ("127.0.0.1", 6379)) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._target = target
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    def _run(self, coro: Awaitable[None]) -> None:
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)  # type: ignore[arg-type]

    def start(self) -> None:
        """Listen (again) on :attr:`port`."""
        self._run(self._start())

    def stop(self) -> None:
        """Close the port and cut every forwarded connection."""
        self._run(self._stop())

    def close(self) -> None:
        """Stop and end the thread."""
        self.stop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._forward, "127.0.0.1", self.port, reuse_address=True)

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _forward(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection(*self._target)
        except OSError:
            client_writer.transport.abort()
            return
        self._writers |= {client_writer, server_writer}

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            except (OSError, asyncio.IncompleteReadError):
                pass
            finally:
                writer.transport.abort()

        await asyncio.gather(pipe(client_reader, server_writer), pipe(server_reader, client_writer))
        self._writers -= {client_writer, server_writer}


@pytest.fixture()
def proxy() -> Iterator[RedisProxy]:
    forwarder = RedisProxy()
    forwarder.start()
    yield forwarder
    forwarder.close()


@pytest.fixture()
def channel(monkeypatch: pytest.MonkeyPatch) -> str:
    """A channel of this test alone (no cross-talk with other runs or the servers of other tests)."""
    name = f"bot:test:{uuid.uuid4().hex}"
    monkeypatch.setattr(RedisRelay, "CHANNEL", name)
    return name


def configured_key() -> bytes:
    """The event-relay key every server derives from the secret file (the spec, computed here)."""
    secret = load_secret_key(get_settings().secret_key_file)
    return derive_key(secret, "event-relay").encode("utf-8")


def signed(channel: str, event: dict[str, Any], key: bytes | None = None, sent: float | None = None,
           nonce: str | None = None, origin: str = "another-server") -> bytes:
    """A relay message as another bot server sends it: ``v1.<HMAC-SHA256 hex>.<JSON body>``."""
    body = json.dumps({"origin": origin, "ts": time.time() if sent is None else sent,
                       "nonce": nonce or secrets.token_hex(16), "event": event},
                      ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    mac = hmac.new(key or configured_key(), channel.encode() + b"\nv1." + body, hashlib.sha256).hexdigest()
    return b"v1." + mac.encode("ascii") + b"." + body


async def publish_raw(channel: str, data: bytes | str) -> None:
    """What anyone with access to Redis can do: write straight to the relay's channel."""
    import redis.asyncio as redis

    client = redis.from_url(REDIS_URL)
    try:
        await client.publish(channel, data)
    finally:
        await client.close()


async def items(queue: asyncio.Queue[dict[str, Any]], seconds: float) -> list[dict[str, Any]]:
    """Everything ``queue`` receives within ``seconds``."""
    seen: list[dict[str, Any]] = []
    deadline = asyncio.get_running_loop().time() + seconds
    while (left := deadline - asyncio.get_running_loop().time()) > 0:
        try:
            seen.append(await asyncio.wait_for(queue.get(), left))
        except asyncio.TimeoutError:
            break
    return seen


async def first(queue: asyncio.Queue[dict[str, Any]], predicate: Callable[[dict[str, Any]], bool],
                seconds: float) -> dict[str, Any]:
    """The first item of ``queue`` that satisfies ``predicate`` (fails after ``seconds``)."""
    deadline = asyncio.get_running_loop().time() + seconds
    seen = []
    while (left := deadline - asyncio.get_running_loop().time()) > 0:
        try:
            item = await asyncio.wait_for(queue.get(), left)
        except asyncio.TimeoutError:
            break
        if predicate(item):
            return item
        seen.append(item)
    raise AssertionError(f"not received within {seconds} s; got {seen}")


@contextlib.asynccontextmanager
async def two_servers() -> AsyncIterator[tuple[list[EventHub], list[RedisRelay]]]:
    """The hubs of two bot servers, each relaying through Redis (stopped afterwards)."""
    hubs = [EventHub(), EventHub()]
    relays = [RedisRelay(REDIS_URL, hub) for hub in hubs]
    try:
        for hub, relay in zip(hubs, relays):
            await relay.start()
            hub.use_relay(relay)
        yield hubs, relays
    finally:
        for relay in relays:
            await relay.stop()


def run(coro: Awaitable[None]) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


# ---- signing, without Redis ------------------------------------------------------------------------


def test_sealed_events_open_only_with_the_key_channel_and_within_the_age_once() -> None:
    from bot.server.redis_relay import EventSealer, RejectedEvent, event_relay_key

    now = [1_000_000.0]
    key = event_relay_key("s" * 48)
    sealer = EventSealer(key, "bot:events", max_age=30, clock=lambda: now[0])
    event = {"kind": "conversation", "conversation_id": "c-1", "item": FRAME}
    message = sealer.seal("server-a", event)
    assert sealer.open(message) == ("server-a", event)
    assert key == derive_key("s" * 48, "event-relay") != derive_key("s" * 48, "agent-session")

    def refused(data: bytes, receiver: EventSealer | None = None) -> str:
        with pytest.raises(RejectedEvent) as caught:
            (receiver or EventSealer(key, "bot:events", max_age=30, clock=lambda: now[0])).open(data)
        return str(caught.value)

    assert refused(message, sealer) == "replayed"  # the same message again
    assert refused(json.dumps(event).encode()) == "unsigned or badly signed"
    assert refused(message.replace("確認".encode(), "送金".encode())) == "unsigned or badly signed"
    assert refused(message, EventSealer(event_relay_key("t" * 48), "bot:events")) == "unsigned or badly signed"
    assert refused(message, EventSealer(key, "bot:other")) == "unsigned or badly signed"
    assert refused(message, EventSealer(key, "bot:events", clock=lambda: now[0] + 31)).startswith("stale")
    assert refused(message, EventSealer(key, "bot:events", clock=lambda: now[0] - 31)).startswith("stale")
    assert refused(b"v1." + b"0" * 64 + b".{}") == "unsigned or badly signed"
    assert refused(b"") == "unsigned or badly signed"
    now[0] += 100  # nonces are forgotten once their messages would be stale anyway
    assert sealer.open(sealer.seal("server-a", event)) == ("server-a", event)
    assert len(sealer._seen) == 1


def test_hub_delivers_its_own_events_at_once_and_resync_closes_every_subscriber() -> None:
    async def scenario() -> None:
        hub = EventHub()
        tab, other_tab, console = hub.subscribe_conversation("c-1"), hub.subscribe_conversation("c-2"), \
            hub.subscribe_agents()
        hub.publish_conversation("c-1", FRAME)
        hub.publish_ticket("created", {"id": 1})
        assert tab.get_nowait() == FRAME and other_tab.empty()
        assert console.get_nowait() == {"change": "created", "ticket": {"id": 1}}
        hub.publish_conversation("c-2", {"type": "typing", "on": True})
        hub.resync()
        assert [tab.get_nowait(), other_tab.get_nowait(), console.get_nowait()] == [CLOSED] * 3
        assert tab.empty() and other_tab.empty()  # the backlog is replaced by the marker
        hub.publish_conversation("c-1", FRAME)
        assert tab.empty()  # dropped: the reader closes, the client reconnects with a new queue

    run(scenario())


def test_listeners_see_the_frames_published_here_and_never_relayed_ones(caplog: pytest.LogCaptureFixture) -> None:
    """EventHub.add_listener (the LINE channel sends these frames on): local frames only, once each."""
    async def scenario() -> None:
        hub = EventHub()
        seen: list[tuple[str, dict[str, Any]]] = []

        def broken(conversation_id: str, frame: dict[str, Any]) -> None:
            raise RuntimeError("the channel is down")

        hub.add_listener(broken)
        hub.add_listener(lambda conversation_id, frame: seen.append((conversation_id, frame)))
        tab = hub.subscribe_conversation("c-1")
        hub.publish_conversation("c-1", FRAME)
        hub.publish_ticket("created", {"id": 1})  # ticket events are the consoles' only
        relayed = {"type": "typing", "on": True}
        hub.deliver({"kind": "conversation", "conversation_id": "c-1", "item": relayed})  # from another server
        assert seen == [("c-1", FRAME)]
        assert [tab.get_nowait(), tab.get_nowait()] == [FRAME, relayed]  # a failing listener stops nothing

    run(scenario())
    assert any("listener failed" in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)


def test_the_backend_is_chosen_by_url() -> None:
    """One interface for one server (memory://, the default) and several (redis://), as broadcaster does."""
    from bot.server.events import MemoryBackend, backend_for_url

    hub = EventHub()
    assert isinstance(backend_for_url("", hub, "k" * 64), MemoryBackend)
    assert isinstance(backend_for_url("memory://", hub, "k" * 64), MemoryBackend)
    assert isinstance(backend_for_url(REDIS_URL, hub, "k" * 64), RedisRelay)
    with pytest.raises(ValueError, match="BOT_EVENTS_URL"):
        backend_for_url("kafka://127.0.0.1:9092", hub, "k" * 64)


def test_subscribe_is_a_context_manager_that_always_unsubscribes() -> None:
    async def scenario() -> None:
        hub = EventHub()
        await hub.connect("memory://", key="k" * 64)
        async with hub.subscribe(conversation_channel("c-1")) as tab, hub.subscribe(AGENTS) as console:
            hub.publish_conversation("c-1", FRAME)
            hub.publish_ticket("created", {"id": 1})
            assert await tab.get() == FRAME
            assert await console.get() == {"change": "created", "ticket": {"id": 1}}
        with pytest.raises(RuntimeError):
            async with hub.subscribe(conversation_channel("c-1")):
                raise RuntimeError("the socket broke")
        assert hub.subscriber_count() == 0  # nothing left behind, whatever ended the block
        hub.publish_conversation("c-1", FRAME)  # nobody listens: nothing to deliver, no error
        await hub.disconnect()

    run(scenario())


def test_a_subscriber_too_far_behind_reads_the_resync_marker_within_its_bound() -> None:
    async def scenario() -> None:
        hub = EventHub(backlog=3)
        async with hub.subscribe(AGENTS) as console:
            for number in range(10):
                hub.publish_ticket("message", {"id": number})
            assert console.qsize() == 1 and await console.get() == CLOSED

    run(scenario())


# ---- over Redis ------------------------------------------------------------------------------------


@needs_redis
def test_unsigned_or_forged_events_on_the_channel_are_not_delivered(channel: str,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        hub = EventHub()
        relay = RedisRelay(REDIS_URL, hub)
        await relay.start()
        hub.use_relay(relay)
        tab, console = hub.subscribe_conversation("c-victim"), hub.subscribe_agents()
        try:
            forged = {"kind": "conversation", "conversation_id": "c-victim",
                      "item": {"type": "message", "message": {"sender": "agent", "text": "偽の振込先 PAYLOAD-XYZ"}}}
            await publish_raw(channel, json.dumps(forged, ensure_ascii=False))  # the old, unsigned format
            await publish_raw(channel, signed(channel, forged, key=b"guessed-key"))
            await publish_raw(channel, signed(channel, forged, sent=time.time() - 3600))  # an old capture
            await publish_raw(channel, b"\xff\xfe not even UTF-8 PAYLOAD-XYZ")
            await publish_raw(channel, signed(channel, {"kind": "ticket", "item": {"change": "created",
                                                                                   "ticket": {"id": 666}}},
                                              key=b"guessed-key"))
            assert await items(tab, 1.0) == [] and console.empty()
            # The relay still works after them.
            await publish_raw(channel, signed(channel, {"kind": "conversation", "conversation_id": "c-victim",
                                                        "item": FRAME}))
            assert await first(tab, lambda item: True, 5) == FRAME
        finally:
            await relay.stop()

    caplog.set_level(logging.WARNING, logger="bot.server.events")
    run(scenario())
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("unsigned or badly signed" in w for w in warnings), warnings
    assert not any("PAYLOAD-XYZ" in w or "偽の振込先" in w for w in warnings)  # never the payload


@needs_redis
def test_a_signed_event_from_another_server_is_delivered_once(channel: str) -> None:
    async def scenario() -> None:
        hub = EventHub()
        relay = RedisRelay(REDIS_URL, hub)
        await relay.start()
        hub.use_relay(relay)
        tab, console = hub.subscribe_conversation("c-1"), hub.subscribe_agents()
        try:
            message = signed(channel, {"kind": "conversation", "conversation_id": "c-1", "item": FRAME})
            await publish_raw(channel, message)
            assert await first(tab, lambda item: True, 5) == FRAME
            await publish_raw(channel, message)  # replayed by someone who captured it
            ticket = {"kind": "ticket", "item": {"change": "claimed", "ticket": {"id": 7}}}
            await publish_raw(channel, signed(channel, ticket))
            assert await first(console, lambda item: True, 5) == ticket["item"]
            assert tab.empty()
        finally:
            await relay.stop()

    run(scenario())


@needs_redis
def test_two_relays_carry_events_both_ways_each_delivered_once(channel: str) -> None:
    async def scenario() -> None:
        async with two_servers() as (hubs, _):
            tabs = [hub.subscribe_conversation("c-1") for hub in hubs]
            hubs[0].publish_conversation("c-1", {"type": "typing", "on": True})
            hubs[1].publish_conversation("c-1", FRAME)
            for tab in tabs:
                assert sorted(map(json.dumps, await items(tab, 1.0))) == \
                    sorted(map(json.dumps, [{"type": "typing", "on": True}, FRAME]))

    run(scenario())


@needs_redis
def test_each_server_listener_sees_its_own_frames_only(channel: str) -> None:
    """Two servers on Redis: a frame reaches the listeners of the server that published it, not the other's."""
    async def scenario() -> None:
        hubs = [EventHub(), EventHub()]
        relays = [RedisRelay(REDIS_URL, hub) for hub in hubs]
        seen: list[list[dict[str, Any]]] = [[], []]
        for hub, relay, frames in zip(hubs, relays, seen):
            await relay.start()
            hub.use_relay(relay)
            hub.add_listener(lambda conversation_id, frame, frames=frames: frames.append(frame))
        tabs = [hub.subscribe_conversation("c-1") for hub in hubs]
        try:
            hubs[0].publish_conversation("c-1", {"type": "typing", "on": True})
            hubs[1].publish_conversation("c-1", FRAME)
            for tab in tabs:  # both frames reached both servers' tabs
                assert len(await items(tab, 1.0)) == 2
            assert seen == [[{"type": "typing", "on": True}], [FRAME]]
        finally:
            for relay in relays:
                await relay.stop()

    run(scenario())


@needs_redis
def test_a_burst_of_events_reaches_the_other_server_in_order_in_a_few_round_trips(channel: str) -> None:
    """Issue #12: published one at a time, the relay fell hundreds of events behind under load."""
    async def scenario() -> None:
        async with two_servers() as (hubs, relays):
            pool = relays[0]._redis.connection_pool
            take = pool.get_connection
            round_trips = []

            async def counted(*args: Any, **kwargs: Any) -> Any:
                round_trips.append(args[0] if args else "")
                return await take(*args, **kwargs)

            pool.get_connection = counted  # type: ignore[method-assign]
            far = hubs[1].subscribe_conversation("c-1")
            frames = [{"type": "typing", "on": bool(i % 2), "n": i} for i in range(500)]
            for frame in frames:
                hubs[0].publish_conversation("c-1", frame)
            assert await items(far, 2.0) == frames
            assert len(round_trips) <= 10, len(round_trips)

    run(scenario())


@needs_redis
def test_a_servers_own_events_coming_back_are_dropped_without_being_checked_again(channel: str) -> None:
    async def scenario() -> None:
        from bot.server.redis_relay import EventSealer

        hub = EventHub()
        relay = RedisRelay(REDIS_URL, hub)
        opened = []
        sealer_open = EventSealer.open
        relay._sealer.open = lambda data: opened.append(data) or sealer_open(relay._sealer, data)  # type: ignore
        await relay.start()
        hub.use_relay(relay)
        tab = hub.subscribe_conversation("c-1")
        try:
            hub.publish_conversation("c-1", FRAME)
            forged = {"kind": "conversation", "conversation_id": "c-1", "item": {"type": "typing", "on": True}}
            await publish_raw(channel, signed(channel, forged, key=b"wrong", origin=relay._origin))
            await publish_raw(channel, signed(channel, forged, origin="another-server"))
            assert await items(tab, 1.0) == [FRAME, forged["item"]]  # each once, the forged one never
            assert len(opened) == 1  # only the other server's message was checked
        finally:
            await relay.stop()

    run(scenario())


def test_a_relay_without_redis_starts_at_once_and_delivers_locally(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        hub = EventHub()
        relay = RedisRelay(f"redis://127.0.0.1:{free_port()}/0", hub)  # nothing listens there
        started = time.monotonic()
        await relay.start()
        assert time.monotonic() - started < 5
        hub.use_relay(relay)
        tab, console = hub.subscribe_conversation("c-1"), hub.subscribe_agents()
        try:
            hub.publish_conversation("c-1", FRAME)
            hub.publish_ticket("created", {"id": 1})
            assert await first(tab, lambda item: True, 2) == FRAME
            assert await first(console, lambda item: True, 2) == {"change": "created", "ticket": {"id": 1}}
            assert not relay.connected
        finally:
            await relay.stop()

    caplog.set_level(logging.WARNING, logger="bot.server.events")
    run(scenario())
    assert any("Redis unreachable" in r.getMessage() for r in caplog.records)


@needs_redis
def test_redis_outage_local_delivery_then_every_server_resyncs(channel: str, proxy: RedisProxy) -> None:
    async def scenario() -> None:
        hub_a, hub_b = EventHub(), EventHub()
        relay_a, relay_b = RedisRelay(proxy.url, hub_a), RedisRelay(REDIS_URL, hub_b)  # A reaches Redis via the proxy
        for hub, relay in ((hub_a, relay_a), (hub_b, relay_b)):
            await relay.start()
            hub.use_relay(relay)
        tab_a, tab_b, console_b = hub_a.subscribe_conversation("c-1"), hub_b.subscribe_conversation("c-1"), \
            hub_b.subscribe_agents()
        try:
            hub_a.publish_conversation("c-1", {"n": 1})
            assert await first(tab_a, lambda item: True, 2) == {"n": 1}
            assert await first(tab_b, lambda item: True, 5) == {"n": 1}

            await asyncio.to_thread(proxy.stop)  # Redis is gone, for A
            hub_a.publish_conversation("c-1", {"n": 2})
            assert await first(tab_a, lambda item: True, 2) == {"n": 2}  # A's own subscribers still get it
            hub_a.publish_ticket("created", {"id": 2})
            await asyncio.sleep(1.5)
            assert not relay_a.connected
            hub_a.publish_conversation("c-1", {"n": 3})
            assert await first(tab_a, lambda item: True, 2) == {"n": 3}

            await asyncio.to_thread(proxy.start)  # back
            assert await first(tab_a, lambda item: True, 10) is CLOSED  # resync marker on A ...
            assert await first(tab_b, lambda item: item is CLOSED, 10) is CLOSED  # ... and on B, which missed n=2, 3
            assert await first(console_b, lambda item: item is CLOSED, 10) is CLOSED
            assert relay_a.connected

            # Reconnected subscribers get events both ways again.
            tab_a, tab_b = hub_a.subscribe_conversation("c-1"), hub_b.subscribe_conversation("c-1")
            hub_b.publish_conversation("c-1", {"n": 4})
            hub_a.publish_conversation("c-1", {"n": 5})
            assert sorted(item["n"] for item in await items(tab_a, 1.5)) == [4, 5]
            assert sorted(item["n"] for item in await items(tab_b, 0.5)) == [4, 5]
        finally:
            await relay_a.stop()
            await relay_b.stop()

    run(scenario())
