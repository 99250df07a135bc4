"""The handoff benchmark with and without a slow webhook receiver (#15): a slow endpoint must not slow the chat.

Usage::

    .venv/bin/python -m benchmarks.webhook_load [--conversations 200] [--delay 2] [--rounds 1]

One run measures the scenario of :mod:`benchmarks.handoff_load` (200 angry customers over
10 s, the real Rasa, action and bot servers, a fresh database each) in pairs:

- ``plain``: no webhooks file;
- ``webhooks``: ``BOT_WEBHOOKS_FILE`` subscribes one receiver to every event type
  (:data:`bot.webhooks.config.EVENTS`); the receiver (:mod:`benchmarks.webhook_receiver`,
  its own process on loopback) answers each POST after ``--delay`` seconds (2 s). After the
  load is measured, the agent claims and resolves every ticket, so each ticket has three
  events (created, claimed, resolved) whose order can be checked; then the run waits until
  the delivery queue is empty (or ``--drain-timeout``).

``--rounds N`` runs N pairs, alternating which goes first (plain first in odd rounds), so
that the machine's drift does not always favour the same variant. Reported: each run's
chat latency figures (message → ticket on the console, message → the customer's handoff
reply: p50 / p95 / max), the median of each over the rounds, the ratio with / without, and
for the webhook runs whether every event arrived: events in the queue, received, lost,
dead-lettered, repeats (same id), signatures, and order per ticket.

Results: a table on stdout, headed by the commit, ``results/bench/webhook_load.json``.
Exit code 0 when every handoff run was OK, every event was delivered in order with no
loss, and the median p50 and p95 latencies with webhooks are at most 10 % above those
without; 1 otherwise; 2 when a stack could not start.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx

from benchmarks.handoff_load import DEFAULT_RAMP, MODEL, OUT, Load, cpu_seconds, run_scenario
from benchmarks.provenance import run_provenance
from benchmarks.webhook_receiver import parse_log
from bot.launcher import BotStack, StartupError, free_port
from bot.settings import PROJECT_ROOT
from bot.webhooks.config import EVENTS

RESULT_FILE = OUT / "webhook_load.json"
LIMIT = 1.10  # with webhooks at most 10 % slower
AGENT_WORKERS = 3  # the agent's cap is 3 open chats: claim + resolve, three at a time
EXPECTED_ORDER = ["ticket.created", "ticket.claimed", "ticket.resolved"]
# (label, result key, figure): the chat latency figures of the handoff benchmark
FIGURES = [("送信 → コンソール", "latency_ms", "p50"), ("送信 → コンソール", "latency_ms", "p95"),
           ("送信 → コンソール", "latency_ms", "max"), ("送信 → 顧客に引き継ぎ返信", "reply_latency_ms", "p50"),
           ("送信 → 顧客に引き継ぎ返信", "reply_latency_ms", "p95"),
           ("送信 → 顧客に引き継ぎ返信", "reply_latency_ms", "max")]
JUDGED = {"p50", "p95"}  # max is one customer: reported, not judged


# ---- the receiver and the webhooks file --------------------------------------------------


@contextmanager
def slow_receiver(work: Path, delay: float) -> Iterator[tuple[Path, Path, int]]:
    """Start :mod:`benchmarks.webhook_receiver` in its own process; yield (webhooks file, request log, pid)."""
    port = free_port()
    key, log, config = work / "webhook.secret", work / "webhook-requests.jsonl", work / "webhooks.yml"
    key.write_text(secrets.token_hex(32), encoding="utf-8")
    config.write_text("endpoints:\n  - name: bench\n"
                      f"    url: http://127.0.0.1:{port}/hooks\n"
                      f"    events: [{', '.join(EVENTS)}]\n"
                      f"    secret_file: {key}\n", encoding="utf-8")
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.webhook_receiver", "--port", str(port),
                             "--delay", str(delay), "--secret-file", str(key), "--log", str(log)],
                            cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=(work / "receiver.log").open("w"))
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/", timeout=1, trust_env=False)
                break
            except httpx.HTTPError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise StartupError(f"webhook receiver did not start; see {work / 'receiver.log'}") from None
                time.sleep(0.2)
        yield config, log, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# ---- after the load: the agent's work, the queue drained, the deliveries checked ----------


async def claim_and_resolve(stack: BotStack, load: Load, ticket_ids: list[int]) -> dict[str, int]:
    """The agent claims and resolves every ticket (a ``claimed`` and a ``resolved`` event each)."""
    done = {"claimed": 0, "resolved": 0, "refused": 0}
    todo = asyncio.Queue()
    for ticket_id in ticket_ids:
        todo.put_nowait(ticket_id)

    async def worker(client: httpx.AsyncClient) -> None:
        while not todo.empty():
            ticket_id = todo.get_nowait()
            for step in ("claim", "resolve"):
                for _ in range(20):  # 409 while an automatic offer holds a slot: try again shortly
                    response = await client.post(f"/api/tickets/{ticket_id}/{step}")
                    if response.status_code != 409:
                        break
                    await asyncio.sleep(0.25)
                if response.status_code != 200:
                    done["refused"] += 1
                    break
                done["claimed" if step == "claim" else "resolved"] += 1

    async with httpx.AsyncClient(base_url=stack.server_url, timeout=30, trust_env=False) as client:
        client.headers["X-CSRF-Token"] = await load.login(client)
        await asyncio.gather(*(worker(client) for _ in range(AGENT_WORKERS)))
    return done


def delivery_rows(url: str) -> list[dict[str, Any]]:
    """Every row of the webhook delivery queue, in the order the events were written."""
    from sqlalchemy import select

    from bot.store.database import make_engine
    from bot.store.models import WebhookDelivery

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(WebhookDelivery.id, WebhookDelivery.event_id, WebhookDelivery.event_type,
                                       WebhookDelivery.ticket_id, WebhookDelivery.status,
                                       WebhookDelivery.attempts).order_by(WebhookDelivery.id)).all()
        return [dict(row._mapping) for row in rows]
    finally:
        engine.dispose()


async def drained(url: str, timeout: float) -> tuple[list[dict[str, Any]], float]:
    """Wait until no row is pending or sending (at most ``timeout`` s); the rows and the wait."""
    began = time.monotonic()
    while True:
        rows = await asyncio.to_thread(delivery_rows, url)
        waited = time.monotonic() - began
        if all(r["status"] not in ("pending", "sending") for r in rows) or waited > timeout:
            return rows, round(waited, 1)
        await asyncio.sleep(1.0)


def check_deliveries(rows: list[dict[str, Any]], requests: list[dict[str, Any]]) -> dict[str, Any]:
    """Compare the queue with what the receiver got: loss, repeats, signatures, order per ticket."""
    received: dict[str, int] = {}  # event id -> first arrival (seq)
    for request in requests:
        received.setdefault(str(request.get("id")), int(request["seq"]))
    lost = [r["event_id"] for r in rows if r["event_id"] not in received]
    by_ticket: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        by_ticket.setdefault(int(row["ticket_id"]), []).append(row)
    out_of_order = []
    for ticket_id, events in by_ticket.items():
        arrived = sorted((e for e in events if e["event_id"] in received), key=lambda e: received[e["event_id"]])
        if [e["id"] for e in arrived] != [e["id"] for e in events if e["event_id"] in received] \
                or [e["event_type"] for e in events] != EXPECTED_ORDER:
            out_of_order.append(ticket_id)
    counts = {t: sum(r["event_type"] == t for r in rows) for t in EVENTS}
    result = {
        "events": len(rows), "by_type": {t: n for t, n in counts.items() if n},
        "tickets": len(by_ticket), "delivered": sum(r["status"] == "delivered" for r in rows),
        "dead": sum(r["status"] == "dead" for r in rows),
        "still_queued": sum(r["status"] in ("pending", "sending") for r in rows),
        "requests": len(requests), "received_events": len(received), "lost": len(lost), "lost_ids": lost[:20],
        "repeated_requests": len(requests) - len(received),
        "bad_signatures": sum(not r.get("signature_ok") for r in requests),
        "unknown_events": len(set(received) - {r["event_id"] for r in rows}),
        "tickets_out_of_order": sorted(out_of_order)[:20], "out_of_order": len(out_of_order),
    }
    result["ok"] = (result["events"] > 0 and result["delivered"] == result["events"] and not result["lost"]
                    and not result["bad_signatures"] and not result["out_of_order"] and not result["unknown_events"])
    return result


def after_load(log: Path, receiver_pid: int, drain_timeout: float) -> Callable[[BotStack, Load, str], Any]:
    """The webhook run's step between the load and the stack's stop (:data:`benchmarks.handoff_load.AfterLoad`)."""

    async def step(stack: BotStack, load: Load, url: str) -> dict[str, Any]:
        ticket_ids = sorted({i for ids in load.created_ids.values() for i in ids if i})
        print(f"   担当者が {len(ticket_ids)} 件を対応開始・解決します…", flush=True)
        agent = await claim_and_resolve(stack, load, ticket_ids)
        rows, waited = await drained(url, drain_timeout)
        check = check_deliveries(rows, parse_log(log))
        return {"webhooks": {**check, "agent": agent, "drain_wait_s": waited,
                             "receiver_cpu_s": round(cpu_seconds(receiver_pid), 2)}}

    return step


# ---- the runs ----------------------------------------------------------------------------------


async def run_pair(index: int, args: argparse.Namespace) -> list[dict[str, Any]]:
    """One plain and one webhook run (plain first in odd rounds)."""
    order = ["plain", "webhooks"] if index % 2 else ["webhooks", "plain"]
    results = []
    for variant in order:
        name = f"{variant}-{index}"
        if variant == "plain":
            result = await run_scenario(name, args.database, None, args)
        else:
            work = Path(tempfile.mkdtemp(prefix="webhook-bench-"))
            with slow_receiver(work, args.delay) as (config, log, pid):
                result = await run_scenario(name, args.database, None, args,
                                            extra_env={"BOT_WEBHOOKS_FILE": str(config)},
                                            after_load=after_load(log, pid, args.drain_timeout))
            if args.keep or not (result["ok"] and result["webhooks"]["ok"]):
                result["receiver_work"] = str(work)
            else:
                shutil.rmtree(work, ignore_errors=True)
        results.append({**result, "variant": variant, "round": index})
    return results


def median_figures(results: list[dict[str, Any]], variant: str) -> dict[str, float | None]:
    """Median over the rounds of each latency figure of one variant."""
    figures: dict[str, float | None] = {}
    for _, key, figure in FIGURES:
        values = [r[key][figure] for r in results if r["variant"] == variant and r[key][figure] is not None]
        figures[f"{key}.{figure}"] = round(statistics.median(values), 1) if values else None
    return figures


def compare(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians of both variants, the ratios with / without and the verdict on p50 and p95."""
    plain, hooked = median_figures(results, "plain"), median_figures(results, "webhooks")
    ratios = {k: (round(hooked[k] / plain[k], 3) if plain[k] and hooked[k] is not None else None) for k in plain}
    judged = [ratios[f"{key}.{figure}"] for _, key, figure in FIGURES if figure in JUDGED]
    return {"plain": plain, "webhooks": hooked, "ratio": ratios,
            "latency_ok": all(r is not None and r <= LIMIT for r in judged)}


def others_cpu(result: dict[str, Any]) -> float:
    """CPU seconds the rest of the machine used during the load (other people's jobs; the receiver)."""
    cpu = result.get("cpu_s") or {}
    return max(0.0, cpu.get("machine", 0.0) - sum(v for k, v in cpu.items() if k != "machine"))


def adjusted_effect(runs: list[dict[str, Any]], key: str, figure: str) -> dict[str, float] | None:
    """The webhooks' effect on one latency figure, adjusted for the other jobs on the machine.

    Least squares on the log of the figure with an intercept per invocation (``batch``),
    the variant and the CPU seconds other processes used during the load
    (:func:`others_cpu`): ``ratio`` is with / without at equal interference, ``low`` and
    ``high`` its 95 % interval; ``per_other_cpu_s``: the factor one such second costs.
    ``None`` when there are too few runs (fewer than two degrees of freedom).
    """
    import numpy as np

    usable = [r for r in runs if r[key][figure] and "machine" in (r.get("cpu_s") or {})]
    batches = sorted({r.get("batch", 0) for r in usable})
    columns = [[float(r.get("batch", 0) == b) for b in batches] + [float(r["variant"] == "webhooks"), others_cpu(r)]
               for r in usable]
    x, y = np.array(columns), np.log([r[key][figure] for r in usable])
    dof = len(y) - x.shape[1]
    if dof < 2 or np.linalg.matrix_rank(x) < x.shape[1]:
        return None
    beta, *_ = np.linalg.lstsq(x, y, rcond=None)
    residual = y - x @ beta
    se = np.sqrt(np.diag(residual @ residual / dof * np.linalg.inv(x.T @ x)))
    t95 = {2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57, 6: 2.45, 7: 2.36, 8: 2.31, 9: 2.26, 10: 2.23}.get(dof, 2.0)
    effect, spread = beta[-2], t95 * se[-2]
    return {"ratio": round(float(np.exp(effect)), 3), "low": round(float(np.exp(effect - spread)), 3),
            "high": round(float(np.exp(effect + spread)), 3), "per_other_cpu_s": round(float(np.exp(beta[-1])), 4),
            "runs": len(y)}


def adjusted_lines(runs: list[dict[str, Any]]) -> list[str]:
    """One line per judged figure: the interference-adjusted ratio and its 95 % interval."""
    lines = []
    for label, key, figure in FIGURES:
        if figure not in JUDGED:
            continue
        found = adjusted_effect(runs, key, figure)
        lines.append(f"{label} {figure}: " + ("実行が足りません" if found is None else
                     f"あり / なし ×{found['ratio']:.2f} (95 % 区間 ×{found['low']:.2f}〜×{found['high']:.2f}, "
                     f"{found['runs']} 回; ほかのプロセスの CPU 1 秒あたり ×{found['per_other_cpu_s']:.3f})"))
    return lines


def analyse(files: list[Path]) -> int:
    """Pool saved runs (results/bench/webhook_load.json copies): the adjusted effect over all of them."""
    runs = []
    for batch, path in enumerate(files):
        saved = json.loads(path.read_text(encoding="utf-8"))
        runs += [{**r, "batch": batch} for r in saved["runs"]]
        print(f"{path}: {saved['provenance']['commit']} {saved['measured_at']}, {len(saved['runs'])} 回")
    print("\nほかのプロセスの CPU で補正した遅延の比 (実行ごとの切片つき最小二乗):")
    for line in adjusted_lines(runs):
        print(f"  {line}")
    return 0


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value / 1000:.2f} s"


def table(results: list[dict[str, Any]], summary: dict[str, Any]) -> str:
    """Markdown: one column per run, then the medians and the ratio."""
    head = [r["scenario"] for r in results] + ["中央値 なし", "中央値 あり", "比 (あり / なし)"]
    lines = ["| | " + " | ".join(head) + " |", "|---|" + "---|" * len(head)]
    for label, key, figure in FIGURES:
        ref = f"{key}.{figure}"
        cells = [_ms(r[key][figure]) for r in results]
        ratio = summary["ratio"][ref]
        cells += [_ms(summary["plain"][ref]), _ms(summary["webhooks"][ref]), "—" if ratio is None else f"{ratio:.2f}"]
        lines.append(f"| {label} {figure} | " + " | ".join(cells) + " |")
    rows = [("チケット 期待 / 実数", lambda r: f"{r['tickets']['expected']} / {r['tickets']['found']}"),
            ("ハンドオフ判定", lambda r: "OK" if r["ok"] else "NG"),
            ("負荷中の CPU 秒 Rasa / actions / bot server / ベンチ",
             lambda r: " / ".join(str(r["cpu_s"].get(k, "—")) for k in ("rasa", "actions", "server", "benchmark"))),
            ("負荷中の CPU 秒 ほかのプロセス (受信側を含む)", lambda r: f"{others_cpu(r):.1f}"),
            ("負荷の時間 (最初の送信 → 最後の着信, s)", lambda r: r["wall_s"])]
    for label, value in rows:
        lines.append(f"| {label} | " + " | ".join(str(value(r)) for r in results) + " | | | |")
    for label, key in [("イベント (キュー)", "events"), ("受信したイベント", "received_events"),
                       ("欠落", "lost"), ("配信不能 (dead)", "dead"), ("未配信のまま", "still_queued"),
                       ("同じ id の再送", "repeated_requests"), ("署名 NG", "bad_signatures"),
                       ("チケット内の順序違い", "out_of_order"), ("キューが空になるまで (s)", "drain_wait_s"),
                       ("受信側の CPU 秒 (実行全体)", "receiver_cpu_s")]:
        cells = [str(r["webhooks"][key]) if "webhooks" in r else "—" for r in results]
        lines.append(f"| {label} | " + " | ".join(cells) + " | | | |")
    return "\n".join(lines)


async def amain(args: argparse.Namespace) -> int:
    """Run the pairs; exit code."""
    provenance = run_provenance(MODEL)
    print(" ".join(f"{key} {value}" for key, value in provenance.items()), flush=True)
    results: list[dict[str, Any]] = []
    try:
        for index in range(1, args.rounds + 1):
            results += await run_pair(index, args)
    except StartupError as exc:
        print(f"起動できませんでした: {exc}", file=sys.stderr)
        return 2
    summary = compare(results)
    summary["adjusted"] = {f"{key}.{figure}": adjusted_effect(results, key, figure)
                           for _, key, figure in FIGURES if figure in JUDGED}
    deliveries_ok = all(r["webhooks"]["ok"] for r in results if r["variant"] == "webhooks")
    handoffs_ok = all(r["ok"] for r in results)
    print()
    print(table(results, summary))
    print("\nほかのプロセスの CPU で補正した遅延の比:")
    for line in adjusted_lines(results):
        print(f"  {line}")
    print(f"\n遅延 (p50・p95 の中央値、あり / なし ≤ {LIMIT:.2f}): {'OK' if summary['latency_ok'] else 'NG'}; "
          f"全イベント配信・順序どおり・欠落なし: {'OK' if deliveries_ok else 'NG'}; "
          f"ハンドオフ: {'OK' if handoffs_ok else 'NG'}")
    print(" ".join(f"{key} {value}" for key, value in provenance.items()))
    OUT.mkdir(parents=True, exist_ok=True)
    RESULT_FILE.write_text(json.dumps({"provenance": provenance, "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                                       "delay_s": args.delay, "summary": summary, "runs": results},
                                      ensure_ascii=False, indent=2), encoding="utf-8")
    print(f"\n{RESULT_FILE.relative_to(PROJECT_ROOT)} に保存しました。")
    return 0 if summary["latency_ok"] and deliveries_ok and handoffs_ok else 1


def main() -> None:
    """Parse the arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=200, help="concurrent customers (default 200)")
    parser.add_argument("--delay", type=float, default=2.0, help="seconds the receiver takes per request (default 2)")
    parser.add_argument("--rounds", type=int, default=1, help="pairs of runs, alternating which goes first")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--ramp", type=float, default=DEFAULT_RAMP,
                        help=f"seconds over which the customers' messages are spread (default {DEFAULT_RAMP:g})")
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="seconds after the last send to wait for every ticket")
    parser.add_argument("--drain-timeout", type=float, default=300.0,
                        help="seconds to wait for the webhook queue to empty after the agent's work")
    parser.add_argument("--keep", action="store_true", help="keep the work folders of OK runs")
    parser.add_argument("--analyse", type=Path, nargs="+", metavar="JSON",
                        help="run nothing: pool saved results files and print the interference-adjusted ratios")
    args = parser.parse_args()
    if args.analyse:
        sys.exit(analyse(args.analyse))
    if args.conversations < 1 or args.rounds < 1:
        parser.error("--conversations and --rounds must be at least 1")
    sys.exit(asyncio.run(amain(args)))


if __name__ == "__main__":
    main()
