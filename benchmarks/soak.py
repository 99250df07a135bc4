"""Soak: moderate conversation load on the scaled stack for 20 minutes; memory stays flat (#12).

Starts the stack of ``make run-scaled`` as :mod:`benchmarks.conversation_load` does (nginx,
2 bot servers, 2 Rasa servers on one PostgreSQL tracker store and the Redis lock store, 2
action servers; a throw-away PostgreSQL database), warms each Rasa server up, then for
``--minutes``:

- **Load:** ``--customers`` WebSocket customers through nginx, each in a loop: a new
  conversation of 4–6 turns (:func:`benchmarks.conversation_load.widget_customer`: FAQ
  questions, small talk, a vague question, thanks), then a pause of 1–3 s per turn it had
  (the customer reading and typing). The turns of one conversation go back to back (that
  helper has no pause between turns), so the pause is taken after the conversation; the
  average rate per customer is the same as with 1–3 s between turns, about one turn per
  2.3 s: 20 customers make about 8 turns/s, half of what the stack serves on this machine
  (16–20 turns/s at N=50, README). No handoffs: the scaled stack has no staffed-hours
  knowledge or agent helper (benchmarks/handoff_load.py drives one BotStack,
  benchmarks/desk_load.py the queue without servers).
- **Memory:** every ``--interval`` s (30) the resident set (``VmRSS`` of
  ``/proc/PID/status``) of every process of the stack: each bot server, Rasa server and
  action server, nginx's master and its workers, and any child process they start.

Reported per process: RSS at the end of the warm-up (``--warmup-minutes``, 2), at the end,
the maximum, and the slope of the least-squares line through the samples from the end of
the warm-up on, in MB per 10 minutes. **A process is flat when that slope is under
5 MB per 10 minutes** (:data:`FLAT_MB_PER_10_MIN`, 30 MB an hour). For the load: turns
completed, turns/s, p50/p95 latency (sending a message to the first bot message) per
5-minute window, and failed turns (a conversation stops at its first failed turn, so one
per failed conversation; its earlier turns are not counted as completed).

Usage: ``flock /tmp/bench.lock .venv/bin/python -m benchmarks.soak --minutes 20``
(``--customers 20``, ``--model models/current.tar.gz``). Writes ``results/soak.json`` and
prints a Markdown table. Exit code 1 when a process is not flat or died during the run.
Every wait on the network is bounded (``--turn-timeout``); the stack is stopped and the
database dropped on every exit, SIGTERM included.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.conversation_load import (  # noqa: E402
    PROJECT_ROOT, percentile, rest_crowd, save_result, scaled_stack, script, widget_customer)
from benchmarks.provenance import run_provenance  # noqa: E402
from deploy.run_scaled import ScaledStack  # noqa: E402

FLAT_MB_PER_10_MIN = 5.0  # a process whose RSS grows faster than this after the warm-up is not flat
WINDOW_SECONDS = 300.0  # latency windows of 5 minutes
THINK_SECONDS = (1.0, 3.0)  # pause per turn of the last conversation


# ---- pure parts (tests/test_soak_math.py) ----------------------------------------------------


def slope_per_10_min(samples: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of ``(seconds, MB)`` samples in MB per 10 minutes; None with fewer
    than two distinct times."""
    if len({t for t, _ in samples}) < 2:
        return None
    mean_t = sum(t for t, _ in samples) / len(samples)
    mean_v = sum(v for _, v in samples) / len(samples)
    covariance = sum((t - mean_t) * (v - mean_v) for t, v in samples)
    variance = sum((t - mean_t) ** 2 for t, _ in samples)
    return covariance / variance * 600.0


def is_flat(slope: float | None, bound: float = FLAT_MB_PER_10_MIN) -> bool | None:
    """Whether a post-warm-up slope (MB per 10 min) is under ``bound``; None without a slope."""
    return None if slope is None else slope < bound


def memory_summary(samples: list[tuple[float, float]], warmup: float) -> dict[str, Any]:
    """One process's figures from its ``(seconds, MB)`` samples: RSS at the end of the warm-up
    (the last sample at or before ``warmup`` s), at the end, the maximum, the slope after it."""
    before = [v for t, v in samples if t <= warmup]
    after = [(t, v) for t, v in samples if t >= warmup]
    slope = slope_per_10_min(after)
    return {"warmup_end_mb": round(before[-1], 1) if before else None, "end_mb": round(samples[-1][1], 1),
            "max_mb": round(max(v for _, v in samples), 1), "samples_after_warmup": len(after),
            "slope_mb_per_10_min": None if slope is None else round(slope, 2), "flat": is_flat(slope)}


def latency_windows(turns: list[tuple[float, float]], seconds: float,
                    window: float = WINDOW_SECONDS) -> list[dict[str, Any]]:
    """Turns/s, p50 and p95 of ``(finished at s, latency s)`` turns in windows of ``window`` s over
    a run of ``seconds``; turns that finish after it (the last conversations) count in the last window."""
    count = max(1, math.ceil(seconds / window))
    latencies: list[list[float]] = [[] for _ in range(count)]
    for at, latency in turns:
        latencies[min(count - 1, int(at // window))].append(latency)
    rows = []
    for index, values in enumerate(latencies):
        start, end = index * window, min((index + 1) * window, seconds)
        rows.append({"from_min": round(start / 60, 1), "to_min": round(end / 60, 1), "turns": len(values),
                     "turns_per_s": round(len(values) / (end - start), 2) if end > start else None,
                     "p50_ms": percentile(values, 0.50) if values else None,
                     "p95_ms": percentile(values, 0.95) if values else None})
    return rows


# ---- processes and their memory ----------------------------------------------------------------


def rss_mb(pid: int) -> float | None:
    """Resident set of a process in MB (``VmRSS``); None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text(encoding="utf-8").splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def children_of() -> dict[int, list[int]]:
    """Every process's children (parent PID from ``/proc/PID/stat``)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text(encoding="utf-8")
        except (FileNotFoundError, ProcessLookupError):
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])  # the command may hold spaces and ")"
        children.setdefault(parent, []).append(int(entry.name))
    return children


def stack_processes(stack: ScaledStack) -> dict[str, int]:
    """Label → PID of every process of the stack: each started process (``bot-1``, ``rasa-2``,
    ``nginx`` …, its master for nginx) and every descendant (nginx's workers)."""
    tree = children_of()
    found: dict[str, int] = {}
    for name, proc in sorted(stack._procs.items()):  # noqa: SLF001 (as benchmarks/gateway_profile.py)
        if proc.poll() is not None:
            continue
        found[name] = proc.pid
        pending = list(tree.get(proc.pid, []))
        while pending:
            pid = pending.pop()
            kind = "worker" if name == "nginx" else "child"
            found[f"{name} {kind} {pid}"] = pid
            pending += tree.get(pid, [])
    return found


@dataclass
class Soak:
    """One soak run: the load's records and the memory samples, in seconds since the start."""

    stack: ScaledStack
    customers: int
    seconds: float
    timeout: float
    interval: float
    rng: random.Random = field(default_factory=lambda: random.Random(12))
    started: float = 0.0
    turns: list[tuple[float, float]] = field(default_factory=list)
    failures: list[tuple[float, str]] = field(default_factory=list)
    memory: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)
    ended: float = 0.0

    def now(self) -> float:
        """Seconds since the load began."""
        return time.monotonic() - self.started

    def sample(self) -> None:
        """The RSS of every process of the stack now."""
        at = self.now()
        for label, pid in stack_processes(self.stack).items():
            value = rss_mb(pid)
            if value is not None:
                self.pids[label] = pid
                self.memory.setdefault(label, []).append((at, value))

    async def sampler(self) -> None:
        """:meth:`sample` every ``interval`` s until the end of the load."""
        while self.now() < self.seconds:
            self.sample()
            await asyncio.sleep(min(self.interval, max(0.0, self.seconds - self.now())))

    async def customer(self, index: int) -> None:
        """One customer's loop of conversations, each through nginx, until the end."""
        await asyncio.sleep(self.rng.uniform(0.0, 5.0))  # not all at once
        loop = 0
        while self.now() < self.seconds:
            conversation = index + loop * self.customers  # a different mix of turns each loop
            count = len(script(conversation))
            try:
                # Each frame is bounded by the helper; the whole conversation too, in case of a trickle.
                latencies = await asyncio.wait_for(widget_customer(self.stack.url, conversation, self.timeout),
                                                   self.timeout * (count + 2))
                at = self.now()
                self.turns += [(at, latency) for latency in latencies]
            except Exception as error:  # noqa: BLE001 (a failed turn is a result, the others go on)
                self.failures.append((self.now(), repr(error)[:300]))
            loop += 1
            think = sum(self.rng.uniform(*THINK_SECONDS) for _ in range(count))
            await asyncio.sleep(min(think, max(0.0, self.seconds - self.now())))

    async def run(self) -> None:
        """The load and the sampler together; a last sample once every conversation has ended."""
        self.started = time.monotonic()
        await asyncio.gather(self.sampler(), *(self.customer(i) for i in range(self.customers)))
        self.ended = self.now()
        self.sample()

    def report(self, warmup: float) -> dict[str, Any]:
        """Memory per process, the load per window, and which processes died (gone from the
        stack before the end)."""
        alive = stack_processes(self.stack)
        processes = {label: {"pid": self.pids[label], **memory_summary(values, warmup)}
                     for label, values in self.memory.items()}
        died = sorted(label for label in self.memory if label not in alive)
        return {"seconds": round(self.ended, 1), "processes": processes, "died": died,
                "all_flat": bool(processes) and all(p["flat"] for p in processes.values()) and not died,
                "load": {"turns": len(self.turns), "turns_per_s": round(len(self.turns) / self.ended, 2),
                         "failed_turns": len(self.failures),
                         "first_failures": [f"{at:.0f} s: {text}" for at, text in self.failures[:5]],
                         "windows": latency_windows(self.turns, self.seconds)},
                "samples": {label: [[round(t, 1), round(v, 1)] for t, v in values]
                            for label, values in self.memory.items()}}


def table(result: dict[str, Any]) -> str:
    """The README's tables: memory per process, then the load per window."""
    bound = result["flat_bound_mb_per_10_min"]
    lines = [f"| process | RSS after warm-up MB | RSS at end MB | max MB | slope MB/10 min | flat (< {bound}) |",
             "|---|---|---|---|---|---|"]
    for label, row in result["processes"].items():
        flat = {True: "yes", False: "**no**", None: "n/a"}[row["flat"]]
        lines.append(f"| {label} | {row['warmup_end_mb']} | {row['end_mb']} | {row['max_mb']} | "
                     f"{row['slope_mb_per_10_min']} | {flat} |")
    load = result["load"]
    lines += ["", f"Turns: {load['turns']} ({load['turns_per_s']}/s), failed turns: {load['failed_turns']}"
              + (f", died: {', '.join(result['died'])}" if result["died"] else ""), "",
              "| minutes | turns | turns/s | p50 ms | p95 ms |", "|---|---|---|---|---|"]
    for row in load["windows"]:
        lines.append(f"| {row['from_min']}–{row['to_min']} | {row['turns']} | {row['turns_per_s']} | "
                     f"{row['p50_ms']} | {row['p95_ms']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Start the stack on a throw-away database, soak, print and save."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--customers", type=int, default=20)
    parser.add_argument("--warmup-minutes", type=float, default=2.0)
    parser.add_argument("--interval", type=float, default=30.0, help="seconds between memory samples")
    parser.add_argument("--model", type=Path, default=PROJECT_ROOT / "models" / "current.tar.gz")
    parser.add_argument("--turn-timeout", type=float, default=60.0)
    args = parser.parse_args(argv)
    # SIGTERM (a timeout, a supervisor) unwinds like Ctrl-C: the stack's processes run in their
    # own sessions and would outlive this one.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    provenance = run_provenance(args.model)
    with scaled_stack(args.model, "soak") as stack:
        for replica in stack.replicas:  # each Rasa server's first turns load lazily: not measured
            asyncio.run(rest_crowd(replica.rasa_url, 4, args.turn_timeout))
        soak = Soak(stack, args.customers, args.minutes * 60, args.turn_timeout, args.interval)
        asyncio.run(soak.run())
        measured = soak.report(args.warmup_minutes * 60)
    result = {**provenance, "minutes": args.minutes, "customers": args.customers,
              "warmup_minutes": args.warmup_minutes, "interval_s": args.interval,
              "flat_bound_mb_per_10_min": FLAT_MB_PER_10_MIN, **measured}
    out = save_result("soak.json", result)
    print(table(result))
    print(f"\n{out}")
    return 0 if result["all_flat"] else 1


if __name__ == "__main__":
    sys.exit(main())
