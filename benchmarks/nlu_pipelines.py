"""Our pipeline vs Rasa's stock GiNZA + DIET pipeline, trained on the same data, same run.

Usage: ``make bench`` (or ``python -m benchmarks.nlu_pipelines [--retrain]``).
Trains both models into results/bench/ (unless present), measures each in its own
process (benchmarks/measure_model.py) and writes results/bench/nlu.json and a
Markdown table (also printed) with the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bot.settings import PROJECT_ROOT

OUT = PROJECT_ROOT / "results" / "bench"
PIPELINES = {
    "ours (Sudachi + TF-IDF LR)": PROJECT_ROOT / "config.yml",
    "stock (ja_ginza + DIET)": PROJECT_ROOT / "benchmarks" / "stock_config.yml",
}
ROWS = [
    ("train_s", "学習時間 (s)"),
    ("load_s", "モデル読み込み (s)"),
    ("decide_p50_ms", "判定 p50 (ms)"),
    ("decide_p95_ms", "判定 p95 (ms)"),
    ("parse_p95_ms", "NLU のみ p95 (ms)"),
    ("throughput_msgs_per_s", "スループット (件/s)"),
    ("rss_after_mb", "常駐メモリ (MB)"),
    ("route_accuracy", "ルート正解率"),
    ("macro_f1", "macro-F1"),
    ("handoff_never_faq", "苦情・有人希望を FAQ で答えない率"),
]


def _env() -> dict[str, str]:
    return {**os.environ, "RASA_TELEMETRY_ENABLED": "false", "TF_CPP_MIN_LOG_LEVEL": "2"}


def train(name: str, config: Path, retrain: bool) -> tuple[Path, float | None]:
    """Train ``config`` into results/bench/ (skipped when the model exists).

    Training times are kept in results/bench/train_times.json, so a later run that only
    measures still reports how long the model took to train.
    """
    slug = "ours" if name.startswith("ours") else "stock"
    model = OUT / f"{slug}.tar.gz"
    times_file = OUT / "train_times.json"
    times = json.loads(times_file.read_text()) if times_file.exists() else {}
    if model.exists() and not retrain:
        return model, times.get(slug)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "rasa", "train", "--config", str(config), "--out", str(OUT),
                    "--fixed-model-name", slug, "--force"], cwd=PROJECT_ROOT, env=_env(), check=True,
                   stdout=subprocess.DEVNULL)
    times[slug] = round(time.perf_counter() - started, 1)
    times_file.write_text(json.dumps(times))
    return model, times[slug]


def measure(model: Path, heldout: Path) -> dict:
    """Run benchmarks/measure_model.py in a fresh process."""
    result = subprocess.run([sys.executable, "-m", "benchmarks.measure_model", "--model", str(model),
                             "--heldout", str(heldout)], cwd=PROJECT_ROOT, env=_env(),
                            capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def table(results: dict[str, dict]) -> str:
    """Markdown table with a ratio column (stock / ours; >1 means ours is better for time and memory)."""
    ours, stock = (results[n] for n in PIPELINES)
    lines = [f"| | {' | '.join(PIPELINES)} | 比 (stock / ours) |", "|---|---|---|---|"]
    for key, label in ROWS:
        a, b = ours.get(key), stock.get(key)
        ratio = f"{b / a:.1f}×" if isinstance(a, (int, float)) and isinstance(b, (int, float)) and a else ""
        if key in {"route_accuracy", "macro_f1", "handoff_never_faq", "throughput_msgs_per_s"}:
            ratio = f"{b / a:.2f}" if a else ""
        lines.append(f"| {label} | {a if a is not None else '—'} | {b if b is not None else '—'} | {ratio} |")
    return "\n".join(lines)


def main() -> None:
    """Train, measure, print and save."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--retrain", action="store_true", help="train both models again")
    parser.add_argument("--heldout", default=str(PROJECT_ROOT / "tests" / "data" / "heldout.jsonl"))
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    results = {}
    for name, config in PIPELINES.items():
        model, train_s = train(name, config, args.retrain)
        results[name] = {"train_s": train_s, **measure(model, Path(args.heldout))}
        print(f"{name}: {json.dumps(results[name], ensure_ascii=False)}", flush=True)
    (OUT / "nlu.json").write_text(json.dumps(results, ensure_ascii=False, indent=2), encoding="utf-8")
    markdown = table(results)
    (OUT / "nlu.md").write_text(markdown + "\n", encoding="utf-8")
    print(markdown)


if __name__ == "__main__":
    main()
