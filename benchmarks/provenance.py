"""What produced a benchmark's figures: commit, model file, training inputs, date."""

from __future__ import annotations

import hashlib
import subprocess
import time
from pathlib import Path

from bot.settings import PROJECT_ROOT

# Uncommitted changes here make the commit "+dirty": they change what the figures measure.
CODE_PATHS = ("bot", "actions", "benchmarks", "config.yml", "domain.yml", "data", "knowledge")


def run_provenance(model: Path) -> dict[str, str]:
    """The commit (``+dirty`` with uncommitted changes to the code or data), the model file's
    SHA-256 (first 12 hex digits), the inputs hash of the current config and training data
    (:func:`benchmarks.nlu_pipelines.inputs_hash`) and today's date."""
    from benchmarks.nlu_pipelines import inputs_hash

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    if git("status", "--porcelain", "--untracked-files=no", "--", *CODE_PATHS):
        commit += "+dirty"
    digest = hashlib.sha256(model.read_bytes()).hexdigest()[:12] if model.exists() else "missing"
    return {"commit": commit, "model_sha256": digest, "inputs_hash": inputs_hash(PROJECT_ROOT / "config.yml"),
            "date": time.strftime("%Y-%m-%d")}
