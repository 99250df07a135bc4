"""Faults during the conversation load (#12): nothing lost, every customer answered.

``python -m benchmarks.conversation_load --faults --customers 60`` starts the stack of ``make
run-scaled`` (2 replicas behind nginx) with staff on duty and the agents of
:data:`benchmarks.conversation_load.AGENTS`, then runs, one after the other on the same stack,
one load phase per fault: N fresh customers with the realistic conversations of
:mod:`benchmarks.load_customers` (a 0.5–2 s pause between steps, as a person types; one in ten
hands off to an agent who claims, replies and resolves through the console API behind nginx),
and one fault injected during it:

- ``rasa_kill``: SIGKILL Rasa 1 at :data:`FAULT_AT` s, started again at once (systemd's
  ``Restart=always``);
- ``bot_kill``: SIGKILL bot server 1 at :data:`FAULT_AT` s, started again 2 s later; its
  customers reconnect as widget.js does, through nginx (to bot server 2 meanwhile);
- ``redis_restart``: ``redis-cli shutdown nosave``, then ``redis-server /etc/redis/redis.conf``
  as this machine starts it (its Redis, 127.0.0.1:6379: the event relay between bot servers and
  Rasa's lock store);
- ``postgres_restart``: ``pg_ctlcluster 15 main restart -m fast`` (every database connection
  of every process is cut: tracker store, queue, chat log);
- ``actions_kill``: SIGKILL action server 1 right after the first customer asks for a person,
  started again 3 s later.

A customer whose turn got only a notice (「ただいまAIチャットが応答できません」…) writes the same again
once, 10 s later, as a person would. After each phase :func:`benchmarks.load_verify.verify` checks the
database: customer messages lost, tickets lost or duplicated, texts missing from Rasa's tracker,
customers left with an unanswered turn. Any process of the stack that is not running is started
again before the next phase, and Redis and PostgreSQL are started again on every exit (other
tests on this machine need them). Writes ``results/conversation_faults.json``; exit code 1 when
a message or a ticket was lost or duplicated or a customer was left unanswered.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

FAULTS = ("rasa_kill", "bot_kill", "redis_restart", "postgres_restart", "actions_kill")
FAULT_AT = 8.0  # seconds into the phase: customers are mid-conversation
THINK = (0.5, 2.0)  # seconds between a customer's steps
PHASE_LIMIT = 300.0  # a phase's customers are cancelled after this (reported)
# How to restart / start each service here. Redis is stopped through its own port and started
# the way this machine starts it (as root, /etc/redis/redis.conf), not with the init script: its
# pid file is empty, so `service redis-server restart` stops nothing, and a daemon it starts runs
# as the redis user, which cannot write its snapshot to the root-owned /var/lib/redis and then
# refuses every write (MISCONF) a few minutes later (both seen in the first runs).
REDIS_START = ["redis-server", "/etc/redis/redis.conf"]
REDIS_RESTART = [["redis-cli", "-h", "127.0.0.1", "shutdown", "nosave"], REDIS_START]
# (Starting Redis stops it first: one that refuses writes still holds the port.)
SERVICES = {"redis": (REDIS_RESTART, REDIS_RESTART),
            "postgres": ([["pg_ctlcluster", "15", "main", "restart", "-m", "fast"]],
                         [["pg_ctlcluster", "15", "main", "start"]])}


def run_command(commands: list[list[str]]) -> str:
    """Run service commands one after the other (60 s at most each); their output, for the report."""
    out = []
    for args in commands:
        done = subprocess.run(args, capture_output=True, text=True, timeout=60)
        out.append(f"{' '.join(args)} → {done.returncode} {(done.stdout + done.stderr).strip()[-120:]}")
        if args[0] == "redis-cli":  # wait until the old daemon let go of the port
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and services_running()["redis"]:
                time.sleep(0.2)
    return "; ".join(out)


def services_running() -> dict[str, bool]:
    """Whether Redis and PostgreSQL answer on 127.0.0.1."""
    # A write, not a ping: a Redis that cannot save its snapshot answers PONG but refuses writes.
    redis = subprocess.run(["redis-cli", "-h", "127.0.0.1", "set", "bench:load_faults:probe", "1", "EX", "5"],
                           capture_output=True, text=True, timeout=10)
    postgres = subprocess.run(["pg_isready", "-h", "127.0.0.1", "-p", "5432"], capture_output=True, timeout=10)
    return {"redis": redis.stdout.strip() == "OK", "postgres": postgres.returncode == 0}


def ensure_services() -> dict[str, bool]:
    """Start Redis and PostgreSQL if either does not answer (never leave them stopped)."""
    for name, running in services_running().items():
        if not running:
            with_timeout(lambda: run_command(SERVICES[name][1]))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not all(services_running().values()):
        time.sleep(1)
    return services_running()


def with_timeout(call: Callable[[], str]) -> str:
    """A service command's output, or the error that stopped it."""
    try:
        return call()
    except (OSError, subprocess.SubprocessError) as exc:
        return repr(exc)


def heal(stack: Any) -> list[str]:
    """Start again every process of the stack that is not running; their names."""
    started = []
    for kind in ("actions", "rasa", "bot"):
        for replica in stack.replicas:
            name = f"{kind}-{replica.index}"
            proc = stack._procs.get(name)  # noqa: SLF001 - the stack has no public "is it running"
            if proc is None or proc.poll() is not None:
                stack._procs.pop(name, None)  # noqa: SLF001
                stack.restart(kind, replica)
                started.append(name)
    return started


async def inject(stack: Any, fault: str, human_asked: asyncio.Event, began: float) -> dict[str, Any]:
    """Wait for the fault's moment, inject it, bring the part back; a timeline (seconds into the phase)."""
    first = stack.replicas[0]
    if fault == "actions_kill":
        await human_asked.wait()
        await asyncio.sleep(0.3)
    else:
        await asyncio.sleep(FAULT_AT)
    info: dict[str, Any] = {"fault": fault, "at_s": round(time.monotonic() - began, 1)}
    if fault in ("rasa_kill", "bot_kill", "actions_kill"):
        kind = fault.split("_")[0]
        stack.kill(f"{kind}-1")
        await asyncio.sleep({"rasa": 0.0, "bot": 2.0, "actions": 3.0}[kind])
        await asyncio.to_thread(stack.restart, kind, first)
    else:
        service = fault.split("_")[0]
        info["command"] = await asyncio.to_thread(with_timeout, lambda: run_command(SERVICES[service][0]))
    info["back_s"] = round(time.monotonic() - began, 1)
    return info


async def phase(stack: Any, fault: str, customers: int, timeout: float) -> dict[str, Any]:
    """One load phase with one fault; the crowd's result with the fault's timeline."""
    from benchmarks.conversation_load import realistic_crowd

    human_asked = asyncio.Event()
    began = time.monotonic()
    injector = asyncio.ensure_future(inject(stack, fault, human_asked, began))
    result = await realistic_crowd(stack.url, customers, timeout, stack.url, None, think=THINK, retry_notice=True,
                                   human_asked=human_asked, time_limit=PHASE_LIMIT, keep_logs=True)
    try:
        result["fault"] = await asyncio.wait_for(injector, 300)
    except Exception as exc:  # noqa: BLE001 - reported, the other phases go on
        result["fault"] = {"fault": fault, "error": repr(exc)[:300]}
    return result


def verdict(check: dict[str, Any]) -> bool:
    """Nothing lost or duplicated, every customer answered."""
    return not (check["customer_messages_lost"] or check["tickets_lost"] or check["tickets_duplicated"]
                or check["tickets_unexpected"] or check["customers_with_an_unanswered_turn"])


def main_faults(model: Path, customers: int, timeout: float, only: list[str] | None) -> int:
    """Run every fault phase (or ``only`` these); print, save; the exit code."""
    from benchmarks.conversation_load import realistic_crowd, rest_crowd, save_result, scaled_stack
    from benchmarks.load_verify import verify
    from benchmarks.provenance import run_provenance

    # `timeout` (SIGTERM) must still reach the finally below: Redis and PostgreSQL started again.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    chosen = [f for f in FAULTS if not only or f in only]
    result: dict[str, Any] = {"provenance": run_provenance(model), "customers": customers,
                              "load_average_at_start": [round(x, 2) for x in os.getloadavg()], "phases": []}
    try:
        with scaled_stack(model, "faults", desk=True) as stack:
            database_url = stack.env["DATABASE_URL"]
            for replica in stack.replicas:
                asyncio.run(rest_crowd(replica.rasa_url, 4, timeout))
            asyncio.run(realistic_crowd(stack.url, 10, timeout))
            for fault in chosen:
                print(f"== {fault}: {customers} customers", flush=True)
                run = asyncio.run(phase(stack, fault, customers, timeout))
                result["services_after"] = ensure_services()
                run["restarted_after"] = heal(stack)
                logs = run.pop("logs")
                run["check"] = verify(database_url, logs)
                run["ok"] = verdict(run["check"])
                result["phases"].append(run)
                print(json.dumps(run, ensure_ascii=False), flush=True)
    finally:
        result["services_at_end"] = ensure_services()
    out = save_result("conversation_faults.json", result)
    print(fault_table(result))
    print(f"\n{out}")
    return 0 if all(p["ok"] for p in result["phases"]) else 1


def fault_table(result: dict[str, Any]) -> str:
    """The README's table: one row per fault."""
    lines = ["| fault | at s → back s | N | handing off | tickets exactly 1 / lost / duplicated / unexpected | customer "
             "messages sent / lost / never routed | texts missing in Rasa's tracker | agent replies seen | turns "
             "answered after writing again | turns left with only a notice / no answer | customers left unanswered | "
             "reconnects | p95 ms | ok |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for run in result["phases"]:
        c, f = run["check"], run["fault"]
        notices = c["turn_outcomes"].get("notice", 0)
        lines.append(
            f"| {f['fault']} | {f.get('at_s')} → {f.get('back_s')} | {run['customers']} | {c['handing_off_customers']} | "
            f"{c['tickets_exactly_one']} / {c['tickets_lost']} / {c['tickets_duplicated']} / {c['tickets_unexpected']} | "
            f"{c['customer_messages_sent']} / {c['customer_messages_lost']} / {c['customer_messages_never_routed']} | "
            f"{c['rasa_texts_not_in_tracker']} of {c['rasa_texts_expected']} | {c['agent_replies_received']} | "
            f"{run.get('retried_turns', 0)} | {notices} / {c['turn_outcomes'].get('timeout', 0)} | "
            f"{c['customers_with_an_unanswered_turn']} | {run['reconnects']} | {run['p95_ms']} | "
            f"{'yes' if run['ok'] else '**no**'} |")
    return "\n".join(lines)
