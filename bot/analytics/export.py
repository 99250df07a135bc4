"""Write a report as CSV files (for Excel) and as a chart of the daily or weekly volume.

CSV files are UTF-8 with a BOM, so Excel on Japanese Windows opens them without garbling,
one file per table, with Japanese headers. Customer texts are data: a text cell starting with
``= + - @``, a tab or a carriage return, or the full-width ``＝ ＋ － ＠`` that Japanese Excel
also reads as a formula, gets a leading ``'`` so a spreadsheet never runs it
(:func:`bot.knowledge.spreadsheet.common.defuse_formula`, shared with ``bot kb export``).

The chart uses matplotlib's Agg renderer (no display needed). Japanese labels need a
Japanese font: IPA Gothic (Debian package ``fonts-ipafont-gothic``) when installed,
otherwise the labels are in English; writing the chart never fails for want of a font.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any, Iterable, Sequence

from bot.analytics.kpis import KPI_LABELS, CsatCounts, CsatSummary, KpiDay, Kpis, KpiWeek
from bot.analytics.report import UNANSWERED_LABELS, AnalyticsReport, DayVolume, MAX_EXAMPLES, WeekVolume
from bot.analytics.resolution import OUTCOME_LABELS
from bot.knowledge.spreadsheet.common import defuse_formula

logger = logging.getLogger(__name__)

JAPANESE_FONT = Path("/usr/share/fonts/opentype/ipafont-gothic/ipag.ttf")
HEADROOM = 1.3

CSV_FILES = {
    "daily": "daily.csv",
    "weekly": "weekly.csv",
    "handoff_reasons": "handoff_reasons.csv",
    "handoff_faqs": "handoff_faqs.csv",
    "intents": "intents.csv",
    "feedback": "feedback.csv",
    "unanswered": "unanswered.csv",
    "csat": "csat.csv",
    "csat_categories": "csat_categories.csv",
    "csat_comments": "csat_comments.csv",
    "kpi_summary": "kpi_summary.csv",
    "kpi_weekly": "kpi_weekly.csv",
    "kpi_daily": "kpi_daily.csv",
    "kpi_agents": "kpi_agents.csv",
}
# The figures' columns of csat.csv and csat_categories.csv (after the agent's or the category's).
CSAT_COLUMNS = ["アンケートを表示した問い合わせ", "回答数", "回答率", "平均（1〜5）",
                *[f"評価{n}の件数" for n in range(1, 6)]]
# The first columns of a weekly row (then the same figures as the daily file's).
WEEK_COLUMNS = ["週（月曜日）", "集計の最初の日", "集計の最後の日"]
VOLUME_COLUMNS = ["新規会話数", "会話数", "お客さまメッセージ数", "引き継ぎ数", "引き継ぎ率"]
KPI_DAY_COLUMNS = ["会話数", "引き継いだ会話", "引き継ぎ数", "担当者が解決", "放棄", "初回応答時間の平均（秒）",
                   "対応時間の平均（秒）"]
KPI_SUMMARY_COLUMNS = ["指標", "値", "単位", "件数", "対象の件数", "定義"]
RATE, SECONDS, CONVERSATIONS = "割合", "秒（平均）", "会話"


def _cell(value: Any) -> Any:
    """A CSV cell: ``None`` empty, texts defused against formula injection, numbers as they are."""
    if value is None:
        return ""
    if isinstance(value, str):
        return defuse_formula(value)
    return value


def _write(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Path:
    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for row in rows:
            writer.writerow([_cell(v) for v in row])
    return path


def write_csv(report: AnalyticsReport, folder: Path) -> list[Path]:
    """Write one CSV file per table of ``report`` into ``folder`` (created when missing).

    Args:
        report: A report from :func:`bot.analytics.report.build_report`.
        folder: Target folder; existing files of the same names are replaced.

    Returns:
        The files written: daily, weekly, handoff_reasons, handoff_faqs, intents, feedback, unanswered,
        csat, csat_categories, csat_comments, kpi_summary, kpi_weekly, kpi_daily, kpi_agents.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files = [
        _write(folder / CSV_FILES["daily"], ["日付", *VOLUME_COLUMNS],
               ([d.day.isoformat(), *_volume_cells(d)] for d in report.days)),
        _write(folder / CSV_FILES["weekly"], [*WEEK_COLUMNS, *VOLUME_COLUMNS],
               ([*_week_cells(w), *_volume_cells(w)] for w in report.weeks)),
        _write(folder / CSV_FILES["handoff_reasons"],
               ["理由コード", "理由", "引き継ぎ数", "引き継ぎ全体に占める割合", "会話あたりの引き継ぎ率"],
               ([r.reason, r.label, r.handoffs, r.share, r.rate] for r in report.handoff_reasons)),
        _write(folder / CSV_FILES["handoff_faqs"],
               ["直前のFAQ", "カテゴリ", "引き継ぎ数", "引き継ぎ全体に占める割合", "FAQを回答した会話数",
                "回答後の引き継ぎ率"],
               ([r.faq_id, r.category, r.handoffs, r.share, r.answered_conversations, r.rate]
                for r in report.handoff_faqs)),
        _write(folder / CSV_FILES["intents"], ["ボットの判定", "件数", "割合", "内部名"],
               ([i.label or i.intent, i.count, i.share, i.intent] for i in report.intents)),
        _write(folder / CSV_FILES["feedback"], ["FAQ", "いいえ", "はい", "いいえの割合", "回答回数"],
               ([f.faq_id, f.no, f.yes, f.no_rate, f.answers] for f in report.feedback)),
        _write(folder / CSV_FILES["unanswered"],
               ["代表的な質問", "件数", "聞き返し", "対象外", "確からしさが低い", "ボットの判定",
                *[f"例{n}" for n in range(1, MAX_EXAMPLES + 1)]],
               ([g.representative, g.count, *[g.reasons.get(k, 0) for k in UNANSWERED_LABELS],
                 g.top_intent_label or g.top_intent,
                 *(g.examples + [""] * (MAX_EXAMPLES - len(g.examples)))] for g in report.unanswered)),
        *_write_csat(report, folder),
        *_write_kpis(report, folder),
    ]
    return files


def _volume_cells(row: DayVolume) -> list[Any]:
    """The cells of :data:`VOLUME_COLUMNS` for a day's or a week's row."""
    return [row.new_conversations, row.conversations, row.customer_messages, row.handoffs, row.handoff_rate]


def _week_cells(row: WeekVolume | KpiWeek) -> list[str]:
    """The cells of :data:`WEEK_COLUMNS`: the week's Monday, its first and last days in the period."""
    return [row.week.isoformat(), row.day.isoformat(), row.last_day.isoformat()]


def _kpi_day_cells(row: KpiDay) -> list[Any]:
    """The cells of :data:`KPI_DAY_COLUMNS` for a day's or a week's row."""
    return [row.conversations, row.handed_off_conversations, row.handoffs, row.resolved_by_agents, row.abandoned,
            row.first_response_average_seconds, row.handling_average_seconds]


def _kpi_summary_rows(kpis: Kpis) -> list[list[Any]]:
    """kpi_summary.csv: each KPI of the period with its definition, then the resolution's outcomes."""
    csat, resolution = kpis.csat, kpis.resolution
    figures = {
        "first_response": (kpis.first_response.average_seconds, SECONDS, kpis.first_response.count, None),
        "handling": (kpis.handling.average_seconds, SECONDS, kpis.handling.count, None),
        "bot_resolution": (kpis.bot_resolution_rate, RATE, kpis.conversations - kpis.handed_off_conversations,
                           kpis.conversations),
        "resolution": (resolution.rate, RATE, resolution.resolved, resolution.decided),
        "agent_resolution": (kpis.agent_resolution_rate, RATE, kpis.resolved_by_agents, kpis.handoffs),
        "handoff": (kpis.handoff_rate, RATE, kpis.handed_off_conversations, kpis.conversations),
        "abandonment": (kpis.abandonment_rate, RATE, kpis.abandoned, kpis.live_handoffs),
        "csat": (csat.average, "平均（1〜5）", csat.responses, None),
        "csat_response": (csat.response_rate, RATE, csat.responses, csat.asked),
    }
    rows = [[KPI_LABELS[key][0], *figures[key], KPI_LABELS[key][1]] for key in KPI_LABELS]
    rows += [[f"{KPI_LABELS['resolution'][0]}の内訳: {label}", None, CONVERSATIONS, getattr(resolution, key),
              resolution.conversations, None] for key, label in OUTCOME_LABELS.items()]
    return rows


def _csat_cells(figures: CsatCounts | CsatSummary) -> list[Any]:
    """The cells of :data:`CSAT_COLUMNS` for one row."""
    return [figures.asked, figures.responses, figures.response_rate, figures.average, *figures.distribution]


def _write_csat(report: AnalyticsReport, folder: Path) -> list[Path]:
    """csat.csv (all agents first, then each agent), csat_categories.csv (each category, 「未分類」
    last) and csat_comments.csv (the latest comments, newest first, defused like every text);
    header only when the report has no KPIs."""
    csat = report.kpis.csat if report.kpis else None
    return [
        _write(folder / CSV_FILES["csat"], ["担当者", *CSAT_COLUMNS],
               ([["全体", *_csat_cells(csat)]] + [[a.agent, *_csat_cells(a)] for a in csat.agents]) if csat else []),
        _write(folder / CSV_FILES["csat_categories"], ["カテゴリ", *CSAT_COLUMNS],
               ([c.category, *_csat_cells(c)] for c in (csat.categories if csat else []))),
        _write(folder / CSV_FILES["csat_comments"], ["日時", "担当者", "評価", "コメント"],
               ([c.at.isoformat(), c.agent, c.rating, c.comment] for c in (csat.comments if csat else []))),
    ]


def _write_kpis(report: AnalyticsReport, folder: Path) -> list[Path]:
    """kpi_summary.csv, kpi_weekly.csv, kpi_daily.csv and kpi_agents.csv (header only when the report
    has no KPIs); times in seconds, rates from 0 to 1."""
    kpis = report.kpis
    return [
        _write(folder / CSV_FILES["kpi_summary"], KPI_SUMMARY_COLUMNS, _kpi_summary_rows(kpis) if kpis else []),
        _write(folder / CSV_FILES["kpi_weekly"], [*WEEK_COLUMNS, *KPI_DAY_COLUMNS],
               ([*_week_cells(w), *_kpi_day_cells(w)] for w in (kpis.weeks if kpis else []))),
        _write(folder / CSV_FILES["kpi_daily"], ["日付", *KPI_DAY_COLUMNS],
               ([d.day.isoformat(), *_kpi_day_cells(d)] for d in (kpis.days if kpis else []))),
        _write(folder / CSV_FILES["kpi_agents"],
               ["担当者", "初回応答の件数", "初回応答時間の平均（秒）", "初回応答時間の中央値（秒）", "解決の件数",
                "対応時間の平均（秒）", "対応時間の中央値（秒）"],
               ([a.agent, a.first_responses.count, a.first_responses.average_seconds,
                 a.first_responses.median_seconds, a.handled.count, a.handled.average_seconds,
                 a.handled.median_seconds] for a in (kpis.agents if kpis else []))),
    ]


def _japanese_font() -> Any | None:
    """FontProperties of IPA Gothic, or ``None`` when it is not installed or unusable."""
    if not JAPANESE_FONT.is_file():
        return None
    try:
        from matplotlib import font_manager

        font_manager.fontManager.addfont(str(JAPANESE_FONT))
        return font_manager.FontProperties(fname=str(JAPANESE_FONT))
    except Exception:  # noqa: BLE001 - a broken font file must not stop the chart
        logger.warning("could not load %s; chart labels in English", JAPANESE_FONT, exc_info=True)
        return None


LABELS = {
    True: {"title": "日別の会話数と引き継ぎ率", "weekly_title": "週別（月曜〜日曜）の会話数と引き継ぎ率",
           "conversations": "会話数", "handoffs": "引き継ぎ数",
           "rate": "引き継ぎ率", "count": "件数", "empty": "この期間の記録はありません"},
    False: {"title": "Conversations and handoff rate per day",
            "weekly_title": "Conversations and handoff rate per week (Monday to Sunday)",
            "conversations": "Conversations",
            "handoffs": "Handoffs", "rate": "Handoff rate", "count": "Count", "empty": "No data in this period"},
}


def write_chart(report: AnalyticsReport, path: Path, weekly: bool = False) -> Path:
    """Draw conversations and handoffs (bars) and the handoff rate (line, right axis) per day or week.

    Args:
        report: A report from :func:`bot.analytics.report.build_report`.
        path: Target file; ``.png`` or ``.svg`` (its folder is created when missing).
        weekly: One bar pair per calendar week (``report.weeks``, labelled by the week's first day
            in the period, 「5/1〜」) instead of per day.

    Returns:
        ``path``.

    Raises:
        ValueError: Another suffix.
    """
    # A Figure with its own Agg canvas: no pyplot, no global backend switch, no display.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator, PercentFormatter

    path = Path(path)
    suffix = path.suffix.lower().lstrip(".")
    if suffix not in ("png", "svg"):
        raise ValueError(f"グラフのファイル名は .png か .svg で指定してください（{path.name}）。")
    path.parent.mkdir(parents=True, exist_ok=True)

    font = _japanese_font()
    text = LABELS[font is not None]
    style = {"fontproperties": font} if font is not None else {}

    days: list[DayVolume] = list(report.weeks if weekly else report.days)
    figure = Figure(figsize=(max(6.0, 0.28 * len(days) + 3), 4.0), dpi=100)
    FigureCanvasAgg(figure)
    bars = figure.add_subplot(1, 1, 1)
    if not days:
        bars.text(0.5, 0.5, text["empty"], ha="center", va="center", transform=bars.transAxes, **style)
        bars.set_xticks([])
        bars.set_yticks([])
    else:
        positions = list(range(len(days)))
        width = 0.4
        bars.bar([p - width / 2 for p in positions], [d.conversations for d in days], width,
                 label=text["conversations"], color="#0b5cad")
        bars.bar([p + width / 2 for p in positions], [d.handoffs for d in days], width,
                 label=text["handoffs"], color="#f59e0b")
        bars.set_ylabel(text["count"], **style)
        # Headroom above the tallest bar and the highest rate for the one-line legend.
        bars.set_ylim(0, max(1, *(max(d.conversations, d.handoffs) for d in days)) * HEADROOM)
        bars.yaxis.set_major_locator(MaxNLocator(integer=True))
        step = max(1, len(days) // 15)  # at most ~15 date labels
        bars.set_xticks(positions[::step])
        since = ("〜" if font is not None else "~") if weekly else ""  # a week from its first day on
        bars.set_xticklabels([f"{d.day.month}/{d.day.day}{since}" for d in days][::step], rotation=45, ha="right",
                             **style)
        rates = bars.twinx()
        rate_values = [d.handoff_rate if d.handoff_rate is not None else float("nan") for d in days]
        rates.plot(positions, rate_values, color="#b42318", marker="o", linewidth=2, label=text["rate"])
        top = max((r for r in rate_values if r == r), default=0.0)
        rates.set_ylim(0, max(0.1, top) * HEADROOM)
        rates.yaxis.set_major_formatter(PercentFormatter(1.0))
        rates.set_ylabel(text["rate"], **style)
        handles = bars.get_legend_handles_labels()[0] + rates.get_legend_handles_labels()[0]
        labels = bars.get_legend_handles_labels()[1] + rates.get_legend_handles_labels()[1]
        bars.legend(handles, labels, loc="upper left", ncol=3, prop=font, fontsize="small", frameon=False)
    bars.set_title(text["weekly_title" if weekly else "title"], **style)
    figure.tight_layout()
    figure.savefig(path, format=suffix)
    return path
