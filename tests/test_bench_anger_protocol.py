"""The anger-resource benchmark's protocol: weights chosen on tune_a only, every set unseen.

benchmarks/anger_resources.py reports tune_b and the held-out sets for a weight chosen on
tune_a; these tests check the set preparation (what each set must not contain) and the
weight choice on small files, without a model or the optional resources.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from benchmarks import anger_resources
from bot.evaluation.report import match_key, training_texts
from bot.settings import PROJECT_ROOT


def _write(path: Path, texts: list[str], label: str = "complaint") -> Path:
    path.write_text("".join(json.dumps({"text": t, "label": label}, ensure_ascii=False) + "\n" for t in texts),
                    encoding="utf-8")
    return path


def _a_training_example() -> str:
    data = yaml.safe_load((PROJECT_ROOT / "data" / "nlu" / "handoff.yml").read_text(encoding="utf-8"))
    return next(line.strip()[2:] for item in data["nlu"] for line in str(item.get("examples", "")).splitlines()
                if line.strip().startswith("- "))


def _a_tuning_text() -> str:
    """A text of tune_a that is not a training example."""
    trained = training_texts(PROJECT_ROOT / "data" / "nlu")
    lines = (PROJECT_ROOT / "benchmarks" / "data" / "tune_a.jsonl").read_text(encoding="utf-8").splitlines()
    return next(t for t in (json.loads(line)["text"] for line in lines if line.strip()) if match_key(t) not in trained)


def test_each_set_keeps_only_texts_unseen_by_the_model_and_by_the_choice(tmp_path: Path) -> None:
    trained = _a_training_example()
    sets = {
        "tune_a": [_write(tmp_path / "a.jsonl", ["試験用の苦情その一です", trained])],
        "tune_b": [_write(tmp_path / "b.jsonl", ["試験用の苦情、その一です！", "試験用の苦情その二です", trained + "。"])],
        "held-out 1": [_write(tmp_path / "h.jsonl", [_a_tuning_text(), "試験用の苦情その三です"]),
                       _write(tmp_path / "h2.jsonl", ["試験用の日常その一です"], label="out_of_scope")],
    }
    kept, dropped = anger_resources.load_sets(sets)
    assert [r["text"] for r in kept["tune_a"]] == ["試験用の苦情その一です"]
    # tune_a's text, with other punctuation, is not a check of a weight chosen on it
    assert [r["text"] for r in kept["tune_b"]] == ["試験用の苦情その二です"]
    assert [r["text"] for r in kept["held-out 1"]] == ["試験用の苦情その三です", "試験用の日常その一です"]
    assert dropped["tune_a"] == {"total": 2, "in_training_data": 1, "in_tuning_sets": 0}
    assert dropped["tune_b"] == {"total": 3, "in_training_data": 1, "in_tuning_sets": 1}
    assert dropped["held-out 1"] == {"total": 3, "in_training_data": 0, "in_tuning_sets": 1}


def test_the_default_sets_are_tuning_sets_or_generations_still_held_out() -> None:
    from bot.evaluation.report import HELDOUT_GENERATIONS

    paths = [p for files in anger_resources.SETS.values() for p in files]
    allowed = {anger_resources.DATA} | {anger_resources.TESTS_DATA / g for g in HELDOUT_GENERATIONS}
    assert paths and all(p.parent in allowed and p.exists() for p in paths)
    assert anger_resources.CHOOSE == "tune_a" and anger_resources.WEIGHTS[0] == 0


def test_the_weight_is_the_best_on_the_choice_set_and_zero_when_nothing_gains() -> None:
    labels = ["complaint", "complaint", "out_of_scope", "out_of_scope"]
    base = [0.7, 0.2, 0.2, 0.2]  # threshold 0.6: one complaint found, nothing else

    def rates(signal: list[float]) -> dict[str, dict]:
        return {str(w): anger_resources._rates(anger_resources._combined_flags(base, signal, w, 0.6), labels)
                for w in anger_resources.WEIGHTS}

    assert anger_resources._best_weight(rates([0.0, 1.0, 0.0, 0.0])) == 0.5  # smallest weight finding the second
    assert anger_resources._best_weight(rates([0.0, 1.0, 1.0, 1.0])) == 0.0  # it would flag ordinary texts too
