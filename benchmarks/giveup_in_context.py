"""Give-ups in context: is a person offered when a customer gives up in a real conversation? (#9)

``bot eval`` scores every message alone, but a customer gives up *after* something: the bot
missed (said it cannot help, or asked back) or answered with something that did not help.
The real bot knows that context (Rasa's rules see the previous action), so this benchmark
plays each give-up message of a set as the turn after such a context, through the real Rasa
server and action server (``bot.launcher.BotStack``, SQLite, a staffed moment), and checks
what the bot does with it.

Contexts (the turn before the give-up; fixed commands, so the context is the same whatever
the model does):

* ``after: miss`` rows are played twice: after 「対応範囲外」 (``/out_of_scope``: the bot said
  what it can help with) and after a question it asked back (an empty message: the three
  likeliest FAQ buttons);
* ``after: not_helpful`` rows are played after an FAQ answer (``/faq{"faq_id": "hours"}``).

A give-up is handled when the bot's reply to it offers a person or hands off (route
``offer_human`` or ``handoff``). Reported per set and context: the share handled in
context, beside the share the same messages get alone (``bot eval``'s route accuracy).

Usage: ``python -m benchmarks.giveup_in_context --model models/current.tar.gz --set
benchmarks/data/tune_giveup.jsonl [--set ...]``. Writes ``results/bench/giveup_in_context.json``.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
import sys
import tempfile
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.launcher import BotStack, free_port  # noqa: E402

PROJECT_ROOT = Path(__file__).resolve().parent.parent
OUT = PROJECT_ROOT / "results" / "bench" / "giveup_in_context.json"
STAFFED_NOW = "2026-11-25T11:00:00+09:00"  # a Wednesday morning: agents on duty
# The turn before the give-up, per context.
CONTEXTS: dict[str, list[tuple[str, str]]] = {
    "miss": [("out_of_scope", "/out_of_scope"), ("asked_back", "")],
    "not_helpful": [("answered", '/faq{"faq_id": "hours"}')],
}
PERSON = {"offer_human", "handoff"}


def say(rasa_url: str, sender: str, text: str) -> list[dict[str, Any]]:
    """One turn through Rasa's REST channel; the bot's messages."""
    body = json.dumps({"sender": sender, "message": text}).encode()
    request = urllib.request.Request(f"{rasa_url}/webhooks/rest/webhook", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def reply_route(messages: list[dict[str, Any]]) -> str:
    """The route of the bot's reply (the last message that carries one)."""
    routes = [m["custom"]["route"] for m in messages if isinstance(m.get("custom"), dict) and m["custom"].get("route")]
    return routes[-1] if routes else "none"


def play(rasa_url: str, context: str, text: str) -> dict[str, str]:
    """The context turn, then the give-up; both routes."""
    sender = f"giveup-{uuid.uuid4().hex}"
    before = reply_route(say(rasa_url, sender, context))
    after = reply_route(say(rasa_url, sender, text))
    return {"context_route": before, "route": after}


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The give-up rows of a JSONL set (``label`` give_up, with ``after``)."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r for r in rows if r.get("label") == "give_up"]


def measure(rasa_url: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Play every row in its contexts (4 conversations at a time)."""
    jobs = [(name, command, row) for row in rows for name, command in CONTEXTS[row.get("after", "miss")]]
    with ThreadPoolExecutor(max_workers=4) as pool:
        outcomes = list(pool.map(lambda job: play(rasa_url, job[1], job[2]["text"]), jobs))
    by_context: dict[str, dict[str, Any]] = {}
    for (name, _, row), outcome in zip(jobs, outcomes):
        slot = by_context.setdefault(name, {"n": 0, "handled": 0, "context_ok": 0, "missed": []})
        slot["n"] += 1
        slot["context_ok"] += outcome["context_route"] in {"out_of_scope", "clarify", "answer"}
        if outcome["route"] in PERSON:
            slot["handled"] += 1
        else:
            slot["missed"].append({"text": row["text"], "route": outcome["route"]})
    handled = sum(s["handled"] for s in by_context.values())
    total = sum(s["n"] for s in by_context.values())
    return {"n_rows": len(rows), "conversations": total, "handled": round(handled / total, 3) if total else None,
            "contexts": {k: {**v, "share": round(v["handled"] / v["n"], 3)} for k, v in by_context.items()}}


def alone(model: Path, rows: list[dict[str, Any]]) -> float:
    """The share routed to a person when each message is scored alone (``bot eval``)."""
    from bot.assistant import Assistant
    from bot.evaluation.report import score

    assistant = Assistant(model)
    try:
        decisions = [asdict(assistant.decide(r["text"])) for r in rows]
    finally:
        assistant.close()
    return round(score(rows, decisions).route_accuracy, 3)


def main(argv: list[str] | None = None) -> int:
    """Run the sets named on the command line and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(PROJECT_ROOT / "models" / "current.tar.gz"))
    parser.add_argument("--set", action="append", required=True, help="a JSONL file with give_up rows")
    parser.add_argument("--no-alone", action="store_true", help="skip the per-message figure")
    args = parser.parse_args(argv)
    model = Path(args.model)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        env = {"DATABASE_URL": f"sqlite:///{tmp}/handoff.db", "BOT_NOW": STAFFED_NOW,
               "BOT_RASA_TOKEN_FILE": f"{tmp}/rasa.token"}
        with BotStack(model=model, rasa_port=free_port(), action_port=free_port(), env=env) as stack:
            for name in args.set:
                rows = read_rows(Path(name))
                results[name] = measure(stack.rasa_url, rows)
    if not args.no_alone:
        for name in args.set:
            results[name]["alone"] = alone(model, read_rows(Path(name)))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, ensure_ascii=False, indent=1), encoding="utf-8")
    print("| set | give-ups | alone (bot eval) | in context | after out of scope | after asking back | after an answer |")
    print("|---|---|---|---|---|---|---|")
    for name, r in results.items():
        ctx = r["contexts"]
        cell = {k: f"{ctx[k]['share']:.3f}" if k in ctx else "—" for k in ("out_of_scope", "asked_back", "answered")}
        print(f"| {Path(name).stem} | {r['n_rows']} | {r.get('alone', '—')} | {r['handled']:.3f} | "
              f"{cell['out_of_scope']} | {cell['asked_back']} | {cell['answered']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
