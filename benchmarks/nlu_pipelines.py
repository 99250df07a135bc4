"""Our pipeline vs Rasa's stock GiNZA + DIET pipeline, trained on the same data, same run.

Usage: ``make bench`` (or ``python -m benchmarks.nlu_pipelines [--retrain]``).
Trains both models into results/bench/ (a model is reused only when it was trained on the
same data and pipeline: :func:`inputs_hash`), measures each in its own process
(benchmarks/measure_model.py) and writes results/bench/nlu.json and a Markdown table (also
printed) with the ratios and the data hash. Accuracy is measured on ``tune_b`` by default (a
tuning set no threshold was chosen on): the held-out sets are read once per model, by
``benchmarks/old_vs_new.py``, not by every benchmark run.
"""

from __future__ import annotations

import argparse
import hashlib
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


def inputs_hash(config: Path) -> str:
    """Short SHA-256 of everything a model is trained from: ``config``, the domain, the
    training data, the FAQ questions and the synonym table."""
    digest = hashlib.sha256()
    files = [config, PROJECT_ROOT / "domain.yml", *sorted((PROJECT_ROOT / "data").rglob("*.yml")),
             *sorted((PROJECT_ROOT / "knowledge" / "faq").glob("*.yml")), PROJECT_ROOT / "knowledge" / "synonyms.yml"]
    for path in files:
        digest.update(path.relative_to(PROJECT_ROOT).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def train(name: str, config: Path, retrain: bool) -> tuple[Path, float | None]:
    """Train ``config`` into results/bench/, unless a model from the same inputs is there.

    Training times and the inputs' hash are kept in results/bench/train_times.json, so a
    later run that only measures still reports how long the model took to train, and a
    model trained on other data is never reused.
    """
    slug = "ours" if name.startswith("ours") else "stock"
    model = OUT / f"{slug}.tar.gz"
    times_file = OUT / "train_times.json"
    times = json.loads(times_file.read_text()) if times_file.exists() else {}
    cached = times.get(slug) if isinstance(times.get(slug), dict) else {}
    current = inputs_hash(config)
    if model.exists() and not retrain and cached.get("inputs_hash") == current:
        return model, cached.get("train_s")
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "rasa", "train", "--config", str(config), "--out", str(OUT),
                    "--fixed-model-name", slug, "--force"], cwd=PROJECT_ROOT, env=_env(), check=True,
                   stdout=subprocess.DEVNULL)
    times[slug] = {"train_s": round(time.perf_counter() - started, 1), "inputs_hash": current}
    times_file.write_text(json.dumps(times))
    return model, times[slug]["train_s"]


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
    parser.add_argument("--heldout", default=str(PROJECT_ROOT / "benchmarks" / "data" / "tune_b.jsonl"),
                        help="labelled messages for the accuracy rows (default: tune_b)")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    results = {}
    for name, config in PIPELINES.items():
        model, train_s = train(name, config, args.retrain)
        results[name] = {"train_s": train_s, **measure(model, Path(args.heldout))}
        print(f"{name}: {json.dumps(results[name], ensure_ascii=False)}", flush=True)
    hashes = {name: inputs_hash(config) for name, config in PIPELINES.items()}
    (OUT / "nlu.json").write_text(json.dumps({"inputs_hash": hashes, "accuracy_set": args.heldout, **results},
                                             ensure_ascii=False, indent=2), encoding="utf-8")
    markdown = table(results) + "\n\n" + "\n".join(f"{name}: inputs hash {h}" for name, h in hashes.items()) + \
        f"\naccuracy on {Path(args.heldout).name}"
    (OUT / "nlu.md").write_text(markdown + "\n", encoding="utf-8")
    print(markdown)


if __name__ == "__main__":
    main()
