"""Where a turn's time goes in the bot server under load on 1 replica (issue #12's profile).

Starts one replica of ``make run-scaled`` (nginx, a bot server, a Rasa server on the PostgreSQL
tracker store and the Redis lock store, an action server) on a fresh database, then replaces
its bot server by benchmarks/gateway_spans.py (the same server with timing spans). For each N,
N customers have the conversations of benchmarks/conversation_load.py straight on the bot
server, then the same turns go straight to Rasa's REST channel. Reported per N:

- the spans of the bot server (wait for a worker thread, each database step, the Rasa call,
  publishing, socket sends, the event loop's lag);
- CPU seconds per turn of the bot server, of Rasa and of the action server (from /proc), for
  our run and for Rasa's REST channel alone;
- for both, the p50 and the longest latency of each conversation's first, second … turn;
- a third run that opens the conversations through the bot server (session, socket, history) but
  sends their turns straight to Rasa's REST channel: the same start as our run without the
  gateway on the turns' path (``*_ratio_same_start``);
- with ``--py-spy PATH``: where the bot server's Python runs while it holds the GIL during
  the largest N (py-spy samples grouped by the library or step they are in).

Usage: ``.venv/bin/python -m benchmarks.gateway_profile --customers 50 [--py-spy /path/to/py-spy]``.
Writes ``results/gateway_profile.json``. Loopback only; every run bounded (``--turn-timeout``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.conversation_load import (PROJECT_ROOT, crowd, kept, percentile, rest_crowd,  # noqa: E402
                                          save_result, scaled_stack, widget_customer)
from deploy.run_scaled import ScaledStack  # noqa: E402

# py-spy frames are grouped by the first of these found in the stack, innermost first.
SAMPLE_GROUPS = [
    ("psycopg2", "database driver (psycopg2)"), ("sqlalchemy", "SQLAlchemy (ORM, pool, SQL compile)"),
    ("masking", "masking the customer's text"), ("wsproto", "WebSocket framing (wsproto)"),
    ("redis", "Redis client"), ("hmac", "relay signing (HMAC)"), ("seal", "relay signing (JSON)"),
    ("aiohttp", "Rasa HTTP client (aiohttp)"), ("json", "JSON"), ("uvicorn", "uvicorn"),
    ("starlette", "starlette"), ("anyio", "worker threads (anyio)"), ("bot/", "bot package (other)"),
    ("asyncio", "event loop"),
]


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its children that were waited for (/proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def group_samples(raw: str) -> dict[str, float]:
    """Shares of py-spy's raw (collapsed) samples by :data:`SAMPLE_GROUPS`."""
    counts: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = stack.split(";")[::-1]  # innermost first
        group = next((name for frame in frames for key, name in SAMPLE_GROUPS if key in frame), "other")
        counts[group] += int(count)
    total = sum(counts.values()) or 1
    return {name: round(count / total, 3) for name, count in counts.most_common()}


def ratios(suffix: str, ours: dict[str, Any], theirs: dict[str, Any]) -> dict[str, float | None]:
    """``p95_ratio{suffix}`` and ``p50_ratio{suffix}``: our percentiles over theirs."""
    return {f"{name}_ratio{suffix}": round(ours[f"{name}_ms"] / theirs[f"{name}_ms"], 2) if theirs[f"{name}_ms"]
            else None for name in ("p95", "p50")}


def by_turn(conversations: list[list[float]]) -> list[dict[str, Any]]:
    """p50 and the longest latency of the first, second … turn of every conversation (ms)."""
    rows = []
    for index in range(max((len(c) for c in conversations), default=0)):
        values = [c[index] for c in conversations if len(c) > index]
        rows.append({"turn": index + 1, "count": len(values), "p50_ms": percentile(values, 0.5),
                     "max_ms": round(max(values) * 1000, 1)})
    return rows


class Profiled:
    """The stack of one replica with the span-instrumented bot server in place of its own."""

    def __init__(self, stack: ScaledStack, spans_file: Path) -> None:
        """Swap bot server 1 for benchmarks/gateway_spans.py on the same port and settings."""
        self.stack = stack
        self.replica = stack.replicas[0]
        self.spans_file = spans_file
        stack.kill("bot-1")
        env = {**stack.replica_env(self.replica), "BOT_SPANS_FILE": str(spans_file)}
        self.bot = stack._spawn("bot-1", [sys.executable, "-m", "benchmarks.gateway_spans",
                                          "--port", str(self.replica.server_port)], env)
        stack.wait("bot", self.replica)
        self.pids = {"bot server": self.bot.pid, "rasa": stack._procs["rasa-1"].pid,
                     "action server": stack._procs["actions-1"].pid}

    def cpu(self) -> dict[str, float]:
        """CPU seconds of each process so far."""
        return {name: cpu_seconds(pid) for name, pid in self.pids.items()}

    def spans(self) -> dict[str, Any]:
        """The bot server's spans since the last reset."""
        self.spans_file.unlink(missing_ok=True)
        self.bot.send_signal(signal.SIGUSR2)
        for _ in range(100):
            if self.spans_file.exists() and self.spans_file.stat().st_size:
                time.sleep(0.05)
                return json.loads(self.spans_file.read_text(encoding="utf-8"))
            time.sleep(0.05)
        raise RuntimeError("the bot server wrote no spans")

    def run(self, size: int, timeout: float, py_spy: str | None) -> dict[str, Any]:
        """N customers on the bot server, then the same turns on Rasa's REST channel."""
        base = f"http://127.0.0.1:{self.replica.server_port}"
        self.bot.send_signal(signal.SIGUSR1)
        before = self.cpu()
        sampler = None
        if py_spy:
            out = self.stack.folder / f"py-spy-{size}.txt"
            sampler = subprocess.Popen([py_spy, "record", "--pid", str(self.bot.pid), "--gil", "--threads",
                                        "--format", "raw", "--rate", "200", "--output", str(out)],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.0)
        conversations: list[list[float]] = []
        ours = asyncio.run(crowd(size, lambda i: kept(widget_customer(base, i, timeout), conversations)))
        ours["by_turn"] = by_turn(conversations)
        if sampler is not None:
            sampler.send_signal(signal.SIGINT)
            sampler.wait(60)
        after = self.cpu()
        ours["spans"] = self.spans()
        ours["cpu_s_per_turn"] = {k: round((after[k] - before[k]) / max(1, ours["turns"]), 4) for k in after}
        if sampler is not None and out.exists():
            ours["py_spy_gil_samples"] = group_samples(out.read_text(encoding="utf-8"))
        before = self.cpu()
        conversations = []
        theirs = asyncio.run(rest_crowd(self.replica.rasa_url, size, timeout, conversations))
        theirs["by_turn"] = by_turn(conversations)
        after = self.cpu()
        theirs["cpu_s_per_turn"] = {k: round((after[k] - before[k]) / max(1, theirs["turns"]), 4)
                                    for k in ("rasa", "action server")}
        conversations = []
        opened = asyncio.run(self.opened_then_rasa(size, timeout, conversations))
        opened["by_turn"] = by_turn(conversations)
        return {"customers": size, "bot_server": ours, "rasa_rest": theirs, "opened_then_rasa_rest": opened,
                **ratios("", ours, theirs), **ratios("_same_start", ours, opened), "load_average": os.getloadavg()[0]}

    async def opened_then_rasa(self, size: int, timeout: float, into: list[list[float]]) -> dict[str, Any]:
        """Conversations opened through the bot server as the widget does, turns straight to Rasa's REST channel.

        The same start as our run (sessions and sockets first, so first turns reach Rasa as they
        do through the bot server), without the gateway on the turns' path.
        """
        import aiohttp

        base = f"http://127.0.0.1:{self.replica.server_port}"
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=size)) as session:
            rasa = (self.replica.rasa_url, session)
            return await crowd(size, lambda i: kept(widget_customer(base, i, timeout, rasa=rasa), into))


def main(argv: list[str] | None = None) -> int:
    """Start one replica on a throw-away database, profile every N, print and save."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, action="append", help="N (repeatable; default 50)")
    parser.add_argument("--model", type=Path, default=PROJECT_ROOT / "models" / "current.tar.gz")
    parser.add_argument("--turn-timeout", type=float, default=120.0)
    parser.add_argument("--py-spy", help="py-spy executable: sample the bot server during the largest N")
    args = parser.parse_args(argv)
    sizes = args.customers or [50]
    results = []
    with scaled_stack(args.model, "prof", replicas=1) as stack:
        profiled = Profiled(stack, stack.folder / "spans.json")
        asyncio.run(rest_crowd(profiled.replica.rasa_url, 4, args.turn_timeout))  # warm up, unmeasured
        base = f"http://127.0.0.1:{profiled.replica.server_port}"
        asyncio.run(crowd(8, lambda i: widget_customer(base, i, args.turn_timeout)))
        for size in sizes:
            sampled = args.py_spy if size == max(sizes) else None
            results.append(profiled.run(size, args.turn_timeout, sampled))
            print(json.dumps(results[-1], ensure_ascii=False, indent=1), flush=True)
    print(save_result("gateway_profile.json", results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
