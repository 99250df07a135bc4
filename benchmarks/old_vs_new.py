"""The evaluation sets scored for two versions of the bot in one run: an earlier commit and the working tree.

Used for the README's "before / after" tables. For the earlier version (default: the last
commit with one intent per FAQ entry) a git worktree is checked out in a temporary folder,
its own model is trained there with its own code, and its ``bot ask --jsonl`` decides every
message; the working tree's model does the same. Both are scored by the working tree's
scorer (:func:`bot.evaluation.report.score`) on the same unseen messages (training and
tuning texts left out, :func:`bot.evaluation.report.unseen_only`).

Usage: ``python -m benchmarks.old_vs_new [--old COMMIT] [--sets FILE ...]`` (default: the newest
generation of held-out sets, ``tests/data/<HELDOUT_GENERATIONS[-1]>/heldout*.jsonl``).
This reads the held-out sets: run it once, when the work on a model is done.
Results: a table on stdout and ``results/bench/old_vs_new_<COMMIT>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bot.evaluation.report import HELDOUT_GENERATIONS, heldout_sets, load_labelled, score, unseen_only
from bot.settings import PROJECT_ROOT

OLD_COMMIT = "69392e7"  # last commit with one Rasa intent per FAQ entry
OUT_DIR = PROJECT_ROOT / "results" / "bench"
FIGURES = ("total", "route_accuracy", "answered", "handed_off", "answer_precision", "coverage",
           "right_or_offered", "complaint_recall", "handoff_recall", "ordinary_handed_off", "clarify_rate")


def _ask(tree: Path, model: Path, texts: list[str]) -> list[dict[str, Any]]:
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False, encoding="utf-8") as handle:
        for text in texts:
            handle.write(json.dumps({"text": text}, ensure_ascii=False) + "\n")
    env = {**os.environ, "PYTHONPATH": str(tree), "RASA_TELEMETRY_ENABLED": "false"}
    env.pop("BOT_KNOWLEDGE_DIR", None)
    result = subprocess.run([sys.executable, "-m", "bot", "ask", "--model", str(model), "--jsonl", handle.name],
                            capture_output=True, text=True, cwd=tree, env=env)
    os.unlink(handle.name)
    if result.returncode != 0:
        raise SystemExit(f"bot ask in {tree} failed:\n{result.stderr[-3000:]}")
    return [json.loads(line) for line in result.stdout.splitlines()]


def _train(tree: Path, out: Path) -> Path:
    env = {**os.environ, "PYTHONPATH": str(tree), "RASA_TELEMETRY_ENABLED": "false"}
    result = subprocess.run([sys.executable, "-m", "rasa", "train", "--out", str(out), "--fixed-model-name", "m"],
                            capture_output=True, text=True, cwd=tree, env=env)
    if result.returncode != 0:
        raise SystemExit(f"rasa train in {tree} failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    return out / "m.tar.gz"


def run(old: str, sets: list[Path], new_model: Path | None, old_model: Path | None = None) -> dict[str, Any]:
    """Decide and score every set with both versions (a model not given is trained)."""
    rows_of = {p.stem: unseen_only(load_labelled(p), PROJECT_ROOT / "data" / "nlu",
                                   PROJECT_ROOT / "benchmarks" / "data")[0] for p in sets}
    results: dict[str, Any] = {"old_commit": old, "sets": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "old"
        subprocess.run(["git", "worktree", "add", "--detach", str(tree), old], cwd=PROJECT_ROOT, check=True,
                       capture_output=True)
        try:
            old_model = old_model or _train(tree, Path(tmp) / "old-models")
            new_model = new_model or _train(PROJECT_ROOT, Path(tmp) / "new-models")
            for name, rows in rows_of.items():
                texts = [r["text"] for r in rows]
                results["sets"][name] = {
                    "old": score(rows, _ask(tree, old_model, texts)).summary(),
                    "new": score(rows, _ask(PROJECT_ROOT, new_model, texts)).summary(),
                }
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=PROJECT_ROOT, capture_output=True)
    return results


def report(results: dict[str, Any]) -> str:
    """One table per set: figure, old, new."""
    lines = []
    for name, both in results["sets"].items():
        lines.append(f"== {name} (unseen messages: {both['new']['total']})")
        lines.append(f"  {'':22} {'old ' + results['old_commit']:>14} {'new':>8}")
        for key in FIGURES[1:]:
            lines.append(f"  {key:22} {both['old'][key]:>14} {both['new'][key]:>8}")
    return "\n".join(lines)


def main() -> None:
    """Run, print, save."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", default=OLD_COMMIT)
    parser.add_argument("--model", help="the working tree's model (default: train one)")
    parser.add_argument("--old-model", help="a model already trained from the --old commit's inputs (default: train one)")
    parser.add_argument("--sets", nargs="*", help="labelled sets (default: the newest held-out generation)")
    args = parser.parse_args()
    newest = PROJECT_ROOT / "tests" / "data" / HELDOUT_GENERATIONS[-1]
    sets = [Path(p) for p in args.sets] if args.sets else heldout_sets(newest)
    results = run(args.old, sets, Path(args.model).resolve() if args.model else None,
                  Path(args.old_model).resolve() if args.old_model else None)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / f"old_vs_new_{args.old}.json").write_text(json.dumps(results, ensure_ascii=False, indent=2),
                                                         encoding="utf-8")
    print(report(results))


if __name__ == "__main__":
    main()
