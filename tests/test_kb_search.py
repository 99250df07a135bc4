"""FAQ search without training (`bot kb search`): ranking, tiny knowledge dirs, evaluation, bad input."""

from __future__ import annotations

import json
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bot.errors import KnowledgeError
from bot.knowledge.model import FaqEntry, KnowledgeBase
from benchmarks.search_baseline import CharNgramBM25
from bot.text.vectors import load_static_vectors, murmurhash64a as _murmurhash64a
from bot.knowledge.search import (
    FaqSearch,
    SearchConfig,
    SearchHit,
    _Bm25View,
    eval_search,
    read_queries,
)
from bot.settings import PROJECT_ROOT

KNOWLEDGE = PROJECT_ROOT / "knowledge"


@pytest.fixture(scope="module")
def search() -> FaqSearch:
    """The search over the project's knowledge/, built once for the module."""
    engine = FaqSearch.from_directory(KNOWLEDGE)
    engine.build()
    return engine


@pytest.fixture(scope="module")
def baseline() -> CharNgramBM25:
    """The character 2-gram baseline over knowledge/."""
    return CharNgramBM25.from_directory(KNOWLEDGE)


# --------------------------------------------------------------------------- ranking on knowledge/


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("住所変更", "change-address"),
        ("ｼﾞｭｳｼｮ", "change-address"),  # half-width katakana
        ("じゅうしょかえたい", "change-address"),  # all hiragana
        ("引越し先に住所を変えたい", "change-address"),  # 引越し / 引っ越し variants
        ("解約したい", "cancel"),
        ("退会の方法を教えて", "cancel"),
        ("ﾊﾟｽﾜｰﾄﾞ わすれた", "reset-password"),
        ("メアド変えたい", "change-email"),  # synonym table: メアド -> メールアドレス
        ("電話番号を変えたい", "change-phone"),
        ("領収書がほしい", "invoice"),
        ("何時まで電話できますか", "hours"),
        ("無料で試せますか", "trial"),
        ("プレミアムにアップグレード", "change-plan"),
        ("月額いくら", "pricing"),
    ],
)
def test_obvious_queries_rank_the_right_entry_first(search: FaqSearch, query: str, expected: str) -> None:
    hits = search.search(query)
    assert hits, query
    assert hits[0].faq_id == expected, [(h.faq_id, h.score) for h in hits]


def test_hits_are_well_formed(search: FaqSearch) -> None:
    hits = search.search("住所を変えたい", top=5)
    assert 1 <= len(hits) <= 5
    assert all(isinstance(h, SearchHit) for h in hits)
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 <= s <= 1.0 for s in scores)
    for hit in hits:
        entry = search.kb.get(hit.faq_id)
        assert entry is not None
        assert (hit.title, hit.category) == (entry.title, entry.category)
        assert hit.matched in (entry.title, *entry.questions, *entry.phrasings)
    assert len({h.faq_id for h in hits}) == len(hits)  # one hit per entry


def test_top_limits_the_hits(search: FaqSearch) -> None:
    assert len(search.search("変更したい", top=3)) == 3
    assert search.search("変更したい", top=0) == []


def test_an_exact_question_is_reported_as_matched(search: FaqSearch) -> None:
    hits = search.search("番地が抜けてたので直したい")
    assert hits[0].faq_id == "change-address"
    assert hits[0].matched == "番地が抜けてたので直したい"


def test_evidence_is_the_share_of_the_querys_own_words(search: FaqSearch) -> None:
    """An entry's own question is full evidence; a diary line that only shares a reading or
    a mood with an entry (時間 in 営業時間) has little, whatever its total score."""
    exact = search.search("住所を変更したい", top=1)[0]
    assert exact.faq_id == "change-address" and exact.evidence >= 0.9
    diary = search.search("会議が多すぎて仕事する時間がない", top=1)[0]
    assert diary.evidence < 0.5 < exact.evidence
    assert all(0.0 <= h.evidence <= 1.0 for h in search.search("料金プランを変えたい", top=5))


def test_unrelated_question_scores_lower_than_a_clear_one(search: FaqSearch) -> None:
    clear = search.search("住所を変更したい", top=1)[0].score
    unrelated = search.search("明日の天気はどうですか", top=1)
    assert not unrelated or unrelated[0].score < clear / 2


def test_baseline_has_the_same_interface(baseline: CharNgramBM25) -> None:
    hits = baseline.search("解約したい", top=3)
    assert hits[0].faq_id == "cancel"
    assert all(isinstance(h, SearchHit) and 0 <= h.score <= 1 for h in hits)


# --------------------------------------------------------------------------- tiny knowledge dir


def _write_tiny_kb(directory: Path, synonyms: str | None = None) -> Path:
    (directory / "faq").mkdir(parents=True)
    (directory / "faq" / "imported.yml").write_text(textwrap.dedent("""\
        entries:
          - id: shipping-date
            category: 配送
            title: お届け日を知りたい
            questions:
              - 荷物はいつ届きますか
            answer: 毎月10日ごろに発送し、2〜3日でお届けします。
          - id: gift-wrapping
            category: 注文
            title: ギフト包装
            questions:
              - プレゼント用に包んでもらえますか
              - ラッピングはできますか
            answer: ご注文画面で「ギフト包装」を選ぶと、無料で包装いたします。
          - id: email-change
            category: 登録情報
            title: メールアドレスの変更
            questions:
              - メールアドレスを変えたい
              - 登録メールの変更
              - 新しいアドレスにしたい
            answer: マイページの「会員情報」から変更できます。
        """), encoding="utf-8")
    if synonyms is not None:
        (directory / "synonyms.yml").write_text(synonyms, encoding="utf-8")
    return directory


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("いつ届く？", "shipping-date"),
        ("おとどけび", "shipping-date"),
        ("ギフトラッピングしてほしい", "gift-wrapping"),
        ("ﾗｯﾋﾟﾝｸﾞ", "gift-wrapping"),
        ("メールアドレスを変更したいです", "email-change"),
    ],
)
def test_tiny_knowledge_dir_is_searchable_without_training(tmp_path: Path, query: str, expected: str) -> None:
    engine = FaqSearch.from_directory(_write_tiny_kb(tmp_path / "kb"))
    assert engine.search(query)[0].faq_id == expected


def test_tiny_knowledge_dir_uses_its_synonyms(tmp_path: Path) -> None:
    synonyms = "synonyms:\n  メールアドレス: [メアド]\n"
    with_table = FaqSearch.from_directory(_write_tiny_kb(tmp_path / "a", synonyms))
    hits = with_table.search("メアド")
    assert hits[0].faq_id == "email-change"
    assert hits[0].matched.startswith("メールアドレス")


def test_malformed_synonyms_are_reported(tmp_path: Path) -> None:
    with pytest.raises(KnowledgeError, match="synonyms"):
        FaqSearch.from_directory(_write_tiny_kb(tmp_path / "kb", "synonyms: [1, 2]\n"))


def test_search_works_without_word_vectors(tmp_path: Path) -> None:
    kb_dir = _write_tiny_kb(tmp_path / "kb")
    engine = FaqSearch.from_directory(kb_dir, SearchConfig(vector_package="no_such_model_package"))
    assert engine.search("ラッピングしたい")[0].faq_id == "gift-wrapping"


def test_empty_knowledge_base_returns_nothing() -> None:
    assert FaqSearch(KnowledgeBase(entries=())).search("住所") == []
    assert CharNgramBM25(KnowledgeBase(entries=())).search("住所") == []


def test_config_needs_a_positive_weight() -> None:
    with pytest.raises(ValueError):
        FaqSearch(KnowledgeBase(entries=()), config=SearchConfig(word_weight=0, reading_weight=0, vector_weight=0))
    with pytest.raises(ValueError):
        FaqSearch(KnowledgeBase(entries=()), config=SearchConfig(entry_weight=1.5))


# --------------------------------------------------------------------------- bad input


BAD_INPUTS = [
    "",
    "   \n\t ",
    "😀🎉🙇‍♀️",
    "👨‍👩‍👧‍👦",
    "<script>alert('x')</script>",
    "<div><br/></div>",
    "<p>住所を<b>変更</b>したい</p>",
    "あ" * 10_000,
    "住所変更" * 2_500,
    "\x00\x07\u200b\ufeff",
    "\ud800住所",  # lone surrogate
    "'; DROP TABLE faq; --",
    "𠜎𠜱𠝹𠱓",
    "!!!???。。。",
    "a",
]


@pytest.mark.parametrize("query", BAD_INPUTS)
@pytest.mark.parametrize("engine_name", ["search", "baseline"])
def test_bad_input_never_raises(request: pytest.FixtureRequest, engine_name: str, query: str) -> None:
    engine = request.getfixturevalue(engine_name)
    hits = engine.search(query, top=5)
    assert isinstance(hits, list) and len(hits) <= 5
    assert all(0.0 <= h.score <= 1.0 for h in hits)


@pytest.mark.parametrize("query", ["", "   ", "😀🎉", "<div><br/></div>", "\x00\u200b"])
def test_query_without_text_gives_no_hits(search: FaqSearch, query: str) -> None:
    assert search.search(query) == []


def test_html_around_the_question_is_ignored(search: FaqSearch) -> None:
    assert search.search("<p>住所を<b>変更</b>したい</p>")[0].faq_id == "change-address"


def test_long_query_is_searched_by_its_beginning(search: FaqSearch) -> None:
    hits = search.search("パスワードを忘れてログインできません。" + "よろしくお願いします。" * 1000)
    assert hits[0].faq_id == "reset-password"


# --------------------------------------------------------------------------- building blocks


def test_bm25_view_scores_an_identical_document_one() -> None:
    view = _Bm25View([["住所", "変更"], ["解約"], ["住所", "確認", "確認"]], k1=1.2, b=0.75)
    assert view.scores(["住所", "変更"])[0] == pytest.approx(1.0, abs=1e-5)
    assert view.scores(["確認", "住所", "確認"])[2] == pytest.approx(1.0, abs=1e-5)
    assert view.scores(["天気"]).tolist() == [0.0, 0.0, 0.0]
    assert view.scores([]).tolist() == [0.0, 0.0, 0.0]
    partial = view.scores(["解約", "天気"])[1]  # half of the query is unknown to the index
    assert 0.0 < partial < 1.0


def test_bm25_view_sums_the_same_scores_as_bm25s() -> None:
    docs = [["住所", "変更", "住所"], ["解約", "方法"], ["住所", "確認"], [], ["変更", "方法", "確認", "確認"]]
    view = _Bm25View(docs, k1=1.2, b=0.75)
    for query in (["住所"], ["変更", "確認"], ["方法", "住所", "解約"]):
        ours = view.scores(query)
        theirs = view._bm25.get_scores(query)
        best = int(theirs.argmax())
        # Same ranking and same ratios between documents (ours is theirs / self-score, capped at 1).
        assert (ours > 0).tolist() == (theirs > 0).tolist()
        assert ours * theirs[best] == pytest.approx(theirs * ours[best], rel=1e-5)


@pytest.mark.parametrize(
    ("word", "spacy_hash"),
    [  # values of spacy.strings.hash_string (spaCy 3.4)
        ("住所", 16752263928880662717),
        ("引っ越し", 1251580805881596718),
        ("パスワード", 12175521559452151076),
        ("abc", 13021918864714763345),
    ],
)
def test_murmurhash_matches_spacy(word: str, spacy_hash: int) -> None:
    assert _murmurhash64a(word.encode("utf-8")) == spacy_hash


def test_ginza_vectors_are_found_by_hash() -> None:
    vectors = load_static_vectors("ja_ginza")
    if vectors is None:
        from conftest import missing_service

        missing_service("ja_ginza is not installed (make setup installs it)")
    for word in ("住所", "引っ越し", "解約", "料金"):
        assert vectors.mean([word]) is not None, word
    assert vectors.mean(["ｘｙｚｚｙ存在しない語"]) is None


# --------------------------------------------------------------------------- evaluation


@dataclass
class _StubSearch:
    """Returns fixed rankings, so the evaluation arithmetic can be checked exactly."""

    rankings: dict[str, list[str]]
    kb: KnowledgeBase = field(init=False)

    def __post_init__(self) -> None:
        ids = sorted({i for ranking in self.rankings.values() for i in ranking} | {"change-address"})
        self.kb = KnowledgeBase(tuple(FaqEntry(id=i, category="c", title=i, questions=("q",), answer="a")
                                      for i in ids))

    def search(self, query: str, top: int = 5) -> list[SearchHit]:
        return [SearchHit(i, i, "c", 1.0 / (n + 1), "q") for n, i in enumerate(self.rankings[query][:top])]


def _write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_eval_search_figures_are_exact(tmp_path: Path) -> None:
    queries_file = _write_lines(tmp_path / "q.jsonl", [
        json.dumps({"query": "first", "relevant": ["a"]}),
        "",
        json.dumps({"query": "third", "relevant": ["x", "c"]}),
        json.dumps({"query": "missed", "relevant": ["change-address"]}, ensure_ascii=False),
    ])
    stub = _StubSearch({
        "first": ["a", "b", "c"],  # rank 1
        "third": ["a", "b", "c", "x"],  # first relevant ("c") at rank 3
        "missed": [f"e{n}" for n in range(12)],  # not within the top 10
    })
    result = eval_search(stub, read_queries(queries_file))
    assert result["queries"] == 3
    assert result["hit@1"] == pytest.approx(1 / 3)
    assert result["hit@5"] == pytest.approx(2 / 3)
    assert result["hit@10"] == pytest.approx(2 / 3)
    assert result["mrr"] == pytest.approx((1 + 1 / 3 + 0) / 3)


def test_eval_search_on_the_tiny_knowledge_dir(tmp_path: Path) -> None:
    engine = FaqSearch.from_directory(_write_tiny_kb(tmp_path / "kb"))
    queries = [{"query": "ラッピングできる？", "relevant": ["gift-wrapping"]},
               {"query": "メールアドレスを変えたい", "relevant": ["email-change"]}]
    assert eval_search(engine, queries) == {"hit@1": 1.0, "hit@5": 1.0, "hit@10": 1.0, "mrr": 1.0, "queries": 2}


def test_eval_search_with_no_queries() -> None:
    assert eval_search(_StubSearch({}), []) == {"hit@1": 0.0, "hit@5": 0.0, "hit@10": 0.0, "mrr": 0.0,
                                                "queries": 0}


def test_eval_search_rejects_unknown_ids() -> None:
    with pytest.raises(ValueError, match="no-such-id"):
        eval_search(_StubSearch({"q": ["a"]}), [{"query": "q", "relevant": ["no-such-id"]}])


@pytest.mark.parametrize(
    ("lines", "line_no", "problem"),
    [
        (['{"query": "住所", "relevant": ["change-address"]}', '{"query": "解約", "relevant": [cancel]}'],
         2, "JSON"),
        (['{"query": "住所", "relevant": ["change-address"]}', "", '{"relevant": ["cancel"]}'], 3, "query"),
        (['{"query": "  ", "relevant": ["cancel"]}'], 1, "query"),
        (['{"query": "住所"}'], 1, "relevant"),
        (['{"query": "住所", "relevant": []}'], 1, "relevant"),
        (['{"query": "住所", "relevant": [1]}'], 1, "relevant"),
        (['["住所", "change-address"]'], 1, "オブジェクト"),
    ],
)
def test_read_queries_errors_name_the_line(tmp_path: Path, lines: list[str], line_no: int, problem: str) -> None:
    path = _write_lines(tmp_path / "queries.jsonl", lines)
    with pytest.raises(KnowledgeError) as caught:
        read_queries(path)
    message = str(caught.value)
    assert f"{line_no}行目" in message
    assert problem in message
    assert "queries.jsonl" in message


def test_read_queries_reports_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(KnowledgeError, match="見つかりません"):
        read_queries(tmp_path / "none.jsonl")


def test_read_queries_accepts_a_single_id_and_a_bom(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text('\ufeff{"query": "住所", "relevant": "change-address"}\n', encoding="utf-8")
    assert read_queries(path) == [{"query": "住所", "relevant": ["change-address"]}]


def test_benchmark_queries_are_valid_and_not_copies_of_training_questions(search: FaqSearch) -> None:
    from bot.text.normalize import fold

    queries = read_queries(PROJECT_ROOT / "benchmarks" / "data_search" / "queries.jsonl")
    assert len(queries) >= 150
    training = {fold(q) for e in search.kb.entries for q in (e.title, *e.questions)}
    known = set(search.kb.ids)
    for item in queries:
        assert fold(item["query"]) not in training, item["query"]
        assert set(item["relevant"]) <= known, item


def test_reranker_is_fitted_only_where_entries_have_many_questions() -> None:
    from bot.knowledge.rerank import QuestionReranker, RerankConfig

    config = RerankConfig(min_questions=3, min_share=0.8)
    many = QuestionReranker.fit([["住所", "変更"], ["住所"], ["引っ越し"], ["電話"], ["電話", "番号"], ["携帯"]],
                                [0, 0, 0, 1, 1, 1], 2, config)
    assert many is not None
    proba = many.probabilities(["引っ越し"])
    assert proba.argmax() == 0 and abs(float(proba.sum()) - 1.0) < 1e-5
    assert not many.probabilities([]).any() and not many.probabilities(["未知語"]).any()
    few = QuestionReranker.fit([["住所"], ["電話"]], [0, 1], 2, config)  # one question per entry: plain search
    assert few is None
    assert QuestionReranker.fit([["a"]] * 6, [0, 0, 0, 1, 1, 1], 2, RerankConfig(weight=0.0)) is None


def test_reranker_is_used_on_the_demo_knowledge_and_not_on_sparse_entries() -> None:
    search = FaqSearch.from_directory(KNOWLEDGE)
    search.build()
    assert search._reranker is not None  # noqa: SLF001 - the demo's entries have 40+ questions
    sparse = FaqSearch(KnowledgeBase(entries=tuple(
        FaqEntry(id=f"e{i}", category="c", title=f"t{i}", questions=(f"質問{i}",), answer="a") for i in range(5))))
    sparse.build()
    assert sparse._reranker is None  # noqa: SLF001


def test_cli_kb_search_shows_the_ranking_and_the_bots_decision(capsys) -> None:  # type: ignore[no-untyped-def]
    import json as json_module

    from bot.cli import main

    assert main(["kb", "search", "住所を変えたい", "--top", "2"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[2] == "change-address"
    assert out.strip().endswith("FAQ の質問としての判定: 回答する（change-address）")
    assert main(["kb", "search", "😀", "--json"]) == 0  # nothing to search
    data = json_module.loads(capsys.readouterr().out)
    assert data["decision"] == "no_entry" and data["faq_id"] is None


def test_load_thresholds_reads_the_router_from_config(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from bot.triage.routing import RoutingThresholds, load_thresholds

    config = tmp_path / "config.yml"
    config.write_text("pipeline:\n  - name: bot.nlu.router.Router\n    answer: 0.7\n    clarify: 0.25\n",
                      encoding="utf-8")
    assert load_thresholds(config) == RoutingThresholds(answer=0.7, clarify=0.25)
    assert load_thresholds(PROJECT_ROOT / "config.yml").answer == 0.4


def test_a_loaded_model_builds_the_search_index_before_its_first_message(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Built by the first message, the index (seconds) stalled every conversation of a freshly started Rasa."""
    from rasa.shared.nlu.training_data.message import Message

    from bot.knowledge.live import LiveKnowledge
    from bot.nlu import faq_retriever

    builds: list[FaqSearch] = []
    build = FaqSearch._build
    monkeypatch.setattr(FaqSearch, "_build", lambda self: builds.append(self) or build(self))
    live = LiveKnowledge(_write_tiny_kb(tmp_path / "kb"))
    monkeypatch.setattr(faq_retriever, "shared_knowledge", lambda directory: live)

    component = faq_retriever.FaqRetriever.load({}, None, None, None)  # type: ignore[arg-type]
    assert len(builds) == 1
    (message,) = component.process([Message(data={"text": "メールアドレスを変更したいです"})])
    assert message.get(faq_retriever.FAQ_RANKING)[0]["faq_id"] == "email-change"
    assert len(builds) == 1  # the message used the index built at load


def test_a_model_being_trained_builds_no_search_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.knowledge.live import LiveKnowledge
    from bot.nlu import faq_retriever

    monkeypatch.setattr(FaqSearch, "_build", lambda self: pytest.fail("index built while training"))
    monkeypatch.setattr(faq_retriever, "shared_knowledge", lambda directory: LiveKnowledge(tmp_path / "kb"))
    faq_retriever.FaqRetriever.create({}, None, None, None)  # type: ignore[arg-type]


def test_after_an_edit_the_previous_index_answers_while_the_new_one_is_built(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A rebuild at each editor's save (seconds for a large sheet) must not hold up the searches meanwhile."""
    import threading

    from bot.knowledge.live import LiveKnowledge

    kb_dir = _write_tiny_kb(tmp_path / "kb")
    live = LiveKnowledge(kb_dir, check_interval=0.0)
    live.prepare()
    assert live.search("ポイントの有効期限はいつまで")[0].faq_id != "points-expiry"

    release = threading.Event()
    build = FaqSearch._build

    def slow_build(self: FaqSearch):  # type: ignore[no-untyped-def]
        assert release.wait(10), "the test never released the build"
        return build(self)

    monkeypatch.setattr(FaqSearch, "_build", slow_build)
    path = kb_dir / "faq" / "imported.yml"
    path.write_text(path.read_text(encoding="utf-8") + textwrap.indent(textwrap.dedent("""\
        - id: points-expiry
          category: ポイント
          title: ポイントの有効期限
          questions:
            - ポイントの有効期限はいつまでですか
          answer: ポイントの有効期限は獲得から1年です。
        """), "  "), encoding="utf-8")

    started = time.monotonic()
    hits = live.search("ポイントの有効期限はいつまで")  # answered by the previous index, not blocked
    assert time.monotonic() - started < 5
    assert "points-expiry" not in [h.faq_id for h in hits]
    release.set()
    assert live.wait_until_current(timeout=20)
    assert live.search("ポイントの有効期限はいつまで")[0].faq_id == "points-expiry"


def test_a_broken_rebuild_keeps_the_previous_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.knowledge.live import LiveKnowledge

    kb_dir = _write_tiny_kb(tmp_path / "kb")
    live = LiveKnowledge(kb_dir, check_interval=0.0)
    live.prepare()
    monkeypatch.setattr(FaqSearch, "_build", lambda self: (_ for _ in ()).throw(RuntimeError("index failed")))
    path = kb_dir / "faq" / "imported.yml"
    path.write_text(path.read_text(encoding="utf-8").replace("荷物はいつ届きますか", "荷物はいつごろ届きますか"),
                    encoding="utf-8")
    assert live.search("メールアドレスを変えたい")[0].faq_id == "email-change"  # starts the rebuild
    deadline = time.monotonic() + 10
    while live._building is not None:  # the thread gives up on its build
        assert time.monotonic() < deadline, "the failed rebuild never finished"
        time.sleep(0.02)
    assert live.search("メールアドレスを変えたい")[0].faq_id == "email-change"


def test_a_search_over_the_same_content_reuses_the_built_index(tmp_path: Path) -> None:
    first = FaqSearch.from_directory(_write_tiny_kb(tmp_path / "a"))
    first.build()
    copy = FaqSearch.from_directory(_write_tiny_kb(tmp_path / "b"))  # another folder, same content
    copy.build()
    assert copy._index is first._index
    assert copy.search("ラッピングはできますか") == first.search("ラッピングはできますか")
    # An answer is part of the entry document: a changed one is built anew, and searched.
    changed_dir = _write_tiny_kb(tmp_path / "c")
    path = changed_dir / "faq" / "imported.yml"
    path.write_text(path.read_text(encoding="utf-8").replace("無料で包装いたします", "のし紙もお付けします"),
                    encoding="utf-8")
    changed = FaqSearch.from_directory(changed_dir)
    changed.build()
    assert changed._index is not first._index
    assert changed.search("のし紙はつけられますか")[0].faq_id == "gift-wrapping"
