"""Scale: the bot answering from 5,000 FAQ entries vs the 16-entry demo, same model, same run.

What one run does (``make bench-scale`` or ``python -m benchmarks.kb_scale``):

1. Writes a synthetic knowledge folder of ``--entries`` entries (category x topic x action,
   five phrasings each: :func:`benchmarks.kb_search.synthetic_kb`) as YAML.
2. In a fresh process per knowledge folder (so memory figures do not mix), with
   ``BOT_KNOWLEDGE_DIR`` pointing at it and the current model (no retraining): model load,
   index build, then ``--queries`` decisions (``bot ask``'s engine: NLU parse incl. the FAQ
   search, policy, reply): p50/p95 latency and resident memory. The demo ``knowledge/``
   is measured the same way on its tuning questions.
3. With ``--train``: ``rasa train`` on the project's training data with the ``faq``
   examples generated from the synthetic folder (what ``make train`` would do after
   importing it): wall time and peak memory of the training process.

Targets (issue: FAQ at scale): decision p95 ≤ 20 ms and resident memory ≤ 1.2 GB with
5,000 entries; training ≤ 2 min and ≤ 2 GB at 5,000 entries.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from benchmarks.kb_search import _percentile
from benchmarks.measure_model import rss_mb
from bot.settings import PROJECT_ROOT

OUT = PROJECT_ROOT / "results" / "bench" / "kb_scale.json"


def write_synthetic(kb_dir: Path, n_entries: int) -> None:
    """A knowledge folder with ``n_entries`` synthetic entries in one file."""
    from benchmarks.kb_search import synthetic_kb

    kb = synthetic_kb(n_entries)
    (kb_dir / "faq").mkdir(parents=True, exist_ok=True)
    entries = [{"id": e.id, "category": e.category, "title": e.title, "questions": list(e.questions),
                "answer": e.answer} for e in kb.entries]
    (kb_dir / "faq" / "synthetic.yml").write_text(yaml.safe_dump({"entries": entries}, allow_unicode=True,
                                                                 sort_keys=False), encoding="utf-8")


def measure(model: Path, queries: list[str]) -> dict[str, Any]:
    """In this process: load, build, decide every query; latency and memory."""
    started = time.perf_counter()
    from bot.assistant import Assistant

    assistant = Assistant(model)
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    assistant.decide("インデックスを作る最初の質問")
    build_s = time.perf_counter() - started
    latencies = []
    routes: dict[str, int] = {}
    for text in queries:
        started = time.perf_counter()
        decision = assistant.decide(text)
        latencies.append((time.perf_counter() - started) * 1000)
        routes[decision.route] = routes.get(decision.route, 0) + 1
    rss, peak = rss_mb()
    assistant.close()
    return {"entries": len(assistant.kb.entries), "model_load_s": round(load_s, 2),
            "index_build_s": round(build_s, 2), "decisions": len(queries),
            "p50_ms": round(_percentile(latencies, 0.5), 2), "p95_ms": round(_percentile(latencies, 0.95), 2),
            "rss_mb": round(rss), "peak_rss_mb": round(peak), "routes": routes}


def _measure_in_child(kb_dir: Path, model: Path, queries: list[str]) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, encoding="utf-8") as handle:
        json.dump(queries, handle, ensure_ascii=False)
    env = {**os.environ, "BOT_KNOWLEDGE_DIR": str(kb_dir)}
    result = subprocess.run([sys.executable, "-m", "benchmarks.kb_scale", "--child", handle.name,
                             "--model", str(model)], capture_output=True, text=True, cwd=PROJECT_ROOT, env=env)
    os.unlink(handle.name)
    if result.returncode != 0:
        raise SystemExit(result.stderr[-3000:])
    return json.loads(result.stdout.strip().splitlines()[-1])


def train_with(kb_dir: Path) -> dict[str, Any]:
    """``rasa train`` with the faq examples of ``kb_dir``; wall time and the child's peak memory."""
    from bot.knowledge.build import render_nlu
    from bot.knowledge.loader import load_knowledge

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        shutil.copytree(PROJECT_ROOT / "data", data)
        (data / "nlu" / "faq.yml").write_text(render_nlu(load_knowledge(kb_dir)), encoding="utf-8")
        started = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "rasa", "train", "--data", str(data), "--config",
                                 str(PROJECT_ROOT / "config.yml"), "--domain", str(PROJECT_ROOT / "domain.yml"),
                                 "--out", str(Path(tmp) / "models"), "--fixed-model-name", "scale"],
                                capture_output=True, text=True, cwd=PROJECT_ROOT,
                                env={**os.environ, "BOT_KNOWLEDGE_DIR": str(kb_dir)})
        seconds = time.perf_counter() - started
        if result.returncode != 0:
            raise SystemExit(result.stdout[-3000:] + result.stderr[-3000:])
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"train_s": round(seconds, 1), "train_peak_rss_mb": round(peak_mb)}


def run(entries: int, n_queries: int, model: Path, train: bool) -> dict[str, Any]:
    """The whole benchmark (module docstring)."""
    from benchmarks.kb_search import synthetic_queries

    demo_queries = [json.loads(line)["text"] for line in
                    (PROJECT_ROOT / "benchmarks" / "data" / "tune_a.jsonl").read_text(encoding="utf-8").splitlines()
                    if line.strip()][:n_queries]
    results: dict[str, Any] = {"model": str(model)}
    with tempfile.TemporaryDirectory() as tmp:
        kb_dir = Path(tmp) / "kb"
        write_synthetic(kb_dir, entries)
        if train:  # first, so the children's peak memory is the training's alone
            results["training"] = train_with(kb_dir)
        results["demo"] = _measure_in_child(PROJECT_ROOT / "knowledge", model, demo_queries)
        results["synthetic"] = _measure_in_child(kb_dir, model, synthetic_queries(n_queries))
    results["ratio_p95"] = round(results["synthetic"]["p95_ms"] / max(results["demo"]["p95_ms"], 1e-9), 2)
    results["ratio_rss"] = round(results["synthetic"]["rss_mb"] / max(results["demo"]["rss_mb"], 1e-9), 2)
    return results


def main() -> None:
    """Run (or, with ``--child``, measure in this process) and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(PROJECT_ROOT / "models" / "current.tar.gz"))
    parser.add_argument("--entries", type=int, default=5000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--train", action="store_true", help="also time rasa train with the synthetic faq examples")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        queries = json.loads(Path(args.child).read_text(encoding="utf-8"))
        print(json.dumps(measure(Path(args.model), queries), ensure_ascii=False))
        return
    results = run(args.entries, args.queries, Path(args.model), args.train)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, ensure_ascii=False, indent=2), encoding="utf-8")
    print(json.dumps(results, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
