"""Do Japanese emotion/sentiment resources help the anger triage? Rules vs rules + resource.

Usage: ``python -m benchmarks.anger_resources [--model models/current.tar.gz]`` (resources that
are not installed are skipped).

For each labelled tuning set (benchmarks/data/tune_a.jsonl, tune_b.jsonl) and each signal
derived from a resource (ML-Ask via ``pymlask``, ``oseti``, ``asari``) this measures:

- ``rules``: our editable rules alone (``score_anger`` with complaint probability 0);
- ``alone``: the resource signal alone (fires = flagged);
- ``combined``: rules + ``weight * signal`` folded in with the same noisy-or as
  ``bot.triage.anger`` (``1 - (1 - rules) * (1 - w * s)``), at the file's threshold.

Reported per set: recall on ``complaint`` messages at the threshold, the share of ordinary
messages (neither ``complaint`` nor ``request_human``) flagged (false positive rate), the share
of ``request_human`` flagged (harmless: they go to a person anyway), and the resource's
per-message latency p50/p95 (warm, after loading). The classifier's complaint probability is
left at 0 (it would need a trained model): the comparison is rules vs rules + resource, which
in production both sit on top of the same model term.

Weight choice (declared before measuring, to avoid over-fitting two small sets): per signal, the
weight on a 0.05 grid that maximises recall - FPR on tune_a (ties: the smaller weight), the
threshold kept as in knowledge/triage.yml; then the single best (signal, weight) on tune_a is
checked on tune_b. Writes results/bench/anger_resources.json and prints a Markdown table.

``--model``: also score with a trained model's ``complaint`` probability (read-only, as
``AngerOverride`` does) and report rules + model vs rules + model + resource at the weight chosen
without the model. Caveat: some tuning texts are also training examples (counted in the output),
so the model term is optimistic on those.
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
SETS = {"tune_a": DATA / "tune_a.jsonl", "tune_b": DATA / "tune_b.jsonl"}
WEIGHTS = [round(0.05 * i, 2) for i in range(1, 21)]
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


def _load(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


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
    """The model's ``complaint`` probability for every message (as ``AngerOverride`` reads it)."""
    from bot.assistant import Assistant

    assistant = Assistant(model)
    try:
        return {name: [next((float(i["confidence"]) for i in assistant.parse(row["text"]).get("intent_ranking") or []
                             if i.get("name") == COMPLAINT), 0.0) for row in rows]
                for name, rows in sets.items()}
    finally:
        assistant.close()


def _in_training_data(sets: dict[str, list[dict]]) -> dict[str, str]:
    """How many tuning texts appear verbatim in data/nlu (the model saw them)."""
    seen = "\n".join(p.read_text(encoding="utf-8") for p in (PROJECT_ROOT / "data" / "nlu").glob("*.yml"))
    out = {}
    for name, rows in sets.items():
        c = [r for r in rows if r["label"] == COMPLAINT]
        out[name] = (f"{sum(r['text'] in seen for r in rows)}/{len(rows)} texts, "
                     f"{sum(r['text'] in seen for r in c)}/{len(c)} complaints")
    return out


def evaluate(rules: AngerRules, model: Path | None = None) -> dict[str, Any]:
    """Score every set with the rules and every installed resource; choose weights on tune_a."""
    sets = {name: _load(path) for name, path in SETS.items()}
    report: dict[str, Any] = {"threshold": rules.threshold, "weights_grid": WEIGHTS,
                              "model_probability": 0.0, "resources": {}, "sets": {}}
    model_scores: dict[str, list[float]] = {}
    if model is not None:
        probabilities = _model_probabilities(model, sets)
        report["model"] = {"path": str(model), "tuning_texts_in_training_data": _in_training_data(sets)}
        for name, rows in sets.items():
            labels = [row["label"] for row in rows]
            model_scores[name] = [score_anger(row["text"], p, rules).score for row, p in zip(rows, probabilities[name])]
            report["model"][name] = {
                "model_only": _rates([p * rules.model_weight >= rules.threshold for p in probabilities[name]], labels),
                "rules+model": _rates([s >= rules.threshold for s in model_scores[name]], labels),
            }
    rule_scores: dict[str, list[float]] = {}
    for name, rows in sets.items():
        timings = []
        scores = []
        for row in rows:
            started = time.perf_counter()
            scores.append(score_anger(row["text"], 0.0, rules).score)
            timings.append((time.perf_counter() - started) * 1000)
        rule_scores[name] = scores
        labels = [row["label"] for row in rows]
        report["sets"][name] = {"n": len(rows),
                                "rules": {**_rates([s >= rules.threshold for s in scores], labels),
                                          "p50_ms": round(_percentile(timings, 0.5), 3),
                                          "p95_ms": round(_percentile(timings, 0.95), 3)},
                                "signals": {}}

    for key, loader in LOADERS.items():
        try:
            resource = loader()
        except Exception as exc:  # not installed, or its dictionary does not load
            report["resources"][key] = {"error": f"{type(exc).__name__}: {exc}"}
            print(f"skipped {key}: {type(exc).__name__}: {exc}", flush=True)
            continue
        report["resources"][key] = {"name": resource.name, "version": resource.version,
                                    "load_s": round(resource.load_s, 3)}
        for name, rows in sets.items():
            labels = [row["label"] for row in rows]
            raw, timings = [], []
            for row in rows:
                # Same text the rules see, NFKC-folded so half-width katakana reaches MeCab as words.
                text = unicodedata.normalize("NFKC", row["text"])
                started = time.perf_counter()
                raw.append(resource.analyze(text))
                timings.append((time.perf_counter() - started) * 1000)
            latency = {"p50_ms": round(_percentile(timings, 0.5), 3), "p95_ms": round(_percentile(timings, 0.95), 3)}
            for signal_name, to_signal in resource.signals.items():
                signal = [to_signal(r) for r in raw]
                by_weight = {str(w): _rates(_combined_flags(rule_scores[name], signal, w, rules.threshold), labels)
                             for w in WEIGHTS}
                report["sets"][name]["signals"][signal_name] = {
                    "resource": key, **latency,
                    "alone": _rates([s >= rules.threshold for s in signal], labels),
                    "combined": by_weight,
                }
                if model_scores:
                    report["sets"][name]["signals"][signal_name]["combined_with_model"] = {
                        str(w): _rates(_combined_flags(model_scores[name], signal, w, rules.threshold), labels)
                        for w in WEIGHTS}

    # Choose one weight per signal on tune_a; check it on tune_b.
    choice: dict[str, Any] = {}
    for signal_name, entry in report["sets"]["tune_a"]["signals"].items():
        best_w = max(WEIGHTS, key=lambda w: (entry["combined"][str(w)]["recall"] - entry["combined"][str(w)]["fpr"], -w))
        a = entry["combined"][str(best_w)]
        b = report["sets"]["tune_b"]["signals"][signal_name]["combined"][str(best_w)]
        choice[signal_name] = {"weight": best_w, "tune_a_j": round(a["recall"] - a["fpr"], 4),
                               "tune_b_j": round(b["recall"] - b["fpr"], 4)}
    report["chosen_weights"] = choice
    if "model" in report:  # for information: the weight the same rule picks when the model term is on
        with_model: dict[str, Any] = {}
        for signal_name, entry in report["sets"]["tune_a"]["signals"].items():
            cm = entry["combined_with_model"]
            w = max(WEIGHTS, key=lambda w: (cm[str(w)]["recall"] - cm[str(w)]["fpr"], -w))
            b = report["sets"]["tune_b"]["signals"][signal_name]["combined_with_model"][str(w)]
            with_model[signal_name] = {"weight": w, "tune_a": f"{cm[str(w)]['complaints_flagged']} complaints, "
                                       f"{cm[str(w)]['ordinary_flagged']} ordinary",
                                       "tune_b": f"{b['complaints_flagged']} complaints, {b['ordinary_flagged']} ordinary"}
        report["model"]["chosen_weights_with_model"] = with_model
    rules_j = {name: round(s["rules"]["recall"] - s["rules"]["fpr"], 4) for name, s in report["sets"].items()}
    report["rules_j"] = rules_j
    if choice:
        best = max(choice, key=lambda s: (choice[s]["tune_a_j"], -choice[s]["weight"]))
        report["best_on_tune_a"] = {"signal": best, **choice[best],
                                    "gain_tune_a": round(choice[best]["tune_a_j"] - rules_j["tune_a"], 4),
                                    "gain_tune_b": round(choice[best]["tune_b_j"] - rules_j["tune_b"], 4)}
    return report


def table(report: dict[str, Any]) -> str:
    """Markdown table: one row per (set, signal) with rules, alone and combined at the chosen weight."""
    lines = [f"threshold {report['threshold']}, model probability 0 (rules vs rules + resource)", "",
             "| set | signal | alone recall | alone FPR | w (tune_a) | rules+res recall | rules+res FPR "
             "| req_human flagged | p50 ms | p95 ms |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, s in report["sets"].items():
        r = s["rules"]
        lines.append(f"| {name} | rules only | — | — | — | {r['complaints_flagged']} ({r['recall']:.3f}) "
                     f"| {r['ordinary_flagged']} ({r['fpr']:.3f}) | {r['request_human_flagged']} "
                     f"| {r['p50_ms']} | {r['p95_ms']} |")
        for signal_name, e in s["signals"].items():
            w = report["chosen_weights"][signal_name]["weight"]
            c = e["combined"][str(w)]
            lines.append(f"| {name} | {signal_name} | {e['alone']['complaints_flagged']} ({e['alone']['recall']:.3f}) "
                         f"| {e['alone']['ordinary_flagged']} ({e['alone']['fpr']:.3f}) | {w} "
                         f"| {c['complaints_flagged']} ({c['recall']:.3f}) | {c['ordinary_flagged']} ({c['fpr']:.3f}) "
                         f"| {c['request_human_flagged']} | {e['p50_ms']} | {e['p95_ms']} |")
    if "best_on_tune_a" in report:
        b = report["best_on_tune_a"]
        lines += ["", f"best on tune_a: {b['signal']} w={b['weight']}: recall-FPR gain over rules "
                      f"{b['gain_tune_a']:+.3f} (tune_a), {b['gain_tune_b']:+.3f} (tune_b)"]
    if "model" in report:
        m = report["model"]
        lines += ["", f"with the model's complaint probability ({m['path']}; tuning texts also in training data: "
                      f"{m['tuning_texts_in_training_data']}), weight as chosen above:", "",
                  "| set | signal | w | recall | FPR | req_human flagged |", "|---|---|---|---|---|---|"]
        for name, s in report["sets"].items():
            for label, r in (("model only", m[name]["model_only"]), ("rules + model", m[name]["rules+model"])):
                lines.append(f"| {name} | {label} | — | {r['complaints_flagged']} ({r['recall']:.3f}) "
                             f"| {r['ordinary_flagged']} ({r['fpr']:.3f}) | {r['request_human_flagged']} |")
            for signal_name, e in s["signals"].items():
                w = report["chosen_weights"][signal_name]["weight"]
                c = e["combined_with_model"][str(w)]
                lines.append(f"| {name} | rules + model + {signal_name} | {w} | {c['complaints_flagged']} "
                             f"({c['recall']:.3f}) | {c['ordinary_flagged']} ({c['fpr']:.3f}) "
                             f"| {c['request_human_flagged']} |")
        lines += ["", "weight the same rule picks on tune_a with the model term on (grid minimum 0.05 = "
                      "\"as little as possible\"):"]
        for signal_name, c in m["chosen_weights_with_model"].items():
            lines.append(f"- {signal_name}: w={c['weight']}: tune_a {c['tune_a']}; tune_b {c['tune_b']}")
        lines.append("")
    for key, res in report["resources"].items():
        lines.append(f"- {key}: " + (res.get("error") or f"{res['version']}; load {res['load_s']} s"))
    return "\n".join(lines)


def main() -> None:
    """Measure, print and save."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path, help="also score with this trained model's complaint probability")
    args = parser.parse_args()
    rules = load_anger_rules(PROJECT_ROOT / "knowledge" / "triage.yml")
    report = evaluate(rules, args.model)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "anger_resources.json").write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
    print(table(report))


if __name__ == "__main__":
    main()
