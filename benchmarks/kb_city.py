"""A municipal-style FAQ sheet end to end: import, search quality, and the bot's first replies.

Data (written for this benchmark, ``benchmarks/data_kb/``):

* ``city_faq.csv``: a fictional city's FAQ, 336 entries in 22 categories, most with one
  question and long answers (median 328 characters, a quarter over 400, three over 1,000),
  two questions repeated under different ids, as real sheets have.
* ``city_queries.jsonl``: residents' questions written by another author from the entries'
  ids and the first words of their questions only (never the answers), with the ids that
  answer them. They are split in two halves by a hash of the text: ``tune`` (search
  weights and routing thresholds may be chosen on it) and ``heldout`` (reported only).
* ``city_queries_plain.jsonl``: 320 residents' questions in everyday words, situation first
  (「来月から東京に転勤になるんだけど、役所で何かしないといけない？」), by a writer who read
  only the sheet (``README_plain_queries.md``); split the same way into ``plain_tune`` (may be
  looked at) and ``plain_heldout`` (reported only).

What one run does:

1. ``bot kb import city_faq.csv --kb TMP --skip-conflicts`` (timed), exactly as an editor would.
2. Search: hit@1/5/10 and MRR of :class:`FaqSearch` and of the plain character-bigram BM25
   baseline, on each half.
3. The bot: ``BOT_KNOWLEDGE_DIR=TMP bot ask --jsonl`` with the current model (no retraining),
   counting the first reply of each question: answered with a right entry, asked back with
   a right entry among the buttons, asked back without one, answered wrongly, handed to a
   person, out of scope.

Usage: ``make bench-kb`` or ``.venv/bin/python -m benchmarks.kb_city [--model M]``.
Results: a table on stdout and ``results/bench/kb_city.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bot.knowledge.search import FaqSearch, eval_search
from bot.settings import PROJECT_ROOT
from benchmarks.search_baseline import CharNgramBM25

DATA = PROJECT_ROOT / "benchmarks" / "data_kb"
SHEET = DATA / "city_faq.csv"
QUERIES = DATA / "city_queries.jsonl"
PLAIN_QUERIES = DATA / "city_queries_plain.jsonl"
OUT = PROJECT_ROOT / "results" / "bench" / "kb_city.json"
OUTCOMES = ("answered_right", "clarify_contains", "clarify_without", "wrong_answer", "handoff", "out_of_scope",
            "other")


def split(queries: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Tune / held-out halves by a stable hash of each query's text."""
    halves: dict[str, list[dict[str, Any]]] = {"tune": [], "heldout": []}
    for item in queries:
        digest = hashlib.sha1(item["query"].encode("utf-8")).digest()[0]
        halves["tune" if digest % 2 == 0 else "heldout"].append(item)
    return halves


def read_queries(path: Path = QUERIES) -> list[dict[str, Any]]:
    """The labelled queries."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def import_city(kb_dir: Path) -> float:
    """Import the sheet into ``kb_dir`` with the CLI, as an editor would; seconds taken."""
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "bot", "kb", "import", str(SHEET), "--kb", str(kb_dir),
                             "--skip-conflicts"], capture_output=True, text=True, cwd=PROJECT_ROOT)
    if result.returncode != 0:
        raise SystemExit(f"import failed:\n{result.stdout}\n{result.stderr}")
    return time.perf_counter() - started


def outcome(decision: dict[str, Any], relevant: set[str]) -> str:
    """What the bot's first reply did for a question whose right entries are ``relevant``."""
    route = decision["route"]
    if route == "answer":
        return "answered_right" if decision.get("faq_id") in relevant else "wrong_answer"
    if route == "clarify":
        return "clarify_contains" if relevant & set(decision.get("suggestions") or []) else "clarify_without"
    if route in ("handoff", "out_of_scope"):
        return route
    return "other"


def bot_decisions(kb_dir: Path, queries: list[dict[str, Any]], model: Path | None) -> tuple[list[dict], float]:
    """``bot ask --jsonl`` on the queries with ``BOT_KNOWLEDGE_DIR=kb_dir``; (decisions, seconds)."""
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False, encoding="utf-8") as handle:
        for item in queries:
            handle.write(json.dumps({"text": item["query"]}, ensure_ascii=False) + "\n")
        src = handle.name
    command = [sys.executable, "-m", "bot", "ask", "--jsonl", src] + (["--model", str(model)] if model else [])
    env = {**os.environ, "BOT_KNOWLEDGE_DIR": str(kb_dir)}
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, cwd=PROJECT_ROOT, env=env)
    seconds = time.perf_counter() - started
    os.unlink(src)
    if result.returncode != 0:
        raise SystemExit(f"bot ask failed:\n{result.stderr[-3000:]}")
    return [json.loads(line) for line in result.stdout.splitlines()], seconds


def shares(decisions: list[dict], queries: list[dict[str, Any]]) -> dict[str, float]:
    """Share of each outcome, plus answered right or offered among the buttons."""
    counts = Counter(outcome(d, set(q["relevant"])) for d, q in zip(decisions, queries))
    n = len(queries)
    result = {name: round(counts[name] / n, 3) for name in OUTCOMES}
    result["right_or_offered"] = round((counts["answered_right"] + counts["clarify_contains"]) / n, 3)
    return result


def run(model: Path | None) -> dict[str, Any]:
    """The whole benchmark (module docstring)."""
    with tempfile.TemporaryDirectory() as tmp:
        kb_dir = Path(tmp) / "city-kb"
        import_seconds = import_city(kb_dir)
        search = {"FaqSearch": FaqSearch.from_directory(kb_dir), "char-bigram BM25": CharNgramBM25.from_directory(kb_dir)}
        # Rows skipped as conflicts (same question as an earlier row) are not in the knowledge.
        known = set(search["FaqSearch"].kb.ids)
        kept = [{**q, "relevant": [r for r in q["relevant"] if r in known]} for q in read_queries()]
        plain = [{**q, "relevant": [r for r in q["relevant"] if r in known]} for q in read_queries(PLAIN_QUERIES)]
        dropped = sum(not q["relevant"] for q in kept + plain)
        plain_halves = split([q for q in plain if q["relevant"]])
        halves = {**split([q for q in kept if q["relevant"]]),
                  "plain_tune": plain_halves["tune"], "plain_heldout": plain_halves["heldout"]}
        quality = {name: {half: eval_search(engine, items) for half, items in halves.items()}
                   for name, engine in search.items()}
        everything = [q for items in halves.values() for q in items]
        decisions, ask_seconds = bot_decisions(kb_dir, everything, model)
        bot, start = {}, 0
        for half, items in halves.items():
            bot[half] = shares(decisions[start:start + len(items)], items)
            start += len(items)
        entries = len(search["FaqSearch"].kb.entries)
    return {"entries": entries, "queries": {k: len(v) for k, v in halves.items()},
            "queries_without_entry": dropped,
            "import_seconds": round(import_seconds, 2), "bot_ask_seconds": round(ask_seconds, 1),
            "search": quality, "bot": bot}


def report(results: dict[str, Any]) -> str:
    """Plain-text tables."""
    lines = [f"city FAQ: {results['entries']} entries imported in {results['import_seconds']} s; queries "
             + ", ".join(f"{half} {count}" for half, count in results["queries"].items()) + "; "
             f"bot ask on all of them {results['bot_ask_seconds']} s (model load included)", "",
             "search                 half      hit@1  hit@5  hit@10  MRR"]
    for name, halves in results["search"].items():
        for half, fig in halves.items():
            lines.append(f"  {name:20} {half:13} {fig['hit@1']:.3f}  {fig['hit@5']:.3f}  {fig['hit@10']:.3f}   "
                         f"{fig['mrr']:.3f}")
    lines += ["", "bot's first reply      " + "  ".join(f"{k}" for k in (*OUTCOMES, "right_or_offered"))]
    for half, fig in results["bot"].items():
        lines.append(f"  {half:20} " + "  ".join(f"{fig[k]:.3f}" for k in (*OUTCOMES, "right_or_offered")))
    return "\n".join(lines)


def main() -> None:
    """Run, print, save."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model archive (default: newest in models/)")
    args = parser.parse_args()
    results = run(Path(args.model) if args.model else None)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, ensure_ascii=False, indent=2), encoding="utf-8")
    print(report(results))


if __name__ == "__main__":
    main()
