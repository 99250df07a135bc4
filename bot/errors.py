"""Errors raised by the project, each naming the file, the entry and the fix."""

from __future__ import annotations

from pathlib import Path


class KnowledgeError(ValueError):
    """A problem in a knowledge file, phrased for the content editor (in Japanese).

    Attributes:
        path: The file that holds the problem.
        entry: The entry id (or key) concerned, if any.
        problem: What is wrong.
        fix: How to fix it.
    """

    def __init__(self, path: Path | str, entry: str | None, problem: str, fix: str) -> None:
        self.path = Path(path)
        self.entry = entry
        self.problem = problem
        self.fix = fix
        where = f"{self.path}" + (f"（エントリ: {entry}）" if entry else "")
        super().__init__(f"{where}: {problem} 対処: {fix}")
