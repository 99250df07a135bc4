"""Our pipeline vs Rasa's stock GiNZA + DIET pipeline, trained on the same data, same run.

Usage: ``make bench`` (or ``python -m benchmarks.nlu_pipelines [--retrain]``).
Trains both models into results/bench/. A cached model is reused only when the record kept
with it (results/bench/train_times.json) says it was trained from the same inputs
(:func:`inputs_hash`: config, domain, data, FAQ questions, synonyms) and the same NLU code
(:func:`code_hash`), and the file still has the SHA-256 recorded when it was trained;
otherwise it is trained again. Each model is measured in its own process
(benchmarks/measure_model.py); results/bench/nlu.json and a Markdown table (also printed)
carry the ratios, the inputs hash, the code hash and the model file's SHA-256, and whether
each model was trained in this run. Accuracy is measured on ``tune_b`` by default (a
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


def code_hash() -> str:
    """Short SHA-256 of our NLU code (the Makefile's model inputs besides the data):
    ``bot/nlu/*.py`` and ``bot/text/*.py``. A change there can change what a model decides
    without changing :func:`inputs_hash`."""
    digest = hashlib.sha256()
    for path in sorted([*(PROJECT_ROOT / "bot" / "nlu").glob("*.py"), *(PROJECT_ROOT / "bot" / "text").glob("*.py")]):
        digest.update(path.relative_to(PROJECT_ROOT).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def file_sha256(path: Path) -> str:
    """Short SHA-256 of a file's bytes (a model archive)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def stale_reason(model: Path, record: dict, inputs: str, code: str) -> str | None:
    """Why the cached ``model`` cannot be reused (None: it can).

    ``record`` is what :func:`train` wrote when it trained the model; a model without a
    record, trained from other inputs or code, or replaced since (its SHA-256 differs) is stale.
    """
    if not model.exists():
        return "no cached model"
    if not record:
        return "no record of what the cached model was trained from"
    if record.get("inputs_hash") != inputs:
        return f"trained from inputs {record.get('inputs_hash')}, the data is now {inputs}"
    if record.get("code_hash") != code:
        return f"trained with NLU code {record.get('code_hash')}, the code is now {code}"
    if record.get("model_sha256") != file_sha256(model):
        return "the model file changed since it was trained"
    return None


def train(name: str, config: Path, retrain: bool) -> tuple[Path, dict]:
    """Train ``config`` into results/bench/, unless the cached model there is from the same inputs.

    What each model was trained from (inputs hash, code hash), its file's SHA-256 and how long
    training took are kept in results/bench/train_times.json, so a later run that only
    measures still reports the training time, and a model trained on other data or code, or
    replaced, is never reused (:func:`stale_reason`).

    Returns:
        The model's path and its record, with ``trained_now`` (trained in this run or reused)
        and ``reason`` (why it was trained).
    """
    slug = "ours" if name.startswith("ours") else "stock"
    model = OUT / f"{slug}.tar.gz"
    times_file = OUT / "train_times.json"
    times = json.loads(times_file.read_text()) if times_file.exists() else {}
    record = times.get(slug) if isinstance(times.get(slug), dict) else {}
    inputs, code = inputs_hash(config), code_hash()
    reason = "--retrain" if retrain else stale_reason(model, record, inputs, code)
    if reason is None:
        print(f"{name}: reusing {model.name} (inputs {inputs}, code {code}, model {record['model_sha256']})",
              flush=True)
        return model, {**record, "trained_now": False, "reason": None}
    print(f"{name}: training ({reason})", flush=True)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "rasa", "train", "--config", str(config), "--out", str(OUT),
                    "--fixed-model-name", slug, "--force"], cwd=PROJECT_ROOT, env=_env(), check=True,
                   stdout=subprocess.DEVNULL)
    times[slug] = {"train_s": round(time.perf_counter() - started, 1), "inputs_hash": inputs, "code_hash": code,
                   "model_sha256": file_sha256(model), "trained_at": time.strftime("%Y-%m-%d %H:%M")}
    times_file.write_text(json.dumps(times, indent=2))
    return model, {**times[slug], "trained_now": True, "reason": reason}


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
    results, records = {}, {}
    for name, config in PIPELINES.items():
        model, records[name] = train(name, config, args.retrain)
        results[name] = {"train_s": records[name]["train_s"], **measure(model, Path(args.heldout))}
        print(f"{name}: {json.dumps(results[name], ensure_ascii=False)}", flush=True)
    (OUT / "nlu.json").write_text(json.dumps({"models": records, "accuracy_set": args.heldout, **results},
                                             ensure_ascii=False, indent=2), encoding="utf-8")
    markdown = table(results) + "\n\n" + provenance_lines(records) + f"\naccuracy on {Path(args.heldout).name}"
    (OUT / "nlu.md").write_text(markdown + "\n", encoding="utf-8")
    print(markdown)


def provenance_lines(records: dict[str, dict]) -> str:
    """One line per model: what it was trained from, its file's hash, trained now or reused."""
    return "\n".join(
        f"{name}: inputs hash {r['inputs_hash']}, code hash {r['code_hash']}, model sha256 {r['model_sha256']}, "
        + (f"trained in this run ({r['train_s']} s)" if r["trained_now"]
           else f"cached model trained {r.get('trained_at', '?')} ({r['train_s']} s), same inputs")
        for name, r in records.items())


if __name__ == "__main__":
    main()
