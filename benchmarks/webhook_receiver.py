"""A slow webhook receiver for benchmarks/webhook_load.py: answers every POST after ``--delay`` seconds.

Usage::

    .venv/bin/python -m benchmarks.webhook_receiver --port 8765 --delay 2 --secret-file key --log requests.jsonl

It runs in its own process (aiohttp on 127.0.0.1), so its work never shares an event loop
or the GIL with the benchmark's customers, whose latencies are what is measured. Each
request is written to ``--log`` as one JSON line **when it arrives** (before the delay), so
the file's order is the order in which the bot server sent the events:
``{"seq", "at", "id", "type", "ticket_id", "signature_ok"}``. Every request is answered
204 after the delay, whatever its body.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import IO, Any

from aiohttp import web

from bot.webhooks.signing import EVENT_ID_HEADER, EVENT_TYPE_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, signature


def parse_log(path: Path) -> list[dict[str, Any]]:
    """The requests a receiver logged, in arrival order (an unfinished last line is skipped)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    requests = []
    for line in lines:
        try:
            requests.append(json.loads(line))
        except ValueError:
            continue
    return requests


def make_app(delay: float, secret: str, log: IO[str]) -> web.Application:
    """The receiver: log each POST on arrival, sleep ``delay`` s, answer 204."""
    seq = 0

    async def receive(request: web.Request) -> web.Response:
        nonlocal seq
        body = await request.read()
        seq += 1
        try:
            ticket_id = json.loads(body)["ticket"]["id"]
        except (ValueError, KeyError, TypeError):
            ticket_id = None
        timestamp = request.headers.get(TIMESTAMP_HEADER, "")
        expected = signature(secret, int(timestamp), body) if timestamp.isdigit() else None
        log.write(json.dumps({"seq": seq, "at": time.time(), "id": request.headers.get(EVENT_ID_HEADER),
                              "type": request.headers.get(EVENT_TYPE_HEADER), "ticket_id": ticket_id,
                              "signature_ok": expected is not None
                              and request.headers.get(SIGNATURE_HEADER) == expected}) + "\n")
        log.flush()
        await asyncio.sleep(delay)
        return web.Response(status=204)

    app = web.Application(client_max_size=8 * 1024 * 1024)
    app.router.add_post("/{tail:.*}", receive)
    return app


def main() -> None:
    """Parse the arguments and serve until killed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay", type=float, default=2.0, help="seconds before each answer (default 2)")
    parser.add_argument("--secret-file", type=Path, required=True, help="the HMAC key the sender signs with")
    parser.add_argument("--log", type=Path, required=True, help="JSON lines, one per request on arrival")
    args = parser.parse_args()
    secret = args.secret_file.read_text(encoding="utf-8").strip()
    with args.log.open("a", encoding="utf-8") as log:
        web.run_app(make_app(args.delay, secret, log), host="127.0.0.1", port=args.port, print=None,
                    access_log=None, backlog=1024)


if __name__ == "__main__":
    main()
