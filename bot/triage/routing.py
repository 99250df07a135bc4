"""The final NLU decision: which intent a message gets, from the classifier and the FAQ search.

Two questions are answered apart (see README "How it works"):

1. *What kind of message is it?* The intent classifier knows small talk, requests for a
   person, complaints, everyday text that is not about the service (``out_of_scope``),
   conversation moves (``preamble``, ``give_up``, ``not_that``) and the fact that a message
   is a question for the FAQ (``faq``). It knows no FAQ entry.
2. *Which entry answers it, and how sure is that?* The FAQ search ranks the entries of
   ``knowledge/`` at run time (:mod:`bot.knowledge.search`); its top score decides:

   * ``score >= answer`` and a lead of ``answer_margin`` over the second entry: answer;
   * ``score >= clarify``: ask back with the top entries as buttons (``nlu_fallback``);
   * below: the bot says what it can help with (``out_of_scope``).

   The thresholds come from risk–coverage curves on the tuning sets
   (``benchmarks/routing_thresholds.py``), never from the held-out sets.

A message the classifier files as everyday text is still treated as a question when the
search finds an entry very close to it (``everyday_override``): a city FAQ's 「粗大ごみの
出し方」 is not in the demo's training data, and the classifier has never seen it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

FAQ_INTENT = "faq"
FALLBACK_INTENT = "nlu_fallback"
OUT_OF_SCOPE_INTENT = "out_of_scope"
NON_JAPANESE_INTENT = "non_japanese"
COMPLAINT_INTENT = "complaint"
HUMAN_INTENT = "request_human"
HANDOFF_INTENTS = frozenset({COMPLAINT_INTENT, HUMAN_INTENT})
# Reason of a calm problem report the FAQ answers (「メールが届かない」); its answer opens with an apology.
PROBLEM_REPORT = "problem_report"


@dataclass(frozen=True)
class RoutingThresholds:
    """Where the decisions switch (chosen on the tuning sets, see module docstring).

    Attributes:
        answer: Least top search score to answer directly.
        answer_margin: Least lead of the top entry over the second one to answer.
        clarify: Least top score to ask back with the top entries; below, out of scope.
        everyday_override: Least top score that makes a message the classifier calls
            everyday text (``out_of_scope``) count as an FAQ question after all.
        low_confidence: A non-FAQ intent below this confidence is decided by the search
            instead (clarify or out of scope), never acted on.
        everyday_gate: From this ``out_of_scope`` probability, angry words are about
            something else (「電車が遅れて最悪」) and do not send the message to a person.
        complaint_sure: From this ``complaint`` probability, the classifier's complaint
            stands on its own. Below it, a complaint without angry words whose text
            matches an FAQ entry well (``problem_report``) is a calm problem report
            (「カード変更が反映されません」) and gets the FAQ route instead.
        problem_report: Least top search score for that. The same holds for an FAQ
            question whose anger score reaches the threshold only with weak words and the
            classifier's complaint share (「返信が来てないみたいで…迷惑メールにも無い」).
        report_clarify: A complaint read as a calm problem report is asked back (the search
            not sure which entry) only below this ``complaint`` probability; from it, a
            complaint the search cannot answer outright goes to a person
            (「お金返して、ほんとに何もしてもらえてない」).
        human_sure: From this ``request_human`` probability, the request for a person
            stands on its own. Below it, a message the search answers outright is a question
            that mentions people (「窓口で手話通訳をお願いできますか」) and gets the answer; one
            that asks something (``asking``) and that the search can only ask back about is
            asked back (the reply has a button for a person).
        answer_evidence: Least word evidence of the top entry (:attr:`SearchHit.evidence`,
            the share of the message's own words the entry contains) to answer; with less,
            the bot asks back. Readings and word vectors make text that only sounds or feels
            alike score high (「会議が多すぎて仕事する時間がない」 and 営業時間); an answer
            needs shared words.
        override_evidence: The same, for a message the classifier files as everyday text to
            count as an FAQ question (``everyday_override``).
        angry_question: Least top search score to answer, rather than hand off, a message
            with the editors' strong angry words that asks an FAQ question the search answers
            outright (「何回やってもログインできなくてイライラする…パスワードの再設定ってどう
            やるんですか」): the classifier reads a question, not a complaint, and the customer
            wants the answer now (「いいえ」 under it still leads to other answers and a person).
            1.01: off.
        question_override: ``everyday_override`` for a message that asks something
            (:func:`bot.text.asking.asks_something`: 「壊れたスマホ、どこに捨てればいいですか」):
            chatter rarely asks the reader anything, so a lower score is enough to ask back
            with the closest entries. 1.01: no difference.
        everyday_answer: Least top score to *answer* a message the classifier files as
            everyday text; below it, such a message is at most asked back. 「ゲームのパスワード
            また忘れた」 matches the password entry well, but a chat about a game is not a
            question to us, and asking back costs a customer with a real question one click.
        unfinished_clarify: Below this ``complaint`` probability, a complaint without the
            editors' angry words whose text stops mid-sentence (「請求のことなんですけど」,
            :mod:`bot.text.unfinished`) is answered or asked back by the search instead of
            going to a person: the customer has not said yet what happened (0: off).
    """

    answer: float = 0.4
    answer_margin: float = 0.1
    clarify: float = 0.2
    everyday_override: float = 0.3
    low_confidence: float = 0.3
    everyday_gate: float = 0.3
    complaint_sure: float = 0.8
    problem_report: float = 0.35
    human_sure: float = 0.0
    answer_evidence: float = 0.0
    override_evidence: float = 0.0
    everyday_answer: float = 0.0
    report_clarify: float = 1.01
    unfinished_clarify: float = 0.0
    question_override: float = 1.01
    angry_question: float = 1.01


@dataclass(frozen=True)
class Anger:
    """The anger score of a message (:func:`bot.triage.anger.score_anger`).

    Attributes:
        score: Rules and classifier combined.
        rule_score: Editors' phrases and patterns only.
        threshold: From this score the message is angry (``knowledge/triage.yml``).
        bare: The message is little more than its angry words (「クソ」「ポンコツ」): with
            nothing else named, it is about us whatever the classifier says.
    """

    score: float = 0.0
    rule_score: float = 0.0
    threshold: float = 0.6
    bare: bool = False

    @property
    def strong(self) -> bool:
        """The editors' phrases alone reach the threshold (「ふざけるな」, not the model's share)."""
        return self.rule_score >= self.threshold


@dataclass(frozen=True)
class RoutedIntent:
    """The intent a message ends with.

    Attributes:
        name: Intent name (``faq`` with ``faq_id`` set, ``nlu_fallback``, or a classifier intent).
        confidence: The classifier's confidence, or the search score for FAQ decisions.
        faq_id: The entry to answer, for ``faq``.
        reason: Why (for editors and tests): ``answer``, ``clarify``, ``no_entry``,
            ``classifier``, ``anger``, ``problem_report``, ``names_topic``, ``everyday``,
            ``unfinished``.
        handoff_reason: ``anger`` when the anger score sent a message to a person, or the
            editors' angry words are in a complaint.
    """

    name: str
    confidence: float
    faq_id: str | None = None
    reason: str = "classifier"
    handoff_reason: str | None = None


def _evidence(hits: Sequence[Any]) -> float:
    """Word evidence of the top hit (0 without hits)."""
    return float(getattr(hits[0], "evidence", 0.0)) if hits else 0.0


def _top_scores(hits: Sequence[Any]) -> tuple[float, float]:
    first = float(hits[0].score) if hits else 0.0
    second = float(hits[1].score) if len(hits) > 1 else 0.0
    return first, second


def decide_from_search(hits: Sequence[Any], thresholds: RoutingThresholds,
                       below: str = OUT_OF_SCOPE_INTENT) -> RoutedIntent:
    """Answer, clarify or ``below`` from the search hits alone.

    Args:
        hits: Search hits, best first (objects with ``faq_id`` and ``score``).
        thresholds: The routing thresholds.
        below: Intent when even clarifying is not warranted.
    """
    first, second = _top_scores(hits)
    if (first >= thresholds.answer and first - second >= thresholds.answer_margin
            and _evidence(hits) >= thresholds.answer_evidence):
        return RoutedIntent(FAQ_INTENT, first, hits[0].faq_id, "answer")
    if first >= thresholds.clarify:
        return RoutedIntent(FALLBACK_INTENT, first, None, "clarify")
    return RoutedIntent(below, first, None, "no_entry")


def route(ranking: Sequence[tuple[str, float]], hits: Sequence[Any], thresholds: RoutingThresholds,
          anger: Anger | None = None, unfinished: bool = False, asking: bool = False) -> RoutedIntent:
    """The final intent of a message.

    Args:
        ranking: The classifier's (intent, confidence) pairs, best first.
        hits: FAQ search hits for the message, best first.
        thresholds: The routing thresholds.
        anger: The message's anger score (none: not angry).
        unfinished: The text stops mid-sentence (:func:`bot.text.unfinished.is_unfinished`).
        asking: The text asks something (:func:`bot.text.asking.asks_something`).

    Returns:
        The routed intent.
    """
    anger = anger or Anger()
    if not ranking:
        return decide_from_search(hits, thresholds, below=FALLBACK_INTENT)
    probability = dict(ranking)
    intent, confidence = ranking[0]
    first, _ = _top_scores(hits)
    p_complaint = probability.get(COMPLAINT_INTENT, 0.0)
    about_us = (probability.get(OUT_OF_SCOPE_INTENT, 0.0) < thresholds.everyday_gate
                or (anger.bare and anger.strong))
    if intent in HANDOFF_INTENTS and (intent != COMPLAINT_INTENT or confidence >= thresholds.low_confidence):
        if intent == COMPLAINT_INTENT and not anger.strong:
            if unfinished and confidence < thresholds.unfinished_clarify:
                # The subject first, the problem not yet said: ask what it is.
                routed = decide_from_search(hits, thresholds, below=FALLBACK_INTENT)
                return replace(routed, reason="unfinished")
            if confidence < thresholds.complaint_sure and first >= thresholds.problem_report:
                # A calm problem report that names its topic: the FAQ answers it.
                routed = decide_from_search(hits, thresholds, below=FALLBACK_INTENT)
                if routed.name == FAQ_INTENT or confidence < thresholds.report_clarify:
                    return replace(routed, reason=PROBLEM_REPORT)
        if intent == HUMAN_INTENT and confidence < thresholds.human_sure and not anger.strong:
            routed = decide_from_search(hits, thresholds)
            # A question that mentions people (「通訳の人に手伝ってもらえますか」) the search can
            # only ask back about: ask back; the clarify reply has a button for a person too.
            if routed.name == FAQ_INTENT or (asking and routed.name == FALLBACK_INTENT):
                return replace(routed, reason="names_topic")
        if intent == COMPLAINT_INTENT and anger.strong:
            # The editors' angry words decide the reason (and its apology), whichever step
            # noticed the complaint first.
            return RoutedIntent(intent, confidence, handoff_reason="anger")
        return RoutedIntent(intent, confidence)
    if anger.score >= anger.threshold and about_us:
        calm_question = (intent == FAQ_INTENT and first >= thresholds.problem_report
                         and p_complaint < thresholds.complaint_sure)
        frustrated_question = (calm_question and asking and first >= thresholds.angry_question
                               and decide_from_search(hits, thresholds).name == FAQ_INTENT)
        if (anger.strong and not frustrated_question) or not calm_question:
            return RoutedIntent(COMPLAINT_INTENT, anger.score, None, "anger", handoff_reason="anger")
    if intent == FAQ_INTENT:
        return decide_from_search(hits, thresholds)
    override = min(thresholds.everyday_override, thresholds.question_override) if asking \
        else thresholds.everyday_override
    if (intent == OUT_OF_SCOPE_INTENT and first >= override
            and _evidence(hits) >= thresholds.override_evidence):
        routed = decide_from_search(hits, thresholds)
        if routed.name == FAQ_INTENT and first < thresholds.everyday_answer:
            return RoutedIntent(FALLBACK_INTENT, first, None, "clarify")
        return routed
    if intent == OUT_OF_SCOPE_INTENT:
        return RoutedIntent(intent, confidence, None, "everyday")
    if confidence < thresholds.low_confidence:
        return decide_from_search(hits, thresholds, below=OUT_OF_SCOPE_INTENT)
    return RoutedIntent(intent, confidence)


def load_thresholds(config_path: Path) -> RoutingThresholds:
    """The router's thresholds as configured in ``config.yml`` (defaults when absent).

    Args:
        config_path: The Rasa ``config.yml``.
    """
    import yaml

    doc = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
    for step in doc.get("pipeline") or []:
        if str(step.get("name", "")).endswith("router.Router"):
            known = {k: float(v) for k, v in step.items() if k in RoutingThresholds.__dataclass_fields__}
            return RoutingThresholds(**known)
    return RoutingThresholds()


DECISION_LABELS = {"answer": "回答する", "clarify": "聞き返す（上位の FAQ をボタンで提示）",
                   "no_entry": "答えられる FAQ なし（対応範囲の案内）"}
