"""A bot server with timing spans around each step of a customer's turn (issue #12's profile).

``python -m benchmarks.gateway_spans --port P`` runs ``bot serve`` with the settings of the
environment, after wrapping (in this process only) the steps a customer message takes:

- every database step of the gateway (``GatewayBase._db``), split into the wait for a worker
  thread, the step itself in the thread, and the wait to get back onto the event loop;
- the Rasa call (``RasaClient.send``), the frame handler, the whole ``customer_message``, and
  the time from a customer frame to the first bot message published for it;
- publishing a frame to the hub (delivery, Redis signing), checking relayed events, sending a
  frame on a socket;
- the event loop's lag (how late a 5 ms sleep wakes up).

``SIGUSR1`` resets the figures, ``SIGUSR2`` writes them as JSON to ``$BOT_SPANS_FILE``
(:func:`Spans.summary`). benchmarks/gateway_profile.py drives it.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import signal
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Awaitable, Callable, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

T = TypeVar("T")
LAG_PROBE_SECONDS = 0.005


class Spans:
    """Durations by name, and the process's CPU time since the last reset (thread-safe)."""

    def __init__(self) -> None:
        """Start empty."""
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Forget every duration; CPU and wall time count from now."""
        with self._lock:
            self._values: dict[str, list[float]] = defaultdict(list)
            self._cpu = time.process_time()
            self._wall = time.monotonic()

    def add(self, name: str, seconds: float) -> None:
        """Record one duration of ``name``."""
        with self._lock:
            self._values[name].append(seconds)

    def summary(self) -> dict[str, Any]:
        """Per name: count, total seconds, mean / p50 / p95 in ms; the process CPU and wall seconds."""
        with self._lock:
            values = {name: sorted(items) for name, items in self._values.items()}
            cpu, wall = time.process_time() - self._cpu, time.monotonic() - self._wall

        def rank(items: list[float], share: float) -> float:
            return round(items[min(len(items) - 1, int(share * len(items)))] * 1000, 2)

        spans = {name: {"count": len(items), "total_s": round(sum(items), 3),
                        "mean_ms": round(sum(items) / len(items) * 1000, 2),
                        "p50_ms": rank(items, 0.5), "p95_ms": rank(items, 0.95)}
                 for name, items in sorted(values.items()) if items}
        return {"process_cpu_s": round(cpu, 2), "wall_s": round(wall, 2), "spans": spans}


SPANS = Spans()
# The Redis relays of this process: how many events wait to be published is part of the figures.
RELAYS: list[Any] = []
# Conversation id -> when its latest customer frame arrived (for "to first bot message").
_TURN_STARTED: dict[str, float] = {}


def timed_async(name: str, func: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    """``func`` (a coroutine function) recording its duration as ``name``."""
    @functools.wraps(func)
    async def wrapper(*args: Any, **kwargs: Any) -> T:
        started = time.perf_counter()
        try:
            return await func(*args, **kwargs)
        finally:
            SPANS.add(name, time.perf_counter() - started)
    return wrapper


def timed_sync(name: str, func: Callable[..., T]) -> Callable[..., T]:
    """``func`` recording its duration as ``name``."""
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        started = time.perf_counter()
        try:
            return func(*args, **kwargs)
        finally:
            SPANS.add(name, time.perf_counter() - started)
    return wrapper


async def timed_db(func: Callable[..., T], *args: Any) -> T:
    """``GatewayBase._db`` split in three: wait for a thread, the step, back on the loop."""
    from starlette.concurrency import run_in_threadpool

    name = getattr(func, "__qualname__", repr(func))
    called = time.perf_counter()
    marks: list[float] = []

    def in_thread() -> T:
        marks.append(time.perf_counter())
        try:
            return func(*args)
        finally:
            marks.append(time.perf_counter())

    try:
        return await run_in_threadpool(in_thread)
    finally:
        back = time.perf_counter()
        if len(marks) == 2:
            SPANS.add("db wait for a thread", marks[0] - called)
            SPANS.add(f"db {name}", marks[1] - marks[0])
            SPANS.add("db back on the loop", back - marks[1])
        SPANS.add("db steps (all, on the turn's path)", back - called)


def traced_client(self: Any) -> Any:
    """``RasaClient._client`` recording how long getting a connection to Rasa took (new or from the pool)."""
    import aiohttp

    from bot.server.rasa_client import RASA_TIMEOUT_SECONDS

    if self._session is None or self._session.closed:
        trace = aiohttp.TraceConfig()

        async def start(session: Any, context: Any, params: Any) -> None:
            context.started = time.perf_counter()

        def recorder(name: str) -> Callable[..., Awaitable[None]]:
            async def end(session: Any, context: Any, params: Any) -> None:
                SPANS.add(name, time.perf_counter() - context.started)
            return end

        trace.on_connection_create_start.append(start)
        trace.on_connection_create_end.append(recorder("rasa: new connection"))
        trace.on_connection_queued_start.append(start)
        trace.on_connection_queued_end.append(recorder("rasa: waiting for a free connection"))
        trace.on_request_start.append(start)
        trace.on_request_headers_sent.append(recorder("rasa: request start to headers sent"))
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=RASA_TIMEOUT_SECONDS),
                                              trace_configs=[trace])
    return self._session


async def lag_probe() -> None:
    """Record how late the event loop wakes a task up that slept :data:`LAG_PROBE_SECONDS`."""
    while True:
        started = time.perf_counter()
        await asyncio.sleep(LAG_PROBE_SECONDS)
        SPANS.add("event loop lag", time.perf_counter() - started - LAG_PROBE_SECONDS)


def install() -> None:
    """Wrap the steps of a turn (module docstring) in this process."""
    from starlette.websockets import WebSocket

    from bot.server import chat_api
    from bot.server.events import EventHub
    from bot.server.gateway_base import GatewayBase
    from bot.server.gateway_customer import CustomerSide
    from bot.server.rasa_client import RasaClient
    from bot.server.redis_relay import EventSealer, RedisRelay

    GatewayBase._db = staticmethod(timed_db)  # type: ignore[method-assign]
    RasaClient._client = traced_client  # type: ignore[method-assign]
    RasaClient.send = timed_async("rasa send (HTTP)", RasaClient.send)  # type: ignore[method-assign]
    CustomerSide.customer_message = timed_async(  # type: ignore[method-assign]
        "customer_message (whole)", CustomerSide.customer_message)
    WebSocket.send_json = timed_async("socket send_json", WebSocket.send_json)  # type: ignore[method-assign]
    EventSealer.seal = timed_sync("relay seal (sign + JSON)", EventSealer.seal)  # type: ignore[method-assign]
    relay_init = RedisRelay.__init__

    def remember_relay(self: RedisRelay, *args: Any, **kwargs: Any) -> None:
        relay_init(self, *args, **kwargs)
        RELAYS.append(self)

    RedisRelay.__init__ = remember_relay  # type: ignore[method-assign]
    RedisRelay._receive = timed_sync("relay receive (check + deliver)",  # type: ignore[method-assign]
                                     RedisRelay._receive)

    handle_frame = chat_api._handle_frame

    async def frame(gateway: Any, conversation_id: str, raw: str) -> Any:
        _TURN_STARTED[conversation_id] = time.perf_counter()
        return await handle_frame(gateway, conversation_id, raw)

    chat_api._handle_frame = timed_async("frame handler (whole)", frame)  # type: ignore[assignment]
    publish = EventHub.publish_conversation

    def publish_conversation(self: EventHub, conversation_id: str, item: dict[str, Any]) -> None:
        started = time.perf_counter()
        publish(self, conversation_id, item)
        SPANS.add("hub publish (deliver + queue for Redis)", time.perf_counter() - started)
        message = item.get("message") if item.get("type") == "message" else None
        if isinstance(message, dict) and message.get("sender") == "bot" and conversation_id in _TURN_STARTED:
            SPANS.add("turn: customer frame -> first bot message published",
                      started - _TURN_STARTED.pop(conversation_id))

    EventHub.publish_conversation = publish_conversation  # type: ignore[method-assign]
    connect = EventHub.connect

    async def connect_and_probe(self: EventHub, *args: Any, **kwargs: Any) -> None:
        await connect(self, *args, **kwargs)
        self._lag_probe = asyncio.get_running_loop().create_task(lag_probe())  # type: ignore[attr-defined]

    EventHub.connect = connect_and_probe  # type: ignore[method-assign]


def _dump(*_: Any) -> None:
    figures = {**SPANS.summary(), "relay_backlog": sum(relay._outgoing.qsize() for relay in RELAYS)}
    Path(os.environ["BOT_SPANS_FILE"]).write_text(json.dumps(figures, indent=1), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """Install the spans and run ``bot serve --port``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    install()
    signal.signal(signal.SIGUSR1, lambda *_: SPANS.reset())
    signal.signal(signal.SIGUSR2, _dump)
    from bot.cli import main as bot_main

    return bot_main(["serve", "--port", str(args.port)])


if __name__ == "__main__":
    sys.exit(main())
