"""Measure one trained model in a fresh process: load time, latency, throughput, memory, accuracy.

Run by benchmarks/nlu_pipelines.py, one process per model so memory figures do not mix.
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path


def rss_mb() -> tuple[float, float]:
    """Current and peak resident memory of this process (MB), from /proc."""
    values = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            key, amount, _ = line.split()
            values[key] = int(amount) / 1024
    return values["VmRSS:"], values["VmHWM:"]


def main() -> None:
    """Measure and print JSON."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--heldout", required=True)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from bot.evaluation.report import load_labelled, score, unseen_only
    from bot.settings import PROJECT_ROOT

    # The caller (nlu_pipelines.train) only measures a model trained from the current data,
    # so "unseen" here means unseen by this model.
    rows, dropped = unseen_only(load_labelled(Path(args.heldout)), PROJECT_ROOT / "data" / "nlu")
    started = time.perf_counter()
    from bot.assistant import Assistant

    assistant = Assistant(Path(args.model))
    load_s = time.perf_counter() - started
    rss_loaded, _ = rss_mb()

    for row in rows[:20]:  # warm-up: lazy imports, caches
        assistant.decide(row["text"])
    latencies = []
    decisions = []
    run_started = time.perf_counter()
    for round_no in range(args.rounds):
        for row in rows:
            t0 = time.perf_counter()
            decision = assistant.decide(row["text"])
            latencies.append((time.perf_counter() - t0) * 1000)
            if round_no == 0:
                decisions.append(decision.as_dict())
    elapsed = time.perf_counter() - run_started
    parse_latencies = []
    for row in rows:
        t0 = time.perf_counter()
        assistant.parse(row["text"])
        parse_latencies.append((time.perf_counter() - t0) * 1000)
    rss_after, rss_peak = rss_mb()
    result = score(rows, decisions)
    quantiles = statistics.quantiles(latencies, n=100)
    parse_q = statistics.quantiles(parse_latencies, n=100)
    print(json.dumps({
        "model": args.model,
        "accuracy_messages": len(rows),
        "accuracy_dropped_as_training_text": dropped,
        "load_s": round(load_s, 2),
        "decide_p50_ms": round(quantiles[49], 2),
        "decide_p95_ms": round(quantiles[94], 2),
        "parse_p50_ms": round(parse_q[49], 2),
        "parse_p95_ms": round(parse_q[94], 2),
        "throughput_msgs_per_s": round(len(latencies) / elapsed, 1),
        "rss_loaded_mb": round(rss_loaded, 1),
        "rss_peak_mb": round(rss_peak, 1),
        "rss_after_mb": round(rss_after, 1),
        **result.summary(),
    }))
    assistant.close()


if __name__ == "__main__":
    main()
