"""The intent classifier's training time: scikit-learn's default solver (lbfgs) vs newton-cg.

Most of ``rasa train`` is the logistic regression of :mod:`bot.nlu.classifier` (C 30 over
~125,000 sparse TF-IDF features plus 300 GiNZA vector dimensions). One run:

1. runs the project's NLU pipeline on ``data/nlu`` (as ``rasa train`` does) and keeps the matrix
   and labels the classifier is given, without fitting it;
2. fits the classifier's logistic regression on them with each solver, one after the other, in
   this process: wall time, iterations;
3. compares the two models' probabilities on every training example (largest difference and
   share of the same top intent): a faster solver is only worth it at the same optimum.

Usage: ``python -m benchmarks.classifier_solver`` (about 5 minutes on 2 cores). Results on stdout
and in ``results/bench/classifier_solver.json``.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.provenance import run_provenance  # noqa: E402
from bot.settings import PROJECT_ROOT  # noqa: E402

OUT = PROJECT_ROOT / "results" / "bench" / "classifier_solver.json"
SOLVERS = ("lbfgs", "newton-cg")


class _Captured(Exception):
    """Raised by the patched ``fit`` to stop training once the matrix is known."""

    def __init__(self, matrix: Any, labels: list[str], params: dict[str, Any]) -> None:
        super().__init__("captured")
        self.matrix, self.labels, self.params = matrix, labels, params


def training_matrix() -> tuple[Any, list[str], dict[str, Any]]:
    """The classifier's training matrix, labels and parameters for the project's ``data/nlu``."""
    import sklearn.linear_model as linear_model
    from rasa.model_training import train_nlu

    original = linear_model.LogisticRegression.fit

    def capture(self: Any, matrix: Any, labels: Any, sample_weight: Any = None) -> Any:
        raise _Captured(matrix, list(labels), self.get_params())

    linear_model.LogisticRegression.fit = capture  # type: ignore[method-assign]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            train_nlu(str(PROJECT_ROOT / "config.yml"), str(PROJECT_ROOT / "data" / "nlu"), tmp,
                      fixed_model_name="solver-bench")
    except Exception as exc:  # Rasa wraps a component's exception in its own
        captured = exc
        while captured is not None and not isinstance(captured, _Captured):
            captured = captured.__cause__ or captured.__context__
        if captured is None:
            raise
        return captured.matrix, captured.labels, captured.params
    finally:
        linear_model.LogisticRegression.fit = original  # type: ignore[method-assign]
    raise SystemExit("the classifier was never fitted: is bot.nlu.classifier in config.yml?")


def main() -> int:
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")
    matrix, labels, params = training_matrix()
    print(f"matrix {matrix.shape[0]:,} x {matrix.shape[1]:,}, {matrix.nnz:,} non-zeros; C {params['C']}")
    results: dict[str, Any] = {"examples": matrix.shape[0], "features": matrix.shape[1], "C": params["C"]}
    probabilities = {}
    for solver in SOLVERS:
        model = LogisticRegression(**{**params, "solver": solver})
        started = time.perf_counter()
        model.fit(matrix, labels)
        seconds = time.perf_counter() - started
        probabilities[solver] = model.predict_proba(matrix)
        results[solver] = {"fit_s": round(seconds, 1), "iterations": int(np.max(model.n_iter_))}
        print(f"{solver:10s} fit {seconds:6.1f} s, {results[solver]['iterations']} iterations")
    first, second = (probabilities[s] for s in SOLVERS)
    results["max_probability_difference"] = float(np.abs(first - second).max())
    results["same_top_intent"] = float(np.mean(first.argmax(1) == second.argmax(1)))
    results["speedup"] = round(results[SOLVERS[0]]["fit_s"] / results[SOLVERS[1]]["fit_s"], 2)
    results["provenance"] = run_provenance(PROJECT_ROOT / "models" / "current.tar.gz")
    print(f"newton-cg / lbfgs: {results['speedup']}x faster; largest probability difference "
          f"{results['max_probability_difference']:.1e}; same top intent {results['same_top_intent']:.4f}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, ensure_ascii=False, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
