"""FAQ spreadsheet import at scale: a 2,000-entry Excel table into a fresh knowledge folder.

Usage::

    .venv/bin/python -m benchmarks.kb_import [--entries 2000] [--target 60]

What one run does (everything in a temporary directory, ``knowledge/`` is never touched):

1. Generates a synthetic but varied Japanese FAQ table (``.xlsx``): categories × subjects ×
   aspects, a main question and 3-5 paraphrases per row from a dozen phrasing templates
   (separated by newlines or 「｜」), multi-line answers with numbered steps, links on a
   third of the rows; half of the rows carry an ID (and related IDs), half leave it empty
   so that ``faq-0001``-style ids are assigned.
2. Times :func:`bot.knowledge.spreadsheet.read_sheet`, then
   :func:`~bot.knowledge.spreadsheet.import_sheet` into a fresh ``--kb`` folder (which
   includes the validation on a temporary copy), then
   :func:`bot.knowledge.loader.load_knowledge` of the result, then a second import of the
   same table (everything "unchanged", nothing written) and an export back to ``.xlsx``.

Results: a table on stdout and ``results/bench/kb_import.json``. Exit code 1 when the
import plus the load take longer than ``--target`` seconds (60 by default) or the result
is not what the table says.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

from bot.knowledge.loader import load_knowledge
from bot.knowledge.validate import validate_knowledge
from bot.knowledge.spreadsheet import export_sheet, import_sheet, read_sheet
from bot.settings import PROJECT_ROOT

RESULT_FILE = PROJECT_ROOT / "results" / "bench" / "kb_import.json"
SEED = 20240601
HEADER = ["ID", "カテゴリ", "タイトル", "質問", "回答", "言い換え", "関連ID", "リンク", "備考"]

# (category, id slug, screen name on the member page)
CATEGORIES = [
    ("登録情報の変更", "account", "会員情報"),
    ("お支払い", "payment", "お支払い方法"),
    ("配送・お届け", "delivery", "お届け設定"),
    ("商品・ボックス", "product", "ボックス内容"),
    ("ポイント・特典", "point", "ポイント"),
    ("キャンペーン", "campaign", "キャンペーン"),
    ("アプリ・ログイン", "app", "アプリ設定"),
    ("休止・解約", "cancel", "契約内容"),
]
SUBJECTS = [
    ("住所", "address"), ("電話番号", "phone"), ("メールアドレス", "email"), ("パスワード", "password"),
    ("クレジットカード", "card"), ("口座振替", "bank"), ("お届け日", "date"), ("クーポン", "coupon"),
    ("請求書", "invoice"), ("会員ランク", "rank"),
]
ASPECTS = [
    "変更方法", "確認方法", "締め切り", "手数料", "上限", "必要なもの", "反映までの時間", "注意点", "やり直し方",
    "取り消し方法", "家族での共有", "スマホでの手続き", "電話での手続き", "海外からの手続き", "エラーの対処",
    "通知の設定", "履歴の見方", "有効期限", "初回の設定", "代理での手続き", "まとめての手続き", "おすすめの設定",
    "よくある間違い", "問い合わせ先", "再発行",
]
MAIN_TEMPLATES = [
    "{cat}で{subj}の{asp}を教えてください",
    "{subj}の{asp}について知りたいです（{cat}）",
    "{cat}の{subj}、{asp}はどうなっていますか？",
]
PARAPHRASE_TEMPLATES = [
    "{subj}の{asp}って？（{cat}）",
    "{cat} {subj} {asp}",
    "{cat}について、{subj}の{asp}が知りたいです",
    "{subj}の{asp}を確認したい、{cat}の件で",
    "すみません、{cat}の{subj}の{asp}を教えてもらえますか",
    "{cat}で{subj}の{asp}ってどこで見れる？",
    "{subj}の{asp}がわからなくて困っています（{cat}）",
    "{cat}の{subj}について{asp}をお伺いしたいのですが",
    "{subj} {asp} どうすればいい {cat}",
    "{cat}に関して{subj}の{asp}を詳しく知りたい",
]
NOTES = [
    "※ お手続きの内容は、翌月のお届け分から反映されます。",
    "※ 毎月20日を過ぎてからの変更は、翌々月のお届け分からの反映となります。",
    "※ ご不明な点は、お問い合わせ窓口（平日 9:00〜18:00）までご連絡ください。",
    "※ セキュリティのため、確認コードは10分間だけ有効です。",
]


def make_rows(count: int, rng: random.Random) -> tuple[list[list[str]], int]:
    """The table (header first) and the number of questions it holds."""
    combos = [(c, s, a) for c in range(len(CATEGORIES)) for s in range(len(SUBJECTS)) for a in range(len(ASPECTS))]
    if count > len(combos):
        raise SystemExit(f"--entries は {len(combos)} 以下にしてください。")
    rng.shuffle(combos)
    combos = combos[:count]
    ids = [f"{CATEGORIES[c][1]}-{SUBJECTS[s][1]}-{a + 1:02d}" if i % 2 == 0 else ""
           for i, (c, s, a) in enumerate(combos)]
    with_ids = [faq_id for faq_id in ids if faq_id]
    rows = [HEADER]
    questions = 0
    for i, (c, s, a) in enumerate(combos):
        category, _, screen = CATEGORIES[c]
        subject, aspect = SUBJECTS[s][0], ASPECTS[a]
        values = {"cat": category, "subj": subject, "asp": aspect}
        main = rng.choice(MAIN_TEMPLATES).format(**values)
        paraphrases = [t.format(**values) for t in rng.sample(PARAPHRASE_TEMPLATES, rng.randint(3, 5))]
        questions += 1 + len(paraphrases)
        # A row with the マイページ link names the page without its URL (bot kb validate: a URL
        # stated twice is an error, as in issue #16); the others keep the URL in the text.
        mypage = "マイページ" if i % 3 == 0 else "マイページ（https://members.mirai-net.example/mypage）"
        answer = (f"{subject}の{aspect}についてご案内します。\n"
                  f"1. {mypage}にログインします。\n"
                  f"2. 「{screen}」→「{subject}」を選びます。\n"
                  f"3. 画面の案内に従って、{aspect}をご確認ください。\n{rng.choice(NOTES)}")
        related = ""
        if ids[i]:
            related = ", ".join(rng.sample([x for x in with_ids if x != ids[i]], rng.randint(0, 2)))
        links = "マイページ https://members.mirai-net.example/mypage" if i % 3 == 0 else ""
        if i % 9 == 0:
            links += "\nよくある質問 https://members.mirai-net.example/faq"
        rows.append([
            ids[i], category, f"{subject}の{aspect}" if i % 4 else "", main, answer,
            ("\n" if i % 2 else "｜").join(paraphrases), related, links.strip(), "ベンチマーク用" if i % 5 == 0 else "",
        ])
    return rows, questions


def write_xlsx(path: Path, rows: list[list[str]]) -> None:
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet("FAQ")
    for values in rows:
        sheet.append(values)
    book.save(path)


def timed(function: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def run(entries: int, target: float) -> dict[str, Any]:
    """Generate, import, load, re-import and export; return the measurements."""
    rng = random.Random(SEED)
    with tempfile.TemporaryDirectory(prefix="kb-import-bench-") as tmp:
        work = Path(tmp)
        rows, questions = make_rows(entries, rng)
        sheet = work / "FAQ.xlsx"
        _, generate_s = timed(write_xlsx, sheet, rows)
        parsed, read_s = timed(read_sheet, sheet)
        kb_dir = work / "別のフォルダ"
        report, import_s = timed(import_sheet, sheet, kb_dir)
        kb, load_s = timed(load_knowledge, kb_dir)
        problems, validate_s = timed(validate_knowledge, kb_dir, False)
        again, reimport_s = timed(import_sheet, sheet, kb_dir)
        exported, export_s = timed(export_sheet, kb_dir, work / "export.xlsx")
        yaml_bytes = sum(p.stat().st_size for p in (kb_dir / "faq").glob("*.yml"))
        loaded_questions = sum(len(e.questions) for e in kb.entries)
        checks = {
            "rows_read": len(parsed) == entries,
            "all_added": len(report.added) == entries and not report.changed,
            "entries_loaded": len(kb.entries) == entries,
            "questions_loaded": loaded_questions == questions,
            "reimport_unchanged": len(again.unchanged) == entries and not again.written,
            "exported": exported == entries,
            "validate_no_errors": not [p for p in problems if p.severity == "error"],
        }
        total = import_s + validate_s
        return {
            "entries": entries,
            "questions": questions,
            "assigned_ids": len(report.assigned_ids),
            "xlsx_bytes": sheet.stat().st_size,
            "yaml_bytes": yaml_bytes,
            "seconds": {
                "generate_xlsx": round(generate_s, 3),
                "read_sheet": round(read_s, 3),
                "import_sheet": round(import_s, 3),
                "load_knowledge": round(load_s, 3),
                "validate_knowledge": round(validate_s, 3),
                "import_plus_validate": round(total, 3),
                "reimport_unchanged": round(reimport_s, 3),
                "export_xlsx": round(export_s, 3),
            },
            "target_seconds": target,
            "within_target": total <= target,
            "checks": checks,
            "environment": {
                "python": platform.python_version(),
                "machine": platform.machine(),
                "openpyxl": version("openpyxl"),
                "ruamel.yaml": version("ruamel.yaml"),
                "PyYAML": version("PyYAML"),
            },
        }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the table and write ``results/bench/kb_import.json``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=2000, help="number of FAQ rows (default 2000)")
    parser.add_argument("--target", type=float, default=60.0, help="limit for import + load in seconds")
    args = parser.parse_args(argv)

    result = run(args.entries, args.target)
    seconds = result["seconds"]
    print(f"FAQ 取り込みベンチマーク: {result['entries']} 件・質問例 {result['questions']} 件"
          f"（xlsx {result['xlsx_bytes'] / 1024:.0f} KiB → YAML {result['yaml_bytes'] / 1024:.0f} KiB）")
    for name, value in seconds.items():
        print(f"  {name:<20} {value:8.2f} s")
    verdict = "OK" if result["within_target"] else "目標超過"
    print(f"  取り込み + 検証 (bot kb validate): {seconds['import_plus_validate']:.2f} s（目標 {args.target:.0f} s 以内: {verdict}）")
    failed = [name for name, ok in result["checks"].items() if not ok]
    if failed:
        print(f"  結果が表と一致しません: {', '.join(failed)}")
    RESULT_FILE.parent.mkdir(parents=True, exist_ok=True)
    RESULT_FILE.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(f"  結果: {RESULT_FILE.relative_to(PROJECT_ROOT)}")
    return 0 if result["within_target"] and not failed else 1


if __name__ == "__main__":
    sys.exit(main())
