"""`bot kb validate`: every problem of a knowledge directory at once, for editors.

Unlike :func:`bot.knowledge.loader.load_knowledge`, which stops at the first error (the
bot must not start on a broken file), this collects all problems, each with the file,
the line, the entry and the fix, in Japanese:

- errors (exit code 1): malformed files or entries, duplicate ids, unknown ``related``
  ids, the same question (after normalisation, :func:`bot.knowledge.loader.question_key`)
  in two entries — the same rule by which ``bot kb import`` reports a conflict —, an id
  that was published (in git ``HEAD``) and is gone — analytics and links refer to ids;
- warnings: near-duplicate questions across entries, fewer than 10 phrasings (the
  classifier learns such an entry poorly; search still finds it), long titles, answers
  over :data:`bot.knowledge.loader.LONG_ANSWER_CHARS` characters (the widget folds them),
  the same question twice in one entry.

Only warnings: exit code 0 (the knowledge can be published).
"""

from __future__ import annotations

import subprocess
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bot.errors import KnowledgeError
from bot.knowledge.loader import (
    RECOMMENDED_QUESTIONS,
    SAFE_YAML_LOADER,
    long_answer_notice,
    parse_entry,
    question_key,
)
from bot.knowledge.model import FaqEntry

MAX_TITLE_CHARS = 20
NEAR_DUPLICATE_SIMILARITY = 0.9


@dataclass(frozen=True)
class Problem:
    """One finding of the validator."""

    severity: str  # "error" or "warning"
    path: Path
    line: int | None
    entry: str | None
    problem: str
    fix: str

    def format(self, root: Path | None = None) -> str:
        """``file:line（エントリ: id）: problem 対処: fix`` with a severity label."""
        path = self.path
        if root is not None:
            try:
                path = self.path.resolve().relative_to(root.resolve())
            except ValueError:
                pass
        where = f"{path}" + (f":{self.line}" if self.line else "") + (f"（エントリ: {self.entry}）" if self.entry else "")
        label = "エラー" if self.severity == "error" else "注意"
        return f"[{label}] {where}: {self.problem} 対処: {self.fix}"

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"severity": self.severity, "path": str(self.path), "line": self.line, "entry": self.entry,
                "problem": self.problem, "fix": self.fix}


def _entry_lines(path: Path, text: str) -> list[int]:
    """1-based line of each item of ``entries:`` (empty when the YAML cannot be composed)."""
    try:
        node = yaml.compose(text, Loader=SAFE_YAML_LOADER)
    except yaml.YAMLError:
        return []
    if not isinstance(node, yaml.MappingNode):
        return []
    for key, value in node.value:
        if key.value == "entries" and isinstance(value, yaml.SequenceNode):
            return [item.start_mark.line + 1 for item in value.value]
    return []


def _load_file(path: Path, problems: list[Problem]) -> list[tuple[FaqEntry, int | None]]:
    try:
        text = path.read_text(encoding="utf-8")
        doc = yaml.load(text, Loader=SAFE_YAML_LOADER)  # noqa: S506 - a safe loader, as the bot's loader
    except UnicodeDecodeError:
        problems.append(Problem("error", path, None, None, "UTF-8 で保存されていません。",
                                "エディタで文字コードを UTF-8 にして保存し直してください。"))
        return []
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problems.append(Problem("error", path, mark.line + 1 if mark else None, None,
                                f"YAML として読めません: {getattr(exc, 'problem', exc)}",
                                "指摘された行のインデントと記号（: や -）を確認してください。"))
        return []
    raw_entries = doc.get("entries") if isinstance(doc, dict) else None
    if not isinstance(raw_entries, list):
        problems.append(Problem("error", path, None, None, "トップレベルに `entries:` のリストが必要です。",
                                "ファイルの先頭を `entries:` にし、その下にエントリを並べてください。"))
        return []
    lines = _entry_lines(path, text)
    loaded = []
    for index, raw in enumerate(raw_entries, start=1):
        line = lines[index - 1] if index <= len(lines) else None
        try:
            loaded.append((parse_entry(raw, path, index), line))
        except KnowledgeError as exc:
            problems.append(Problem("error", path, line, exc.entry, exc.problem, exc.fix))
    return loaded


def _published_ids(faq_dir: Path) -> set[str] | None:
    """Ids in the committed version (git HEAD) of the FAQ files; None outside a git work tree."""
    try:
        top = subprocess.run(["git", "-C", str(faq_dir), "rev-parse", "--show-toplevel"], capture_output=True,
                             text=True, timeout=10)
        if top.returncode != 0:
            return None
        listing = subprocess.run(["git", "-C", top.stdout.strip(), "ls-tree", "-r", "--name-only", "HEAD", "--",
                                  str(faq_dir.resolve().relative_to(Path(top.stdout.strip()).resolve()))],
                                 capture_output=True, text=True, timeout=10)
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None
    ids: set[str] = set()
    for name in listing.stdout.split():
        if not name.endswith(".yml"):
            continue
        shown = subprocess.run(["git", "-C", top.stdout.strip(), "show", f"HEAD:{name}"], capture_output=True,
                               text=True, timeout=10)
        try:
            doc = yaml.safe_load(shown.stdout) or {}
        except yaml.YAMLError:
            continue
        for raw in doc.get("entries") or [] if isinstance(doc, dict) else []:
            if isinstance(raw, dict) and isinstance(raw.get("id"), str):
                ids.add(raw["id"])
    return ids


def _near_duplicates(items: list[tuple[str, str, Path, int | None]], keys: list[str]) -> list[tuple[int, int, float]]:
    """Pairs of questions of different entries with character-bigram cosine ≥ the threshold."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    if len(items) < 2:
        return []
    matrix = TfidfVectorizer(analyzer="char", ngram_range=(2, 2)).fit_transform(
        [key or question for key, (_, question, _, _) in zip(keys, items)])
    pairs = []
    chunk = 1000
    for start in range(0, matrix.shape[0], chunk):
        block = (matrix[start:start + chunk] @ matrix.T).tocoo()
        close = block.data >= NEAR_DUPLICATE_SIMILARITY  # filter in numpy: most pairs are far apart
        for i, j, value in zip(block.row[close], block.col[close], block.data[close]):
            a, b = start + int(i), int(j)
            if a < b and items[a][0] != items[b][0]:
                pairs.append((a, b, float(value)))
    return pairs


def validate_knowledge(directory: Path, check_published: bool = True) -> list[Problem]:
    """All problems of ``directory`` (errors first, then warnings, in file order).

    Args:
        directory: A knowledge directory (``knowledge/`` or one made by ``bot kb import --kb``).
        check_published: Compare ids with git ``HEAD`` (skipped outside a git work tree).
    """
    problems: list[Problem] = []
    faq_dir = directory / "faq"
    files = sorted(faq_dir.glob("*.yml"))
    if not files:
        return [Problem("error", faq_dir, None, None, "FAQ ファイル（*.yml）が見つかりません。",
                        "faq/ フォルダにカテゴリごとの YAML ファイルを置いてください。")]
    loaded = [item for path in files for item in _load_file(path, problems)]
    where: dict[str, tuple[Path, int | None]] = {}
    for entry, line in loaded:
        if entry.id in where:
            first = where[entry.id]
            problems.append(Problem("error", entry.source, line, entry.id,
                                    f"id「{entry.id}」は {first[0].name}:{first[1]} でも使われています。",
                                    "どちらかの id を別の名前にしてください。"))
        else:
            where[entry.id] = (entry.source, line)
    for entry, line in loaded:
        for rel in entry.related:
            if rel not in where:
                problems.append(Problem("error", entry.source, line, entry.id, f"related の「{rel}」という id はありません。",
                                        "存在する id に直すか、行を消してください。"))
        if len(entry.questions) < RECOMMENDED_QUESTIONS:
            problems.append(Problem("warning", entry.source, line, entry.id,
                                    f"質問例が {len(entry.questions)} 件です。分類器が覚えにくくなります（検索には出ます）。",
                                    f"言い回しの違う質問例を {RECOMMENDED_QUESTIONS} 件以上にしてください。"))
        notice = long_answer_notice(len(entry.answer))
        if notice is not None:
            problems.append(Problem("warning", entry.source, line, entry.id, *notice))
        if len(entry.title) > MAX_TITLE_CHARS:
            problems.append(Problem("warning", entry.source, line, entry.id,
                                    f"タイトルが {len(entry.title)} 文字あります（ボタンに表示されます）。",
                                    f"{MAX_TITLE_CHARS} 文字以内に短くしてください。"))
    # The same question in two entries: the classifier cannot tell them apart.
    owners: dict[str, list[tuple[FaqEntry, int | None, str]]] = defaultdict(list)
    for entry, line in loaded:
        seen_here: set[str] = set()
        for question in entry.questions:
            key = question_key(question)
            if not key:
                continue
            if key in seen_here:
                problems.append(Problem("warning", entry.source, line, entry.id,
                                        f"質問例「{question}」が同じエントリに重複しています。", "片方を消してください。"))
                continue
            seen_here.add(key)
            owners[key].append((entry, line, question))
    for found in owners.values():
        ids = sorted({entry.id for entry, _, _ in found})
        if len(ids) > 1:
            entry, line, question = found[-1]
            places = ", ".join(f"{e.id}: {e.source.name}" + (f":{at}" if at else "") for e, at, _ in found)
            problems.append(Problem("error", entry.source, line, entry.id,
                                    f"質問例「{question}」が複数のエントリ（{', '.join(ids)}）にあります（{places}）。",
                                    "どのエントリの質問か決めて、ほかのエントリからは消してください"
                                    "（同じ内容の FAQ なら1つにまとめてください）。"))
    items = [(entry.id, question, entry.source, line) for entry, line in loaded for question in entry.questions]
    keys = [question_key(question) for _, question, _, _ in items]
    exact = {key for key, found in owners.items() if len({e.id for e, _, _ in found}) > 1}
    for a, b, similarity in _near_duplicates(items, keys):
        if keys[a] in exact or keys[b] == keys[a]:
            continue
        problems.append(Problem("warning", items[b][2], items[b][3], items[b][0],
                                f"質問例「{items[b][1]}」が {items[a][0]} の「{items[a][1]}」とほぼ同じです（類似度 {similarity:.2f}）。",
                                "意味が違うなら言い回しを変え、同じならどちらかに寄せてください。"))
    if check_published:
        published = _published_ids(faq_dir)
        for gone in sorted((published or set()) - set(where)):
            problems.append(Problem("error", faq_dir, None, gone,
                                    f"公開済みの id「{gone}」がなくなっています（id の変更または削除）。",
                                    "id は変えずに元に戻してください。廃止する場合は開発者に相談してください。"))
    return sorted(problems, key=lambda p: (p.severity != "error", str(p.path), p.line or 0))
