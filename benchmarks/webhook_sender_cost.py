"""CPU the webhook sender spends per event, without the chat around it (#15).

Usage::

    .venv/bin/python -m benchmarks.webhook_sender_cost [--tickets 200] [--repeat 3]

A fresh SQLite queue with ``--tickets`` tickets (six transcript lines each), each created,
claimed and resolved, so three events per ticket wait for one receiver subscribed to all
of them (:mod:`benchmarks.webhook_receiver`, its own process, answering at once). A
:class:`bot.webhooks.sender.WebhookSender` sends them all; the CPU time of this process
(event loop and worker threads) divided by the events is the sender's cost per event:
what a bot server pays, on the CPU the chat also needs, for each event it delivers.
Unlike the chat latencies of :mod:`benchmarks.webhook_load`, this figure hardly depends
on what else the machine runs. Prints one line per repeat and the median.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.webhook_load import slow_receiver
from bot.handoff.packet import HandoffPacket, Turn
from bot.settings import WebhookSettings
from bot.store.database import make_engine
from bot.store.queue import Queue
from bot.store.webhooks import WebhookDeliveries, WebhookOutbox
from bot.webhooks.config import load_webhook_config
from bot.webhooks.sender import WebhookSender

TURNS = [Turn("customer", "何度も問い合わせてるのに返事がない、ふざけるな"), Turn("bot", "担当者におつなぎします。")] * 3


def one_run(tickets: int) -> tuple[int, float, float]:
    """Events sent, CPU seconds and wall seconds of one sender draining a fresh queue."""
    work = Path(tempfile.mkdtemp(prefix="webhook-cost-"))
    with slow_receiver(work, 0.0) as (config_file, _, _):
        config = load_webhook_config(config_file)
        engine = make_engine(f"sqlite:///{work / 'queue.db'}")
        queue = Queue(engine, webhooks=WebhookOutbox(config.routes()))
        ids = [queue.enqueue(HandoffPacket(f"c{i}:1", f"c{i}", ["anger"], TURNS))[0].id for i in range(tickets)]
        for ticket_id in ids:
            queue.claim(ticket_id, "bench")
        for ticket_id in ids:
            queue.resolve(ticket_id, "resolved", "bench")
        deliveries = WebhookDeliveries(engine)
        sender = WebhookSender(config, deliveries, queue, WebhookSettings(attempts=3, retry_seconds=1, timeout=10))

        async def drain() -> int:
            sent = 0
            try:
                while deliveries.count("pending") or deliveries.count("sending"):
                    sent += await sender.send_due()
            finally:
                await sender.close()
            return sent

        cpu, wall = time.process_time(), time.monotonic()
        sent = asyncio.run(drain())
        cpu, wall = time.process_time() - cpu, time.monotonic() - wall
        engine.dispose()
    shutil.rmtree(work, ignore_errors=True)
    return sent, cpu, wall


def main() -> None:
    """Parse the arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tickets", type=int, default=200, help="tickets, three events each (default 200)")
    parser.add_argument("--repeat", type=int, default=3, help="fresh runs (default 3)")
    args = parser.parse_args()
    per_event = []
    for run in range(1, args.repeat + 1):
        sent, cpu, wall = one_run(args.tickets)
        per_event.append(cpu / max(1, sent) * 1000)
        print(f"run {run}: {sent} 件送信, CPU {cpu:.2f} s ({per_event[-1]:.2f} ms/件), 経過 {wall:.1f} s", flush=True)
    print(f"中央値: {statistics.median(per_event):.2f} ms/件 (CPU、イベントループとワーカースレッド)")


if __name__ == "__main__":
    main()
