"""``bot report``: the editors' report as plain Japanese text, CSV files and a chart.

The command reads the report (:mod:`bot.analytics.report`) and hands it to the writers
(:mod:`bot.analytics.export`); neither of those imports this module, so the analytics modules
form no import loop: ``command`` → ``export`` → ``report`` → ``kpis``.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

from bot.analytics.export import write_chart, write_csv
from bot.analytics.kpis import UNCATEGORISED, format_kpis, format_percent
from bot.analytics.report import JST, UNANSWERED_LABELS, AnalyticsReport, build_report, last_days


def format_report(report: AnalyticsReport, tz: dt.tzinfo = JST, limit: int = 10) -> str:
    """The report as readable Japanese plain text.

    Args:
        report: A report from :func:`bot.analytics.report.build_report`.
        tz: Time zone for the period line.
        limit: Rows shown per table (the CSV files have every row).

    Returns:
        The text, lines separated by ``\\n``.
    """
    t = report.totals
    start = report.since.astimezone(tz).strftime("%Y-%m-%d %H:%M") if report.since else "最初の記録"
    end = report.until.astimezone(tz).strftime("%Y-%m-%d %H:%M")
    lines = [f"AIチャット分析レポート（{start} 〜 {end}、{report.timezone}）", "",
             "■ 概要",
             f"  会話数: {t.conversations} 件（新規 {t.new_conversations} 件）",
             f"  お客さまのメッセージ: {t.customer_messages} 件（ボットが応答 {t.bot_answered_messages} 件）",
             f"  担当者への引き継ぎ: {t.handoffs} 件（うち時間外 {t.offline_handoffs} 件）"
             f" 引き継ぎ率 {format_percent(t.handoff_rate)}",
             f"  答えられなかった質問: {t.unanswered} 件（{format_percent(t.unanswered_rate)}）",
             f"  役に立ちましたか？: はい {t.feedback_yes} 件 / いいえ {t.feedback_no} 件", "",
             "■ 日別の件数（日付 / 会話 / メッセージ / 引き継ぎ / 引き継ぎ率）"]
    active_days = [d for d in report.days if d.conversations or d.handoffs or d.new_conversations]
    lines += [f"  {d.day.isoformat()}  {d.conversations:>5}  {d.customer_messages:>6}  {d.handoffs:>4}"
              f"  {format_percent(d.handoff_rate):>6}" for d in active_days] or ["  （記録がありません）"]
    if len(active_days) < len(report.days):
        lines.append(f"  （記録のない {len(report.days) - len(active_days)} 日は省略）")

    lines += ["", "■ 引き継ぎの理由（件数 / 引き継ぎ全体に占める割合）"]
    lines += [f"  {r.label}: {r.handoffs} 件（{format_percent(r.share)}）" for r in report.handoff_reasons[:limit]] \
        or ["  （引き継ぎはありません）"]

    lines += ["", "■ 引き継ぎ直前の FAQ（件数 / その FAQ を回答した会話のうち引き継がれた割合）"]
    for row in report.handoff_faqs[:limit]:
        if row.faq_id:
            lines.append(f"  {row.faq_id}: {row.handoffs} 件（回答した {row.answered_conversations} 会話の"
                         f" {format_percent(row.rate)}）")
        else:
            lines.append(f"  FAQ 回答なし・カテゴリ「{row.category or UNCATEGORISED}」: {row.handoffs} 件")
    if not report.handoff_faqs:
        lines.append("  （引き継ぎはありません）")

    lines += ["", "■ よく聞かれた内容（ボットの判定 / 件数 / 割合）"]
    lines += [f"  {i.label or i.intent}: {i.count} 件（{format_percent(i.share)}）" for i in report.intents[:limit]] \
        or ["  （記録がありません）"]

    lines += ["", "■ 「いいえ」が多い回答（FAQ / いいえ / はい / いいえの割合 / 回答回数）"]
    lines += [f"  {f.faq_id}: いいえ {f.no} 件 / はい {f.yes} 件（{format_percent(f.no_rate)}）/ 回答 {f.answers} 回"
              for f in report.feedback[:limit]] or ["  （評価はまだありません）"]

    lines += ["", "■ 答えられなかった質問（似た質問ごと。FAQ や言い回しの追加候補）"]
    for number, group in enumerate(report.unanswered[:limit], start=1):
        causes = "、".join(f"{UNANSWERED_LABELS[k]} {v}" for k, v in group.reasons.items())
        lines.append(f"  {number}. 「{group.representative}」 {group.count} 件（{causes}）"
                     + (f" ボットの判定: {group.top_intent_label or group.top_intent}" if group.top_intent else ""))
        lines += [f"       - {example}" for example in group.examples[1:]]
    if not report.unanswered:
        lines.append("  （ありません）")
    if len(report.unanswered) > limit:
        lines.append(f"  ほか {len(report.unanswered) - limit} グループ（CSV にすべて出力されます）")
    if report.unanswered_not_grouped:
        lines.append(f"  （件数の少ない {report.unanswered_not_grouped} 件はまとめていません）")
    if report.kpis is not None:
        lines += ["", *format_kpis(report.kpis, limit)]
    return "\n".join(lines)


def run_report(database_url: str, days: int, csv_dir: Path | None, chart: Path | None, as_json: bool,
               weekly_chart: bool = False) -> int:
    """``bot report``: print the report of the last ``days`` days; optionally write CSV files and a chart.

    Args:
        database_url: The bot's database (``DATABASE_URL``).
        days: Calendar days in Japan time, today included.
        csv_dir: Folder for the CSV files (created when missing), or ``None``.
        chart: PNG or SVG file for the chart, or ``None``.
        as_json: Print JSON instead of the plain-text report.
        weekly_chart: One bar pair per week (Monday to Sunday) in the chart instead of per day.

    Returns:
        The exit status (0).
    """
    from bot.store.database import make_engine

    engine = make_engine(database_url)
    try:
        since, until = last_days(days)
        report = build_report(engine, since, until)
    finally:
        engine.dispose()
    if as_json:
        print(json.dumps(report.as_dict(), ensure_ascii=False, indent=1))
    else:
        print(format_report(report))
    notes = []
    if csv_dir is not None:
        for path in write_csv(report, csv_dir):
            notes.append(f"CSV を書き出しました: {path}")
    if chart is not None:
        notes.append(f"グラフを書き出しました: {write_chart(report, chart, weekly=weekly_chart)}")
    for note in notes:
        # With --json, stdout stays pure JSON.
        print(note, file=sys.stderr if as_json else sys.stdout)
    return 0
