"""Do Japanese emotion/sentiment resources help the anger triage? Rules vs rules + resource.

Usage: ``python -m benchmarks.anger_resources`` (resources that are not installed are skipped).

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
"""

from __future__ import annotations

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


def evaluate(rules: AngerRules) -> dict[str, Any]:
    """Score every set with the rules and every installed resource; choose weights on tune_a."""
    sets = {name: _load(path) for name, path in SETS.items()}
    report: dict[str, Any] = {"threshold": rules.threshold, "weights_grid": WEIGHTS,
                              "model_probability": 0.0, "resources": {}, "sets": {}}
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

    # Choose one weight per signal on tune_a; check it on tune_b.
    choice: dict[str, Any] = {}
    for signal_name, entry in report["sets"]["tune_a"]["signals"].items():
        best_w = max(WEIGHTS, key=lambda w: (entry["combined"][str(w)]["recall"] - entry["combined"][str(w)]["fpr"], -w))
        a = entry["combined"][str(best_w)]
        b = report["sets"]["tune_b"]["signals"][signal_name]["combined"][str(best_w)]
        choice[signal_name] = {"weight": best_w, "tune_a_j": round(a["recall"] - a["fpr"], 4),
                               "tune_b_j": round(b["recall"] - b["fpr"], 4)}
    report["chosen_weights"] = choice
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
    for key, res in report["resources"].items():
        lines.append(f"- {key}: " + (res.get("error") or f"{res['version']}; load {res['load_s']} s"))
    return "\n".join(lines)


def main() -> None:
    """Measure, print and save."""
    rules = load_anger_rules(PROJECT_ROOT / "knowledge" / "triage.yml")
    report = evaluate(rules)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "anger_resources.json").write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
    print(table(report))


if __name__ == "__main__":
    main()
