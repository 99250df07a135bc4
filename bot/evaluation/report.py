"""`bot eval`: route accuracy, coverage and precision of answers, handoff safety, per evaluation set.

Every held-out set (``tests/data/heldout*.jsonl``) is scored on its own. Messages that
also occur in the training data or in the tuning sets (``benchmarks/data/*.jsonl``) are
left out, compared without punctuation, spaces, width or case (:func:`match_key`), so
the figures are on text the bot was neither trained nor tuned on.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from bot.dialogue.routes import Route
from bot.evaluation.labels import expected_route, is_faq_label, is_right, predicted_label, relevant_ids

HANDOFF_LABELS = ("complaint", "request_human")
EVERYDAY_LABEL = "out_of_scope"


@dataclass
class EvalResult:
    """Figures over one labelled set."""

    total: int
    route_accuracy: float  # route right (bot.evaluation.labels.is_right), and for FAQ answers the right FAQ
    macro_f1: float
    handoff_recall: float  # complaint/request_human messages handed to a person
    handoff_never_faq: float  # ... and never answered with an FAQ
    ordinary_handed_off: float  # share of FAQ questions wrongly handed to a person
    complaint_recall: float  # angry / complaining messages handed to a person (triage target ≥ 0.98)
    clarify_rate: float
    answered: float = 0.0  # share of all messages answered with an FAQ
    handed_off: float = 0.0  # share of all messages handed to a person
    answer_precision: float = 0.0  # answers with a right entry / all answers given
    coverage: float = 0.0  # FAQ questions answered (right or wrong) / FAQ questions
    clarify_contains: float = 0.0  # FAQ questions asked back with a right entry among the buttons
    right_or_offered: float = 0.0  # FAQ questions answered right, or asked back with a right button
    per_label_errors: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    confusion: dict[str, dict[str, int]] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """The headline figures."""
        keys = ("total", "route_accuracy", "macro_f1", "answered", "handed_off", "answer_precision", "coverage",
                "clarify_contains", "right_or_offered", "handoff_recall", "handoff_never_faq",
                "complaint_recall", "ordinary_handed_off", "clarify_rate")
        return {k: getattr(self, k) for k in keys}


def match_key(text: str) -> str:
    """``text`` folded for overlap checks: widths, case, kana variants, no punctuation or spaces."""
    import unicodedata

    from bot.text.normalize import fold

    return "".join(ch for ch in fold(text) if unicodedata.category(ch)[0] not in "PSZC")


def training_texts(nlu_dir: Path, exclude: Path | None = None) -> set[str]:
    """Every training example under ``nlu_dir`` (``data/nlu``), as :func:`match_key`.

    Args:
        nlu_dir: The training data folder.
        exclude: A file in it left out (a generated file being written again).
    """
    import yaml

    texts = set()
    for path in sorted(nlu_dir.glob("*.yml")):
        if exclude is not None and path.resolve() == exclude.resolve():
            continue
        for item in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("nlu", []):
            for line in str(item.get("examples", "")).splitlines():
                if line.strip().startswith("- "):
                    texts.add(match_key(line.strip()[2:]))
    return texts


def tuning_texts(tuning_dir: Path) -> set[str]:
    """Every text of the tuning sets (``benchmarks/data/*.jsonl``), as :func:`match_key`."""
    texts = set()
    for path in sorted(tuning_dir.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                texts.add(match_key(str(row.get("text") or row.get("query") or "")))
    return texts


def unseen_only(rows: list[dict[str, str]], nlu_dir: Path,
                tuning_dir: Path | None = None) -> tuple[list[dict[str, str]], int]:
    """Drop labelled messages that also occur in the training data or the tuning sets.

    Short common phrases (「こんにちは」, 「解約したいです」) are often written identically by
    independent authors; accuracy is reported on messages the model has not seen, and
    that no threshold was chosen on. Compared by :func:`match_key`.

    Returns:
        The unseen rows and how many were dropped.
    """
    seen = training_texts(nlu_dir) | (tuning_texts(tuning_dir) if tuning_dir else set())
    kept = [r for r in rows if match_key(r["text"]) not in seen]
    return kept, len(rows) - len(kept)


def load_labelled(path: Path) -> list[dict[str, str]]:
    """Read ``{"text", "label"}`` lines."""
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            row = json.loads(line)
            if "text" not in row or "label" not in row:
                raise ValueError(f"{path}:{number}: each line needs \"text\" and \"label\"")
            rows.append(row)
    return rows


def score(rows: Iterable[dict[str, str]], decisions: Iterable[dict[str, Any]]) -> EvalResult:
    """Compare decisions (``bot ask`` dicts) with labels.

    Args:
        rows: Labelled messages.
        decisions: One decision per row, same order.

    Returns:
        The figures.
    """
    from sklearn.metrics import f1_score

    gold, pred, errors = [], [], {}
    correct = handoff_total = handoff_ok = handoff_not_faq = faq_total = faq_handed = clarify = 0
    complaints = complaints_handed = 0
    answers = answers_right = handed = faq_answered = faq_offered = faq_right = 0
    confusion: dict[str, Counter[str]] = {}
    for row, decision in zip(rows, decisions):
        label = row["label"]
        want_route = expected_route(label)
        route = decision["route"]
        got = predicted_label(route, decision.get("faq_id"), decision.get("intent"))
        relevant = relevant_ids(row)
        handed += route == Route.HANDOFF.value
        if route == Route.ANSWER.value:
            answers += 1
            answers_right += decision.get("faq_id") in relevant
        if is_faq_label(label):
            faq_answered += route == Route.ANSWER.value
            faq_right += route == Route.ANSWER.value and decision.get("faq_id") in relevant
            faq_offered += route == Route.CLARIFY.value and bool(relevant & set(decision.get("suggestions") or []))
        ok = is_right(row, route, decision.get("faq_id"))
        correct += ok
        clarify += decision["route"] == Route.CLARIFY.value
        gold.append(label)
        pred.append(got)
        confusion.setdefault(label, Counter())[got] += 1
        if not ok:
            errors.setdefault(label, []).append({"text": row["text"], "got": got,
                                                 "confidence": decision.get("confidence")})
        if label in HANDOFF_LABELS:
            handoff_total += 1
            handoff_ok += decision["route"] == Route.HANDOFF.value
            handoff_not_faq += decision["route"] != Route.ANSWER.value
            if label == "complaint":
                complaints += 1
                complaints_handed += decision["route"] == Route.HANDOFF.value
        elif want_route is Route.ANSWER:
            faq_total += 1
            faq_handed += decision["route"] == Route.HANDOFF.value
    labels = sorted(set(gold))
    n = len(gold)
    return EvalResult(
        total=n,
        route_accuracy=round(correct / n, 4) if n else 0.0,
        macro_f1=round(float(f1_score(gold, pred, labels=labels, average="macro", zero_division=0)), 4),
        handoff_recall=round(handoff_ok / handoff_total, 4) if handoff_total else 0.0,
        handoff_never_faq=round(handoff_not_faq / handoff_total, 4) if handoff_total else 0.0,
        ordinary_handed_off=round(faq_handed / faq_total, 4) if faq_total else 0.0,
        complaint_recall=round(complaints_handed / complaints, 4) if complaints else 0.0,
        clarify_rate=round(clarify / n, 4) if n else 0.0,
        answered=round(answers / n, 4) if n else 0.0,
        handed_off=round(handed / n, 4) if n else 0.0,
        answer_precision=round(answers_right / answers, 4) if answers else 1.0,
        coverage=round(faq_answered / faq_total, 4) if faq_total else 0.0,
        clarify_contains=round(faq_offered / faq_total, 4) if faq_total else 0.0,
        right_or_offered=round((faq_right + faq_offered) / faq_total, 4) if faq_total else 0.0,
        per_label_errors=errors,
        confusion={k: dict(v) for k, v in confusion.items()},
    )


def plot_confusion(result: EvalResult, path: Path) -> None:
    """Save the confusion table as a PNG heat map."""
    import logging

    import matplotlib

    logging.getLogger("matplotlib").setLevel(logging.ERROR)  # style-file deprecation chatter
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows = sorted(result.confusion)
    cols = rows + sorted({c for v in result.confusion.values() for c in v} - set(rows))
    matrix = np.array([[result.confusion[r].get(c, 0) for c in cols] for r in rows])
    fig, ax = plt.subplots(figsize=(12, 10))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(cols)), cols, rotation=90, fontsize=7)
    ax.set_yticks(range(len(rows)), rows, fontsize=7)
    for i in range(len(rows)):
        for j in range(len(cols)):
            if matrix[i, j]:
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=6,
                        color="white" if matrix[i, j] > matrix.max() / 2 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("expected")
    ax.set_title(f"route accuracy {result.route_accuracy:.3f}, macro-F1 {result.macro_f1:.3f}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# What editors read for each headline figure, and its target (README "Measured"; None: no target).
# Editors' docs (docs/editing-knowledge.md, knowledge/triage.yml) name the figures by these labels.
FIGURE_LABELS: dict[str, tuple[str, str | None]] = {
    "total": ("評価した文の数", None),
    "route_accuracy": ("正しく振り分けた割合", "0.96 以上"),
    "macro_f1": ("振り分けの F1 値（種類ごとの平均）", None),
    "answered": ("FAQ で答えた割合", None),
    "handed_off": ("担当者に引き継いだ割合", None),
    "answer_precision": ("FAQ で答えたうち、正しい FAQ だった割合", "0.98 以上"),
    "coverage": ("FAQ の質問に FAQ で答えた割合", "0.85 以上"),
    "clarify_contains": ("聞き返しのボタンに正しい FAQ があった割合", None),
    "right_or_offered": ("正しく答えたか、聞き返しのボタンで示した割合", None),
    "handoff_recall": ("苦情・有人希望を担当者に引き継いだ割合", None),
    "handoff_never_faq": ("苦情・有人希望を FAQ で答えなかった割合", "0.98 以上"),
    "complaint_recall": ("怒り・苦情を担当者に引き継いだ割合", "0.98 以上"),
    "ordinary_handed_off": ("通常の質問を担当者に引き継いだ割合", "0.02 以下"),
    "clarify_rate": ("聞き返した割合", None),
}


def format_table(result: EvalResult) -> str:
    """Plain-text report: headline figures in Japanese with their targets, then the confusion rows with errors."""
    lines = []
    for key, value in result.summary().items():
        label, target = FIGURE_LABELS.get(key, (key, None))
        lines.append(f"{label}: {value}" + (f"（目標 {target}）" if target else "") + f"  [{key}]")
    lines.append("")
    lines.append("取り違え（正解 -> ボットの判定: 件数）、誤りのある行のみ:")
    for label in sorted(result.confusion):
        row = result.confusion[label]
        if set(row) != {label}:
            cells = ", ".join(f"{k}: {v}" for k, v in sorted(row.items(), key=lambda kv: -kv[1]))
            lines.append(f"  {label:18} -> {cells}")
    return "\n".join(lines)


def heldout_sets(directory: Path) -> list[Path]:
    """The held-out sets: ``heldout*.jsonl`` in ``directory`` (``tests/data``)."""
    return sorted(directory.glob("heldout*.jsonl"))


# Generations of held-out sets, oldest first. Each is frozen by its own ``heldout.sha256``;
# a new generation is written (by someone who never saw the training or tuning data) when
# the previous one has been read at the end of the work on a model.
# Generations 2-6 were read and then retired into the training data (benchmarks/retire_heldout.py,
# data/nlu/retired_heldout.yml; their files are in benchmarks/retired_heldout/): they are no longer held out.
HELDOUT_GENERATIONS = ("", "heldout_v7", "heldout_v8", "heldout_v9", "heldout_v10", "heldout_v11", "heldout_v12")
# Written and frozen (heldout.sha256), but not read yet: kept out of `bot eval` and the
# old-vs-new benchmark until the change it will judge is done; then it moves above.
UNREAD_GENERATIONS: tuple[str, ...] = ("heldout_v13",)


def all_heldout_sets(data_dir: Path) -> list[Path]:
    """Every generation's held-out sets under ``data_dir`` (``tests/data``), oldest first."""
    return [path for sub in HELDOUT_GENERATIONS for path in heldout_sets(data_dir / sub)]


def set_name(path: Path) -> str:
    """Report name of a held-out set: ``heldout_everyday``, or ``heldout_v2/heldout_everyday``
    for a later generation (its folder name first)."""
    return f"{path.parent.name}/{path.stem}" if path.parent.name in HELDOUT_GENERATIONS else path.stem


def evaluate_sets(paths: list[Path], assistant: Any, nlu_dir: Path,
                  tuning_dir: Path | None) -> dict[str, tuple[EvalResult, int]]:
    """Score each labelled set on its unseen messages.

    Returns:
        Set name (file stem) -> (figures, messages left out as seen in training or tuning).
    """
    results = {}
    for path in paths:
        rows, dropped = unseen_only(load_labelled(path), nlu_dir, tuning_dir)
        decisions = [assistant.decide(row["text"]).as_dict() for row in rows]
        results[set_name(path)] = (score(rows, decisions), dropped)
    return results


def run_eval(heldout: list[Path], model: Path | None, out_dir: Path, as_json: bool) -> int:
    """Decide every unseen message of each held-out set with the model, print and save the report.

    Returns:
        Exit code 0.
    """
    from bot.assistant import Assistant
    from bot.settings import PROJECT_ROOT

    assistant = Assistant(model)
    try:
        results = evaluate_sets(heldout, assistant, PROJECT_ROOT / "data" / "nlu", PROJECT_ROOT / "benchmarks" / "data")
    finally:
        assistant.close()
    out_dir.mkdir(parents=True, exist_ok=True)
    report = {name: {**r.summary(), "dropped_seen_in_training_or_tuning": dropped, "confusion": r.confusion,
                     "errors": r.per_label_errors} for name, (r, dropped) in results.items()}
    (out_dir / "eval.json").write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
    first = next(iter(results.values()), None)
    if first is not None:
        plot_confusion(first[0], out_dir / "confusion.png")
    if as_json:
        print(json.dumps({name: {**r.summary(), "dropped_seen_in_training_or_tuning": dropped}
                          for name, (r, dropped) in results.items()}, ensure_ascii=False))
        return 0
    for path, (name, (result, dropped)) in zip(heldout, results.items()):
        print(f"== {path}: 学習・調整データと同じ文 {dropped} 件を除いた {result.total} 件で評価")
        print(format_table(result))
        print()
    print(f"詳細: {out_dir / 'eval.json'}  図: {out_dir / 'confusion.png'}")
    return 0
