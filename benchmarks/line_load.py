"""LINE under load: N users write at once; every one must be answered exactly once.

Usage::

    .venv/bin/python -m benchmarks.line_load [--users 200] [--redeliver] [--rasa real|instant]
                                             [--model models/current.tar.gz]

What one run does:

1. The local LINE API stand-in (tests/line_standin.py) in its own process, a fresh
   SQLite database, and the whole stack (Rasa server, action server, bot server with the
   LINE channel pointed at the stand-in: :class:`bot.launcher.BotStack`). This process
   only sends the webhooks and reads the stand-in's record, so it takes no CPU from them.
2. N LINE users each send one FAQ question, all webhook requests at once (one signed
   request per user, as LINE sends them); with ``--redeliver`` every event is sent a
   second time (same ``webhookEventId``, ``isRedelivery``) one second later.
3. Measured: webhook request → the reply (or push) call reaching the stand-in, per user.
   The path is LINE → signature check → 200 → background: gateway → Rasa → action server
   → gateway → one reply call.

``--rasa instant`` measures the channel and gateway alone: the bot server runs (in its own
process) with a Rasa stand-in that answers at once (no Rasa, no action server).

Results: a table on stdout and ``results/bench/line_load.json``. Exit code 1 when a
user got no answer or more than one message call.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("SQLALCHEMY_SILENCE_UBER_WARNING", "1")

import aiohttp  # noqa: E402
import httpx  # noqa: E402

from benchmarks.session_load import InstantRasa  # noqa: E402
from bot.launcher import BotStack, StartupError, free_port  # noqa: E402
from bot.settings import PROJECT_ROOT  # noqa: E402

sys.path.insert(0, str(PROJECT_ROOT / "tests"))
from line_standin import ACCESS_TOKEN, CHANNEL_SECRET, Call, LineStandIn  # noqa: E402

OUT = PROJECT_ROOT / "results" / "bench"
RESULT_FILE = OUT / "line_load.json"
MODEL = PROJECT_ROOT / "models" / "current.tar.gz"
QUESTIONS = ["住所を変更したいです", "営業時間を教えて", "パスワードを忘れました", "解約したい", "支払い方法を変えたい",
             "領収書はもらえますか", "ログインできません", "料金プランを知りたい"]
SECRET = "line-load-secret-" + "z" * 32


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0-1) of ``values``, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def start_process(args: list[str], url: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start a Python process serving HTTP at ``url``; return once it answers."""
    proc = subprocess.Popen([sys.executable, *args], cwd=PROJECT_ROOT, env={**os.environ, **(env or {})},
                            stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return proc
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise StartupError(f"{args} did not start")


def serve_instant(port: int, database_url: str, api_url: str) -> None:
    """``--serve-instant``: the bot server with an instant Rasa and the LINE channel on (own process)."""
    import uvicorn

    from bot.server.app import Services, create_app, stores_for
    from bot.server.tokens import ConversationTokens
    from bot.settings import LineSettings

    services = Services(stores_for(database_url), InstantRasa(), ConversationTokens(SECRET))  # type: ignore[arg-type]
    line = LineSettings(channel_secret=CHANNEL_SECRET, access_token=ACCESS_TOKEN, api_url=api_url)
    uvicorn.run(create_app(services, SECRET, watch_interval=0.5, line=line), host="127.0.0.1", port=port,
                log_level="warning", ws="none")


async def run(args: argparse.Namespace, api_url: str, server_url: str) -> dict[str, Any]:
    """Send the webhooks; read who was answered how often, and when, from the stand-in."""
    builder = LineStandIn()  # only builds events and signs bodies; the stand-in is the other process
    users = [f"U{n:032x}" for n in range(args.users)]
    warm = "U" + "f" * 32
    limits = httpx.Limits(max_connections=args.users, max_keepalive_connections=args.users)
    # aiohttp sends the webhooks: httpx's pure-Python client cost more CPU than the server measured.
    async with httpx.AsyncClient(timeout=60, limits=limits) as control, \
            aiohttp.ClientSession(server_url, connector=aiohttp.TCPConnector(limit=args.users)) as client:
        await control.post(f"{api_url}/_standin/profiles", json={u: f"利用者{n}" for n, u in enumerate([*users, warm])})
        tokens = (await control.post(f"{api_url}/_standin/tokens", json={"count": len(users) + 1})).json()["tokens"]

        async def calls() -> list[Call]:
            raw = (await control.get(f"{api_url}/_standin/calls")).json()["calls"]
            return [Call(c["path"], c["body"], c["status"], c["at"]) for c in raw]

        def event(user: str, token: str, n: int) -> dict[str, Any]:
            return {**builder.event("text", user, text=QUESTIONS[n % len(QUESTIONS)]), "replyToken": token}

        events = {user: event(user, tokens[n], n) for n, user in enumerate(users)}
        token_user = {e["replyToken"]: user for user, e in events.items()}
        sent_at: dict[str, float] = {}
        acks: list[float] = []

        async def post(user: str, redelivery: bool = False) -> int:
            body, headers = builder.webhook([{**events[user], "deliveryContext": {"isRedelivery": redelivery}}])
            began = time.monotonic()
            async with client.post("/line/webhook", data=body, headers=headers) as response:
                status = response.status
            if not redelivery:
                sent_at[user] = began
                acks.append((time.monotonic() - began) * 1000)
            return status

        # Warm-up (not measured): Rasa's and the action server's first turn load what they load lazily.
        body, headers = builder.webhook([event(warm, tokens[-1], 0)])
        async with client.post("/line/webhook", data=body, headers=headers):
            pass
        while not any(c.kind == "reply" for c in await calls()):
            await asyncio.sleep(0.2)
        skip = len(await calls())
        started = time.monotonic()
        statuses = await asyncio.gather(*(post(user) for user in users))
        accepted_in = time.monotonic() - started
        if args.redeliver:
            await asyncio.sleep(1.0)
            statuses += await asyncio.gather(*(post(user, True) for user in users))
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline:
            record = (await calls())[skip:]
            answered = {token_user.get(c.body.get("replyToken"), c.body.get("to")) for c in record
                        if c.kind in ("reply", "push") and c.status == 200}
            if len(answered) >= len(users):
                break
            await asyncio.sleep(1.0)
        await asyncio.sleep(2.0)  # late duplicates would show up now
        record = (await calls())[skip:]
    answers: dict[str, list[Call]] = {user: [] for user in users}
    for call in record:
        if call.kind in ("reply", "push") and call.status == 200:
            user = token_user.get(call.body.get("replyToken"), call.body.get("to"))
            if user in answers:
                answers[user].append(call)
    latencies = [(min(c.at for c in got) - sent_at[user]) * 1000 for user, got in answers.items() if got]
    return {
        "users": len(users), "redelivered": len(users) if args.redeliver else 0,
        "webhook_status": sorted(set(statuses)), "webhooks_answered_in_s": round(accepted_in, 2),
        "webhook_200_ms_p50": round(statistics.median(acks), 1), "webhook_200_ms_p95": round(percentile(acks, 0.95), 1),
        "answered": sum(1 for got in answers.values() if got),
        "lost": sum(1 for got in answers.values() if not got),
        "duplicated": sum(1 for got in answers.values() if len(got) > 1),
        "by_reply": sum(1 for got in answers.values() if got and got[0].kind == "reply"),
        "by_push": sum(1 for got in answers.values() if got and got[0].kind == "push"),
        "refused_calls": sum(1 for c in record if c.status >= 300),
        "latency_ms_p50": round(statistics.median(latencies), 1) if latencies else None,
        "latency_ms_p95": round(percentile(latencies, 0.95), 1) if latencies else None,
        "latency_ms_max": round(max(latencies), 1) if latencies else None,
    }


def main() -> None:
    """Run once, print the table, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=200, help="LINE users writing at once (default 200)")
    parser.add_argument("--redeliver", action="store_true", help="send every event a second time (LINE's redelivery)")
    parser.add_argument("--rasa", choices=("real", "instant"), default="real",
                        help="real: Rasa + action server; instant: the channel and gateway alone")
    parser.add_argument("--model", type=Path, default=MODEL)
    parser.add_argument("--timeout", type=float, default=180.0)
    parser.add_argument("--serve-instant", nargs=3, metavar=("PORT", "DATABASE_URL", "API_URL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_instant:
        serve_instant(int(args.serve_instant[0]), args.serve_instant[1], args.serve_instant[2])
        return
    folder = Path(tempfile.mkdtemp(prefix="line-load-"))
    api_port = free_port()
    api_url = f"http://127.0.0.1:{api_port}"
    database_url = f"sqlite:///{folder / 'bot.db'}"
    processes: list[subprocess.Popen[bytes]] = []
    try:
        processes.append(start_process(["tests/line_standin.py", str(api_port)], f"{api_url}/_standin/calls"))
        if args.rasa == "instant":
            port = free_port()
            processes.append(start_process(["-m", "benchmarks.line_load", "--serve-instant", str(port), database_url,
                                            api_url], f"http://127.0.0.1:{port}/healthz"))
            result = asyncio.run(run(args, api_url, f"http://127.0.0.1:{port}"))
        else:
            env = {"DATABASE_URL": database_url, "BOT_OUTBOX": str(folder / "outbox.jsonl"),
                   "BOT_SECRET_KEY_FILE": str(folder / "secret.key"), "LINE_CHANNEL_SECRET": CHANNEL_SECRET,
                   "LINE_CHANNEL_ACCESS_TOKEN": ACCESS_TOKEN, "LINE_API_URL": api_url}
            with BotStack(model=args.model, rasa_port=free_port(), action_port=free_port(),
                          server_port=free_port(), log_dir=folder / "logs", env=env) as stack:
                result = asyncio.run(run(args, api_url, stack.server_url))
    except StartupError as exc:
        print(f"the stack could not start: {exc}", file=sys.stderr)
        sys.exit(2)
    finally:
        for proc in processes:
            proc.terminate()
            proc.wait(10)
        shutil.rmtree(folder, ignore_errors=True)
    result.update(rasa=args.rasa, date=time.strftime("%Y-%m-%d"))
    OUT.mkdir(parents=True, exist_ok=True)
    runs = json.loads(RESULT_FILE.read_text(encoding="utf-8")) if RESULT_FILE.exists() else {}
    runs[f"{args.rasa}-{args.users}{'-redeliver' if args.redeliver else ''}"] = result
    RESULT_FILE.write_text(json.dumps(runs, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    for key, value in result.items():
        print(f"{key:24} {value}")
    sys.exit(1 if result["lost"] or result["duplicated"] else 0)


if __name__ == "__main__":
    main()
