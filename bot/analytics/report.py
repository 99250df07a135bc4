"""Build the editors' report from the chat log and the handoff queue.

What is counted (docs/analytics.md explains it for editors):

- A customer message is *answered by the bot* by the first bot row after it in the same
  conversation and before the next customer message. The gateway stores the bot's reply
  rows with the intent, confidence, route and FAQ id of the customer message they answer
  (bot/server/gateway.py), so that first reply tells what the bot understood. Customer
  messages without a bot reply (a person owned the conversation, Rasa was down) are
  volume, not intent statistics.
- Days are calendar days in ``tz`` (Japan time by default). A day's *conversations* are the
  conversations in which the customer sent at least one message that day; its *handoffs*
  are the tickets filed that day (offline ones included); its handoff rate is handoffs /
  conversations. Weeks run from Monday to Sunday in ``tz``: a week's figures are those of its
  days in the period, a conversation written in on several of them counting once.
- A handoff's FAQ is the last FAQ answered in that conversation before the ticket was filed;
  without one, the ticket's category stands in.
- An unanswered question is a customer message whose reply route was ``clarify`` or
  ``out_of_scope``, or whose confidence was below :data:`LOW_CONFIDENCE`. They are grouped
  by similarity (TF-IDF over character n-grams + average-linkage clustering) so that one
  group is one missing FAQ or one missing phrasing.

Only portable SQLAlchemy core queries are used (no database-specific SQL); grouping by day
happens in Python after converting each UTC timestamp to ``tz``, so SQLite and PostgreSQL
give the same figures.
"""

from __future__ import annotations

import datetime as dt
import inspect
import re
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Sequence

from sqlalchemy import select
from sqlalchemy.engine import Connection, Engine

from bot import wording
from bot.analytics.kpis import Kpis, build_kpis
from bot.analytics.periods import (WeekFields, chunks as _chunks, in_period as _period, local_day as _local_day,
                                   ratio as _ratio, week_spans)
from bot.handoff.reasons import REASON_LABELS
from bot.store.models import ChatMessage, Conversation, Ticket, as_utc, utcnow

JST = dt.timezone(dt.timedelta(hours=9), "JST")
LOW_CONFIDENCE = 0.5
UNANSWERED_ROUTES = ("clarify", "out_of_scope")
# Two questions belong to one group when their average cosine similarity is at least this.
GROUP_SIMILARITY = 0.35
MAX_EXAMPLES = 5
# Distinct question texts clustered at most (the most frequent ones; the distance matrix
# is quadratic in this number). The rest are counted in ``unanswered_not_grouped``.
MAX_GROUPED_TEXTS = 2000
# Bot replies are read a little past ``until`` so a question asked just before the end of
# the period still finds its reply.
REPLY_GRACE = dt.timedelta(minutes=5)

UNANSWERED_LABELS = {"clarify": "聞き返し", "out_of_scope": "対象外", "low_confidence": "確からしさが低い"}


# ---- report shape ------------------------------------------------------------------------


@dataclass(frozen=True)
class DayVolume:
    """One calendar day.

    Attributes:
        day: The date in the report's time zone.
        new_conversations: Widget conversations started that day.
        conversations: Conversations in which the customer wrote that day.
        customer_messages: Customer messages that day.
        handoffs: Tickets filed that day.
        handoff_rate: ``handoffs / conversations`` (``None`` without conversations).
    """

    day: dt.date
    new_conversations: int
    conversations: int
    customer_messages: int
    handoffs: int
    handoff_rate: float | None


@dataclass(frozen=True)
class WeekVolume(WeekFields, DayVolume):
    """One calendar week (Monday to Sunday): :class:`DayVolume`'s figures over its days in the period
    (:class:`WeekFields`); a conversation in which the customer wrote on several of them counts once."""


@dataclass
class _DailyActivity:
    """Per calendar day: conversations started, customer messages, conversations written in, tickets."""

    new: Counter[dt.date]
    messages: Counter[dt.date]
    active: dict[dt.date, set[str]]
    handoffs: Counter[dt.date]

    def volume(self, dates: Sequence[dt.date]) -> dict[str, Any]:
        """The figures of :class:`DayVolume` over ``dates`` (a conversation counts once)."""
        conversations = len(set().union(*(self.active.get(d, set()) for d in dates)))
        handoffs = sum(self.handoffs[d] for d in dates)
        return {"new_conversations": sum(self.new[d] for d in dates), "conversations": conversations,
                "customer_messages": sum(self.messages[d] for d in dates), "handoffs": handoffs,
                "handoff_rate": _ratio(handoffs, conversations)}


@dataclass(frozen=True)
class ReasonHandoffs:
    """Handoffs with one reason (a ticket with two reasons counts for both).

    Attributes:
        reason: Reason code (``anger``, ``human_request`` ...).
        label: Japanese label.
        handoffs: Tickets with this reason.
        share: ``handoffs / all handoffs``.
        rate: ``handoffs / conversations`` of the period.
    """

    reason: str
    label: str
    handoffs: int
    share: float | None
    rate: float | None


@dataclass(frozen=True)
class FaqHandoffs:
    """Handoffs after one FAQ (or, without an FAQ answer before them, in one category).

    Attributes:
        faq_id: The last FAQ answered before the handoff (``None``: none was answered).
        category: The tickets' category (the most frequent one for an FAQ row).
        handoffs: Tickets.
        share: ``handoffs / all handoffs``.
        answered_conversations: Conversations of the period in which this FAQ was answered
            (``None`` for a category row).
        rate: ``handoffs / answered_conversations`` (``None`` for a category row).
    """

    faq_id: str | None
    category: str | None
    handoffs: int
    share: float | None
    answered_conversations: int | None
    rate: float | None


@dataclass(frozen=True)
class IntentCount:
    """How often the bot understood one intent.

    Attributes:
        intent: Intent name (``faq_change_address`` ...).
        count: Customer messages with this intent.
        share: ``count / customer messages answered by the bot``.
        label: What editors read (「住所を変更したい」, 「判定できず」; :func:`bot.wording.intent_name_ja`).
    """

    intent: str
    count: int
    share: float | None
    label: str = ""


@dataclass(frozen=True)
class FeedbackRow:
    """役に立ちましたか？ answers for one FAQ.

    Attributes:
        faq_id: The FAQ.
        answers: Times the FAQ was shown as an answer.
        no: 「いいえ」 answers.
        yes: 「はい」 answers.
        no_rate: ``no / (no + yes)`` (``None`` without feedback).
    """

    faq_id: str
    answers: int
    no: int
    yes: int
    no_rate: float | None


@dataclass(frozen=True)
class QuestionGroup:
    """Similar questions the bot could not answer well: one missing FAQ or phrasing.

    Attributes:
        representative: The group's most frequent (then most central) question.
        count: Customer messages in the group.
        examples: Up to five distinct texts, most frequent first (the representative first).
        top_intent: What the bot most often thought they were (``None``: nothing).
        reasons: Messages per cause: ``clarify`` / ``out_of_scope`` / ``low_confidence``.
        top_intent_label: ``top_intent`` as editors read it (「判定できず」 for ``nlu_fallback``).
    """

    representative: str
    count: int
    examples: list[str]
    top_intent: str | None
    reasons: dict[str, int]
    top_intent_label: str | None = None


@dataclass(frozen=True)
class Totals:
    """Figures for the whole period.

    Attributes:
        new_conversations: Conversations started.
        conversations: Distinct conversations in which the customer wrote.
        customer_messages: Customer messages.
        bot_answered_messages: Customer messages the bot replied to.
        handoffs: Tickets filed.
        offline_handoffs: Of those, filed outside staffed hours.
        handoff_rate: ``handoffs / conversations``.
        unanswered: Unanswered or low-confidence customer messages.
        unanswered_rate: ``unanswered / bot_answered_messages``.
        feedback_yes: 「はい」 answers.
        feedback_no: 「いいえ」 answers.
    """

    new_conversations: int
    conversations: int
    customer_messages: int
    bot_answered_messages: int
    handoffs: int
    offline_handoffs: int
    handoff_rate: float | None
    unanswered: int
    unanswered_rate: float | None
    feedback_yes: int
    feedback_no: int


@dataclass(frozen=True)
class AnalyticsReport:
    """Everything the editors' page, the CSV files and ``bot report`` show.

    Attributes:
        since: Start of the period (inclusive; ``None``: from the first record).
        until: End of the period (exclusive).
        timezone: Name of the time zone of ``days`` (``JST``).
        generated_at: When the report was built (UTC).
        totals: Whole-period figures.
        days: One row per calendar day of the period, oldest first (days without activity
            included, with zeros).
        handoff_reasons: By reason, most handoffs first.
        handoff_faqs: By last FAQ (or category), most handoffs first.
        intents: Most frequent first.
        feedback: FAQs with at least one 役に立ちましたか？ answer, most 「いいえ」 first.
        unanswered: Groups of similar unanswered questions, largest first.
        unanswered_not_grouped: Messages left out of grouping (beyond
            :data:`MAX_GROUPED_TEXTS` distinct texts).
        kpis: Standard support KPIs (first response, handling time, resolution by the bot and
            by agents, the resolution rate, handoff rate, abandonment; per day, per week and per
            agent: :mod:`bot.analytics.kpis`).
        weeks: ``days`` by calendar week (Monday to Sunday), oldest first; the first and last
            weeks hold only the period's days.
    """

    since: dt.datetime | None
    until: dt.datetime
    timezone: str
    generated_at: dt.datetime
    totals: Totals
    days: list[DayVolume] = field(default_factory=list)
    handoff_reasons: list[ReasonHandoffs] = field(default_factory=list)
    handoff_faqs: list[FaqHandoffs] = field(default_factory=list)
    intents: list[IntentCount] = field(default_factory=list)
    feedback: list[FeedbackRow] = field(default_factory=list)
    unanswered: list[QuestionGroup] = field(default_factory=list)
    unanswered_not_grouped: int = 0
    kpis: Kpis | None = None
    weeks: list[WeekVolume] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form (dates and times as ISO 8601 strings)."""
        def plain(value: Any) -> Any:
            if isinstance(value, (dt.datetime, dt.date)):
                return value.isoformat()
            if isinstance(value, dict):
                return {k: plain(v) for k, v in value.items()}
            if isinstance(value, (list, tuple)):
                return [plain(v) for v in value]
            if hasattr(value, "__dataclass_fields__"):
                return {name: plain(getattr(value, name)) for name in value.__dataclass_fields__}
            return value

        return plain(self)  # type: ignore[no-any-return]


# ---- helpers -----------------------------------------------------------------------------


def _as_float(value: Any) -> float | None:
    """Confidence is a JSON column: a number, rarely a numeric string, or nothing."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _to_utc(moment: dt.datetime | None, tz: dt.tzinfo) -> dt.datetime | None:
    """Aware UTC bound for queries (naive input is local time in ``tz``).

    SQLite stores naive UTC strings and SQLAlchemy drops the offset when binding, so every
    bound must be converted to UTC first for both databases to agree.
    """
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    return moment.astimezone(dt.timezone.utc)


def last_days(days: int, tz: dt.tzinfo = JST, now: dt.datetime | None = None) -> tuple[dt.datetime, dt.datetime]:
    """The period of the last ``days`` calendar days in ``tz``, today included.

    Args:
        days: Number of days (1 = today only).
        tz: Time zone of the calendar.
        now: Current time (tests pass a fixed one).

    Returns:
        ``(since, until)``: midnight ``days - 1`` days ago, and now.

    Raises:
        ValueError: ``days`` below 1.
    """
    if days < 1:
        raise ValueError(f"days は 1 以上で指定してください（{days} が指定されました）。")
    now = as_utc(now) if now else utcnow()
    today = now.astimezone(tz).date()
    start = dt.datetime.combine(today - dt.timedelta(days=days - 1), dt.time(), tzinfo=tz)
    return start, now



# ---- reading -----------------------------------------------------------------------------


@dataclass
class _Question:
    """A customer message and what the bot made of it."""

    id: int
    conversation_id: str
    text: str
    at: dt.datetime
    replied: bool = False
    intent: str | None = None
    confidence: float | None = None
    route: str | None = None


def _questions(conn: Connection, since: dt.datetime | None, until: dt.datetime) -> list[_Question]:
    """Customer messages of the period, each paired with the first bot reply after it."""
    read_until = until + REPLY_GRACE
    customer_rows = conn.execute(
        select(ChatMessage.id, ChatMessage.conversation_id, ChatMessage.text, ChatMessage.created_at)
        .where(ChatMessage.sender == "customer", _period(ChatMessage.created_at, since, read_until))).all()
    bot_rows = conn.execute(
        select(ChatMessage.id, ChatMessage.conversation_id, ChatMessage.intent, ChatMessage.confidence,
               ChatMessage.route)
        .where(ChatMessage.sender == "bot", _period(ChatMessage.created_at, since, read_until))).all()

    # (conversation, id, kind, payload): the id orders one conversation's rows.
    events: list[tuple[str, int, int, Any]] = []
    questions: list[_Question] = []
    for row in customer_rows:
        question = _Question(row.id, row.conversation_id, row.text, as_utc(row.created_at))
        questions.append(question)
        events.append((row.conversation_id, row.id, 0, question))
    for row in bot_rows:
        events.append((row.conversation_id, row.id, 1, row))
    events.sort(key=lambda e: (e[0], e[1]))

    current: _Question | None = None
    current_conversation = None
    for conversation_id, _, kind, payload in events:
        if conversation_id != current_conversation:
            current, current_conversation = None, conversation_id
        if kind == 0:
            current = payload
        elif current is not None and not current.replied:
            # The first bot reply speaks for the customer message; later replies in the same
            # turn (or the answer to a 「いいえ」 click, which has no customer message) do not.
            current.replied = True
            current.intent = payload.intent
            current.confidence = _as_float(payload.confidence)
            current.route = payload.route
    return [q for q in questions if q.at < until]


def _unanswered_reasons(question: _Question) -> list[str]:
    reasons = []
    if question.route in UNANSWERED_ROUTES:
        reasons.append(question.route)
    if question.confidence is not None and question.confidence < LOW_CONFIDENCE:
        reasons.append("low_confidence")
    return reasons


# ---- grouping ------------------------------------------------------------------------------

_NOT_WORD = re.compile(r"[^\w]+")


def clean_for_grouping(text: str) -> str:
    """NFKC, lower case, letters and digits only (punctuation, spaces and emoji go).

    Args:
        text: A customer message.

    Returns:
        The string the similarity is computed on.
    """
    folded = unicodedata.normalize("NFKC", text).lower()
    return _NOT_WORD.sub("", folded).replace("_", "")


def _agglomerative(distance_threshold: float) -> Any:
    """AgglomerativeClustering on a precomputed distance matrix (``affinity`` became ``metric``)."""
    from sklearn.cluster import AgglomerativeClustering

    metric_arg = "metric" if "metric" in inspect.signature(AgglomerativeClustering).parameters else "affinity"
    return AgglomerativeClustering(n_clusters=None, distance_threshold=distance_threshold, linkage="average",
                                   **{metric_arg: "precomputed"})


def group_questions(questions: Sequence[tuple[str, str | None, list[str]]],
                    similarity: float = GROUP_SIMILARITY,
                    max_texts: int = MAX_GROUPED_TEXTS) -> tuple[list[QuestionGroup], int]:
    """Group similar questions.

    Identical texts (after :func:`clean_for_grouping`) are merged first; the distinct texts
    are embedded with TF-IDF over character 1–3-grams and clustered with average linkage:
    a group's members are on average at least ``similarity`` (cosine) alike.

    Args:
        questions: ``(text, intent the bot saw, reasons)`` per customer message.
        similarity: Minimum average cosine similarity inside a group.
        max_texts: Distinct texts clustered at most (the most frequent ones).

    Returns:
        The groups, largest first, and the number of messages left out (beyond ``max_texts``).
    """
    # Distinct cleaned texts, each with its original spellings, intents and reasons.
    spellings: dict[str, Counter[str]] = defaultdict(Counter)
    intents: dict[str, Counter[str]] = defaultdict(Counter)
    reasons: dict[str, Counter[str]] = defaultdict(Counter)
    for text, intent, why in questions:
        key = clean_for_grouping(text) or text.strip()
        if not key:
            continue
        spellings[key][text.strip()] += 1
        if intent:
            intents[key][intent] += 1
        reasons[key].update(why)
    keys = sorted(spellings, key=lambda k: (-sum(spellings[k].values()), k))
    left_out = sum(sum(spellings[k].values()) for k in keys[max_texts:])
    keys = keys[:max_texts]
    if not keys:
        return [], left_out

    counts = [sum(spellings[k].values()) for k in keys]
    if len(keys) == 1:
        labels = [0]
        sims = None
    else:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.metrics.pairwise import cosine_similarity

        vectors = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True).fit_transform(keys)
        sims = cosine_similarity(vectors).astype("float32")
        distances = (1.0 - sims).clip(min=0.0)
        labels = list(_agglomerative(1.0 - similarity).fit_predict(distances))

    members: dict[int, list[int]] = defaultdict(list)
    for index, label in enumerate(labels):
        members[int(label)].append(index)

    groups = []
    for indexes in members.values():
        def centrality(i: int, indexes: list[int] = indexes) -> float:
            return float(sum(sims[i][j] * counts[j] for j in indexes)) if sims is not None else 0.0

        ranked = sorted(indexes, key=lambda i: (-counts[i], -centrality(i), len(keys[i]), keys[i]))
        intent_total: Counter[str] = Counter()
        reason_total: Counter[str] = Counter()
        for i in indexes:
            intent_total.update(intents[keys[i]])
            reason_total.update(reasons[keys[i]])
        examples = [spellings[keys[i]].most_common(1)[0][0] for i in ranked[:MAX_EXAMPLES]]
        top_intent = min(intent_total.items(), key=lambda kv: (-kv[1], kv[0]))[0] if intent_total else None
        groups.append(QuestionGroup(representative=examples[0], count=sum(counts[i] for i in indexes),
                                    examples=examples, top_intent=top_intent,
                                    reasons={r: reason_total[r] for r in UNANSWERED_LABELS if reason_total[r]},
                                    top_intent_label=wording.intent_name_ja(top_intent) if top_intent else None))
    groups.sort(key=lambda g: (-g.count, g.representative))
    return groups, left_out


# ---- the report ------------------------------------------------------------------------------


def _last_faq_before(conn: Connection, tickets: Sequence[Any]) -> dict[int, str | None]:
    """Ticket id -> the last FAQ answered in its conversation before it was filed."""
    conversation_ids = sorted({t.conversation_id for t in tickets})
    answers: dict[str, list[tuple[dt.datetime, int, str]]] = defaultdict(list)
    for chunk in _chunks(conversation_ids):
        rows = conn.execute(select(ChatMessage.conversation_id, ChatMessage.created_at, ChatMessage.id,
                                   ChatMessage.faq_id)
                            .where(ChatMessage.sender == "bot", ChatMessage.faq_id.is_not(None),
                                   ChatMessage.conversation_id.in_(list(chunk)))).all()
        for row in rows:
            answers[row.conversation_id].append((as_utc(row.created_at), row.id, row.faq_id))
    result: dict[int, str | None] = {}
    for ticket in tickets:
        filed = as_utc(ticket.created_at)
        before = [a for a in answers.get(ticket.conversation_id, []) if a[0] <= filed]
        result[ticket.id] = max(before)[2] if before else None
    return result


def build_report(engine: Engine, since: dt.datetime | None = None, until: dt.datetime | None = None,
                 tz: dt.tzinfo = JST) -> AnalyticsReport:
    """Read the chat log and the handoff queue of one period into a report.

    Args:
        engine: The bot's database (see :func:`bot.store.queue.make_engine`).
        since: Start (inclusive); ``None``: from the first record. Naive values are in ``tz``.
        until: End (exclusive); ``None``: now. Naive values are in ``tz``.
        tz: Time zone of the calendar days.

    Returns:
        The report.
    """
    since_utc = _to_utc(since, tz)
    until_utc = _to_utc(until, tz) or utcnow()

    with engine.connect() as conn:
        questions = _questions(conn, since_utc, until_utc)
        started = conn.execute(select(Conversation.created_at)
                               .where(_period(Conversation.created_at, since_utc, until_utc))).scalars().all()
        tickets = conn.execute(select(Ticket.id, Ticket.conversation_id, Ticket.reasons, Ticket.category,
                                      Ticket.offline, Ticket.created_at)
                               .where(_period(Ticket.created_at, since_utc, until_utc))).all()
        answers = conn.execute(select(ChatMessage.conversation_id, ChatMessage.faq_id, ChatMessage.feedback)
                               .where(ChatMessage.sender == "bot", ChatMessage.faq_id.is_not(None),
                                      _period(ChatMessage.created_at, since_utc, until_utc))).all()
        last_faq = _last_faq_before(conn, tickets)

    # ---- per day and per week
    activity = _DailyActivity(Counter(_local_day(moment, tz) for moment in started),
                              Counter(_local_day(q.at, tz) for q in questions), defaultdict(set),
                              Counter(_local_day(t.created_at, tz) for t in tickets))
    for q in questions:
        activity.active[_local_day(q.at, tz)].add(q.conversation_id)
    seen_days = set(activity.new) | set(activity.messages) | set(activity.handoffs)
    first_day = since_utc.astimezone(tz).date() if since_utc else min(seen_days, default=None)
    last_day = (until_utc - dt.timedelta(microseconds=1)).astimezone(tz).date()
    listed = [first_day + dt.timedelta(days=n) for n in range((last_day - first_day).days + 1)] if first_day else []
    days = [DayVolume(day, **activity.volume([day])) for day in listed]
    weeks = [WeekVolume(**span.row_fields(), **activity.volume(span.days)) for span in week_spans(listed)]

    conversations_total = len({q.conversation_id for q in questions})
    handoffs_total = len(tickets)

    # ---- handoffs by reason
    reason_counts = Counter(r for t in tickets for r in dict.fromkeys(t.reasons or []))
    handoff_reasons = [ReasonHandoffs(reason, REASON_LABELS.get(reason, reason), count,
                                      _ratio(count, handoffs_total), _ratio(count, conversations_total))
                       for reason, count in sorted(reason_counts.items(), key=lambda kv: (-kv[1], kv[0]))]

    # ---- handoffs by FAQ (or category)
    answered_in: dict[str, set[str]] = defaultdict(set)
    for row in answers:
        answered_in[row.faq_id].add(row.conversation_id)
    by_faq: dict[tuple[str | None, str | None], list[Any]] = defaultdict(list)
    for ticket in tickets:
        faq = last_faq.get(ticket.id)
        by_faq[(faq, None) if faq else (None, ticket.category)].append(ticket)
    handoff_faqs = []
    for (faq, category), group in by_faq.items():
        if faq:
            categories = Counter(t.category for t in group if t.category)
            category = min(categories.items(), key=lambda kv: (-kv[1], kv[0]))[0] if categories else None
            answered = len(answered_in.get(faq, ()))
            handoff_faqs.append(FaqHandoffs(faq, category, len(group), _ratio(len(group), handoffs_total),
                                            answered, _ratio(len(group), answered)))
        else:
            handoff_faqs.append(FaqHandoffs(None, category, len(group), _ratio(len(group), handoffs_total),
                                            None, None))
    handoff_faqs.sort(key=lambda r: (-r.handoffs, r.faq_id is None, r.faq_id or "", r.category or ""))

    # ---- intents
    replied = [q for q in questions if q.replied]
    intent_counts = Counter(q.intent for q in replied if q.intent)
    intents = [IntentCount(intent, count, _ratio(count, len(replied)), wording.intent_name_ja(intent))
               for intent, count in sorted(intent_counts.items(), key=lambda kv: (-kv[1], kv[0]))]

    # ---- feedback
    shown: Counter[str] = Counter()
    yes: Counter[str] = Counter()
    no: Counter[str] = Counter()
    for row in answers:
        shown[row.faq_id] += 1
        if row.feedback is True:
            yes[row.faq_id] += 1
        elif row.feedback is False:
            no[row.faq_id] += 1
    feedback = [FeedbackRow(faq, shown[faq], no[faq], yes[faq], _ratio(no[faq], no[faq] + yes[faq]))
                for faq in shown if yes[faq] or no[faq]]
    feedback.sort(key=lambda r: (-r.no, -(r.no_rate or 0.0), r.faq_id))

    # ---- unanswered questions
    flagged = [(q, _unanswered_reasons(q)) for q in replied]
    flagged = [(q, why) for q, why in flagged if why]
    groups, left_out = group_questions([(q.text, q.intent, why) for q, why in flagged])

    totals = Totals(
        new_conversations=len(started), conversations=conversations_total, customer_messages=len(questions),
        bot_answered_messages=len(replied), handoffs=handoffs_total,
        offline_handoffs=sum(1 for t in tickets if t.offline),
        handoff_rate=_ratio(handoffs_total, conversations_total), unanswered=len(flagged),
        unanswered_rate=_ratio(len(flagged), len(replied)),
        feedback_yes=sum(yes.values()), feedback_no=sum(no.values()))
    return AnalyticsReport(since=since_utc, until=until_utc, timezone=str(dt.datetime.now(tz).tzname() or tz),
                           generated_at=utcnow(), totals=totals, days=days, weeks=weeks,
                           handoff_reasons=handoff_reasons,
                           handoff_faqs=handoff_faqs, intents=intents, feedback=feedback, unanswered=groups,
                           unanswered_not_grouped=left_out,
                           kpis=build_kpis(engine, since_utc, until_utc, tz, [d.day for d in days]))
