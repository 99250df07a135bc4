"""``make bench`` reuses a cached model only when it was trained from the current inputs.

benchmarks/nlu_pipelines.py trains into results/bench/; these tests run its ``train`` on a
small fake project with ``rasa train`` replaced by a stand-in that writes a model file, and
check that a stale cache (other data, other NLU code, a replaced file, no record) is trained
again and that a fresh one is reused with its recorded training time.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from benchmarks import nlu_pipelines

PROJECT_FILES = {
    "config.yml": "pipeline: []\n",
    "domain.yml": "intents: [faq]\n",
    "data/nlu/faq.yml": "nlu:\n- intent: faq\n  examples: |\n    - 住所を変えたい\n",
    "knowledge/faq/account.yml": "- id: change-address\n",
    "knowledge/synonyms.yml": "synonyms: {}\n",
    "bot/nlu/featurizer.py": "WEIGHT = 1\n",
    "bot/text/normalize.py": "FOLD = True\n",
}


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """A fake project root and results/bench/; ``trainings`` lists every (stand-in) rasa train."""
    root = tmp_path / "project"
    for relative, text in PROJECT_FILES.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text, encoding="utf-8")
    out = tmp_path / "bench"
    out.mkdir()
    trainings: list[list[str]] = []

    def fake_run(command: list[str], **kwargs: object) -> subprocess.CompletedProcess:
        assert command[1:4] == ["-m", "rasa", "train"]
        target = Path(command[command.index("--out") + 1]) / (command[command.index("--fixed-model-name") + 1] + ".tar.gz")
        trainings.append(command)
        target.write_bytes(f"model #{len(trainings)}".encode())  # each training gives other bytes
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(nlu_pipelines, "PROJECT_ROOT", root)
    monkeypatch.setattr(nlu_pipelines, "OUT", out)
    monkeypatch.setattr(nlu_pipelines.subprocess, "run", fake_run)
    return {"root": root, "out": out, "config": root / "config.yml", "trainings": trainings}


def _train(project: dict, retrain: bool = False) -> dict:
    model, record = nlu_pipelines.train("ours (test)", project["config"], retrain)
    assert model == project["out"] / "ours.tar.gz"
    return record


def test_a_fresh_cache_is_reused_with_its_recorded_training_time(project: dict) -> None:
    first = _train(project)
    second = _train(project)
    assert len(project["trainings"]) == 1
    assert first["trained_now"] is True and second["trained_now"] is False
    assert second["train_s"] == first["train_s"]
    assert second["inputs_hash"] == nlu_pipelines.inputs_hash(project["config"])
    assert second["model_sha256"] == nlu_pipelines.file_sha256(project["out"] / "ours.tar.gz")


@pytest.mark.parametrize("edited", ["data/nlu/faq.yml", "domain.yml", "config.yml", "knowledge/faq/account.yml",
                                    "knowledge/synonyms.yml", "bot/nlu/featurizer.py", "bot/text/normalize.py"])
def test_a_cache_trained_from_other_inputs_is_retrained(project: dict, edited: str) -> None:
    _train(project)
    path = project["root"] / edited
    path.write_text(path.read_text(encoding="utf-8") + "# edited\n", encoding="utf-8")
    record = _train(project)
    assert len(project["trainings"]) == 2
    assert record["trained_now"] is True and record["reason"]
    assert record["inputs_hash"] == nlu_pipelines.inputs_hash(project["config"])
    assert record["code_hash"] == nlu_pipelines.code_hash()


def test_a_replaced_model_file_is_retrained(project: dict) -> None:
    _train(project)
    (project["out"] / "ours.tar.gz").write_bytes(b"a model somebody copied here")
    record = _train(project)
    assert len(project["trainings"]) == 2
    assert record["reason"] == "the model file changed since it was trained"


def test_a_model_without_a_record_is_retrained(project: dict) -> None:
    (project["out"] / "ours.tar.gz").write_bytes(b"model from an earlier version of the benchmark")
    (project["out"] / "train_times.json").write_text('{"ours": 17.5}')  # the old format: a time, no hash
    record = _train(project)
    assert len(project["trainings"]) == 1
    assert record["reason"] == "no record of what the cached model was trained from"


def test_retrain_trains_even_a_fresh_cache(project: dict) -> None:
    _train(project)
    record = _train(project, retrain=True)
    assert len(project["trainings"]) == 2 and record["reason"] == "--retrain"


def test_the_printed_figures_name_the_hashes(project: dict) -> None:
    trained = _train(project)
    reused = _train(project)
    text = nlu_pipelines.provenance_lines({"ours": trained, "stock": reused})
    inputs = nlu_pipelines.inputs_hash(project["config"])
    assert text.splitlines()[0].startswith(f"ours: inputs hash {inputs}, code hash {nlu_pipelines.code_hash()}")
    assert "trained in this run" in text.splitlines()[0]
    assert "cached model trained" in text.splitlines()[1] and trained["model_sha256"] in text.splitlines()[1]
