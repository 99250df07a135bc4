"""Writing an import into ``knowledge/faq/*.yml``: comments and layout kept, checked, all or nothing.

Existing files are edited with ruamel.yaml's round trip, so comments, order and quoting
stay and only changed values are rewritten; new entries are appended to ``imported.yml``.
The result is loaded with :func:`bot.knowledge.loader.load_knowledge` from a temporary copy
before any file is replaced (:func:`validate_in_copy`), then each file is replaced
atomically (:func:`write_files`).
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError as RuamelYAMLError
from ruamel.yaml.scalarstring import DoubleQuotedScalarString, LiteralScalarString
from ruamel.yaml.util import load_yaml_guess_indent

from bot.errors import KnowledgeError
from bot.knowledge.loader import load_knowledge
from bot.knowledge.model import FaqEntry, Link
from bot.knowledge.spreadsheet.common import IMPORTED_FILE, ImportReport, SheetError
from bot.knowledge.spreadsheet.planning import Target
from bot.knowledge.spreadsheet.reading import Sheet

IMPORTED_HEADER = """\
# FAQ: 表計算ソフト（Excel / CSV）から `bot kb import` で取り込んだエントリ。
#
# 取り込んだあとは、ほかのファイルと同じようにこのファイルを直接編集してかまいません。
# 項目の意味は registration.yml の先頭のコメントを見てください。
# 手順の説明: docs/importing-faq.md
"""


def _yaml(mapping: int = 2, sequence: int = 4, offset: int = 2) -> YAML:
    """A round-trip YAML; the default indentation is the layout of knowledge/faq/*.yml."""
    rt = YAML(typ="rt")
    rt.indent(mapping=mapping, sequence=sequence, offset=offset)
    rt.width = 4096  # never re-wrap long questions
    rt.preserve_quotes = True
    return rt


@dataclass
class _EditableFile:
    """A YAML file loaded for editing, with the settings that write it back unchanged."""

    doc: Any
    yaml: YAML
    crlf: bool = False
    relaid_out: bool = False  # ruamel could not reproduce its layout: the whole file gets re-indented

    def dump(self) -> str:
        buffer = io.StringIO()
        self.yaml.dump(self.doc, buffer)
        text = buffer.getvalue()
        return text.replace("\n", "\r\n") if self.crlf else text


_PYYAML_RESOLVER = yaml.resolver.Resolver()


def _yaml_text(text: str) -> Any:
    """A string ruamel (YAML 1.2) writes so that PyYAML (YAML 1.1, used by the loader) reads it back as the same str."""
    if "\n" in text:
        return LiteralScalarString(text)
    if _PYYAML_RESOLVER.resolve(yaml.ScalarNode, text, (True, False)) != "tag:yaml.org,2002:str":
        return DoubleQuotedScalarString(text)  # yes / no / on / 1:20 / 0777 ... are not strings in YAML 1.1
    return text


def _yaml_links(links: Sequence[Link]) -> CommentedSeq:
    return CommentedSeq(CommentedMap([("title", _yaml_text(link.title)), ("url", _yaml_text(link.url))])
                        for link in links)


def _yaml_related(related: Sequence[str]) -> CommentedSeq:
    seq = CommentedSeq(related)
    seq.fa.set_flow_style()  # `related: [a, b]`, as in the hand-written files
    return seq


def _new_node(entry: FaqEntry) -> CommentedMap:
    node = CommentedMap()
    node["id"] = entry.id
    node["category"] = _yaml_text(entry.category)
    node["title"] = _yaml_text(entry.title)
    node["questions"] = CommentedSeq(_yaml_text(q) for q in entry.questions)
    node["answer"] = _yaml_text(entry.answer)
    if entry.links:
        node["links"] = _yaml_links(entry.links)
    if entry.related:
        node["related"] = _yaml_related(entry.related)
    return node


def _set_after(node: CommentedMap, key: str, value: Any, after: Sequence[str]) -> None:
    """Set ``node[key]``; a new key goes after the last of ``after`` present (keeps the usual field order)."""
    if key in node:
        node[key] = value
        return
    keys = list(node.keys())
    position = max((keys.index(k) + 1 for k in after if k in node), default=len(keys))
    node.insert(position, key, value)


def _update_node(node: CommentedMap, old: FaqEntry, new: FaqEntry) -> None:
    """Change only what differs, in place, so comments and layout of the rest stay."""
    for key in ("category", "title", "answer"):
        if getattr(old, key) != getattr(new, key):
            node[key] = _yaml_text(getattr(new, key))
    if old.questions != new.questions:
        seq = node["questions"]
        first = new.questions[0]
        if old.questions[0] != first:
            index = next((i for i, q in enumerate(seq) if isinstance(q, str) and q.strip() == first), None)
            comment = None
            if index is not None:
                comment = seq.ca.items.pop(index, None)  # the moved question keeps its comment
                del seq[index]
            seq.insert(0, _yaml_text(first))
            if comment is not None:
                seq.ca.items[0] = comment
        present = {q.strip() for q in seq if isinstance(q, str)}
        for question in new.questions:
            if question not in present:
                seq.append(_yaml_text(question))
                present.add(question)
    if old.links != new.links:
        _set_after(node, "links", _yaml_links(new.links), ("answer",))
    if old.related != new.related:
        _set_after(node, "related", _yaml_related(new.related), ("answer", "links"))


def _load_rt(path: Path) -> _EditableFile:
    """Load ``path`` for editing with an indentation that writes it back byte for byte, if there is one."""
    raw = path.read_bytes().decode("utf-8")  # not read_text(): it would hide CRLF line endings
    text = raw.replace("\r\n", "\n")
    try:
        edit = _EditableFile(_yaml().load(text), _yaml(), crlf="\r\n" in raw)
        if edit.dump().replace("\r\n", "\n") == text:
            return edit
        # Not the project's layout (hand-edited with another indentation): try the one the file uses.
        _, sequence, offset = load_yaml_guess_indent(text)
        if sequence:
            guessed = _yaml(mapping=max(offset or 0, 2), sequence=sequence, offset=offset or 0)
            other = _EditableFile(guessed.load(text), guessed, crlf=edit.crlf)
            if other.dump().replace("\r\n", "\n") == text:
                return other
    except RuamelYAMLError as exc:  # PyYAML read it, ruamel does not (e.g. a key written twice)
        mark = getattr(exc, "problem_mark", None)
        where = f"{mark.line + 1}行目: " if mark is not None else ""
        raise KnowledgeError(path, None, f"YAML を書き換えのために読めません（{where}{getattr(exc, 'problem', None) or exc}）。",
                             "同じ項目が2回書かれていないかなど、指摘された行を確認してください。") from exc
    edit.relaid_out = True
    return edit


def render(faq_dir: Path, files: list[Path], targets: list[Target], report: ImportReport) -> dict[Path, str]:
    """New text of every file that changes (existing files edited in place, new entries appended)."""
    docs: dict[Path, _EditableFile] = {}
    where: dict[str, tuple[Path, CommentedMap]] = {}
    changed_ids = {t.faq_id for t in targets if t.old is not None and t.old != t.new}
    files_to_edit = {t.old.source for t in targets if t.faq_id in changed_ids and t.old is not None}
    for path in files:
        if path in files_to_edit:
            docs[path] = _load_rt(path)
            for node in docs[path].doc["entries"]:
                if isinstance(node, dict) and node.get("id") in changed_ids:
                    where[node["id"]] = (path, node)
    touched: set[Path] = set()
    for target in targets:
        if target.faq_id in changed_ids and target.old is not None:
            path, node = where[target.faq_id]
            _update_node(node, target.old, target.new)
            touched.add(path)
    new_entries = [t.new for t in targets if t.old is None]
    if new_entries:
        imported = faq_dir / IMPORTED_FILE
        if imported not in docs:
            docs[imported] = _load_rt(imported) if imported.exists() else \
                _EditableFile(_yaml().load(IMPORTED_HEADER + "entries: []\n"), _yaml())
        doc = docs[imported].doc
        entries = doc.get("entries")
        if not isinstance(entries, CommentedSeq):
            entries = doc["entries"] = CommentedSeq()
        entries.fa.set_block_style()
        for entry in new_entries:
            entries.append(_new_node(entry))
            if len(entries) > 1:  # a blank line between entries, as in the hand-written files
                entries.yaml_set_comment_before_after_key(len(entries) - 1, before="\n")
        touched.add(imported)
    texts = {}
    for path in sorted(touched):
        texts[path] = docs[path].dump()
        if docs[path].relaid_out:
            report.warnings.append(f"{path.name} はコメントと順番は残りますが、インデントの書き方が整え直されました。")
    return texts


def validate_in_copy(sheet: Sheet, kb_dir: Path, files: list[Path], texts: dict[Path, str],
                      targets: list[Target]) -> None:
    """Load the would-be knowledge base from a temporary copy; it must load and hold exactly the planned entries."""
    rows = {t.faq_id: t.row.row for t in targets}
    with tempfile.TemporaryDirectory(prefix="kb-import-") as tmp:
        copy_faq = Path(tmp) / "faq"
        copy_faq.mkdir()
        for path in files:
            shutil.copyfile(path, copy_faq / path.name)
        for path, text in texts.items():
            (copy_faq / path.name).write_text(text, encoding="utf-8")
        if (kb_dir / "facts.yml").exists():
            shutil.copyfile(kb_dir / "facts.yml", Path(tmp) / "facts.yml")
        try:
            load_knowledge(Path(tmp))  # every {placeholder} must name a fact
            new_kb = load_knowledge(Path(tmp), resolve_facts=False)  # compared as written
        except KnowledgeError as exc:
            real = kb_dir / "faq" / exc.path.name
            raise SheetError(sheet.path, f"取り込むと {real}（{exc.entry or '全体'}）が不正になります: {exc.problem}",
                             exc.fix, row=rows.get(exc.entry or "")) from exc
    for target in targets:
        loaded = new_kb.get(target.faq_id)
        if loaded != target.new:
            raise SheetError(sheet.path, f"FAQ「{target.faq_id}」を YAML に書くと内容が変わってしまいます"
                                         "（特殊な文字が含まれている可能性があります）。",
                             "この行の制御文字や特殊な記号を消してから取り込み直してください。", row=target.row.row)


def write_files(kb_dir: Path, texts: dict[Path, str]) -> None:
    """Write every file via a temporary sibling and ``os.replace``; on failure nothing is replaced."""
    created: list[Path] = []
    for directory in (kb_dir, kb_dir / "faq"):
        if not directory.exists():
            directory.mkdir()
            created.append(directory)
    sibling_mode = next((p.stat().st_mode for p in sorted((kb_dir / "faq").glob("*.yml"))), None)
    staged: list[tuple[str, Path]] = []
    try:
        for path, text in texts.items():
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            staged.append((tmp, path))
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            if path.exists():
                shutil.copymode(path, tmp)
            else:
                os.chmod(tmp, (sibling_mode or 0o644) & 0o777)
    except OSError as exc:
        for tmp, _ in staged:
            Path(tmp).unlink(missing_ok=True)
        for directory in reversed(created):
            directory.rmdir()
        raise SheetError(kb_dir, f"ファイルを書き込めません（{exc}）。",
                         "フォルダの書き込み権限と空き容量を確認してください。knowledge のファイルは変わっていません。") from exc
    for tmp, path in staged:
        os.replace(tmp, path)
