"""Standard support KPIs from the handoff queue and the chat log (docs/analytics.md, 「担当者対応の指標」).

Read from the existing tables only (``tickets``, ``transcript_entries``, ``chat_messages``,
``agents``), with portable SQLAlchemy queries; times are compared in Python, so SQLite and
PostgreSQL give the same figures. The period is that of the report: a ticket belongs to it when
it was filed in it, a conversation when the customer wrote in it.

- **first response time** (初回応答時間): from a live ticket's filing (``created_at``) to the
  first agent reply in its transcript, if that reply came before the end of the period. Tickets
  filed outside staffed hours (``offline``) are left out: nobody was there to answer live;
- **handling time** (対応時間): from claim to resolve, for tickets an agent resolved
  (resolution ``resolved``) before the end of the period;
- **resolved by the bot** (ボットで解決): conversations without a handoff / conversations;
  **resolved by agents** (担当者が解決): tickets an agent resolved / tickets;
- **handoff rate** (引き継ぎ率): conversations with a handoff / conversations (a conversation
  handed off twice counts once; the report's ``handoff_rate`` counts tickets);
- **abandonment** (放棄): live tickets the customer cancelled before any agent claimed them
  (「待つのをやめる」 or 「会話を終了」), with the time they waited;
- **resolution rate** (解決率): conversations confirmed with 「はい」 or assumed resolved after
  24 h without a customer message, of the decided ones (:mod:`bot.analytics.resolution` defines
  it); for the whole period only;
- per calendar day in ``tz``, per calendar week (Monday to Sunday: a week's row holds the same
  figures over its days in the period, a conversation counting once) and per agent;
- **CSAT** (満足度): the customers' ratings (1–5) of tickets an agent resolved in the period
  (live tickets only: an offline ticket's customer is not in the chat to be asked): average,
  distribution and **response rate** (ratings ÷ tickets asked), overall, per agent (who
  resolved the ticket) and per category (the ticket's; 「未分類」 without one), and the latest comments.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from sqlalchemy import select
from sqlalchemy.engine import Engine

from bot.analytics.periods import (WeekFields, chunks as _chunks, in_period as _period, local_day, ratio as _ratio,
                                   week_spans)
from bot.analytics.resolution import Resolution, build_resolution
from bot.store.models import Agent, ChatMessage, CsatRating, Ticket, TranscriptEntry, as_utc

CSAT_COMMENTS = 20  # latest comments listed
RESOLVED = "resolved"
CANCELLED = "cancelled"
UNCATEGORISED = "未分類"  # the CSAT group of tickets without a category

# Japanese labels and definitions, shown next to each figure (analytics page, `bot report`).
KPI_LABELS = {
    "first_response": ("初回応答時間", "引き継ぎ（受付時間内）から担当者の最初の返信までの時間。"),
    "handling": ("平均対応時間", "担当者が「対応する」を押してから「解決」にするまでの時間（担当者が解決した問い合わせ）。"),
    "bot_resolution": ("ボットで解決", "担当者への引き継ぎがなかった会話 ÷ 会話数。"),
    "resolution": ("解決率", "最後の「役に立ちましたか？」に「はい」と答えた会話と、ボットの最後の回答から 24 時間"
                   "お客さまのメッセージがなかった会話 ÷ 判定できた会話。引き継いだ会話・最後の評価が「いいえ」の会話は"
                   "解決に数えず、最後の回答から 24 時間たっていない会話は未確定として除きます。"),
    "agent_resolution": ("担当者が解決", "担当者が「解決」にした問い合わせ ÷ 引き継ぎ数。"),
    "handoff": ("引き継ぎ率（会話）", "担当者に引き継いだ会話 ÷ 会話数（1 つの会話で 2 回引き継いでも 1 件）。"),
    "abandonment": ("放棄", "受付時間内の引き継ぎのうち、担当者が対応する前にお客さまが待つのをやめた・会話を終了したもの。"),
    "csat": ("満足度（CSAT）", "担当者が解決したあとのアンケートの評価（1〜5）の平均。担当者別は解決した担当者、カテゴリ別は問い合わせのカテゴリで数えます。"),
    "csat_response": ("アンケート回答率", "評価をいただいた問い合わせ ÷ アンケートを表示した問い合わせ（受付時間内に担当者が解決したもの）。"),
}


@dataclass(frozen=True)
class Durations:
    """Count, mean and median of some durations (seconds; ``None`` without any)."""

    count: int
    average_seconds: float | None
    median_seconds: float | None

    @classmethod
    def of(cls, seconds: Sequence[float]) -> "Durations":
        """Summary of ``seconds``, rounded to 0.1 s."""
        if not seconds:
            return cls(0, None, None)
        return cls(len(seconds), round(statistics.fmean(seconds), 1), round(statistics.median(seconds), 1))


@dataclass(frozen=True)
class KpiDay:
    """The KPIs of one calendar day (tickets by the day they were filed)."""

    day: dt.date
    conversations: int
    handed_off_conversations: int
    handoffs: int
    resolved_by_agents: int
    abandoned: int
    first_response_average_seconds: float | None
    handling_average_seconds: float | None


@dataclass(frozen=True)
class KpiWeek(WeekFields, KpiDay):
    """The KPIs of one calendar week (Monday to Sunday), over its days in the period (:class:`WeekFields`)."""


@dataclass(frozen=True)
class KpiAgent:
    """One agent's first responses (by who wrote the first reply) and resolved tickets."""

    agent: str
    first_responses: Durations
    handled: Durations


@dataclass(frozen=True)
class CsatCounts:
    """Ratings of a group of tickets: tickets asked, ratings, average, count of each rating 1..5."""

    asked: int
    responses: int
    response_rate: float | None
    average: float | None
    distribution: list[int]


@dataclass(frozen=True)
class CsatFigures(CsatCounts):
    """Ratings of the tickets one agent resolved (``agent``: the display name)."""

    agent: str


@dataclass(frozen=True)
class CsatCategory(CsatCounts):
    """Ratings of the tickets of one category (:data:`UNCATEGORISED` for those without one)."""

    category: str


@dataclass(frozen=True)
class CsatComment:
    """A customer's comment with its rating (shown as text only)."""

    at: dt.datetime
    agent: str
    rating: int
    comment: str


@dataclass(frozen=True)
class CsatSummary:
    """CSAT of the period: overall figures, per agent, latest comments (newest first)."""

    asked: int = 0
    responses: int = 0
    response_rate: float | None = None
    average: float | None = None
    distribution: list[int] = field(default_factory=lambda: [0] * 5)
    agents: list[CsatFigures] = field(default_factory=list)
    categories: list[CsatCategory] = field(default_factory=list)
    comments: list[CsatComment] = field(default_factory=list)


def _csat_counts(asked: int, ratings: list[int]) -> dict[str, Any]:
    """The fields of :class:`CsatCounts` for ``asked`` tickets and their ``ratings``."""
    return {"asked": asked, "responses": len(ratings), "response_rate": _ratio(len(ratings), asked),
            "average": round(statistics.fmean(ratings), 2) if ratings else None,
            "distribution": [ratings.count(n) for n in range(1, 6)]}


def _csat_groups(group_of: Mapping[int, str], ratings: Sequence[Any]) -> dict[str, dict[str, Any]]:
    """The :class:`CsatCounts` fields per group, ``group_of`` giving each asked ticket's group."""
    asked: dict[str, int] = defaultdict(int)
    for group in group_of.values():
        asked[group] += 1
    rated: dict[str, list[int]] = defaultdict(list)
    for row in ratings:
        rated[group_of[row.ticket_id]].append(row.rating)
    return {group: _csat_counts(count, rated.get(group, [])) for group, count in asked.items()}


def _category_order(category: str) -> tuple[bool, str]:
    """Categories by name, 「未分類」 last."""
    return category == UNCATEGORISED, category


def build_csat(engine: Engine, since: dt.datetime | None, until: dt.datetime) -> CsatSummary:
    """CSAT of the live tickets filed in ``[since, until)`` and resolved by an agent before ``until``.

    Per agent (who resolved the ticket) and per category (the ticket's category when it was
    resolved; :data:`UNCATEGORISED` without one).
    """
    with engine.connect() as conn:
        tickets = conn.execute(
            select(Ticket.id, Ticket.resolved_by, Ticket.resolved_at, Ticket.category)
            .where(_period(Ticket.created_at, since, until), Ticket.resolution == RESOLVED,
                   Ticket.offline.is_(False))).all()
        asked = [t for t in tickets if t.resolved_at is not None and as_utc(t.resolved_at) < until]
        ratings = []
        for chunk in _chunks(sorted(t.id for t in asked)):
            ratings += conn.execute(select(CsatRating.id, CsatRating.ticket_id, CsatRating.rating, CsatRating.comment,
                                           CsatRating.created_at)
                                    .where(CsatRating.ticket_id.in_(list(chunk)),
                                           CsatRating.created_at < until)).all()
        names = dict(conn.execute(select(Agent.username, Agent.display_name)).all())

    def name(username: str | None) -> str:
        return names.get(username or "", username) or "—"

    agent_of = {t.id: name(t.resolved_by) for t in asked}
    category_of = {t.id: (t.category or "").strip() or UNCATEGORISED for t in asked}
    overall = _csat_counts(len(asked), [row.rating for row in ratings])
    latest = sorted((row for row in ratings if row.comment), key=lambda r: (as_utc(r.created_at), r.id), reverse=True)
    per_agent, per_category = _csat_groups(agent_of, ratings), _csat_groups(category_of, ratings)
    return CsatSummary(
        **overall,
        agents=[CsatFigures(agent=agent, **per_agent[agent]) for agent in sorted(per_agent)],
        categories=[CsatCategory(category=category, **per_category[category])
                    for category in sorted(per_category, key=_category_order)],
        comments=[CsatComment(as_utc(r.created_at), agent_of[r.ticket_id], r.rating, r.comment)
                  for r in latest[:CSAT_COMMENTS]])


@dataclass(frozen=True)
class Kpis:
    """Standard KPIs of a period (see the module docstring for the definitions)."""

    conversations: int
    handed_off_conversations: int
    handoffs: int
    live_handoffs: int
    resolved_by_agents: int
    abandoned: int
    first_response: Durations
    handling: Durations
    abandoned_wait: Durations
    bot_resolution_rate: float | None
    agent_resolution_rate: float | None
    handoff_rate: float | None
    abandonment_rate: float | None
    days: list[KpiDay] = field(default_factory=list)
    agents: list[KpiAgent] = field(default_factory=list)
    labels: dict[str, tuple[str, str]] = field(default_factory=lambda: dict(KPI_LABELS))
    csat: CsatSummary = field(default_factory=CsatSummary)
    weeks: list[KpiWeek] = field(default_factory=list)
    resolution: Resolution = field(default_factory=Resolution)


def _seconds(later: dt.datetime, earlier: dt.datetime) -> float:
    return (as_utc(later) - as_utc(earlier)).total_seconds()


def _day_figures(dates: Sequence[dt.date], per_day: Mapping[dt.date, Mapping[str, Any]],
                 active: Mapping[dt.date, set[str]]) -> dict[str, Any]:
    """The figures of :class:`KpiDay` (without the day) over ``dates`` (a conversation counts once)."""
    written = set().union(*(active.get(d, set()) for d in dates))
    figures = [per_day[d] for d in dates if d in per_day]
    return {"conversations": len(written),
            "handed_off_conversations": len(set().union(*(f["handed"] for f in figures)) & written),
            "handoffs": sum(f["handoffs"] for f in figures), "resolved_by_agents": sum(f["resolved"] for f in figures),
            "abandoned": sum(f["abandoned"] for f in figures),
            "first_response_average_seconds": Durations.of([s for f in figures for s in f["first"]]).average_seconds,
            "handling_average_seconds": Durations.of([s for f in figures for s in f["handling"]]).average_seconds}


def build_kpis(engine: Engine, since: dt.datetime | None, until: dt.datetime, tz: dt.tzinfo,
               days: Sequence[dt.date] = ()) -> Kpis:
    """The KPIs of ``[since, until)``.

    Args:
        engine: The bot's database.
        since: Start, aware UTC (``None``: from the first record).
        until: End (exclusive), aware UTC.
        tz: Time zone of the calendar days.
        days: The days to list (the report's); empty: the days with tickets or conversations.
            The weeks are those of these days.

    Returns:
        The KPIs.
    """
    with engine.connect() as conn:
        message_rows = conn.execute(
            select(ChatMessage.conversation_id, ChatMessage.id, ChatMessage.sender, ChatMessage.created_at,
                   ChatMessage.faq_id, ChatMessage.feedback)
            .where(ChatMessage.sender.in_(("customer", "bot")), _period(ChatMessage.created_at, since, until))).all()
        tickets = conn.execute(
            select(Ticket.id, Ticket.conversation_id, Ticket.offline, Ticket.created_at, Ticket.claimed_at,
                   Ticket.resolved_at, Ticket.resolution, Ticket.resolved_by)
            .where(_period(Ticket.created_at, since, until))).all()
        first_reply: dict[int, tuple[dt.datetime, int, str | None]] = {}
        for chunk in _chunks([t.id for t in tickets]):
            for row in conn.execute(select(TranscriptEntry.ticket_id, TranscriptEntry.at, TranscriptEntry.id,
                                           TranscriptEntry.author)
                                    .where(TranscriptEntry.sender == "agent",
                                           TranscriptEntry.ticket_id.in_(list(chunk)))):
                mine = (as_utc(row.at), row.id, row.author)
                if row.ticket_id not in first_reply or mine[:2] < first_reply[row.ticket_id][:2]:
                    first_reply[row.ticket_id] = mine
        names = dict(conn.execute(select(Agent.username, Agent.display_name)).all())

    active: dict[dt.date, set[str]] = defaultdict(set)
    for row in message_rows:
        if row.sender == "customer":
            active[local_day(row.created_at, tz)].add(row.conversation_id)
    conversations = set().union(*active.values()) if active else set()
    handed_off = {t.conversation_id for t in tickets} & conversations

    per_day: dict[dt.date, dict[str, Any]] = defaultdict(lambda: {"handoffs": 0, "resolved": 0, "abandoned": 0,
                                                                   "first": [], "handling": [], "handed": set()})
    per_agent: dict[str, dict[str, list[float]]] = defaultdict(lambda: {"first": [], "handling": []})
    first_times: list[float] = []
    handling_times: list[float] = []
    abandoned_waits: list[float] = []
    resolved = 0
    for ticket in tickets:
        day = per_day[local_day(ticket.created_at, tz)]
        day["handoffs"] += 1
        if ticket.conversation_id in handed_off:
            day["handed"].add(ticket.conversation_id)
        reply = first_reply.get(ticket.id)
        if not ticket.offline and reply is not None and reply[0] < until:
            seconds = _seconds(reply[0], ticket.created_at)
            first_times.append(seconds)
            day["first"].append(seconds)
            per_agent[reply[2] or "—"]["first"].append(seconds)
        done = ticket.resolved_at is not None and as_utc(ticket.resolved_at) < until
        if done and ticket.resolution == RESOLVED:
            resolved += 1
            day["resolved"] += 1
            if ticket.claimed_at is not None:
                seconds = _seconds(ticket.resolved_at, ticket.claimed_at)
                handling_times.append(seconds)
                day["handling"].append(seconds)
                agent = ticket.resolved_by or ""
                per_agent[names.get(agent, agent) or "—"]["handling"].append(seconds)
        if done and ticket.resolution == CANCELLED and ticket.claimed_at is None and not ticket.offline:
            abandoned_waits.append(_seconds(ticket.resolved_at, ticket.created_at))
            day["abandoned"] += 1

    listed = list(days) or sorted(set(active) | set(per_day))
    day_rows = [KpiDay(day=date, **_day_figures([date], per_day, active)) for date in listed]
    week_rows = [KpiWeek(**span.row_fields(), **_day_figures(span.days, per_day, active))
                 for span in week_spans(listed)]
    agents = [KpiAgent(name, Durations.of(values["first"]), Durations.of(values["handling"]))
              for name, values in sorted(per_agent.items())]
    live = sum(1 for t in tickets if not t.offline)
    return Kpis(
        conversations=len(conversations), handed_off_conversations=len(handed_off), handoffs=len(tickets),
        live_handoffs=live, resolved_by_agents=resolved, abandoned=len(abandoned_waits),
        first_response=Durations.of(first_times), handling=Durations.of(handling_times),
        abandoned_wait=Durations.of(abandoned_waits),
        bot_resolution_rate=_ratio(len(conversations) - len(handed_off), len(conversations)),
        agent_resolution_rate=_ratio(resolved, len(tickets)),
        handoff_rate=_ratio(len(handed_off), len(conversations)),
        abandonment_rate=_ratio(len(abandoned_waits), live),
        days=day_rows, agents=agents, csat=build_csat(engine, since, until), weeks=week_rows,
        resolution=build_resolution(conversations, handed_off, message_rows, until))


def format_duration(seconds: float | None) -> str:
    """「2分05秒」, 「1時間03分」, 「45秒」; 「—」 without a value."""
    if seconds is None:
        return "—"
    whole = int(round(seconds))
    if whole < 60:
        return f"{whole}秒"
    if whole < 3600:
        return f"{whole // 60}分{whole % 60:02d}秒"
    return f"{whole // 3600}時間{whole % 3600 // 60:02d}分"


def format_percent(rate: float | None) -> str:
    """「12.5%」 for 0.125; 「—」 without a value."""
    return "—" if rate is None else f"{rate * 100:.1f}%"


def resolution_counts(resolution: Resolution) -> str:
    """「3 / 5 会話。「はい」 1・24 時間 2、未確定 1 会話は除く」: the counts behind the resolution rate."""
    return (f"{resolution.resolved} / {resolution.decided} 会話。「はい」 {resolution.confirmed}・"
            f"24 時間 {resolution.assumed}、未確定 {resolution.pending} 会話は除く")


def format_kpis(kpis: Kpis, limit: int = 10) -> list[str]:
    """The KPIs as lines of `bot report` (Japanese, each with its definition)."""
    label = {key: name for key, (name, _) in KPI_LABELS.items()}
    meaning = {key: text for key, (_, text) in KPI_LABELS.items()}
    lines = ["■ 担当者対応の指標（KPI）",
             f"  {label['first_response']}: 平均 {format_duration(kpis.first_response.average_seconds)}"
             f" / 中央値 {format_duration(kpis.first_response.median_seconds)}（{kpis.first_response.count} 件）"
             f" — {meaning['first_response']}",
             f"  {label['handling']}: 平均 {format_duration(kpis.handling.average_seconds)}"
             f" / 中央値 {format_duration(kpis.handling.median_seconds)}（{kpis.handling.count} 件） — {meaning['handling']}",
             f"  {label['bot_resolution']}: {format_percent(kpis.bot_resolution_rate)}"
             f"（{kpis.conversations - kpis.handed_off_conversations} / {kpis.conversations} 会話） — {meaning['bot_resolution']}",
             f"  {label['resolution']}: {format_percent(kpis.resolution.rate)}（{resolution_counts(kpis.resolution)}）"
             f" — {meaning['resolution']}",
             f"  {label['agent_resolution']}: {format_percent(kpis.agent_resolution_rate)}"
             f"（{kpis.resolved_by_agents} / {kpis.handoffs} 件） — {meaning['agent_resolution']}",
             f"  {label['handoff']}: {format_percent(kpis.handoff_rate)}"
             f"（{kpis.handed_off_conversations} / {kpis.conversations} 会話） — {meaning['handoff']}",
             f"  {label['abandonment']}: {kpis.abandoned} 件（{format_percent(kpis.abandonment_rate)}、"
             f"待ち時間 平均 {format_duration(kpis.abandoned_wait.average_seconds)}） — {meaning['abandonment']}",
             "", "■ 日別の指標（日付 / 会話 / 引き継いだ会話 / 引き継ぎ / 担当者が解決 / 放棄 / 初回応答 平均 / 対応時間 平均）"]
    active = [d for d in kpis.days if d.conversations or d.handoffs]
    lines += [f"  {d.day.isoformat()}  {d.conversations:>5}  {d.handed_off_conversations:>4}  {d.handoffs:>4}"
              f"  {d.resolved_by_agents:>4}  {d.abandoned:>4}  {format_duration(d.first_response_average_seconds):>8}"
              f"  {format_duration(d.handling_average_seconds):>8}" for d in active] or ["  （記録がありません）"]
    csat = kpis.csat
    average = "—" if csat.average is None else f"{csat.average:.2f}"
    lines.insert(lines.index("") if "" in lines else len(lines),
                 f"  {label['csat']}: 平均 {average}（{csat.responses} 件、"
                 f"1〜5 の件数 {' / '.join(str(n) for n in csat.distribution)}）"
                 f" / {label['csat_response']} {format_percent(csat.response_rate)}（{csat.responses} / {csat.asked} 件）"
                 f" — {meaning['csat']}")
    lines += ["", "■ 担当者別（初回応答: 件数・平均 / 解決: 件数・平均対応時間）"]
    lines += [f"  {a.agent}: 初回応答 {a.first_responses.count} 件・{format_duration(a.first_responses.average_seconds)}"
              f" / 解決 {a.handled.count} 件・{format_duration(a.handled.average_seconds)}"
              for a in kpis.agents[:limit]] or ["  （担当者の対応はありません）"]
    return lines
