"""Conversation load: N WebSocket customers at once, on 1 replica and on 2 behind nginx (#12).

Starts the scaled stack of ``make run-scaled`` (``deploy/run_scaled.py``: nginx, 2 bot servers,
2 Rasa servers on one PostgreSQL tracker store and the Redis lock store, 2 action servers) on a
fresh PostgreSQL database, then for each N:

1. **2 replicas behind nginx:** N customers open a session and a WebSocket through nginx and
   each has a 4–6 turn conversation (FAQ questions, small talk, a vague question that is asked
   back, a thank-you), all at once, no pause between turns.
2. **1 replica:** replica 2 is stopped; the same conversations go straight to bot server 1.
3. **Rasa alone:** the same turns posted straight to Rasa 1's REST channel with the same
   concurrency: what the bot costs without our gateway.

Customers connect as widget.js does (the socket URL names the conversation, which nginx
hashes; the token in the first frame); how many conversations each bot server got behind
nginx is reported. A turn's latency is from sending the message to the first bot message on
the socket (the REST channel: to its answer). Reported per run: turns/s, p50 and p95; the gateway overhead is
the 1-replica p95 over Rasa's own p95. Loopback only; every run is bounded (``--turn-timeout``).

Usage: ``.venv/bin/python -m benchmarks.conversation_load --customers 50 [--customers 200]``
(``--model``, default ``models/current.tar.gz``). Writes ``results/conversation_load.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import time
import urllib.parse
import uuid
from collections import Counter
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterator

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.launcher import free_port  # noqa: E402
from deploy.run_scaled import Replica, ScaledStack  # noqa: E402

PROJECT_ROOT = Path(__file__).resolve().parent.parent
REDIS_URL = "redis://127.0.0.1:6379/0"
# What customers of the demo write: FAQ questions, small talk, a vague question, thanks.
TURNS = ["こんにちは", "住所を変更したいです", "営業時間を教えて", "支払い方法は？", "パスワードを忘れました",
         "ありがとうございました"]


def script(customer: int) -> list[str]:
    """The 4–6 turns of one customer (a different mix per customer)."""
    count = 4 + customer % 3
    return [TURNS[(customer + i) % len(TURNS)] for i in range(count)]


def percentile(values: list[float], share: float) -> float:
    """The ``share`` percentile (nearest rank) in milliseconds."""
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000, 1)


async def widget_customer(base: str, customer: int, timeout: float,
                          servers: list[str] | None = None, rasa: tuple[str, Any] | None = None) -> list[float]:
    """One customer on the widget's protocol; the latency of each turn.

    Connects as widget.js does: the URL names the conversation (nginx hashes it), the token
    goes in the first frame. ``servers`` collects which bot server nginx chose (its
    ``X-Bot-Upstream`` header on this machine's config). ``rasa`` (a Rasa URL and an aiohttp
    session): the conversation is opened as above, but its turns go straight to that Rasa's REST
    channel, as the bot server would send them (benchmarks/gateway_profile.py).
    """
    import httpx
    import websockets

    async with httpx.AsyncClient(base_url=base, timeout=timeout) as http:
        session = (await http.post("/api/chat/sessions", json={})).json()
    ws_url = (base.replace("http://", "ws://") + "/ws/chat?conversation="
              + urllib.parse.quote(session["conversation_id"], safe=""))
    latencies = []
    ws = await websockets.connect(ws_url, open_timeout=timeout, max_size=2**20)
    try:
        await ws.send(json.dumps({"type": "auth", "token": session["token"]}))
        if servers is not None:
            servers.append(str(ws.response_headers.get("X-Bot-Upstream")))
        while json.loads(await asyncio.wait_for(ws.recv(), timeout))["type"] != "history":
            pass
        if rasa is not None:
            return await rest_customer(rasa[0], customer, timeout, rasa[1], session["conversation_id"],
                                       {"customer": {}})
        for text in script(customer):
            started = time.monotonic()
            await ws.send(json.dumps({"type": "message", "text": text, "client_id": uuid.uuid4().hex}))
            while True:
                frame = json.loads(await asyncio.wait_for(ws.recv(), timeout))
                if frame["type"] == "message" and frame["message"]["sender"] == "system":
                    raise RuntimeError(f"no bot answer: {frame['message']['text']}")
                if frame["type"] == "message" and frame["message"]["sender"] == "bot":
                    break
            latencies.append(time.monotonic() - started)
    finally:
        await ws.close()
    return latencies


async def rest_customer(rasa_url: str, customer: int, timeout: float, session: Any, sender: str | None = None,
                        metadata: dict[str, Any] | None = None) -> list[float]:
    """The same turns straight to Rasa's REST channel (``sender``: a new one; ``metadata``: none)."""
    body: dict[str, Any] = {"sender": sender or f"bench-rest-{uuid.uuid4().hex}"}
    if metadata is not None:
        body["metadata"] = metadata
    latencies = []
    for text in script(customer):
        started = time.monotonic()
        async with session.post(f"{rasa_url}/webhooks/rest/webhook", json={**body, "message": text},
                                timeout=timeout) as response:
            response.raise_for_status()
            await response.json()
        latencies.append(time.monotonic() - started)
    return latencies


async def crowd(customers: int, one: Callable[[int], Awaitable[list[float]]]) -> dict[str, Any]:
    """Run ``customers`` conversations at once; throughput and latency percentiles."""
    started = time.monotonic()
    results = await asyncio.gather(*(one(i) for i in range(customers)), return_exceptions=True)
    wall = time.monotonic() - started
    latencies = [value for result in results if isinstance(result, list) for value in result]
    failed = [repr(result)[:200] for result in results if isinstance(result, BaseException)]
    return {"customers": customers, "turns": len(latencies), "failed_customers": len(failed),
            "first_failure": failed[0] if failed else None, "seconds": round(wall, 1),
            "turns_per_s": round(len(latencies) / wall, 1) if wall else 0.0,
            "p50_ms": percentile(latencies, 0.50) if latencies else None,
            "p95_ms": percentile(latencies, 0.95) if latencies else None}


async def kept(conversation: Awaitable[list[float]], into: list[list[float]] | None) -> list[float]:
    """A conversation's turn latencies, also appended to ``into`` (when given)."""
    latencies = await conversation
    if into is not None:
        into.append(latencies)
    return latencies


async def rest_crowd(rasa_url: str, customers: int, timeout: float,
                     into: list[list[float]] | None = None) -> dict[str, Any]:
    """:func:`crowd` on Rasa's REST channel; ``into`` (if given) gets each conversation's latencies."""
    import aiohttp

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=customers)) as session:
        return await crowd(customers, lambda i: kept(rest_customer(rasa_url, i, timeout, session), into))


def measure(stack: ScaledStack, sizes: list[int], timeout: float) -> dict[str, Any]:
    """Every run of the module docstring, for every N."""
    first = stack.replicas[0]
    bot_1 = f"http://127.0.0.1:{first.server_port}"
    runs: dict[str, Any] = {"two_replicas_nginx": [], "one_replica": [], "rasa_rest": []}
    # Warm every Rasa server (its first turns load lazily) and both bot servers up, unmeasured.
    for replica in stack.replicas:
        asyncio.run(rest_crowd(replica.rasa_url, 4, timeout))
    asyncio.run(crowd(8, lambda i: widget_customer(stack.url, i, timeout)))
    for size in sizes:
        servers: list[str] = []
        run = asyncio.run(crowd(size, lambda i: widget_customer(stack.url, i, timeout, servers)))
        run["conversations_per_bot_server"] = dict(sorted(Counter(servers).items()))
        runs["two_replicas_nginx"].append(run)
    for kind in ("bot", "rasa", "actions"):
        stack.kill(f"{kind}-2")
    time.sleep(11)  # bot server 1 has marked Rasa 2 down (rasa_client.DOWN_SECONDS) after its first refusal
    asyncio.run(crowd(2, lambda i: widget_customer(bot_1, i, timeout)))
    for size in sizes:
        runs["one_replica"].append(asyncio.run(crowd(size, lambda i: widget_customer(bot_1, i, timeout))))
        runs["rasa_rest"].append(asyncio.run(rest_crowd(first.rasa_url, size, timeout)))
    overhead = []
    for ours, theirs in zip(runs["one_replica"], runs["rasa_rest"]):
        if ours["p95_ms"] and theirs["p95_ms"]:
            overhead.append({"customers": ours["customers"], "p95_ratio": round(ours["p95_ms"] / theirs["p95_ms"], 2),
                             "p50_ratio": round(ours["p50_ms"] / theirs["p50_ms"], 2)})
    return {**runs, "gateway_overhead": overhead}


def table(result: dict[str, Any]) -> str:
    """The README's table."""
    names = {"two_replicas_nginx": "2 replicas behind nginx", "one_replica": "1 replica (bot server)",
             "rasa_rest": "Rasa REST channel alone (1 Rasa)"}
    lines = ["| run | N | turns | turns/s | p50 ms | p95 ms | failed customers |", "|---|---|---|---|---|---|---|"]
    for key, name in names.items():
        for run in result[key]:
            lines.append(f"| {name} | {run['customers']} | {run['turns']} | {run['turns_per_s']} | {run['p50_ms']} | "
                         f"{run['p95_ms']} | {run['failed_customers']} |")
    for run in result["two_replicas_nginx"]:
        lines.append(f"\nConversations per bot server behind nginx at N={run['customers']}: "
                     f"{run.get('conversations_per_bot_server')}")
    for ratio in result["gateway_overhead"]:
        lines.append(f"\nGateway overhead at N={ratio['customers']}: "
                     f"p95 ×{ratio['p95_ratio']}, p50 ×{ratio['p50_ratio']}")
    return "\n".join(lines)


@contextlib.contextmanager
def throwaway_database(prefix: str) -> Iterator[str]:
    """A fresh PostgreSQL database on this machine for one run, dropped afterwards; its URL
    (the tests' helper, so both drop it the same way)."""
    sys.path.insert(0, str(PROJECT_ROOT / "tests"))
    from conftest import temporary_database

    with tempfile.TemporaryDirectory(prefix=f"{prefix}-") as folder, \
            temporary_database("postgresql", Path(folder)) as url:
        yield url


@contextlib.contextmanager
def scaled_stack(model: Path, name: str, replicas: int = 2) -> Iterator[ScaledStack]:
    """The stack of ``make run-scaled`` with ``replicas`` replicas, on a throw-away PostgreSQL
    database and this machine's Redis, started; stopped and its database dropped afterwards.

    Args:
        model: The model every Rasa server loads.
        name: Names the run's database (``bench_NAME``) and log folder (``bench-NAME-``).
        replicas: How many bot, Rasa and action servers (1 or 2).
    """
    with throwaway_database(f"bench_{name}") as database_url:
        folder = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
        nodes = [Replica(i, free_port(), free_port(), free_port()) for i in range(1, replicas + 1)]
        env = {"DATABASE_URL": database_url, "BOT_EVENTS_URL": REDIS_URL,
               "BOT_LIMIT_SESSIONS_PER_HOUR": "0"}  # every simulated customer comes from 127.0.0.1
        started = time.monotonic()
        with ScaledStack(model=model, replicas=nodes, nginx_port=free_port(), folder=folder, env=env) as stack:
            print(f"started in {time.monotonic() - started:.0f} s; logs: {stack.logs}", flush=True)
            yield stack


def save_result(name: str, result: Any) -> Path:
    """Write ``result`` to ``results/NAME`` (JSON); the path."""
    out = PROJECT_ROOT / "results" / name
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return out


def main(argv: list[str] | None = None) -> int:
    """Start the stack on a throw-away database, measure, print and save."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, action="append", help="N (repeatable; default 50)")
    parser.add_argument("--model", type=Path, default=PROJECT_ROOT / "models" / "current.tar.gz")
    parser.add_argument("--turn-timeout", type=float, default=120.0)
    args = parser.parse_args(argv)
    sizes = args.customers or [50]
    with scaled_stack(args.model, "conv") as stack:
        result = measure(stack, sizes, args.turn_timeout)
    out = save_result("conversation_load.json", result)
    print(table(result))
    print(f"\n{out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
