"""benchmarks/webhook_load.py judges its own run: lost, repeated, unsigned or reordered events are caught.

No stack and no model: the queue rows and the receiver's log are built by hand, and the
receiver (benchmarks/webhook_receiver.py) is run in-process against signed and unsigned POSTs.
"""

from __future__ import annotations

import asyncio
import io
import json
import time
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from benchmarks.webhook_load import check_deliveries, compare
from benchmarks.webhook_receiver import make_app
from bot.webhooks.signing import EVENT_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, signature

ORDER = ["ticket.created", "ticket.claimed", "ticket.resolved"]


def queue_rows(tickets: int) -> list[dict[str, Any]]:
    """Three delivered events per ticket, written in the order the store writes them."""
    rows, row_id = [], 0
    for event in ORDER:
        for ticket in range(1, tickets + 1):
            row_id += 1
            rows.append({"id": row_id, "event_id": f"{ticket}-{event}", "event_type": event, "ticket_id": ticket,
                         "status": "delivered", "attempts": 1})
    return sorted(rows, key=lambda r: (r["id"]))


def received(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The receiver's log of ``rows`` sent in order, each once and signed."""
    return [{"seq": i + 1, "id": r["event_id"], "type": r["event_type"], "ticket_id": r["ticket_id"],
             "signature_ok": True} for i, r in enumerate(rows)]


def test_every_event_once_in_order_is_ok() -> None:
    rows = queue_rows(3)
    check = check_deliveries(rows, received(rows))
    assert check["ok"], check
    assert (check["events"], check["received_events"], check["lost"], check["out_of_order"]) == (9, 9, 0, 0)


def test_a_lost_event_a_dead_letter_and_a_repeat_are_counted() -> None:
    rows = queue_rows(2)
    log = received(rows)
    lost = log.pop(3)
    log.append({**log[0], "seq": 99})  # the same event id again (at least once)
    rows[-1]["status"] = "dead"
    check = check_deliveries(rows, log)
    assert not check["ok"]
    assert check["lost"] == 1 and check["lost_ids"] == [lost["id"]]
    assert check["repeated_requests"] == 1 and check["dead"] == 1


def test_events_of_one_ticket_out_of_order_fail() -> None:
    rows = queue_rows(2)
    log = received(rows)
    first = next(i for i, r in enumerate(log) if r["id"] == "1-ticket.created")
    second = next(i for i, r in enumerate(log) if r["id"] == "1-ticket.claimed")
    log[first]["seq"], log[second]["seq"] = log[second]["seq"], log[first]["seq"]
    check = check_deliveries(rows, log)
    assert not check["ok"] and check["tickets_out_of_order"] == [1]


def test_a_bad_signature_fails() -> None:
    rows = queue_rows(1)
    log = received(rows)
    log[1]["signature_ok"] = False
    assert check_deliveries(rows, log)["bad_signatures"] == 1
    assert not check_deliveries(rows, log)["ok"]


def test_latency_verdict_uses_the_medians_of_p50_and_p95() -> None:
    def run(variant: str, p50: float, p95: float) -> dict[str, Any]:
        figures = {"p50": p50, "p95": p95, "max": 99999.0}
        return {"variant": variant, "latency_ms": figures, "reply_latency_ms": figures}

    fine = compare([run("plain", 1000, 5000), run("webhooks", 1080, 5400), run("plain", 3000, 9000),
                    run("webhooks", 900, 4000)])
    assert fine["latency_ok"] and fine["ratio"]["latency_ms.p50"] == 0.495
    slow = compare([run("plain", 1000, 5000), run("webhooks", 1200, 5000)])
    assert not slow["latency_ok"] and slow["ratio"]["latency_ms.p50"] == 1.2


def test_receiver_logs_on_arrival_and_checks_signatures() -> None:
    secret = "s" * 32
    log = io.StringIO()

    async def post_two() -> list[int]:
        async with TestClient(TestServer(make_app(0.0, secret, log))) as client:
            body = json.dumps({"ticket": {"id": 7}}).encode()
            now = int(time.time())
            good = {TIMESTAMP_HEADER: str(now), SIGNATURE_HEADER: signature(secret, now, body), EVENT_ID_HEADER: "a"}
            bad = {**good, SIGNATURE_HEADER: signature("x" * 32, now, body), EVENT_ID_HEADER: "b"}
            return [(await client.post("/hooks", data=body, headers=headers)).status for headers in (good, bad)]

    assert asyncio.run(post_two()) == [204, 204]
    lines = [json.loads(line) for line in log.getvalue().splitlines()]
    assert [(r["seq"], r["id"], r["ticket_id"], r["signature_ok"]) for r in lines] == [(1, "a", 7, True),
                                                                                      (2, "b", 7, False)]


def test_the_adjusted_ratio_recovers_a_known_effect_despite_interference() -> None:
    from benchmarks.webhook_load import adjusted_effect

    def run(batch: int, webhooks: bool, others: float, noise: float) -> dict[str, Any]:
        # 3 s base (4 s in batch 1), x1.05 per CPU-second of other jobs, x1.2 with webhooks
        p50 = (3000 if batch == 0 else 4000) * 1.05 ** others * (1.2 if webhooks else 1.0) * noise
        return {"variant": "webhooks" if webhooks else "plain", "batch": batch, "latency_ms": {"p50": p50},
                "cpu_s": {"rasa": 10.0, "server": 5.0, "machine": 15.0 + others}}

    runs = [run(0, False, 5, 1.01), run(0, True, 20, 0.99), run(0, True, 8, 1.0), run(0, False, 18, 1.02),
            run(1, False, 12, 0.98), run(1, True, 3, 1.01), run(1, True, 15, 1.0), run(1, False, 9, 0.99)]
    found = adjusted_effect(runs, "latency_ms", "p50")
    assert found is not None and found["low"] < 1.2 < found["high"] and abs(found["ratio"] - 1.2) < 0.05
    assert abs(found["per_other_cpu_s"] - 1.05) < 0.01
    assert adjusted_effect(runs[:3], "latency_ms", "p50") is None  # too few runs for an interval
