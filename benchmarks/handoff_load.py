"""Handoff under load: N angry customers at once; every ticket must reach the console exactly once.

Usage::

    .venv/bin/python -m benchmarks.handoff_load [--conversations 200] [--database sqlite|postgresql] [--fault]

What one run does:

1. A temporary knowledge folder (a copy of ``knowledge/`` with staff on duty around the
   clock), a fresh database (a SQLite file, or a new PostgreSQL database on
   127.0.0.1:5432 that is dropped afterwards), an agent ``bench``, and the whole stack
   (Rasa server, action server, bot server: :class:`bot.launcher.BotStack`).
2. The agent logs in and follows ``GET /api/events`` (SSE); the arrival of each
   ``created`` event is recorded by conversation id.
3. N customers open a conversation and a WebSocket each; their angry messages are sent
   spread over ``--ramp`` seconds (default 10 s; 2 s for the bot server kill, so that a
   queue of messages is in flight when it dies; 0: all at once). The path measured is
   widget → gateway → Rasa → ``action_handoff`` → ticket in the database → the bot
   server's TicketWatcher → SSE ``created`` on the console.
4. When every conversation is on the console (or after ``--timeout`` s) the database
   is checked: exactly one ticket per conversation, each transcript holding the
   customer's message; every customer must have been told it waits for a person
   (``state`` frame, mode ``waiting``).

``--fault`` runs, instead, the same load twice with the queue path broken mid-run (one
fresh stack and database each; ``--fault-mode`` picks one):

- ``server``: the bot server is killed (SIGKILL) once half of the customers have sent,
  then started again. Customers whose socket died reconnect with the same token and,
  unless the handoff reply already reached them, resend the same ``client_id``. The
  agent's SSE stream reconnects and, like the console, reloads the ticket list (a ticket
  seen only there counts as on the console but is reported: it got no ``created``).
- ``database`` (always on PostgreSQL): the action server and the bot server reach the
  database through a TCP proxy inside this process; the proxy is shut (listener and every
  connection) once half of the customers have sent and reopened on the same port
  ``--outage`` seconds later. Handoffs meanwhile wait in the action server's outbox, whose
  retry thread files them when the database is back; the bot server answers 503 and closes
  customers' sockets with an ``unavailable`` error (1013), and the customers reconnect and
  resend like the widget. Rasa's tracker store (same database) keeps its direct connection.
  ``--cut actions`` cuts only the action server's connection (the bot server's stays).

``--all`` runs the four scenarios of the README's table in one go, one fresh stack and
database each: SQLite, PostgreSQL, the bot server kill on SQLite and the database cut on
PostgreSQL (``make bench-handoff``).

Results: a table on stdout, headed by the commit, the model file's SHA-256 and the model
inputs hash (:func:`benchmarks.nlu_pipelines.inputs_hash`), and
``results/bench/handoff_load.json`` (one entry per scenario, merged with earlier runs). Exit code 1 when a ticket is missing or
duplicated, a conversation never reached the console or a customer never saw
``waiting``; 2 when the stack could not start.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable

os.environ.setdefault("SQLALCHEMY_SILENCE_UBER_WARNING", "1")

import httpx  # noqa: E402
import websockets  # noqa: E402

from benchmarks.provenance import run_provenance  # noqa: E402
from bot.launcher import BotStack, StartupError, free_port  # noqa: E402
from bot.settings import PROJECT_ROOT  # noqa: E402

OUT = PROJECT_ROOT / "results" / "bench"
RESULT_FILE = OUT / "handoff_load.json"
MODEL = PROJECT_ROOT / "models" / "current.tar.gz"
PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"
AGENT = ("bench", "ベンチ", "bench-password-123")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ALWAYS_STAFFED = (
    "# handoff_load benchmark: staff on duty around the clock\n"
    "weekly:\n" + "".join(f'  {day}: "00:00-24:00"\n' for day in DAYS)
    + "closed_on_national_holidays: false\nclosed_dates: []\n"
)
ANGRY = [
    "何度も問い合わせてるのに返事がない、ふざけるな",
    "責任者を出せ！",
    "二度と使わない、最悪",
    "金返せ！こんなの詐欺だろ",
    "上司を出してください。もう我慢できません",
    "いい加減にしろ、消費者センターに訴えるぞ",
    "ぼったくりじゃないか、ふざけんな",
    "クソみたいな対応だな、責任者を呼べ",
    "返金しろ。二度と使わないからな",
    "何回同じ説明をさせるんだ、ふざけてるのか",
    "住所変更したのに反映されてない、ふざけるな",
    "カードを止めたのにまた請求が来た、最悪だ、責任者を出せ",
]
SETUP_CONCURRENCY = 20
DEFAULT_RAMP = 10.0  # ~20 messages/s for 200 customers
SERVER_FAULT_RAMP = 2.0  # faster than the stack answers: a queue of messages in flight at the kill
GRACE_SECONDS = 2.0  # keep listening after the last event, to catch late duplicates
# --cut: whose database connections go through the proxy that the outage shuts (launcher names)
CUTS = {"actions+server": ("actions", "server"), "actions": ("actions",)}


def _now() -> float:
    return time.monotonic()


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


# ---- set-up: knowledge, database, stack --------------------------------------------------


def prepare_knowledge(work: Path) -> Path:
    """A copy of knowledge/ whose hours.yml keeps staff on duty at any time."""
    target = work / "knowledge"
    shutil.copytree(PROJECT_ROOT / "knowledge", target)
    (target / "hours.yml").write_text(ALWAYS_STAFFED, encoding="utf-8")
    return target


class Database:
    """A throw-away queue database: a SQLite file in ``work`` or a new PostgreSQL database."""

    def __init__(self, kind: str, work: Path) -> None:
        """Nothing is created before :meth:`create`."""
        self.kind = kind
        self._work = work
        self.name = f"bench_handoff_{os.getpid()}_{secrets.token_hex(4)}"
        self.url = ""
        self._created = False

    def _admin(self) -> Any:
        import psycopg2

        conn = psycopg2.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres")
        conn.autocommit = True
        return conn

    def create(self) -> str:
        """Create it; the SQLAlchemy URL."""
        if self.kind == "sqlite":
            self.url = f"sqlite:///{self._work / 'handoff.db'}"
        else:
            conn = self._admin()
            try:
                with conn.cursor() as cur:
                    cur.execute(f'CREATE DATABASE "{self.name}"')
            finally:
                conn.close()
            self._created = True
            self.url = self.url_on_port(PG_PORT)
        return self.url

    def url_on_port(self, port: int) -> str:
        """The PostgreSQL URL through another port (the outage proxy)."""
        return f"postgresql://{PG_USER}@{PG_HOST}:{port}/{self.name}"

    def drop(self) -> None:
        """Drop the PostgreSQL database (connections still open are ended)."""
        if not self._created:
            return
        conn = self._admin()
        try:
            with conn.cursor() as cur:
                cur.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        finally:
            conn.close()
        self._created = False


@dataclass
class BenchStack(BotStack):
    """BotStack whose processes may get their own environment (the proxied DATABASE_URL).

    ``process_env`` is keyed by the launcher's process name (``actions``, ``server``); Rasa's
    endpoints (its tracker store) are written from the shared ``env`` and stay direct.
    """

    process_env: dict[str, dict[str, str]] = field(default_factory=dict)
    named: dict[str, Any] = field(default_factory=dict, init=False)  # the latest process of each name

    def _spawn(self, args: list[str], name: str, module: str = "rasa") -> tuple[Any, Path]:
        extra = self.process_env.get(name)
        shared = self.env
        self.env = {**shared, **(extra or {})}
        try:
            proc, log = super()._spawn(args, name, module)
        finally:
            self.env = shared
        self.named[name] = proc
        return proc, log

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time (user + system) each running process of the stack has used so far."""
        return {name: cpu_seconds(proc.pid) for name, proc in self.named.items() if proc.poll() is None}


def machine_cpu_seconds() -> float:
    """Busy CPU time of the whole machine so far (all cores, from /proc/stat); 0.0 where unreadable."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, all threads) process ``pid`` has used; 0.0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class TcpProxy:
    """127.0.0.1:<port> → PostgreSQL, on its own thread; :meth:`stop` is a database outage."""

    def __init__(self, target_port: int) -> None:
        """Pick a free port; nothing listens before :meth:`start`."""
        self.port = free_port()
        self.target_port = target_port
        self.connections = 0
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="db-proxy", daemon=True)
        self._thread.start()

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=30)

    def start(self) -> None:
        """Listen (again) on :attr:`port`."""
        self._call(self._start())

    def stop(self) -> None:
        """Close the listener and cut every connection."""
        self._call(self._stop())

    def close(self) -> None:
        """Stop and end the thread."""
        self.stop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    async def _start(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True)

    async def _stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        try:
            await asyncio.wait_for(server.wait_closed(), 2)
        except asyncio.TimeoutError:
            pass

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            self._writers.discard(writer)
            return
        if self._server is None or writer not in self._writers:  # stopped while connecting
            up_writer.transport.abort()
            writer.transport.abort()
            return
        self._writers.add(up_writer)
        self.connections += 1
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        self._writers.discard(writer)
        self._writers.discard(up_writer)

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()


# ---- the load ---------------------------------------------------------------------------


@dataclass
class Customer:
    """One customer's conversation and what they saw."""

    index: int
    text: str
    client_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    conversation_id: str = ""
    token: str = ""
    send_at: float = 0.0
    sent_at: float | None = None
    resends: int = 0
    reconnects: int = 0
    echo: bool = False
    reply_at: float | None = None
    reply_via_history: bool = False
    waiting_at: float | None = None  # live `state` frame with mode "waiting"
    waiting_via_history: bool = False  # only the history frame after a reconnect said so
    system_texts: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def handed_off(self) -> bool:
        """The customer knows a person takes over (reply or waiting state seen)."""
        return self.reply_at is not None or self.reply_via_history or self.waiting_seen

    @property
    def waiting_seen(self) -> bool:
        """A `state` frame (or, after a reconnect, the history's state) said ``waiting``."""
        return self.waiting_at is not None or self.waiting_via_history

    def absorb_history(self, frame: dict[str, Any]) -> None:
        """What the history frame after a (re)connect tells about this customer's message."""
        messages = frame.get("messages") or []
        mine = [m for m in messages if m.get("client_id") == self.client_id]
        if mine:
            self.echo = True
            if any(m.get("sender") == "bot" and m.get("id", 0) > mine[0].get("id", 0) for m in messages):
                self.reply_via_history = True
        if (frame.get("state") or {}).get("mode") == "waiting" and self.waiting_at is None:
            self.waiting_via_history = True

    def absorb(self, frame: dict[str, Any], at: float) -> None:
        """A live frame from the server."""
        kind = frame.get("type")
        if kind == "message":
            message = frame.get("message") or {}
            sender = message.get("sender")
            if sender == "customer" and message.get("client_id") == self.client_id:
                self.echo = True
            elif sender == "bot" and self.reply_at is None:
                self.reply_at = at
            elif sender == "system":
                self.system_texts.append(str(message.get("text")))
        elif kind == "state":
            if (frame.get("state") or {}).get("mode") == "waiting" and self.waiting_at is None:
                self.waiting_at = at
        elif kind == "error":
            self.errors.append(str(frame.get("message")))


class Load:
    """N customers and one agent against a running stack."""

    def __init__(self, stack: BotStack, n: int, ramp: float, timeout: float, seed: int = 7) -> None:
        """Prepare ``n`` customers (texts shuffled with ``seed``)."""
        rng = random.Random(seed)
        self.stack = stack
        self.base = stack.server_url
        self.ws_base = self.base.replace("http://", "ws://")
        self.ramp = ramp
        self.timeout = timeout
        self.customers = [Customer(i, rng.choice(ANGRY)) for i in range(n)]
        self.created: dict[str, list[float]] = defaultdict(list)
        self.created_ids: dict[str, list[int]] = defaultdict(list)
        self.listed: dict[str, float] = {}
        self.sse_connects = 0
        self.sse_ready = asyncio.Event()
        self.go = asyncio.Event()
        self.half_sent = asyncio.Event()
        self.fault_done = asyncio.Event()
        self.fault_done.set()
        self.connected = 0
        self.all_connected = asyncio.Event()
        self.sent = 0
        self.first_send: float | None = None
        self.fault_info: dict[str, Any] = {}
        self._setup = asyncio.Semaphore(SETUP_CONCURRENCY)
        self._cpu_at_go: dict[str, float] = {}

    # -- agent side --

    async def login(self, client: httpx.AsyncClient) -> str:
        """Log the agent in on ``client``; the CSRF token its POSTs need."""
        response = await client.post("/api/agent/login", json={"username": AGENT[0], "password": AGENT[2]})
        response.raise_for_status()
        return str(response.json().get("csrf_token", ""))

    async def agent_feed(self) -> None:
        """Follow /api/events; reconnect like the console (reloading the list after a gap)."""
        timeout = httpx.Timeout(10.0, read=None)
        async with httpx.AsyncClient(base_url=self.base, timeout=timeout, trust_env=False) as client:
            logged_in = False
            while True:
                try:
                    if not logged_in:
                        await self.login(client)
                        logged_in = True
                    async with client.stream("GET", "/api/events") as response:
                        if response.status_code == 401:
                            logged_in = False
                            continue
                        response.raise_for_status()
                        await self._read_events(client, response)
                except (httpx.HTTPError, OSError):
                    pass
                await asyncio.sleep(0.3)

    async def _read_events(self, client: httpx.AsyncClient, response: httpx.Response) -> None:
        event, data = "message", []
        async for line in response.aiter_lines():
            if line.startswith(":"):
                continue
            if line:
                name, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if name == "event":
                    event = value
                elif name == "data":
                    data.append(value)
                continue
            if event == "ready":
                self.sse_connects += 1
                if self.sse_connects > 1:  # missed events while down: reload the list like console.js
                    await self._refresh_list(client)
                self.sse_ready.set()
            elif event == "ticket" and data:
                payload = json.loads("\n".join(data))
                if payload.get("change") == "created":
                    ticket = payload.get("ticket") or {}
                    cid = str(ticket.get("conversation_id"))
                    self.created[cid].append(_now())
                    self.created_ids[cid].append(int(ticket.get("id") or 0))
            event, data = "message", []

    async def _refresh_list(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/api/tickets", params={"status": "open"})
        if response.status_code == 200:
            at = _now()
            for ticket in response.json().get("tickets", []):
                self.listed.setdefault(str(ticket.get("conversation_id")), at)

    # -- customer side --

    async def _open_session(self, client: httpx.AsyncClient, customer: Customer) -> None:
        async with self._setup:
            response = await client.post("/api/chat/sessions", json={"customer": {"name": f"客{customer.index}"}})
            response.raise_for_status()
            body = response.json()
            customer.conversation_id, customer.token = body["conversation_id"], body["token"]

    def _on_sent(self, customer: Customer) -> None:
        customer.sent_at = _now()
        self.first_send = self.first_send or customer.sent_at
        self.sent += 1
        if self.sent >= max(1, len(self.customers) // 2):
            self.half_sent.set()

    async def customer(self, customer: Customer) -> None:
        """Connect, wait for the start, send; reconnect and resend after a crash."""
        url = f"{self.ws_base}/ws/chat?token={customer.token}"
        first = True
        while True:
            try:
                if first:
                    async with self._setup:
                        ws = await websockets.connect(url, open_timeout=20, ping_interval=None, max_size=2**22)
                else:
                    ws = await websockets.connect(url, open_timeout=10, ping_interval=None, max_size=2**22)
                try:
                    history = json.loads(await asyncio.wait_for(ws.recv(), 20))
                    if history.get("type") == "error":  # the server's database is down: try again later
                        customer.absorb(history, _now())
                        await ws.close()
                        await asyncio.sleep(0.5 + random.random() * 0.5)
                        continue
                    customer.absorb_history(history)
                    if first:
                        first = False
                        self.connected += 1
                        if self.connected == len(self.customers):
                            self.all_connected.set()
                        await self.go.wait()
                        await asyncio.sleep(max(0.0, customer.send_at - _now()))
                    else:
                        customer.reconnects += 1
                    if not customer.handed_off:
                        await ws.send(json.dumps({"type": "message", "text": customer.text,
                                                  "client_id": customer.client_id}, ensure_ascii=False))
                        if customer.sent_at is None:
                            self._on_sent(customer)
                        else:
                            customer.resends += 1
                    async for raw in ws:
                        customer.absorb(json.loads(raw), _now())
                finally:
                    await ws.close()
            except asyncio.CancelledError:
                raise
            except (OSError, asyncio.TimeoutError, websockets.exceptions.WebSocketException):
                pass
            if first:  # could not even connect before the start: keep trying
                await asyncio.sleep(0.5)
                continue
            await asyncio.sleep(0.3 + random.random() * 0.4)

    # -- faults --

    async def _wait_healthy(self, proc: Any, limit: float = 90.0) -> None:
        deadline = _now() + limit
        async with httpx.AsyncClient(timeout=2, trust_env=False) as client:
            while _now() < deadline:
                if proc.poll() is not None:
                    raise StartupError("restarted bot server exited; see its log")
                try:
                    if (await client.get(f"{self.base}/healthz")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.2)
        raise StartupError("restarted bot server did not answer /healthz")

    async def kill_server(self, down: float) -> None:
        """SIGKILL the bot server after half the customers sent; start it again."""
        try:
            await self.half_sent.wait()
            sent_before = self.sent
            killed = _now()
            await asyncio.to_thread(self.stack.stop_server)
            log = self.stack.log_dir / "server.log"
            if log.exists():
                shutil.copy(log, self.stack.log_dir / "server-before-kill.log")
            await asyncio.sleep(down)
            self.fault_info.update(kind="bot server SIGKILL + restart", sent_before_kill=sent_before)
            proc, _ = await asyncio.to_thread(self.stack.start_server)
            await self._wait_healthy(proc)
            self.fault_info.update(down_s=round(_now() - killed, 2))
        except StartupError as exc:
            self.fault_info.update(error=str(exc), down_s=None)
        finally:
            self.fault_done.set()

    async def database_outage(self, proxy: TcpProxy, outage: float, outbox: Path, cut: tuple[str, ...]) -> None:
        """Shut the database proxy (the connections of ``cut``) after half the customers sent; reopen it."""
        try:
            await self.half_sent.wait()
            sent_before = self.sent
            began = _now()
            await asyncio.to_thread(proxy.stop)
            most = 0
            while _now() - began < outage:
                most = max(most, _outbox_lines(outbox))
                await asyncio.sleep(0.25)
            await asyncio.to_thread(proxy.start)
            restored = _now()
            # the retry thread drains within ~1 s; record how full the outbox got
            while _now() - restored < 5:
                most = max(most, _outbox_lines(outbox))
                await asyncio.sleep(0.25)
            self.fault_info.update(kind=f"database outage for {' + '.join(cut)} (proxy shut)", cut=list(cut),
                                   sent_before_outage=sent_before, outage_s=round(restored - began, 2),
                                   outbox_max_lines=most, outbox_lines_after=_outbox_lines(outbox))
        finally:
            self.fault_done.set()

    # -- the run --

    def _cpu(self) -> dict[str, float]:
        """CPU seconds used so far by the stack's processes, this benchmark's own process and the
        whole machine (``machine``: every process, ours and other people's)."""
        stack = self.stack.cpu_seconds() if isinstance(self.stack, BenchStack) else {}
        return {**stack, "benchmark": cpu_seconds(os.getpid()), "machine": machine_cpu_seconds()}

    def _arrived(self, customer: Customer) -> bool:
        cid = customer.conversation_id
        return bool(self.created.get(cid)) or cid in self.listed

    def _complete(self) -> bool:
        return all(c.sent_at is not None and self._arrived(c) and c.waiting_seen for c in self.customers)

    async def run(self, fault: Any = None) -> dict[str, Any]:
        """Run the load (``fault``: a coroutine started once the customers go)."""
        tasks: list[asyncio.Task] = []
        feed = asyncio.create_task(self.agent_feed())
        try:
            await asyncio.wait_for(self.sse_ready.wait(), 30)
            async with httpx.AsyncClient(base_url=self.base, timeout=30, trust_env=False) as client:
                await asyncio.gather(*(self._open_session(client, c) for c in self.customers))
            tasks = [asyncio.create_task(self.customer(c)) for c in self.customers]
            await asyncio.wait_for(self.all_connected.wait(), 120)
            go = _now()
            n = len(self.customers)
            for customer in self.customers:
                customer.send_at = go + (self.ramp * customer.index / n if n > 1 else 0.0)
            if fault is not None:
                self.fault_done.clear()
                tasks.append(asyncio.create_task(fault))
            self._cpu_at_go = self._cpu()
            self.go.set()
            fault_end: float | None = None
            while True:
                await asyncio.sleep(0.1)
                if not self.fault_done.is_set():
                    continue
                fault_end = fault_end or _now()
                if self._complete():
                    break
                last_send = max([go + self.ramp, fault_end] + [c.sent_at or 0.0 for c in self.customers])
                if _now() > last_send + self.timeout:
                    break
            finished = _now()
            cpu = {name: round(used - self._cpu_at_go.get(name, 0.0), 2) for name, used in self._cpu().items()}
            await asyncio.sleep(GRACE_SECONDS)
            return {**self._report(go, finished), "cpu_s": cpu}
        finally:
            for task in [*tasks, feed]:
                task.cancel()
            await asyncio.gather(*tasks, feed, return_exceptions=True)

    def _report(self, go: float, finished: float) -> dict[str, Any]:
        arrivals, latencies = [], []
        for c in self.customers:
            times = self.created.get(c.conversation_id) or ([self.listed[c.conversation_id]]
                                                           if c.conversation_id in self.listed else [])
            if times and c.sent_at is not None:
                arrivals.append(times[0])
                latencies.append((times[0] - c.sent_at) * 1000)
        replies = [(c.reply_at - c.sent_at) * 1000 for c in self.customers
                   if c.reply_at is not None and c.sent_at is not None]
        ours = {c.conversation_id for c in self.customers}
        first = self.first_send or go
        return {
            "console": {
                "created_events": sum(len(v) for k, v in self.created.items() if k in ours),
                "conversations_announced": sum(1 for c in self.customers if self.created.get(c.conversation_id)),
                "duplicate_created_events": {k: self.created_ids[k] for k, v in self.created.items()
                                             if k in ours and len(v) > 1},
                "only_in_list_refresh": sorted(c.conversation_id for c in self.customers
                                               if not self.created.get(c.conversation_id)
                                               and c.conversation_id in self.listed),
                "never_on_console": sorted(c.conversation_id for c in self.customers if not self._arrived(c)),
                "events_for_unknown_conversations": sum(len(v) for k, v in self.created.items() if k not in ours),
                "sse_connections": self.sse_connects,
            },
            "customers": {
                "sent": sum(c.sent_at is not None for c in self.customers),
                "handoff_reply_live": sum(c.reply_at is not None for c in self.customers),
                "waiting_state_frame": sum(c.waiting_at is not None for c in self.customers),
                "waiting_only_in_history": sum(c.waiting_at is None and c.waiting_via_history for c in self.customers),
                "never_waiting": sorted(c.conversation_id for c in self.customers if not c.waiting_seen),
                "reconnects": sum(c.reconnects for c in self.customers),
                "resends": sum(c.resends for c in self.customers),
                "system_messages": sorted({t for c in self.customers for t in c.system_texts}),
                "errors": sorted({t for c in self.customers for t in c.errors}),
                "with_error": sum(bool(c.errors) for c in self.customers),
                "never_waiting_detail": [
                    {"conversation_id": c.conversation_id, "sent": c.sent_at is not None, "echo": c.echo,
                     "handoff_reply": c.reply_at is not None or c.reply_via_history, "resends": c.resends,
                     "reconnects": c.reconnects, "system_messages": c.system_texts}
                    for c in self.customers if not c.waiting_seen][:50],
            },
            "latency_ms": {
                "n": len(latencies),
                "p50": _round(percentile(latencies, 50)),
                "p95": _round(percentile(latencies, 95)),
                "max": _round(max(latencies) if latencies else None),
            },
            # the customer's side of the same handoff (handoff reply in the widget), for comparison
            "reply_latency_ms": {
                "n": len(replies),
                "p50": _round(percentile(replies, 50)),
                "p95": _round(percentile(replies, 95)),
                "max": _round(max(replies) if replies else None),
            },
            "send_span_s": round((max((c.sent_at or first) for c in self.customers) - first), 2),
            "wall_s": round(((max(arrivals) if len(arrivals) == len(self.customers) else finished) - first), 2),
            "fault": self.fault_info or None,
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _outbox_lines(path: Path) -> int:
    try:
        return sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    except OSError:
        return 0


# ---- verification in the database --------------------------------------------------------


def verify_database(url: str, customers: list[Customer]) -> dict[str, Any]:
    """Exactly one ticket per conversation, each with the customer's message in its transcript."""
    from bot.store.database import make_engine
    from bot.store.queue import Queue

    engine = make_engine(url)
    try:
        queue = Queue(engine)
        tickets = queue.tickets("all", limit=10 * len(customers) + 100)
        by_conversation: dict[str, list[int]] = defaultdict(list)
        for ticket in tickets:
            by_conversation[ticket.conversation_id].append(ticket.id)
        ours = {c.conversation_id: c for c in customers}
        without_message, offline = [], 0
        for ticket in tickets:
            customer = ours.get(ticket.conversation_id)
            offline += bool(ticket.offline)
            if customer is None:
                continue
            entries = queue.get(ticket.id).entries
            if not any(e.sender == "customer" and customer.text in e.text for e in entries):
                without_message.append(ticket.id)
        return {
            "expected": len(customers),
            "found": sum(len(by_conversation.get(cid, [])) for cid in ours),
            "duplicates": {cid: ids for cid, ids in by_conversation.items() if cid in ours and len(ids) > 1},
            "missing": sorted(cid for cid in ours if cid not in by_conversation),
            "unexpected": sum(len(ids) for cid, ids in by_conversation.items() if cid not in ours),
            "transcript_without_message": sorted(without_message),
            "offline": offline,
        }
    finally:
        engine.dispose()


def action_log_counts(log_dir: Path) -> dict[str, int]:
    """How often the action server filed a ticket directly / kept a packet in the outbox."""
    log = log_dir / "actions.log"
    text = log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""
    return {"tickets_new": text.count("(new) for"), "tickets_retry": text.count("(retry) for"),
            "kept_in_outbox": text.count("kept in the outbox"),
            "outbox_delivered_lines": text.count("handoff packet(s) delivered")}


# ---- one scenario -------------------------------------------------------------------------


# Runs after the load, before the stack stops (benchmarks/webhook_load.py): its dict joins the result.
AfterLoad = Callable[[BotStack, Load, str], Awaitable[dict[str, Any]]]


async def run_scenario(name: str, database: str, fault: str | None, args: argparse.Namespace,
                       extra_env: dict[str, str] | None = None, after_load: AfterLoad | None = None) -> dict[str, Any]:
    """Set up, load, verify and tear down one scenario; its result entry.

    Args:
        name: The scenario's column (and key in the results file).
        database: ``sqlite`` or ``postgresql``.
        fault: ``server``, ``database`` or ``None``.
        args: The command line (conversations, ramp, timeouts, ...).
        extra_env: More environment for every process of the stack (``BOT_WEBHOOKS_FILE``).
        after_load: Called with the stack, the load and the database URL once the load is
            measured and before the stack stops; its dict is merged into the result.
    """
    from bot.server.app import stores_for

    work = Path(tempfile.mkdtemp(prefix=f"handoff-bench-{name}-"))
    knowledge = prepare_knowledge(work)
    db = Database(database, work)
    proxy: TcpProxy | None = None
    stack: BenchStack | None = None
    keep = True
    print(f"\n== {name}: {args.conversations} 件, database={database}, fault={fault or 'なし'} "
          f"(作業フォルダ {work})", flush=True)
    try:
        url = db.create()
        stores = stores_for(url)
        stores.agents.add(*AGENT)
        del stores
        outbox = work / "outbox.jsonl"
        env = {"BOT_KNOWLEDGE_DIR": str(knowledge), "DATABASE_URL": url, "BOT_OUTBOX": str(outbox),
               "BOT_SECRET_KEY_FILE": str(work / "secret.key"), "SQLALCHEMY_SILENCE_UBER_WARNING": "1",
               # 200 customers from one loopback address: the per-address limits would refuse them.
               "BOT_LIMIT_SESSIONS_PER_HOUR": "0", "BOT_LIMIT_OPEN_TICKETS": "0", **(extra_env or {})}
        process_env: dict[str, dict[str, str]] = {}
        if fault == "database":
            proxy = TcpProxy(PG_PORT)
            proxy.start()
            process_env = {name: {"DATABASE_URL": db.url_on_port(proxy.port)} for name in CUTS[args.cut]}
        stack = BenchStack(model=MODEL, rasa_port=free_port(), action_port=free_port(), server_port=free_port(),
                           log_dir=work / "logs", env=env, process_env=process_env)
        started = _now()
        await asyncio.to_thread(stack.start)
        startup_s = round(_now() - started, 1)
        print(f"   起動 {startup_s} s; 負荷をかけています…", flush=True)
        ramp = args.ramp if args.ramp is not None else (SERVER_FAULT_RAMP if fault == "server" else DEFAULT_RAMP)
        load = Load(stack, args.conversations, ramp, args.timeout)
        job = None
        if fault == "server":
            job = load.kill_server(args.down)
        elif fault == "database":
            assert proxy is not None
            job = load.database_outage(proxy, args.outage, outbox, CUTS[args.cut])
        result = await load.run(job)
        if after_load is not None:
            result.update(await after_load(stack, load, url))
        await asyncio.to_thread(stack.stop)
        result["tickets"] = await asyncio.to_thread(verify_database, url, load.customers)
        result["action_server"] = action_log_counts(stack.log_dir)
        result["outbox_left"] = _outbox_lines(outbox)
        tickets, console, customers = result["tickets"], result["console"], result["customers"]
        result["ok"] = (not tickets["missing"] and not tickets["duplicates"] and tickets["found"] == tickets["expected"]
                        and not tickets["transcript_without_message"] and not console["never_on_console"]
                        and not console["duplicate_created_events"] and not customers["never_waiting"])
        result.update(scenario=name, database=database, conversations=args.conversations, ramp_s=ramp,
                      startup_s=startup_s, logs=str(stack.log_dir) if args.keep or not result["ok"] else None)
        keep = args.keep or not result["ok"]
        return result
    finally:
        if stack is not None:
            await asyncio.to_thread(stack.stop)
        if proxy is not None:
            proxy.close()
        db.drop()
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


# ---- output --------------------------------------------------------------------------------

ROWS = [
    ("チケット 期待 / 実数", lambda r: f"{r['tickets']['expected']} / {r['tickets']['found']}"),
    ("重複 / 欠落 (DB)", lambda r: f"{len(r['tickets']['duplicates'])} / {len(r['tickets']['missing'])}"),
    ("transcript に本文なし", lambda r: len(r["tickets"]["transcript_without_message"])),
    ("SSE created 受信 (会話数)", lambda r: r["console"]["conversations_announced"]),
    ("SSE created 重複", lambda r: len(r["console"]["duplicate_created_events"])),
    ("一覧再読込でのみ表示", lambda r: len(r["console"]["only_in_list_refresh"])),
    ("コンソールに届かず", lambda r: len(r["console"]["never_on_console"])),
    ("顧客 waiting 受信 (state / 履歴のみ)",
     lambda r: f"{r['customers']['waiting_state_frame']} / {r['customers']['waiting_only_in_history']}"),
    ("再接続 / 再送", lambda r: f"{r['customers']['reconnects']} / {r['customers']['resends']}"),
    ("エラーを受けた顧客", lambda r: r["customers"].get("with_error", 0)),
    ("送信 → コンソール p50 (ms)", lambda r: r["latency_ms"]["p50"]),
    ("送信 → コンソール p95 (ms)", lambda r: r["latency_ms"]["p95"]),
    ("送信 → コンソール max (ms)", lambda r: r["latency_ms"]["max"]),
    ("送信 → 顧客に引き継ぎ返信 p50 / p95 (ms)",
     lambda r: f"{r['reply_latency_ms']['p50']} / {r['reply_latency_ms']['p95']}"),
    ("送信の間隔 ramp (s)", lambda r: r["ramp_s"]),
    ("送信期間 (s)", lambda r: r["send_span_s"]),
    ("全体 (最初の送信 → 最後の着信, s)", lambda r: r["wall_s"]),
    ("スタック起動 (s)", lambda r: r["startup_s"]),
    ("負荷中の CPU 秒 (Rasa / actions / bot server)",
     lambda r: " / ".join(str(r.get("cpu_s", {}).get(k, "—")) for k in ("rasa", "actions", "server"))),
    ("アウトボックス経由 (action log)", lambda r: r["action_server"]["kept_in_outbox"]),
    ("障害", lambda r: _fault_text(r.get("fault"))),
    ("判定", lambda r: "OK" if r["ok"] else "NG"),
]


def _fault_text(fault: dict[str, Any] | None) -> str:
    if not fault:
        return "—"
    if fault.get("error"):
        return f"再起動失敗: {fault['error']}"
    if "sent_before_kill" in fault:
        return f"kill 後 {fault['down_s']} s 停止 ({fault['sent_before_kill']} 件送信後)"
    return (f"DB 遮断 {fault['outage_s']} s ({' + '.join(fault.get('cut', ['actions']))}; "
            f"{fault['sent_before_outage']} 件送信後, outbox 最大 {fault['outbox_max_lines']})")


def table(results: list[dict[str, Any]]) -> str:
    """Markdown table, one column per scenario."""
    lines = ["| | " + " | ".join(r["scenario"] for r in results) + " |",
             "|---|" + "---|" * len(results)]
    for label, value in ROWS:
        lines.append(f"| {label} | " + " | ".join(str(value(r)) for r in results) + " |")
    return "\n".join(lines)


def save(results: list[dict[str, Any]]) -> None:
    """Merge into results/bench/handoff_load.json (one entry per scenario)."""
    OUT.mkdir(parents=True, exist_ok=True)
    try:
        saved = json.loads(RESULT_FILE.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        saved = {}
    if not isinstance(saved, dict):
        saved = {}
    for result in results:
        saved[result["scenario"]] = {**result, "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    RESULT_FILE.write_text(json.dumps(saved, ensure_ascii=False, indent=2), encoding="utf-8")


def _problems(result: dict[str, Any]) -> list[str]:
    lines = []
    t, c, k = result["tickets"], result["console"], result["customers"]
    if t["missing"]:
        lines.append(f"DB にチケットがない会話 ({len(t['missing'])}): {', '.join(t['missing'][:10])}")
    if t["duplicates"]:
        lines.append(f"チケットが重複した会話: {dict(list(t['duplicates'].items())[:10])}")
    if c["never_on_console"]:
        lines.append(f"コンソールに届かなかった会話 ({len(c['never_on_console'])}): "
                     f"{', '.join(c['never_on_console'][:10])}")
    if c["only_in_list_refresh"]:
        lines.append(f"SSE created なし・一覧の再読込でのみ見えた会話 ({len(c['only_in_list_refresh'])})")
    if c["duplicate_created_events"]:
        lines.append(f"created が重複した会話: {dict(list(c['duplicate_created_events'].items())[:10])}")
    if k["never_waiting"]:
        lines.append(f"waiting を受け取らなかった顧客 ({len(k['never_waiting'])}): {', '.join(k['never_waiting'][:10])}")
    if k["errors"]:
        lines.append(f"顧客へのエラー: {k['errors']}")
    if result["outbox_left"]:
        lines.append(f"アウトボックスに残ったパケット: {result['outbox_left']}")
    return lines


async def amain(args: argparse.Namespace) -> int:
    """Run the scenarios; exit code."""
    if args.all:  # the README's table: every column from one command
        plans = [("sqlite", "sqlite", None), ("postgresql", "postgresql", None),
                 ("fault-server-sqlite", "sqlite", "server"), ("fault-database-postgresql", "postgresql", "database")]
    elif args.fault:
        modes = ["server", "database"] if args.fault_mode == "both" else [args.fault_mode]
        plans = [(f"fault-server-{args.database}", args.database, "server") if m == "server"
                 else ("fault-database-postgresql", "postgresql", "database") for m in modes]
    else:
        plans = [(args.database, args.database, None)]
    provenance = run_provenance(MODEL)
    print(" ".join(f"{key} {value}" for key, value in provenance.items()), flush=True)
    results = []
    for name, database, fault in plans:
        try:
            result = await run_scenario(name, database, fault, args)
        except StartupError as exc:
            print(f"起動できませんでした: {exc}", file=sys.stderr)
            return 2
        results.append(result)
        for line in _problems(result):
            print(f"   ! {line}", flush=True)
        if result["logs"]:
            print(f"   ログ: {result['logs']}", flush=True)
    print()
    print(table(results))
    print("\n" + " ".join(f"{key} {value}" for key, value in provenance.items()))
    save([{**r, "provenance": provenance} for r in results])
    print(f"\n{RESULT_FILE.relative_to(PROJECT_ROOT)} に保存しました。")
    return 0 if all(r["ok"] for r in results) else 1


def main() -> None:
    """Parse the arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=200, help="concurrent customers (default 200)")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--fault", action="store_true",
                        help="break the queue path mid-run (bot server kill; database outage on PostgreSQL)")
    parser.add_argument("--fault-mode", choices=("both", "server", "database"), default="both")
    parser.add_argument("--all", action="store_true",
                        help="the README's four columns: sqlite, postgresql, bot server kill on sqlite, "
                             "database cut on postgresql")
    parser.add_argument("--cut", choices=tuple(CUTS), default="actions+server",
                        help="--fault database: whose connections the outage cuts (Rasa's tracker store stays)")
    parser.add_argument("--ramp", type=float, default=None,
                        help=f"seconds over which the customers' messages are spread (0: all at once; default "
                             f"{DEFAULT_RAMP:g}, {SERVER_FAULT_RAMP:g} for the bot server kill so that many "
                             "messages are in flight when it dies)")
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="seconds after the last send to wait for every ticket")
    parser.add_argument("--down", type=float, default=2.0, help="--fault server: seconds the bot server stays down")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, SQLite file) of OK runs")
    parser.add_argument("--outage", type=float, default=5.0, help="--fault database: seconds the database is cut")
    args = parser.parse_args()
    if args.conversations < 1:
        parser.error("--conversations must be at least 1")
    sys.exit(asyncio.run(amain(args)))


if __name__ == "__main__":
    main()
