"""One 表記・敬語 list (knowledge/style.yml) for answers and for every text of the code.

Customers read: bot/wording.py (replies, error frames), domain.yml's responses, the widget.
Agents read: the console and the analytics page (their own rules: ボット is allowed there).
"""

from __future__ import annotations

import ast
import re
import shutil
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from bot import wording
from bot.knowledge.style import AGENT, CUSTOMER, load_style, style_problems
from bot.knowledge.validate import validate_knowledge
from bot.settings import PROJECT_ROOT

TERMS = load_style(PROJECT_ROOT / "knowledge")
STATIC = PROJECT_ROOT / "bot" / "server" / "static"
JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")
# Agent-facing parts of bot/wording.py (the rest is read by customers).
AGENT_CONSTANTS = {"STORE_AGENT_TEXT", "TICKET_STATUS_JA", "INTENT_LABELS", "DECISION_PREFIX", "CONFIDENCE_LABEL",
                   "UNDECIDED"}
AGENT_GATEWAY_KEYS = {"ended_with_agent", "not_your_ticket", "took_over"}


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)


def wording_texts() -> Iterator[tuple[str, str, str]]:
    """(where, reader, text) for every Japanese constant of bot/wording.py."""
    for name in dir(wording):
        if not name.isupper():
            continue
        value = getattr(wording, name)
        if name == "GATEWAY_TEXT":
            for key, text in value.items():
                yield f"wording.{name}[{key}]", AGENT if key in AGENT_GATEWAY_KEYS else CUSTOMER, text
            continue
        reader = AGENT if name in AGENT_CONSTANTS else CUSTOMER
        for text in _strings(value):
            if JAPANESE.search(text):
                yield f"wording.{name}", reader, text


def js_texts(path: Path) -> Iterator[str]:
    """Each line of a browser script or page that holds Japanese (comments removed)."""
    source = re.sub(r"/\*.*?\*/|<!--.*?-->", "", path.read_text(encoding="utf-8"), flags=re.S)
    for line in source.splitlines():
        line = re.sub(r"(^|\s)//\s.*$", "", line)
        if JAPANESE.search(line):
            yield line.strip()


def all_code_texts() -> Iterator[tuple[str, str, str]]:
    yield from wording_texts()
    domain = yaml.safe_load((PROJECT_ROOT / "domain.yml").read_text(encoding="utf-8"))
    for name, variants in domain["responses"].items():
        for variant in variants:
            yield f"domain.yml {name}", CUSTOMER, variant["text"]
    for path in sorted((STATIC / "widget").glob("*.js")) + [STATIC / "demo" / "index.html"]:
        for text in js_texts(path):
            yield str(path.relative_to(PROJECT_ROOT)), CUSTOMER, text
    for path in sorted((STATIC / "console").glob("*.js")) + sorted((STATIC / "console").glob("*.html")):
        for text in js_texts(path):
            yield str(path.relative_to(PROJECT_ROOT)), AGENT, text


def test_every_text_of_the_code_follows_the_style_list() -> None:
    found = [f"{where}: {problem} {fix} — {text[:60]}" for where, reader, text in all_code_texts()
             for problem, fix in style_problems(text, TERMS, reader)]
    assert found == []


# Files whose texts are still expected to break the style list (none: every file uses bot/wording.py).
PENDING_COPY_TODO: set[str] = set()
# Texts that name a variant on purpose: the style list's own example, hours.yml's "09:00-18:00" format.
ABOUT_THE_RULES = {"bot/knowledge/style.py", "bot/triage/hours.py"}


def python_texts() -> Iterator[tuple[str, str]]:
    """(file:line, text) of every Japanese string literal of the code (docstrings left out)."""
    for path in sorted((PROJECT_ROOT / "bot").rglob("*.py")) + sorted((PROJECT_ROOT / "actions").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                      and node.body and isinstance(node.body[0], ast.Expr)
                      and isinstance(node.body[0].value, ast.Constant)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings \
                    and JAPANESE.search(node.value):
                yield f"{path.relative_to(PROJECT_ROOT)}:{node.lineno}", node.value


def test_every_japanese_string_of_the_python_code_follows_the_style_list() -> None:
    """Agents' rules (ボット allowed) for every literal; customers' texts are also checked above."""
    found = [f"{where}: {problem} {fix} — {text[:60]}" for where, text in python_texts()
             if where.split(":")[0] not in PENDING_COPY_TODO | ABOUT_THE_RULES
             for problem, fix in style_problems(text, TERMS, AGENT)]
    assert found == []


def test_the_scan_reads_every_place() -> None:
    """The scan must see the texts it is meant to check (a broken pattern would pass silently)."""
    places = {where.split(" ")[0].split("[")[0] for where, _, _ in all_code_texts()}
    assert {"wording.HANDOFF_TEXT", "wording.GATEWAY_TEXT", "domain.yml", "bot/server/static/widget/widget.js",
            "bot/server/static/console/console.js", "bot/server/static/console/index.html"} <= places
    assert sum(1 for _ in all_code_texts()) > 150


def test_domain_responses_are_the_ones_of_bot_wording() -> None:
    domain = yaml.safe_load((PROJECT_ROOT / "domain.yml").read_text(encoding="utf-8"))
    assert {name: variants[0]["text"] for name, variants in domain["responses"].items()} == wording.DOMAIN_RESPONSES


# Issue #16 items 6 and 9: every pair of the issue is on the list.
@pytest.mark.parametrize(("bad", "good", "reader"), [
    ("お客様", "お客さま", AGENT),
    ("オペレーター", "担当者", AGENT),
    ("エージェント", "担当者", AGENT),
    ("営業時間外", "受付時間外", CUSTOMER),
    ("申し訳ありません", "申し訳ございません", CUSTOMER),
    ("どういたしまして", "お役に立てて何よりです", CUSTOMER),
    ("承知しました", "かしこまりました", CUSTOMER),
    ("自動応答", "AIチャット", CUSTOMER),
    ("ボット", "AIチャット", CUSTOMER),
    ("チケット", "お問い合わせ", AGENT),
    ("09:00", "9:00", CUSTOMER),
    ("確信度", "確からしさ", AGENT),
])
def test_each_pair_is_caught_and_its_preferred_term_passes(bad: str, good: str, reader: str) -> None:
    assert style_problems(f"ただいま{bad}です。", TERMS, reader), bad
    assert not style_problems(f"ただいま{good}です。", TERMS, reader), good


def test_bot_is_allowed_for_agents_only() -> None:
    assert not style_problems("ボットの判定: 判定できず", TERMS, AGENT)
    assert style_problems("ボットに戻る", TERMS, CUSTOMER)


def _kb(tmp_path: Path, answer: str, title: str = "テスト") -> Path:
    (tmp_path / "faq").mkdir(parents=True)
    for name in ("facts.yml", "style.yml"):
        shutil.copyfile(PROJECT_ROOT / "knowledge" / name, tmp_path / name)
    questions = "".join(f"      - 質問の言い方その{n}\n" for n in range(10))
    (tmp_path / "faq" / "t.yml").write_text(
        f"entries:\n  - id: t\n    category: テスト\n    title: {title}\n    questions:\n{questions}"
        f"    answer: {answer}\n", encoding="utf-8")
    return tmp_path


def _errors(directory: Path) -> list[str]:
    return [p.problem + p.fix for p in validate_knowledge(directory, check_published=False) if p.severity == "error"]


@pytest.mark.parametrize(("bad", "good"), [
    ("お客様のご住所は、マイページで変更できます。", "お客さまのご住所は、マイページで変更できます。"),
    ("申し訳ありません。現在その手続きはできません。", "申し訳ございません。現在その手続きはできません。"),
    ("オペレーターにおつなぎします。", "担当者におつなぎします。"),
    ("営業時間外はフォームをご利用ください。", "受付時間外はフォームをご利用ください。"),
])
def test_validate_fails_on_a_broken_answer_and_passes_the_fixed_one(tmp_path: Path, bad: str, good: str) -> None:
    broken = _errors(_kb(tmp_path / "bad", bad))
    assert len(broken) == 1 and "style.yml" in broken[0]
    assert _errors(_kb(tmp_path / "good", good)) == []


def test_a_title_is_checked_too(tmp_path: Path) -> None:
    assert any("タイトル" in e for e in _errors(_kb(tmp_path, "回答です。", title="オペレーターと話す")))


def test_the_category_name_is_an_allowed_exception(tmp_path: Path) -> None:
    assert _errors(_kb(tmp_path / "a", "「登録情報の変更」のご案内です。")) == []
    assert _errors(_kb(tmp_path / "b", "会員ページの「登録情報」から変更できます。")) != []
