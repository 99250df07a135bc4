"""`bot eval`: route accuracy, macro-F1, handoff safety and a confusion table on held-out data."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from bot.dialogue.routes import Route
from bot.evaluation.labels import expected_route, predicted_label

HANDOFF_LABELS = ("complaint", "request_human")


@dataclass
class EvalResult:
    """Figures over one labelled set."""

    total: int
    route_accuracy: float  # route right, and for FAQ answers the right FAQ
    macro_f1: float
    handoff_recall: float  # complaint/request_human messages handed to a person
    handoff_never_faq: float  # ... and never answered with an FAQ
    ordinary_handed_off: float  # share of FAQ questions wrongly handed to a person
    complaint_recall: float  # angry / complaining messages handed to a person (triage target ≥ 0.98)
    clarify_rate: float
    per_label_errors: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    confusion: dict[str, dict[str, int]] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """The headline figures."""
        keys = ("total", "route_accuracy", "macro_f1", "handoff_recall", "handoff_never_faq",
                "complaint_recall", "ordinary_handed_off", "clarify_rate")
        return {k: getattr(self, k) for k in keys}


def training_texts(nlu_dir: Path) -> set[str]:
    """Every training example under ``nlu_dir`` (``data/nlu``), folded for comparison."""
    from bot.text.normalize import fold

    import yaml

    texts = set()
    for path in sorted(nlu_dir.glob("*.yml")):
        for item in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("nlu", []):
            for line in str(item.get("examples", "")).splitlines():
                if line.strip().startswith("- "):
                    texts.add(fold(line.strip()[2:]))
    return texts


def unseen_only(rows: list[dict[str, str]], nlu_dir: Path) -> tuple[list[dict[str, str]], int]:
    """Drop labelled messages that also occur in the training data (after folding).

    Short common phrases (「こんにちは」, 「解約したいです」) are often written identically by
    independent authors; accuracy is reported on messages the model has not seen.

    Returns:
        The unseen rows and how many were dropped.
    """
    from bot.text.normalize import fold

    seen = training_texts(nlu_dir)
    kept = [r for r in rows if fold(r["text"]) not in seen]
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
    confusion: dict[str, Counter[str]] = {}
    for row, decision in zip(rows, decisions):
        label = row["label"]
        want_route = expected_route(label)
        got = predicted_label(decision["route"], decision.get("faq_id"), decision.get("intent"))
        route_ok = decision["route"] == want_route.value
        ok = route_ok and (want_route is not Route.ANSWER or decision.get("faq_id") == label)
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


def format_table(result: EvalResult) -> str:
    """Plain-text report: headline figures, then the confusion rows with errors."""
    lines = [f"{k}: {v}" for k, v in result.summary().items()]
    lines.append("")
    lines.append("confusion (expected -> predicted: count), rows with errors only:")
    for label in sorted(result.confusion):
        row = result.confusion[label]
        if set(row) != {label}:
            cells = ", ".join(f"{k}: {v}" for k, v in sorted(row.items(), key=lambda kv: -kv[1]))
            lines.append(f"  {label:18} -> {cells}")
    return "\n".join(lines)


def run_eval(heldout: Path, model: Path | None, out_dir: Path, as_json: bool) -> int:
    """Decide every unseen held-out message with the model, print and save the report.

    Returns:
        Exit code 0.
    """
    from bot.assistant import Assistant
    from bot.settings import PROJECT_ROOT

    rows, dropped = unseen_only(load_labelled(heldout), PROJECT_ROOT / "data" / "nlu")
    assistant = Assistant(model)
    try:
        decisions = [assistant.decide(row["text"]).as_dict() for row in rows]
    finally:
        assistant.close()
    result = score(rows, decisions)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "eval.json").write_text(json.dumps(
        {**result.summary(), "confusion": result.confusion, "errors": result.per_label_errors},
        ensure_ascii=False, indent=2), encoding="utf-8")
    plot_confusion(result, out_dir / "confusion.png")
    if as_json:
        print(json.dumps({**result.summary(), "dropped_seen_in_training": dropped}, ensure_ascii=False))
    else:
        print(f"{heldout}: 学習データと同じ文 {dropped} 件を除いた {len(rows)} 件で評価")
        print(format_table(result))
        print(f"\n詳細: {out_dir / 'eval.json'}  図: {out_dir / 'confusion.png'}")
    return 0
