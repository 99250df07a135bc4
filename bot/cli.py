"""Command line: `bot ask`, `bot eval`, `bot run`, `bot serve`, `bot agent add | set | list`, `bot kb build`,
`bot retention run`, `bot data purge | delete`.

Run as ``bot ...`` (installed by ``make setup``) or ``python -m bot ...``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import warnings
from pathlib import Path
from typing import Any, Sequence

from bot.errors import KnowledgeError
from bot.settings import PROJECT_ROOT, get_settings


def _cmd_kb_build(args: argparse.Namespace) -> int:
    from bot.knowledge.build import build
    from bot.knowledge.loader import load_knowledge

    kb = load_knowledge(get_settings().knowledge_dir)
    result = build(kb, PROJECT_ROOT, check=args.check)
    if args.check:
        if result.stale:
            for path in result.stale:
                print(f"古くなっています: {path.relative_to(PROJECT_ROOT)}", file=sys.stderr)
            print("knowledge/ と生成ファイルが一致しません。`bot kb build` を実行し、作り直されたファイルも FAQ と一緒に保存してください。",
                  file=sys.stderr)
            return 1
        print("生成ファイルは最新です。")
        return 0
    for path in result.stale:
        print(f"更新しました: {path.relative_to(PROJECT_ROOT)}")
    if not result.stale:
        print("変更はありません。")
    return 0


def _cmd_kb_validate(args: argparse.Namespace) -> int:
    from bot.knowledge.validate import validate_knowledge

    directory = Path(args.kb) if args.kb else get_settings().knowledge_dir
    problems = validate_knowledge(directory, check_published=not args.kb)
    errors = sum(p.severity == "error" for p in problems)
    if args.json:
        print(json.dumps({"errors": errors, "warnings": len(problems) - errors,
                          "problems": [p.as_dict() for p in problems]}, ensure_ascii=False, indent=1))
    else:
        for problem in problems:
            print(problem.format(PROJECT_ROOT), file=sys.stderr if problem.severity == "error" else sys.stdout)
        print(f"{directory}: エラー {errors} 件、注意 {len(problems) - errors} 件。"
              + ("エラーを直してから公開してください。" if errors else "公開できます。"))
    return 1 if errors else 0


def _cmd_kb_import(args: argparse.Namespace) -> int:
    from bot.knowledge.spreadsheet import import_sheet

    kb_dir = Path(args.kb) if args.kb else get_settings().knowledge_dir
    report = import_sheet(Path(args.file), kb_dir, encoding=args.encoding, skip_conflicts=args.skip_conflicts)
    print(report.summary())
    return 0


def _cmd_kb_export(args: argparse.Namespace) -> int:
    from bot.knowledge.spreadsheet import export_sheet

    kb_dir = Path(args.kb) if args.kb else get_settings().knowledge_dir
    count = export_sheet(kb_dir, Path(args.file), encoding=args.encoding)
    print(f"{count} 件の FAQ を {args.file} に書き出しました。")
    _audit_export("export.faq", {"file": str(Path(args.file).resolve()), "entries": count})
    return 0


def _audit_export(action: str, detail: dict[str, Any]) -> None:
    """An export from the command line goes into the audit log; an editor's machine without the
    database still exports (a warning says the line is missing)."""
    from sqlalchemy.exc import SQLAlchemyError

    try:
        _stores().audit.write(action, _cli_actor(), None, detail)
    except (SQLAlchemyError, OSError) as exc:
        print(f"注意: 書き出しを監査ログに記録できませんでした（{type(exc).__name__}）。", file=sys.stderr)


def _cmd_kb_search(args: argparse.Namespace) -> int:
    from bot.knowledge.search import FaqSearch

    from bot.triage.routing import DECISION_LABELS, decide_from_search, load_thresholds

    search = FaqSearch.from_directory(Path(args.kb) if args.kb else get_settings().knowledge_dir)
    hits = search.search(args.query, top=args.top)
    # What the bot does with an FAQ question from this ranking (before small-talk / anger checks).
    decision = decide_from_search(hits, load_thresholds(PROJECT_ROOT / "config.yml"))
    if args.json:
        print(json.dumps({"decision": decision.reason, "faq_id": decision.faq_id,
                          "hits": [{"faq_id": h.faq_id, "title": h.title, "category": h.category,
                                    "score": round(h.score, 4), "matched": h.matched} for h in hits]},
                         ensure_ascii=False, indent=1))
        return 0
    if not hits:
        print("該当する FAQ は見つかりませんでした。")
    for rank, hit in enumerate(hits, start=1):
        print(f"{rank}. {hit.score:.3f}  {hit.faq_id}  {hit.title}（{hit.category}）\n      近い質問例: {hit.matched}")
    target = f"（{decision.faq_id}）" if decision.faq_id else ""
    print(f"FAQ の質問としての判定: {DECISION_LABELS[decision.reason]}{target}")
    return 0


def _cmd_kb_eval_search(args: argparse.Namespace) -> int:
    from bot.knowledge.search import FaqSearch, eval_search, read_queries

    search = FaqSearch.from_directory(Path(args.kb) if args.kb else get_settings().knowledge_dir)
    result = eval_search(search, read_queries(Path(args.queries)))
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        for key in ("hit@1", "hit@5", "hit@10", "mrr"):
            print(f"{key}: {result[key]:.3f}")
        print(f"queries: {result['queries']}")
    return 0


def _read_jsonl_texts(path: Path) -> list[str]:
    texts = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                raise SystemExit(f"{path}:{number}: JSON として読めません（{exc.msg}）。"
                                 '各行を {"text": "..."} の形にしてください。') from exc
            if not isinstance(item, dict) or not isinstance(item.get("text"), str):
                raise SystemExit(f'{path}:{number}: "text" (文字列) がありません。'
                                 '各行を {"text": "..."} の形にしてください。')
            texts.append(item["text"])
    return texts


def _cmd_ask(args: argparse.Namespace) -> int:
    from bot.assistant import Assistant

    if args.jsonl is None and args.text is None:
        print("質問文か --jsonl FILE を指定してください。", file=sys.stderr)
        return 2
    texts = _read_jsonl_texts(Path(args.jsonl)) if args.jsonl else [args.text]
    assistant = Assistant(Path(args.model) if args.model else None)
    out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout
    try:
        for text in texts:
            print(json.dumps(assistant.decide(text).as_dict(), ensure_ascii=False), file=out, flush=False)
    finally:
        if out is not sys.stdout:
            out.close()
        assistant.close()
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from bot.evaluation.report import all_heldout_sets, run_eval

    paths = [Path(p) for p in args.heldout] if args.heldout else all_heldout_sets(PROJECT_ROOT / "tests" / "data")
    return run_eval(
        heldout=paths,
        model=Path(args.model) if args.model else None,
        out_dir=Path(args.out),
        as_json=args.json,
    )


def _cmd_run(args: argparse.Namespace) -> int:
    from bot.assistant import latest_model
    from bot.channels.line.webhook import status_line
    from bot.launcher import BotStack, run_forever
    from bot.server.first_agent import ensure_first_agent

    settings = get_settings()
    model = Path(args.model) if args.model else latest_model(settings.models_dir)
    notes = [*ensure_first_agent(settings), status_line(settings.line)]
    return run_forever(BotStack(model=model, rasa_port=settings.rasa_port, action_port=settings.action_port,
                                server_port=settings.server_port), notes)


def _cmd_serve(args: argparse.Namespace) -> int:
    from bot.server.main import serve

    settings = get_settings()
    return serve(settings, port=args.port or settings.server_port)


def _cmd_report(args: argparse.Namespace) -> int:
    from bot.analytics.command import run_report

    code = run_report(get_settings().database_url, args.days, Path(args.csv) if args.csv else None,
                      Path(args.chart) if args.chart else None, args.json, weekly_chart=args.weekly)
    if args.csv and code == 0:
        _audit_export("export.analytics", {"days": args.days, "folder": str(Path(args.csv).resolve())})
    return code


def _cmd_retention_run(args: argparse.Namespace) -> int:
    result = _stores().retention.run(dry_run=args.dry_run, actor=_cli_actor())
    for line in result.lines():
        print(line)
    return 0


def _cmd_data_purge(args: argparse.Namespace) -> int:
    """`bot data purge`: `bot retention run`, but counting only unless ``--yes`` (the issue's name)."""
    args.dry_run = not args.yes
    code = _cmd_retention_run(args)
    if args.dry_run:
        print("削除するには --yes を付けて実行してください（`bot retention run` と同じです）。")
    return code


# `bot data delete`: an unknown customer exits with its own code (scripts tell it from a failure).
EXIT_UNKNOWN_CUSTOMER = 3


def _cmd_data_delete(args: argparse.Namespace) -> int:
    from bot.store.erasure import BY_CONVERSATION, BY_EMAIL, Erasure, ErasureError

    by, value = (BY_EMAIL, args.email) if args.email is not None else (BY_CONVERSATION, args.conversation)
    try:
        result = Erasure(_stores().engine).erase(by, value, dry_run=args.dry_run, actor=_cli_actor())
    except ErasureError as exc:
        print(f"エラー: {exc}", file=sys.stderr)
        return {"unknown": EXIT_UNKNOWN_CUSTOMER, "input": 2}.get(exc.reason, 1)
    for line in result.lines():
        print(line)
    return 0


def _new_password(args: argparse.Namespace, prompt: str = "パスワード: ") -> str | None:
    """The new password: one line of stdin (``--password-stdin``), or typed twice.

    Returns:
        ``None`` (after printing why) when the two entries differ.
    """
    import getpass

    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    password = getpass.getpass(prompt)
    if getpass.getpass("もう一度入力してください: ") != password:
        print("エラー: パスワードが一致しません。もう一度やり直してください。", file=sys.stderr)
        return None
    return password


def _stores():  # type: ignore[no-untyped-def]
    from bot.server.app import stores_for

    return stores_for(get_settings().database_url)


def _agents():  # type: ignore[no-untyped-def]
    return _stores().agents


def _cli_actor() -> str:
    from bot.store.audit import cli_actor

    return cli_actor()


def _cmd_agent_add(args: argparse.Namespace) -> int:
    from bot.store.agents import AgentError

    password = _new_password(args)
    if password is None:
        return 1
    try:
        profile = _agents().add(args.username, args.name or args.username, password, actor=_cli_actor())
    except AgentError as exc:
        print(f"エラー: {exc}", file=sys.stderr)
        return 1
    admin = " 最初の担当者なので管理者です（コンソールで担当者を管理できます）。" if _stores().desk.is_admin(profile.username) else ""
    print(f"担当者 {profile.username}（{profile.display_name}）を登録しました。{admin}")
    return 0


def _cmd_agent_set(args: argparse.Namespace) -> int:
    from bot import wording
    from bot.server.desk_api import knowledge_categories
    from bot.store.desk import DeskError, check_role, check_skills, check_status, parse_max_chats

    changes: dict[str, Any] = {}
    try:
        if args.role is not None:
            changes["role"] = check_role(args.role)
        if args.max_chats is not None:
            changes["max_chats"] = parse_max_chats(args.max_chats)
        if args.status is not None:
            changes["status"] = check_status(args.status)
        if args.skills is not None:
            changes["skills"] = check_skills(re.split(r"[,、]", args.skills), knowledge_categories())
        if not changes:
            raise DeskError(wording.DESK_TEXT["nothing_to_change"])
        agent = _stores().desk.update(args.username, changed_by=_cli_actor(), **changes)
    except DeskError as exc:
        print(f"エラー: {exc}", file=sys.stderr)
        return 1
    print(f"担当者 {agent.username}（{agent.display_name}）: {_desk_line(agent)}")
    return 0


def _desk_line(agent: Any) -> str:
    """「管理者・同時対応数 3・対応可能・スキル: すべて」 for `bot agent set`."""
    data = agent.json()
    skills = "、".join(agent.skills) or "すべて"
    return f"{data['role_label']}・同時対応数 {agent.max_chats}・{data['status_label']}・スキル: {skills}"


def _cmd_agent_passwd(args: argparse.Namespace) -> int:
    from bot.server.first_agent import forget_first_password
    from bot.store.agents import AgentError

    agents = _agents()
    if agents.get(args.username) is None:
        print(f"エラー: 担当者 {args.username} は登録されていません。`bot agent list` で確認してください。",
              file=sys.stderr)
        return 1
    password = _new_password(args, "新しいパスワード: ")
    if password is None:
        return 1
    try:
        ended = agents.set_password(args.username, password, actor=_cli_actor())
    except AgentError as exc:
        print(f"エラー: {exc}", file=sys.stderr)
        return 1
    forget_first_password(args.username)
    print(f"担当者 {args.username} のパスワードを変更しました。"
          + (f"ログイン中のセッション {ended} 件を終了しました（新しいパスワードでログインし直してください）。" if ended else ""))
    return 0


def _cmd_agent_remove(args: argparse.Namespace) -> int:
    from bot.store.agents import AgentError

    try:
        profile, ended = _agents().remove(args.username, actor=_cli_actor())
    except AgentError as exc:
        print(f"エラー: {exc}", file=sys.stderr)
        return 1
    print(f"担当者 {profile.username}（{profile.display_name}）を削除しました。"
          + (f"ログイン中のセッション {ended} 件も終了しました。" if ended else ""))
    return 0


def _cmd_agent_list(args: argparse.Namespace) -> int:
    import datetime as dt

    jst = dt.timezone(dt.timedelta(hours=9))
    stores = _stores()
    listing = stores.agents.listing()
    if not listing:
        print("担当者は登録されていません。`bot agent add ユーザー名 --name 表示名` で登録してください。")
        return 0
    desk = {a.username: a.json() for a in stores.desk.agents()}
    rows = [("ユーザー名", "表示名", "役割", "同時対応数", "状態", "スキル", "登録日時", "ログイン中")]
    rows += [(a.username, a.display_name, desk[a.username]["role_label"],
              f"{desk[a.username]['load']} / {desk[a.username]['max_chats']}", desk[a.username]["status_label"],
              "、".join(desk[a.username]["skills"]) or "すべて", f"{a.created_at.astimezone(jst):%Y-%m-%d %H:%M}",
              f"{a.active_sessions} セッション" if a.active_sessions else "-") for a in listing if a.username in desk]
    widths = [max(_width(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell + " " * (width - _width(cell)) for cell, width in zip(row, widths)).rstrip())
    print(f"{len(listing)} 人")
    return 0


def _width(text: str) -> int:
    """Display width in a terminal (full-width characters take two columns)."""
    import unicodedata

    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests)."""
    parser = argparse.ArgumentParser(prog="bot", description="みらいメンバーズ サポートボットの道具")
    sub = parser.add_subparsers(dest="command", required=True)

    ask = sub.add_parser("ask", help="1通のメッセージにボットがどう答えるかを表示（JSON）")
    ask.add_argument("text", nargs="?", help="お客さまのメッセージ")
    ask.add_argument("--jsonl", help='1行に {"text": ...} のファイル。1行ごとに結果を1行で出力')
    ask.add_argument("--model", help="モデル (.tar.gz)。省略時は models/ の最新")
    ask.add_argument("--output", help="出力先ファイル（省略時は標準出力）")
    ask.set_defaults(func=_cmd_ask)

    ev = sub.add_parser("eval", help="評価セットでルート正解率・macro-F1・混同表を出力")
    ev.add_argument("--heldout", nargs="*", help="評価セット（JSON Lines）。省略時は tests/data/heldout*.jsonl と保留中の各世代（tests/data/heldout_v*/heldout*.jsonl）をそれぞれ評価")
    ev.add_argument("--model", help="モデル (.tar.gz)。省略時は models/ の最新")
    ev.add_argument("--out", default=str(PROJECT_ROOT / "results"), help="レポートと図の出力先")
    ev.add_argument("--json", action="store_true", help="結果を JSON で出力")
    ev.set_defaults(func=_cmd_eval)

    run = sub.add_parser("run", help="Rasa・アクション・ボットサーバー（ウィジェット、コンソール）を起動（Ctrl-C で停止）")
    run.add_argument("--model", help="モデル (.tar.gz)。省略時は models/ の最新")
    run.set_defaults(func=_cmd_run)

    serve = sub.add_parser("serve", help="ボットサーバー（ウィジェット窓口・担当者向け API・コンソール）だけを起動")
    serve.add_argument("--port", type=int, help="ポート（省略時は BOT_SERVER_PORT、既定 8000）")
    serve.set_defaults(func=_cmd_serve)

    agent = sub.add_parser("agent", help="担当者（コンソールにログインする人）の管理")
    agent_sub = agent.add_subparsers(dest="agent_command", required=True)
    agent_add = agent_sub.add_parser("add", help="担当者を登録（パスワードは入力を求められます）")
    agent_add.add_argument("username", help="ログインに使うユーザー名")
    agent_add.add_argument("--name", help="お客さまに見える表示名（例: 佐藤）")
    agent_add.add_argument("--password-stdin", action="store_true", help="パスワードを標準入力の1行から読む")
    agent_add.set_defaults(func=_cmd_agent_add)
    agent_passwd = agent_sub.add_parser("passwd", help="パスワードを変更（2回入力。その担当者のログイン中のセッションはすべて終了）")
    agent_passwd.add_argument("username", help="ユーザー名")
    agent_passwd.add_argument("--password-stdin", action="store_true", help="新しいパスワードを標準入力の1行から読む")
    agent_passwd.set_defaults(func=_cmd_agent_passwd)
    agent_remove = agent_sub.add_parser("remove", help="担当者を削除（ログイン中のセッションもすぐに終了）")
    agent_remove.add_argument("username", help="ユーザー名")
    agent_remove.set_defaults(func=_cmd_agent_remove)
    agent_list = agent_sub.add_parser("list", help="登録されている担当者（役割、対応中 / 同時対応数、状態、スキル）と"
                                                   "ログイン中のセッション数を表示")
    agent_list.set_defaults(func=_cmd_agent_list)
    agent_set = agent_sub.add_parser("set", help="担当者の役割・同時対応数・状態・スキルを変更")
    agent_set.add_argument("username", help="ユーザー名")
    agent_set.add_argument("--role", help="agent（担当者）、supervisor（責任者）または admin（管理者）")
    agent_set.add_argument("--max-chats", help="同時対応数（1〜20、既定 3）")
    agent_set.add_argument("--status", help="available（対応可能）、away（離席）、offline（オフライン）")
    agent_set.add_argument("--skills", help="担当するカテゴリ（knowledge/ のカテゴリ名をカンマ区切り。空文字ですべて）")
    agent_set.set_defaults(func=_cmd_agent_set)

    retention = sub.add_parser("retention", help="保存期間（BOT_RETENTION_DAYS）を過ぎた会話の内容と監査ログの削除")
    retention_sub = retention.add_subparsers(dest="retention_command", required=True)
    retention_run = retention_sub.add_parser("run", help="今すぐ削除し、種類ごとの件数を表示（監査ログに記録）")
    retention_run.add_argument("--dry-run", action="store_true", help="削除せず、削除される件数だけを表示")
    retention_run.set_defaults(func=_cmd_retention_run)
    data = sub.add_parser("data", help="お客さまのデータ（個人情報）の削除")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    data_purge = data_sub.add_parser("purge", help="保存期間を過ぎたデータの件数を表示（--yes で削除。bot retention run と同じ）")
    data_purge.add_argument("--yes", action="store_true", help="件数の表示だけでなく、実際に削除する（監査ログに記録）")
    data_purge.set_defaults(func=_cmd_data_purge)
    data_delete = data_sub.add_parser(
        "delete", help="お客さま1人のデータをすべて削除（依頼による。種類ごとの件数を表示し、監査ログに記録）",
        description="会話 ID かメールアドレスで指定したお客さまのデータを、チャット・お問い合わせ・アンケート・"
                    "メール・Webhook・Rasa の会話の記録からすべて削除します。終了コード: 0 削除した、"
                    "1 対応中のお問い合わせがある、2 指定の誤り、3 該当するお客さまがいない（いずれも何も削除しません）。")
    who = data_delete.add_mutually_exclusive_group(required=True)
    who.add_argument("--conversation", metavar="ID", help="会話 ID（例: c-…、LINE は line-…）")
    who.add_argument("--email", metavar="ADDR", help="メールアドレス（そのアドレスが出てくる会話をすべて削除）")
    data_delete.add_argument("--dry-run", action="store_true", help="削除せず、削除される件数だけを表示")
    data_delete.set_defaults(func=_cmd_data_delete)
    report = sub.add_parser("report", help="編集者向け分析: 答えられなかった質問、「いいえ」の多い回答、引き継ぎ率など")
    report.add_argument("--days", type=int, default=30, help="対象の日数（既定 30）")
    report.add_argument("--csv", help="CSV を書き出すフォルダ")
    report.add_argument("--chart", help="日別（--weekly で週別）の件数と引き継ぎ率の図（.png / .svg）")
    report.add_argument("--weekly", action="store_true", help="--chart の図を週別（月曜〜日曜、日本時間）にする")
    report.add_argument("--json", action="store_true", help="結果を JSON で出力")
    report.set_defaults(func=_cmd_report)

    kb = sub.add_parser("kb", help="ナレッジベース（knowledge/）の操作")
    kb_sub = kb.add_subparsers(dest="kb_command", required=True)
    kb_build = kb_sub.add_parser("build", help="knowledge/ から data/nlu などの学習ファイルを生成")
    kb_build.add_argument("--check", action="store_true", help="書き込まずに、古いファイルがあれば失敗する")
    kb_build.set_defaults(func=_cmd_kb_build)
    kb_validate = kb_sub.add_parser("validate", help="knowledge/ の誤り・重複・id の変更をすべて表示（誤りがあれば終了コード 1）")
    kb_validate.add_argument("--kb", help="調べるナレッジフォルダ（省略時は knowledge/）")
    kb_validate.add_argument("--json", action="store_true", help="結果を JSON で出力")
    kb_validate.set_defaults(func=_cmd_kb_validate)
    kb_import = kb_sub.add_parser("import", help="Excel (.xlsx) / CSV の FAQ を knowledge/ に取り込む（追加・変更・変更なしを表示）")
    kb_import.add_argument("file", help="取り込むファイル（.xlsx / .csv）")
    kb_import.add_argument("--encoding", help="CSV の文字コード（省略時は UTF-8 / UTF-8 BOM / Shift_JIS を自動判定）")
    kb_import.add_argument("--kb", help="書き込むナレッジフォルダ（省略時は knowledge/、なければ作成）")
    kb_import.add_argument("--skip-conflicts", action="store_true",
                           help="ほかの FAQ と同じ質問がある行を飛ばして残りを取り込む（飛ばした行を表示。既定では1行でもあれば何も取り込まない）")
    kb_import.set_defaults(func=_cmd_kb_import)
    kb_export = kb_sub.add_parser("export", help="knowledge/ の FAQ を Excel (.xlsx) / CSV に書き出す")
    kb_export.add_argument("file", help="書き出すファイル（.xlsx / .csv）")
    kb_export.add_argument("--encoding", help="CSV の文字コード（既定 UTF-8 BOM 付き、cp932 も可）")
    kb_export.add_argument("--kb", help="読むナレッジフォルダ（省略時は knowledge/）")
    kb_export.set_defaults(func=_cmd_kb_export)
    kb_search = kb_sub.add_parser("search", help="この質問にどの FAQ が答えるかを、スコア付きで表示（学習不要）")
    kb_search.add_argument("query", help="お客さまの質問")
    kb_search.add_argument("--kb", help="検索するナレッジフォルダ（省略時は knowledge/）")
    kb_search.add_argument("--top", type=int, default=5, help="表示する件数（既定 5）")
    kb_search.add_argument("--json", action="store_true", help="結果を JSON で出力")
    kb_search.set_defaults(func=_cmd_kb_search)
    kb_eval = kb_sub.add_parser("eval-search", help='検索の評価: 1行に {"query": ..., "relevant": [id...]} のファイルで hit@k と MRR')
    kb_eval.add_argument("--kb", help="検索するナレッジフォルダ（省略時は knowledge/）")
    kb_eval.add_argument("--queries", required=True, help="評価用の質問ファイル（JSON Lines）")
    kb_eval.add_argument("--json", action="store_true", help="結果を JSON で出力")
    kb_eval.set_defaults(func=_cmd_kb_eval_search)
    return parser


def _quiet_third_party_logs() -> None:
    """Keep TensorFlow's and libraries' start-up chatter off the editor's terminal.

    ``BOT_DEBUG=1`` shows it again.
    """
    if os.environ.get("BOT_DEBUG"):
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("SQLALCHEMY_SILENCE_UBER_WARNING", "1")
    warnings.simplefilter("ignore")
    # TensorFlow resets the warning filters while Rasa imports it; silence the display instead.
    warnings.showwarning = lambda *args, **kwargs: None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``bot`` command."""
    _quiet_third_party_logs()
    from rasa.shared.exceptions import RasaException

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (KnowledgeError, FileNotFoundError, ValueError, RasaException) as exc:
        print(f"エラー: {_root_cause(exc)}", file=sys.stderr)
        return 1


def _root_cause(exc: BaseException) -> BaseException:
    """The innermost error that explains itself (Rasa wraps component errors).

    Our own errors (knowledge files, spreadsheets) already name the file and the fix: they are
    kept, not replaced by the library error they were raised from (e.g. ``unknown encoding``).
    """
    from bot.knowledge.spreadsheet import SheetError

    while exc.__cause__ is not None and not isinstance(exc, (KnowledgeError, SheetError)):
        exc = exc.__cause__
    return exc


if __name__ == "__main__":
    sys.exit(main())
