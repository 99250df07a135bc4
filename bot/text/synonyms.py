"""Editor-maintained synonym table (``knowledge/synonyms.yml``).

The file maps a canonical word to the variants customers type for it::

    synonyms:
      メールアドレス: [メアド, メルアド, eメール]

Both sides are folded with :func:`bot.text.normalize.fold` when loaded, so editors
may write them in any width or case.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from bot.errors import KnowledgeError
from bot.text.normalize import Normalizer, fold


def parse_synonyms(raw: object, source: Path) -> dict[str, str]:
    """Turn the YAML document of a synonym file into a variant -> canonical map.

    Args:
        raw: The parsed YAML document.
        source: The file it came from, named in error messages.

    Returns:
        Folded variant -> folded canonical form.

    Raises:
        KnowledgeError: The document has the wrong shape or a variant is claimed twice.
    """
    if raw is None:
        return {}
    table = raw.get("synonyms") if isinstance(raw, dict) else None
    if not isinstance(table, dict):
        raise KnowledgeError(source, None, "ファイルに「synonyms:」の行がありません。",
                             "例: `synonyms:` の下に `メールアドレス: [メアド, メルアド]` と書いてください。")
    mapping: dict[str, str] = {}
    for canonical, variants in table.items():
        if not isinstance(variants, list) or not all(isinstance(v, str) for v in variants):
            raise KnowledgeError(source, str(canonical), "言い換えは文字列のリストで書いてください。",
                                 f"例: `{canonical}: [言い換え1, 言い換え2]`")
        target = fold(str(canonical))
        for variant in variants:
            key = fold(variant)
            if not key or key == target:
                continue
            if key in mapping and mapping[key] != target:
                raise KnowledgeError(source, str(canonical),
                                     f"「{variant}」は「{mapping[key]}」の言い換えにも登録されています。",
                                     "どちらか一方から削除してください。")
            mapping[key] = target
    return mapping


def load_normalizer(path: Path) -> Normalizer:
    """Build the shared :class:`Normalizer` from a synonym file (missing file: no synonyms).

    Args:
        path: Path to ``synonyms.yml``.

    Returns:
        A normaliser carrying the table.
    """
    if not path.exists():
        return Normalizer()
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise KnowledgeError(path, None, f"YAML として読めません: {exc}",
                             "インデントと記号（: や -）を確認してください。") from exc
    return Normalizer(synonyms=parse_synonyms(raw, path))
