"""1,000 customer sessions on one bot server: latency and memory stay bounded (security review #11).

Opens ``--sessions`` conversations one after another against the real Starlette app (the
chat API, the WebSocket with its ``auth`` frame, the gateway and the SQLite stores; Rasa is a
scripted stand-in that answers at once, so only our server is measured). Each customer
creates a session, connects, sends one message and reads the answer; the socket then
closes. Reported: per-conversation latency of the first and the last hundred, and the
process's resident memory before and after. The per-address session limit is switched off
(every simulated customer comes from the same test address).

Usage: ``make bench-sessions`` or ``.venv/bin/python benchmarks/session_load.py [--sessions 1000]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SECRET = "bench-secret-" + "x" * 40


class InstantRasa:
    """Answers every message with an FAQ answer, at once."""

    async def send(self, conversation_id: str, text: str, metadata: dict[str, Any]) -> list[Any]:
        from bot.server.rasa_client import BotMessage

        return [BotMessage("住所はマイページから変更できます。", [], {"route": "answer", "faq_id": "change-address"})]

    async def resume(self, conversation_id: str) -> None:
        """Nothing to resume."""

    async def close(self) -> None:
        """Nothing to close."""


def _is_bot_answer(frame: dict[str, Any]) -> bool:
    return frame.get("type") == "message" and (frame.get("message") or {}).get("sender") == "bot"


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def run(sessions: int) -> dict[str, Any]:
    """Open ``sessions`` conversations; latency per conversation and memory."""
    os.environ["BOT_LIMIT_SESSIONS_PER_HOUR"] = "0"
    from starlette.testclient import TestClient

    from bot.server.app import Services, create_app, stores_for
    from bot.server.tokens import ConversationTokens
    from bot.settings import get_settings

    get_settings.cache_clear()
    with tempfile.TemporaryDirectory() as tmp:
        services = Services(stores_for(f"sqlite:///{tmp}/bench.db"), InstantRasa(),  # type: ignore[arg-type]
                            ConversationTokens(SECRET))
        latencies: list[float] = []
        with TestClient(create_app(services, SECRET, watch_interval=0.5)) as client:
            rss_before = _rss_mb()
            for i in range(sessions):
                started = time.perf_counter()
                token = client.post("/api/chat/sessions", json={}).json()["token"]
                with client.websocket_connect("/ws/chat") as ws:
                    ws.send_json({"type": "auth", "token": token})
                    ws.receive_json()  # history
                    ws.send_json({"type": "message", "text": f"住所を変えたい {i}", "client_id": f"c{i}"})
                    while not _is_bot_answer(ws.receive_json()):
                        pass
                latencies.append((time.perf_counter() - started) * 1000)
            rss_after = _rss_mb()
        services.stores.engine.dispose()
    first, last = latencies[:100], latencies[-100:]
    return {"sessions": sessions,
            "first_100_p50_ms": round(statistics.median(first), 1),
            "first_100_p95_ms": round(sorted(first)[94], 1) if len(first) >= 100 else None,
            "last_100_p50_ms": round(statistics.median(last), 1),
            "last_100_p95_ms": round(sorted(last)[94], 1) if len(last) >= 100 else None,
            "rss_before_mb": round(rss_before), "rss_after_mb": round(rss_after)}


def main() -> None:
    """Run and print JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=1000)
    args = parser.parse_args()
    print(json.dumps(run(args.sessions), ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
