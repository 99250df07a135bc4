"""How the handoff queue's per-call cost grows with a long transcript and a long queue.

Security review #11 (finding 6): ``add_entry`` used to reload every entry (twice), so a
conversation of n messages cost O(n²); ``position()`` loaded every open ticket; the open
list had no LIMIT. This measures, on a fresh database:

- ``add_entry`` with a transcript of each size in ``--entries`` (median of ``--repeat`` calls);
- ``position()`` and the first page of the open list with each number of open tickets in ``--tickets``.

Flat numbers across sizes mean a call's cost no longer depends on the transcript's or the
queue's length (beyond the database's index lookups).

Usage::

    .venv/bin/python benchmarks/queue_scale.py                      # SQLite in a temporary folder
    .venv/bin/python benchmarks/queue_scale.py --database postgresql://postgres@127.0.0.1:5432/bench
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.settings import Limits  # noqa: E402
from bot.handoff.packet import HandoffPacket, Turn  # noqa: E402
from bot.store.database import make_engine  # noqa: E402
from bot.store.queue import Queue  # noqa: E402

NO_LIMITS = Limits(0, 0, 0, 0, 0)


def _median_ms(call: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(times), 3)


def add_entry_cost(queue: Queue, sizes: list[int], repeat: int) -> dict[int, float]:
    """Median milliseconds of one ``add_entry`` on a transcript of each size."""
    results = {}
    for n, size in enumerate(sizes):
        ticket, _ = queue.enqueue(HandoffPacket(f"bench-entries-{n}:1", f"bench-entries-{n}", ["human_request"],
                                                [Turn("customer", f"発言 {i}") for i in range(size)]))
        results[size] = _median_ms(lambda: queue.add_entry(ticket.id, "agent", "お待たせしました。", "佐藤"), repeat)
    return results


def queue_costs(queue: Queue, sizes: list[int], repeat: int) -> dict[int, dict[str, float]]:
    """Median milliseconds of ``position()`` (the last ticket) and of the first page of 50, per queue length."""
    results, filed, last = {}, 0, 0
    for size in sorted(sizes):
        while filed < size:
            last = queue.enqueue(HandoffPacket(f"bench-queue-{filed}:1", f"bench-queue-{filed}", ["human_request"],
                                               [Turn("customer", "質問")]))[0].id
            filed += 1
        results[size] = {"position_ms": _median_ms(lambda: queue.position(last), repeat),
                         "first_page_ms": _median_ms(lambda: queue.tickets("open", limit=50), repeat)}
    return results


def main(argv: list[str] | None = None) -> int:
    """Run and print the results as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default="", help="database URL (default: SQLite in a temporary folder)")
    parser.add_argument("--entries", default="10,1000,5000", help="transcript sizes (comma separated)")
    parser.add_argument("--tickets", default="10,1000,3000", help="open tickets (comma separated)")
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="queue-scale-") as folder:
        engine = make_engine(args.database or f"sqlite:///{Path(folder) / 'bench.db'}")
        try:
            queue = Queue(engine, NO_LIMITS)
            result = {"database": engine.dialect.name,
                      "add_entry_ms": add_entry_cost(queue, [int(x) for x in args.entries.split(",")], args.repeat),
                      "queue": queue_costs(queue, [int(x) for x in args.tickets.split(",")], args.repeat)}
        finally:
            engine.dispose()
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
