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
  the same question twice in one entry;
- errors from the fact sheet (``facts.yml``, :mod:`bot.knowledge.facts`): an unknown ``{name}``
  placeholder, a price, phone number, URL, e-mail address or time in an answer that the fact
  sheet does not state (checked only in a folder with its own ``facts.yml``), staffed hours that
  differ from ``hours.yml``, a URL written in the answer and again as a link under it;
- errors from the style list (``style.yml``, :mod:`bot.knowledge.style`; only in a folder with its
  own ``style.yml``): a variant the list forbids in an answer or a title;
- errors of the canned replies (``canned.yml``, :mod:`bot.knowledge.canned`): a malformed or empty
  entry, an unknown ``{faq:id}`` or placeholder, a duplicate shortcut, a style-list variant;
- errors of the satisfaction survey's texts (``csat.yml``, :mod:`bot.knowledge.csat`): a missing or
  too long text, a rating without its meaning, an unknown field, a style-list variant;
- errors of the departments a ticket can be forwarded to (``departments.yml``,
  :mod:`bot.knowledge.departments`): a bad id, no name or promise, an address that is not one,
  a webhook that is a URL instead of a receiver's name, no delivery at all, the same id or name twice;
- customers' phrasings (``phrasings.yml``, :mod:`bot.knowledge.phrasings`): a malformed file or
  block is an error, phrasings of an id no entry has are a warning.

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
from bot.knowledge.canned import check_canned, read_canned
from bot.knowledge.csat import read_csat
from bot.knowledge.departments import departments_path, read_departments
from bot.knowledge.facts import FACTS_FILE, Facts, contradictions, load_facts
from bot.knowledge.loader import (
    RECOMMENDED_QUESTIONS,
    SAFE_YAML_LOADER,
    long_answer_notice,
    parse_entry,
    question_key,
)
from bot.knowledge.model import FaqEntry, KnowledgeBase
from bot.knowledge.phrasings import read_phrasings
from bot.knowledge.style import STYLE_FILE, Term, load_style, style_problems
from bot.knowledge.yaml_io import entry_lines

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


def _load_file(path: Path, problems: list[Problem], facts: Facts | None = None) -> list[tuple[FaqEntry, int | None]]:
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
                                "この行の付近の書き方が正しくないため、ファイルを読めません。",
                                "その行と前の行の字下げ（スペースの数）、「:」「-」の位置を、ほかのエントリとそろえてください。"
                                "文中に「: 」や「#」がある回答は、answer: |- の次の行から書いてください。"))
        return []
    raw_entries = doc.get("entries") if isinstance(doc, dict) else None
    if not isinstance(raw_entries, list):
        problems.append(Problem("error", path, None, None, "ファイルに「entries:」の行がありません。",
                                "説明のコメントのあとに「entries:」の行を書き、その下に「  - id: ...」でエントリを並べてください。"))
        return []
    lines = entry_lines(text)
    loaded = []
    for index, raw in enumerate(raw_entries, start=1):
        line = lines[index - 1] if index <= len(lines) else None
        try:
            loaded.append((parse_entry(raw, path, index, facts), line))
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


def _facts_and_style(directory: Path, problems: list[Problem]) -> tuple[Facts, tuple[Term, ...]]:
    """The fact sheet and the style list of ``directory`` (empty ones, with an error, when unreadable)."""
    facts: Facts = Facts()
    terms: tuple[Term, ...] = ()
    try:
        facts = load_facts(directory)
    except KnowledgeError as exc:
        problems.append(Problem("error", exc.path, None, exc.entry, exc.problem, exc.fix))
    try:
        terms = load_style(directory)
    except KnowledgeError as exc:
        problems.append(Problem("error", exc.path, None, exc.entry, exc.problem, exc.fix))
    own = directory / FACTS_FILE
    hours = directory / "hours.yml"
    if own.exists() and hours.exists() and facts.values:
        problems.extend(_hours_problems(own, hours, facts))
    return facts, terms


def _hours_problems(facts_file: Path, hours_file: Path, facts: Facts) -> list[Problem]:
    """The fact sheet's opening and closing times must be hours.yml's weekday times."""
    try:
        weekly = (yaml.safe_load(hours_file.read_text(encoding="utf-8")) or {}).get("weekly") or {}
    except (yaml.YAMLError, AttributeError):
        return []
    ranges = {str(v) for v in weekly.values() if isinstance(v, str) and v != "closed"}
    wanted = f"{facts.values.get('hours.open', '')}-{facts.values.get('hours.close', '')}"
    norm = {"-".join(part.lstrip("0") if not part.startswith("00") else part for part in r.split("-")) for r in ranges}
    if ranges and wanted not in norm:
        return [Problem("error", facts_file, None, "hours",
                        f"受付時間 {wanted.replace('-', '〜')} が hours.yml の受付時間（{'、'.join(sorted(ranges))}）と違います。",
                        "facts.yml の hours と hours.yml の weekly を同じ時刻にそろえてください。")]
    return []


def _fact_and_style_problems(entry: FaqEntry, line: int | None, facts: Facts | None,
                             terms: tuple[Term, ...]) -> list[Problem]:
    """Contradictions with the fact sheet, a URL stated twice, and style-list variants of one entry."""
    found: list[tuple[str, str]] = []
    if facts is not None:
        found += contradictions(entry.answer, facts)
        for link in entry.links:
            found += contradictions(link.url, facts)
    for link in entry.links:
        if link.url in entry.answer:
            found.append((f"URL「{link.url}」が回答の本文とリンク（▶ {link.title}）の両方にあります。",
                          "本文からは URL を消し、「マイページ」のように名前だけにしてください（リンクは回答の下に表示されます）。"))
    found += style_problems(entry.answer, terms)
    found += [(f"タイトルの{problem}", fix) for problem, fix in style_problems(entry.title, terms)]
    return [Problem("error", entry.source, line, entry.id, problem, fix) for problem, fix in found]


def _canned_problems(directory: Path, loaded: list[tuple[FaqEntry, int | None]], facts: Facts,
                     terms: tuple[Term, ...], own_facts: bool) -> list[Problem]:
    """Errors of ``canned.yml`` (none without the file); ``{faq:id}`` is checked against the loaded entries."""
    replies, findings = read_canned(directory)
    kb = KnowledgeBase(entries=tuple(entry for entry, _ in loaded))
    findings += check_canned(replies, directory / "canned.yml", kb, facts, terms, check_facts=own_facts)
    return [Problem("error", f.path, f.line, f.entry, f.problem, f.fix) for f in findings]


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
    facts, terms = _facts_and_style(directory, problems)
    loaded = [item for path in files for item in _load_file(path, problems, facts)]
    # Our fact sheet and style list judge only a folder that has them: an imported city FAQ states
    # its own fees and numbers in its own voice (placeholders still resolve with the project's sheet).
    own_facts = (directory / FACTS_FILE).exists()
    own_style = (directory / STYLE_FILE).exists()
    for entry, line in loaded:
        problems.extend(_fact_and_style_problems(entry, line, facts if own_facts else None,
                                                 terms if own_style else ()))
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
                                    f"質問例が {len(entry.questions)} 件です。少ないと、ボットがお客さまの言い方の違いを覚えにくくなります（検索には出ます）。",
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
                                f"質問例「{items[b][1]}」が {items[a][0]} の「{items[a][1]}」とほぼ同じです（文字の重なり {similarity:.0%}）。",
                                "意味が違うなら言い回しを変え、同じならどちらかに寄せてください。"))
    problems.extend(_canned_problems(directory, loaded, facts, terms if own_style else (), own_facts))
    _, csat_findings = read_csat(directory, terms if own_style else ())
    problems.extend(Problem("error", f.path, f.line, f.entry, f.problem, f.fix) for f in csat_findings)
    _, department_findings = read_departments(departments_path(directory), terms if own_style else ())
    problems.extend(Problem("error", f.path, f.line, f.entry, f.problem, f.fix) for f in department_findings)
    _, phrasing_findings = read_phrasings(directory, set(where))
    problems.extend(Problem(f.severity, f.path, f.line, f.entry, f.problem, f.fix) for f in phrasing_findings)
    if check_published:
        published = _published_ids(faq_dir)
        for gone in sorted((published or set()) - set(where)):
            problems.append(Problem("error", faq_dir, None, gone,
                                    f"公開済みの id「{gone}」がなくなっています（id の変更または削除）。公開済みとは、最後に保存した版（git）にある id のことです。",
                                    "id は変えずに元に戻してください。廃止する場合は開発者に相談してください。"))
    return sorted(problems, key=lambda p: (p.severity != "error", str(p.path), p.line or 0))
