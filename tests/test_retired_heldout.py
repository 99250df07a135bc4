"""Training text converted from labelled sets (retired held-out generations, writer batches) stays
what the scripts make of it, and never repeats a held-out text."""

import json

import yaml

from benchmarks import retire_heldout, writer_batches
from bot.evaluation.report import HELDOUT_GENERATIONS, UNREAD_GENERATIONS, heldout_sets, match_key


def test_the_training_file_is_what_the_script_writes() -> None:
    """Edit the retired sets or the script, not data/nlu/retired_heldout.yml."""
    assert retire_heldout.OUT.read_text(encoding="utf-8") == retire_heldout.retired_examples(retire_heldout.GENERATIONS)


def test_retired_generations_are_no_longer_held_out() -> None:
    for generation in retire_heldout.GENERATIONS:
        assert generation not in HELDOUT_GENERATIONS + UNREAD_GENERATIONS
        assert heldout_sets(retire_heldout.RETIRED / generation)
        assert not (retire_heldout.DATA / generation).exists()


def test_labels_become_intents_and_unusable_rows_are_left_out() -> None:
    faq_ids = {"change-address", "hours"}
    assert retire_heldout.intent_of("change-address", faq_ids) == "faq"
    assert retire_heldout.intent_of("complaint", faq_ids) == "complaint"
    assert retire_heldout.intent_of("vague", faq_ids) is None  # no single right intent
    assert retire_heldout.intent_of("non_japanese", faq_ids) is None  # decided by the language check
    assert retire_heldout.example_line("住所を\n変えたい") == "住所を 変えたい"
    assert retire_heldout.example_line("[東京](city) に住所を変えたい") is None  # Rasa would read an entity
    assert retire_heldout.example_line("   ") is None


def test_no_retired_example_repeats_a_text_of_the_generations_kept_then() -> None:
    """Later generations are not checked: they are scored on their texts not in training."""
    doc = yaml.safe_load(retire_heldout.OUT.read_text(encoding="utf-8"))
    examples = {match_key(line[2:]) for block in doc["nlu"] for line in block["examples"].splitlines()
                if line.startswith("- ")}
    for generation in retire_heldout.KEPT_GENERATIONS:
        for path in heldout_sets(retire_heldout.DATA / generation):
            texts = {match_key(json.loads(line)["text"]) for line in path.read_text(encoding="utf-8").splitlines()
                     if line.strip()}
            assert not texts & examples, path


def test_the_writer_batches_file_is_what_the_script_writes() -> None:
    assert writer_batches.OUT.read_text(encoding="utf-8") == writer_batches.batch_examples()


def test_no_writer_batch_example_repeats_a_held_out_text() -> None:
    doc = yaml.safe_load(writer_batches.OUT.read_text(encoding="utf-8"))
    examples = {match_key(line[2:]) for block in doc["nlu"] for line in block["examples"].splitlines()
                if line.startswith("- ")}
    assert len(examples) > 2000
    for generation in writer_batches.PROTECTED_GENERATIONS:
        for path in heldout_sets(retire_heldout.DATA / generation):
            texts = {match_key(json.loads(line)["text"]) for line in path.read_text(encoding="utf-8").splitlines()
                     if line.strip()}
            assert not texts & examples, path
