"""Customers' own phrasings of FAQ questions: ``knowledge/phrasings.yml``.

Editors write an entry's ``questions`` as they would ask them; customers write 「引っ越したけど
箱どうなる？」 or 「ﾒｲｷﾞ ﾍﾝｺｳ」. Messages whose right entry is known (read held-out sets, writers'
batches, later the conversations agents resolved) are kept here, per entry id, and the FAQ search
matches them as it matches the entry's questions (:class:`bot.knowledge.search.FaqSearch`), and
its re-ranker learns from them. Nothing else changes: the answer, the title, the classifier's
training data (``make build`` writes only ``questions`` to ``data/nlu/faq.yml``).

Measured (README "Routing on the eleventh held-out generation"): with the 2,317 phrasings of
the demo, route accuracy on customer questions of the read held-out generations rose from 0.867
to 0.940 at the same answer precision (0.988 → 0.990).

A broken file never stops the bot: :func:`read_phrasings` reports each problem (for
``bot kb validate``, with the line and the fix, in Japanese) and the bot searches without the
phrasings it could not read.

Phrasings are copied from real conversations, so one may carry what a customer typed about
themselves. A phrasing with a card number, マイナンバー, telephone number or e-mail address (what
:func:`bot.text.masking.mask_sensitive` finds) is an error and left out of the search; the
finding shows it masked, never the number itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from bot.knowledge.editor_files import Finding
from bot.text.masking import mask_sensitive
from bot.knowledge.yaml_io import SAFE_YAML_LOADER

PHRASINGS_FILE = "phrasings.yml"
_FIX_PERSONAL = ("お客さまの個人情報は載せないでください。番号やアドレスは消すか、「（電話番号）」「（メールアドレス）」"
                 "のような言葉に置き換えてください。")
_FIX_SHAPE = "`phrasings:` の下に `  <FAQ の id>:` を書き、その下に `    - お客さまの言い回し` を1行ずつ並べてください。"


def phrasings_path(directory: Path) -> Path:
    """``directory/phrasings.yml`` (it may not exist)."""
    return directory / PHRASINGS_FILE


def _id_lines(text: str) -> dict[str, int]:
    """1-based line of each id under ``phrasings:`` (empty when the YAML cannot be composed)."""
    try:
        node = yaml.compose(text, Loader=SAFE_YAML_LOADER)
    except yaml.YAMLError:
        return {}
    if not isinstance(node, yaml.MappingNode):
        return {}
    for name, value in node.value:
        if name.value == "phrasings" and isinstance(value, yaml.MappingNode):
            return {str(key.value): key.start_mark.line + 1 for key, _ in value.value}
    return {}


def has_personal_data(text: str) -> bool:
    """Whether ``text`` holds a card number, マイナンバー, telephone number or e-mail address."""
    return mask_sensitive(text, phone=True, email=True) != text


def read_phrasings(directory: Path, known_ids: set[str] | None = None
                   ) -> tuple[dict[str, tuple[str, ...]], list[Finding]]:
    """The phrasings of ``directory/phrasings.yml`` per FAQ id, and every problem found.

    Args:
        directory: A knowledge directory.
        known_ids: The ids of the loaded entries; phrasings of another id are a warning and
            left out (``None``: not checked).

    Returns:
        ``({faq_id: phrasings}, findings)``. A missing file is no phrasings and no finding; a
        malformed file or entry is an error finding and is left out, the rest is kept.
    """
    path = phrasings_path(directory)
    if not path.exists():
        return {}, []
    text = path.read_text(encoding="utf-8")
    try:
        doc: Any = yaml.load(text, Loader=SAFE_YAML_LOADER)
    except yaml.YAMLError as exc:
        line = exc.problem_mark.line + 1 if getattr(exc, "problem_mark", None) else None
        return {}, [Finding(path, line, None, "YAML として読めません（字下げや「:」を確認してください）。", _FIX_SHAPE)]
    if doc is None:
        return {}, []
    if not isinstance(doc, dict) or not isinstance(doc.get("phrasings"), dict):
        return {}, [Finding(path, 1, None, "ファイルに「phrasings:」の項目がありません。", _FIX_SHAPE)]
    lines = _id_lines(text)
    found: dict[str, tuple[str, ...]] = {}
    findings: list[Finding] = []
    for faq_id, texts in doc["phrasings"].items():
        faq_id = str(faq_id)
        line = lines.get(faq_id)
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            findings.append(Finding(path, line, faq_id, f"「{faq_id}」の言い回しが文字列のリストになっていません。", _FIX_SHAPE))
            continue
        if known_ids is not None and faq_id not in known_ids:
            findings.append(Finding(path, line, faq_id,
                                    f"「{faq_id}」という id の FAQ はありません（{len(texts)} 件の言い回しは使われません）。",
                                    "FAQ の id に直すか、このブロックを消してください。", severity="warning"))
            continue
        kept = []
        for phrasing in dict.fromkeys(t.strip() for t in texts if t.strip()):
            if has_personal_data(phrasing):
                masked = mask_sensitive(phrasing, phone=True, email=True)
                findings.append(Finding(path, line, faq_id, f"「{faq_id}」の言い回し「{masked}」に個人情報らしき番号"
                                        "かアドレスがあります（検索には使いません）。", _FIX_PERSONAL))
                continue
            kept.append(phrasing)
        if kept:
            found[faq_id] = tuple(kept)
    return found, findings
