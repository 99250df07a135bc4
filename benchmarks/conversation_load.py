"""Conversation load: N WebSocket customers at once, on 1 replica and on 2 behind nginx (#12).

Starts the scaled stack of ``make run-scaled`` (``deploy/run_scaled.py``: nginx, 2 bot servers,
2 Rasa servers on one PostgreSQL tracker store and the Redis lock store, 2 action servers) on a
fresh PostgreSQL database, then for each N:

1. **2 replicas behind nginx:** N customers open a session and a WebSocket through nginx and
   each has a realistic 4–6 step conversation (:mod:`benchmarks.load_customers`: an FAQ
   question, a vague question asked back and a click on an offered button, はい/いいえ on an
   answer, small talk; one customer in ten asks for a person, and an agent logged in through the
   console API claims, replies and resolves), all at once, no pause between steps.
2. **1 replica:** replica 2 is stopped; the same conversations go straight to bot server 1.
3. **Rasa alone:** the same bot turns posted straight to Rasa 1's REST channel with the same
   concurrency (button payloads, ``/answer_not_helpful`` for いいえ; up to the request for a
   person, which has no agent there): what the bot costs without our gateway.

After each widget run the database is checked (:mod:`benchmarks.load_verify`): one ticket per
handing-off customer and none for the others, every customer message stored, every text meant
for Rasa in its tracker, every step answered. A bot turn's latency is from sending to the first
bot message on the socket (the REST channel: to its answer); the agent's reply is timed apart.
Reported per run: turns/s, p50 and p95; the gateway overhead is the 1-replica p95 over Rasa's
own p95. ``--time-limit`` bounds each run; ``--faults`` runs :mod:`benchmarks.load_faults`
instead. The plain-text helpers (:func:`widget_customer`, :func:`rest_crowd`, :func:`script`)
are kept for benchmarks/soak.py and benchmarks/gateway_profile.py.

Usage: ``.venv/bin/python -m benchmarks.conversation_load --customers 50 [--customers 200]``
(``--model``, default ``models/current.tar.gz``). Writes ``results/conversation_load.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
import urllib.parse
import uuid
from collections import Counter
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterator

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.load_customers import AgentDesk, CustomerLog, WidgetCustomer  # noqa: E402
from benchmarks.load_customers import script as realistic_script  # noqa: E402
from benchmarks.load_verify import verify  # noqa: E402
from benchmarks.provenance import run_provenance  # noqa: E402
from bot.launcher import free_port  # noqa: E402
from deploy.run_scaled import Replica, ScaledStack  # noqa: E402

PROJECT_ROOT = Path(__file__).resolve().parent.parent
REDIS_URL = "redis://127.0.0.1:6379/0"
NOT_HELPFUL = "/answer_not_helpful"  # what the bot server sends Rasa for a 「いいえ」 (gateway_base)
# Console sessions that take the handoffs: several, because one agent's cap (同時対応数) is small.
AGENTS = [(f"bench{i}", f"ベンチ{i}", f"bench-password-{i}-xyz") for i in range(1, 5)]
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


async def realistic_crowd(base: str, customers: int, timeout: float, agents_base: str | None = None,
                          database_url: str | None = None, think: tuple[float, float] = (0.0, 0.0),
                          retry_notice: bool = False, human_asked: asyncio.Event | None = None,
                          time_limit: float | None = None, keep_logs: bool = False) -> dict[str, Any]:
    """N realistic conversations at once (:mod:`benchmarks.load_customers`) with agents taking
    the handoffs on ``agents_base`` (default ``base``); latency, throughput and the database checks.

    ``time_limit``: seconds after which unfinished customers are cancelled (reported).
    ``keep_logs``: the customers' logs go into the result too (``logs``, not JSON).
    """
    people = [WidgetCustomer(base, i, timeout, think=think, retry_notice=retry_notice, started=human_asked)
              for i in range(customers)]
    handing = {p for p in people if p.log.handed_off}
    desk = AgentDesk(agents_base or base, AGENTS, set())
    stop = asyncio.Event()

    async def customer(person: WidgetCustomer) -> CustomerLog:
        task = asyncio.ensure_future(person.run())
        if person in handing:  # the desk takes only this run's tickets
            while not person.log.conversation_id and not task.done():
                await asyncio.sleep(0.05)
            desk.conversations.add(person.log.conversation_id)
        return await task

    started = time.monotonic()
    desk_task = asyncio.ensure_future(desk.run(stop))
    jobs = [asyncio.ensure_future(customer(p)) for p in people]
    done, late = await asyncio.wait(jobs, timeout=time_limit)
    for job in late:
        job.cancel()
    await asyncio.gather(*late, return_exceptions=True)
    wall = time.monotonic() - started
    stop.set()
    await desk_task
    logs = [p.log for p in people]
    for p in people:
        if p.log.error is None and len(p.log.turns) < len(script_steps(p.log.index)):
            p.log.error = p.log.error or "cancelled at the time limit"
    # Turns a bot answered (a 「はい」 reaches no bot; a handoff request counts until the bot's reply).
    bot_turns = [t.seconds for log in logs for t in log.turns if t.seconds is not None and t.outcome in ("bot", "agent")]
    agent_waits = [t.agent_seconds for log in logs for t in log.turns if t.agent_seconds is not None]
    result: dict[str, Any] = {
        "customers": customers, "bot_turns": len(bot_turns), "seconds": round(wall, 1),
        "turns_per_s": round(len(bot_turns) / wall, 1) if wall else 0.0,
        "p50_ms": percentile(bot_turns, 0.50) if bot_turns else None,
        "p95_ms": percentile(bot_turns, 0.95) if bot_turns else None,
        "turns_over_30_s": sum(1 for t in bot_turns if t > 30),
        "agent_reply_p50_ms": percentile(agent_waits, 0.50) if agent_waits else None,
        "agent_reply_p95_ms": percentile(agent_waits, 0.95) if agent_waits else None,
        "cancelled_at_time_limit": len(late),
        "conversations_per_bot_server": dict(sorted(Counter(log.servers[0] for log in logs if log.servers).items())),
        "reconnects": sum(log.reconnects for log in logs), "resends": sum(log.resends for log in logs),
        "retried_turns": sum(t.retried for log in logs for t in log.turns),
        "desk": {"claimed": len(desk.stats.claimed), "replied": len(desk.stats.replied),
                 "resolved": len(desk.stats.resolved), "conflicts": desk.stats.conflicts,
                 "errors": len(desk.stats.errors), "first_error": desk.stats.errors[0] if desk.stats.errors else None,
                 "agent_servers": sorted(set(desk.stats.servers))},
    }
    if database_url:
        result["check"] = await asyncio.to_thread(verify, database_url, logs)
    if keep_logs:
        result["logs"] = logs
    return result


def script_steps(customer: int) -> list[Any]:
    """The realistic script of one customer (:func:`benchmarks.load_customers.script`)."""
    return realistic_script(customer)


async def realistic_rest_customer(rasa_url: str, customer: int, timeout: float, session: Any) -> list[float]:
    """The bot turns of the realistic script straight to Rasa's REST channel.

    A button sends its payload (chosen from Rasa's clarifying reply as the widget would), 「いいえ」
    sends ``/answer_not_helpful`` as the bot server does, 「はい」 reaches no bot (not sent), and the
    conversation stops before asking for a person (no agent behind the REST channel).
    """
    sender = f"bench-rest-{uuid.uuid4().hex}"
    latencies: list[float] = []
    buttons: list[str] = []
    for step in realistic_script(customer):
        if step.kind == "human":
            break
        if step.kind == "feedback":
            if step.helpful:
                continue
            text = NOT_HELPFUL
        elif step.kind == "button":
            text = next((b for b in buttons if b.startswith("/faq")), "")
            if not text:
                continue
        else:
            text = step.text
        started = time.monotonic()
        async with session.post(f"{rasa_url}/webhooks/rest/webhook", json={"sender": sender, "message": text},
                                timeout=timeout) as response:
            response.raise_for_status()
            replies = await response.json()
        latencies.append(time.monotonic() - started)
        buttons = [str(b.get("payload")) for r in replies for b in r.get("buttons") or []] or buttons
    return latencies


async def realistic_rest_crowd(rasa_url: str, customers: int, timeout: float) -> dict[str, Any]:
    """:func:`realistic_rest_customer` for N customers at once."""
    import aiohttp

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=customers)) as session:
        run = await crowd(customers, lambda i: realistic_rest_customer(rasa_url, i, timeout, session))
    run["bot_turns"] = run.pop("turns")
    run["turns_over_30_s"] = None
    return run


def measure(stack: ScaledStack, sizes: list[int], timeout: float, time_limit: float | None = None) -> dict[str, Any]:
    """Every run of the module docstring, for every N."""
    first = stack.replicas[0]
    bot_1 = f"http://127.0.0.1:{first.server_port}"
    database_url = stack.env["DATABASE_URL"]
    runs: dict[str, Any] = {"two_replicas_nginx": [], "one_replica": [], "rasa_rest": [],
                            "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}
    # Warm every Rasa server (its first turns load lazily) and both bot servers up, unmeasured.
    for replica in stack.replicas:
        asyncio.run(rest_crowd(replica.rasa_url, 4, timeout))
    asyncio.run(realistic_crowd(stack.url, 10, timeout))
    for size in sizes:
        runs["two_replicas_nginx"].append(asyncio.run(realistic_crowd(stack.url, size, timeout, stack.url, database_url,
                                                                      time_limit=time_limit)))
        print(f"2 replicas N={size}: {json.dumps(runs['two_replicas_nginx'][-1], ensure_ascii=False)}", flush=True)
    for kind in ("bot", "rasa", "actions"):
        stack.kill(f"{kind}-2")
    time.sleep(11)  # bot server 1 has marked Rasa 2 down (rasa_client.DOWN_SECONDS) after its first refusal
    asyncio.run(realistic_crowd(bot_1, 2, timeout))
    for size in sizes:
        runs["one_replica"].append(asyncio.run(realistic_crowd(bot_1, size, timeout, bot_1, database_url,
                                                               time_limit=time_limit)))
        print(f"1 replica N={size}: {json.dumps(runs['one_replica'][-1], ensure_ascii=False)}", flush=True)
        runs["rasa_rest"].append(asyncio.run(realistic_rest_crowd(first.rasa_url, size, timeout)))
    overhead = []
    for ours, theirs in zip(runs["one_replica"], runs["rasa_rest"]):
        if ours["p95_ms"] and theirs["p95_ms"]:
            overhead.append({"customers": ours["customers"], "p95_ratio": round(ours["p95_ms"] / theirs["p95_ms"], 2),
                             "p50_ratio": round(ours["p50_ms"] / theirs["p50_ms"], 2)})
    return {**runs, "gateway_overhead": overhead}


def table(result: dict[str, Any]) -> str:
    """The README's tables: latency per run, then the database checks."""
    names = {"two_replicas_nginx": "2 replicas behind nginx", "one_replica": "1 replica (bot server)",
             "rasa_rest": "Rasa REST channel alone (1 Rasa)"}
    lines = ["| run | N | bot turns | turns/s | p50 ms | p95 ms | turns > 30 s | agent reply p50 / p95 ms "
             "| failed customers |", "|---|---|---|---|---|---|---|---|---|"]
    for key, name in names.items():
        for run in result[key]:
            agent = (f"{run.get('agent_reply_p50_ms')} / {run.get('agent_reply_p95_ms')}"
                     if key != "rasa_rest" else "—")
            failed = run["check"]["customers_failed"] if "check" in run else run.get("failed_customers")
            lines.append(f"| {name} | {run['customers']} | {run['bot_turns']} | {run['turns_per_s']} | "
                         f"{run['p50_ms']} | {run['p95_ms']} | {run.get('turns_over_30_s', '—')} | {agent} | "
                         f"{failed} |")
    lines += ["", CHECK_HEADER, "|---|---|---|---|---|---|---|---|---|"]
    for key in ("two_replicas_nginx", "one_replica"):
        for run in result[key]:
            lines.append(check_row(names[key], run))
    for run in result["two_replicas_nginx"]:
        lines.append(f"\nConversations per bot server behind nginx at N={run['customers']}: "
                     f"{run.get('conversations_per_bot_server')}")
    for ratio in result["gateway_overhead"]:
        lines.append(f"\nGateway overhead at N={ratio['customers']} (bot turns): "
                     f"p95 ×{ratio['p95_ratio']}, p50 ×{ratio['p50_ratio']}")
    return "\n".join(lines)


CHECK_HEADER = ("| run | N | handing off | tickets exactly 1 | lost / duplicated / unexpected | customer messages "
                "sent / lost / never routed | texts missing in Rasa's tracker | agent replies seen | "
                "customers with an unanswered turn |")


def check_row(name: str, run: dict[str, Any]) -> str:
    """One row of the database checks (:func:`benchmarks.load_verify.verify`)."""
    c = run["check"]
    return (f"| {name} | {run['customers']} | {c['handing_off_customers']} | {c['tickets_exactly_one']} | "
            f"{c['tickets_lost']} / {c['tickets_duplicated']} / {c['tickets_unexpected']} | "
            f"{c['customer_messages_sent']} / {c['customer_messages_lost']} / {c['customer_messages_never_routed']} | "
            f"{c['rasa_texts_not_in_tracker']} of {c['rasa_texts_expected']} | {c['agent_replies_received']} | "
            f"{c['customers_with_an_unanswered_turn']} |")


@contextlib.contextmanager
def throwaway_database(prefix: str) -> Iterator[str]:
    """A fresh PostgreSQL database on this machine for one run, dropped afterwards; its URL
    (the tests' helper, so both drop it the same way)."""
    sys.path.insert(0, str(PROJECT_ROOT / "tests"))
    from conftest import temporary_database

    with tempfile.TemporaryDirectory(prefix=f"{prefix}-") as folder:
        database = temporary_database("postgresql", Path(folder))
        url = database.__enter__()
        try:
            yield url
        finally:
            try:
                database.__exit__(None, None, None)
            except Exception:  # noqa: BLE001 - its pooled admin connection died in a PostgreSQL restart (--faults)
                drop_database(url)


def drop_database(url: str) -> None:
    """Drop the database of ``url`` on a fresh connection."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)'))
    finally:
        admin.dispose()


@contextlib.contextmanager
def scaled_stack(model: Path, name: str, replicas: int = 2, desk: bool = False) -> Iterator[ScaledStack]:
    """The stack of ``make run-scaled`` with ``replicas`` replicas, on a throw-away PostgreSQL
    database and this machine's Redis, started; stopped and its database dropped afterwards.

    Args:
        model: The model every Rasa server loads.
        name: Names the run's database (``bench_NAME``) and log folder (``bench-NAME-``).
        replicas: How many bot, Rasa and action servers (1 or 2).
        desk: Staff on duty around the clock (a copy of ``knowledge/``), the agents of
            :data:`AGENTS`, and no cap on open tickets per address (every customer is 127.0.0.1).
    """
    with throwaway_database(f"bench_{name}") as database_url:
        folder = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
        nodes = [Replica(i, free_port(), free_port(), free_port()) for i in range(1, replicas + 1)]
        env = {"DATABASE_URL": database_url, "BOT_EVENTS_URL": REDIS_URL,
               "BOT_LIMIT_SESSIONS_PER_HOUR": "0"}  # every simulated customer comes from 127.0.0.1
        if desk:
            from bot.server.app import stores_for
            from conftest import staffed_knowledge

            env.update(BOT_KNOWLEDGE_DIR=str(staffed_knowledge(folder / "knowledge")), BOT_LIMIT_OPEN_TICKETS="0")
            stores = stores_for(database_url)
            for agent in AGENTS:
                stores.agents.add(*agent)
            stores.engine.dispose()
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
    """Start the stack on a throw-away database, measure (or inject faults), print and save."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, action="append", help="N (repeatable; default 50)")
    parser.add_argument("--model", type=Path, default=PROJECT_ROOT / "models" / "current.tar.gz")
    parser.add_argument("--turn-timeout", type=float, default=120.0)
    parser.add_argument("--time-limit", type=float, default=None,
                        help="seconds after which a run's unfinished customers are cancelled (reported)")
    parser.add_argument("--faults", action="store_true",
                        help="2 replicas, one fault at a time during the load (benchmarks/load_faults.py)")
    parser.add_argument("--fault", action="append", help="--faults: only these (repeatable; default all)")
    args = parser.parse_args(argv)
    sizes = args.customers or [50]
    if args.faults:
        from benchmarks import load_faults

        return load_faults.main_faults(args.model, sizes[0], args.turn_timeout, args.fault)
    with scaled_stack(args.model, "conv", desk=True) as stack:
        result = measure(stack, sizes, args.turn_timeout, args.time_limit)
    result["provenance"] = run_provenance(args.model)
    out = save_result("conversation_load.json", result)
    print(table(result))
    print(f"\n{out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
