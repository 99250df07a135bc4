"""The held-out sets stay held out: frozen, and never scored on text seen in training or tuning."""

import hashlib
import json

import pytest

from bot.evaluation.report import (HELDOUT_GENERATIONS, UNREAD_GENERATIONS, all_heldout_sets, heldout_sets, match_key, training_texts,
                                   tuning_texts, unseen_only)
from bot.settings import PROJECT_ROOT

DATA = PROJECT_ROOT / "tests" / "data"
NLU = PROJECT_ROOT / "data" / "nlu"
TUNING = PROJECT_ROOT / "benchmarks" / "data"


@pytest.mark.parametrize("generation", HELDOUT_GENERATIONS + UNREAD_GENERATIONS)
def test_heldout_sets_are_frozen(generation: str) -> None:
    """A changed held-out set must come with a new, never-read one (and a new hash line)."""
    folder = DATA / generation
    frozen = dict(reversed(line.split()) for line in (folder / "heldout.sha256").read_text().splitlines())
    present = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in heldout_sets(folder)}
    assert present and present == frozen


def test_every_generation_is_either_read_or_waiting() -> None:
    """A generation folder missing from both lists would escape the freeze check."""
    folders = {p.name for p in DATA.glob("heldout_v*") if p.is_dir()}
    assert folders == set(HELDOUT_GENERATIONS[1:]) | set(UNREAD_GENERATIONS)
    assert not set(HELDOUT_GENERATIONS) & set(UNREAD_GENERATIONS)


def test_match_key_ignores_punctuation_spaces_width_and_case() -> None:
    assert match_key("住所を変えたい？") == match_key("住所を 変えたい") == match_key("住所を変えたい!!")
    assert match_key("ＰａｙＰａｙ使える？") == match_key("paypay使える")
    assert match_key("住所を変えたい") != match_key("電話番号を変えたい")


@pytest.mark.parametrize("path", all_heldout_sets(DATA), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_scored_heldout_texts_never_occur_in_training_or_tuning(path) -> None:  # type: ignore[no-untyped-def]
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    kept, dropped = unseen_only(rows, NLU, TUNING)
    seen = training_texts(NLU) | tuning_texts(TUNING)
    assert [r["text"] for r in kept if match_key(r["text"]) in seen] == []
    assert len(kept) + dropped == len(rows)


def test_unseen_filter_drops_a_tuning_text_with_other_punctuation(tmp_path) -> None:  # type: ignore[no-untyped-def]
    tuning = tmp_path / "tuning"
    tuning.mkdir()
    (tuning / "tune_x.jsonl").write_text(json.dumps({"text": "解約したいです。", "label": "cancel"},
                                                    ensure_ascii=False) + "\n", encoding="utf-8")
    nlu = tmp_path / "nlu"
    nlu.mkdir()
    (nlu / "x.yml").write_text('version: "3.1"\nnlu:\n  - intent: greet\n    examples: |\n      - こんにちは！\n',
                               encoding="utf-8")
    rows = [{"text": "解約 したいです", "label": "cancel"}, {"text": "こんにちは", "label": "greet"},
            {"text": "住所を変えたい", "label": "change-address"}]
    kept, dropped = unseen_only(rows, nlu, tuning)
    assert [r["text"] for r in kept] == ["住所を変えたい"] and dropped == 2
