"""FAQ search (``bot kb search``): quality against a plain baseline, and speed on 2,000 entries.

Usage::

    .venv/bin/python -m benchmarks.kb_search [--entries 2000] [--queries 500] [--tune]

What one run does:

1. Quality: the held-out queries of ``benchmarks/data_search/queries.jsonl`` (written for
   this benchmark; none is a copy of a question in ``knowledge/``) against ``knowledge/``,
   for :class:`FaqSearch` (blended), FaqSearch with its BM25 views only (``vector_weight=0``)
   and the :class:`CharNgramBM25` baseline: hit@1/5/10 and MRR. Also against a copy of the
   knowledge cut to the title and two questions per entry, as right after a spreadsheet
   import, and the top score of unrelated questions (what a "no match" looks like).
2. Speed: a synthetic knowledge base of ``--entries`` entries (category x topic x action,
   five phrasings each, built in memory), build time and per-query latency (p50/p95) of
   ``--queries`` queries for both engines. Target: p95 <= 20 ms.
3. ``--tune`` also prints the cross-validation grid the default weights were chosen on.
   It never reads the benchmark queries: it queries ``knowledge/``'s own questions against
   indexes built without them (4 folds; a "sparse" knowledge base of title + 2 questions
   per entry; a "mixed" one with 1 to 60 questions per entry).

Results: a table on stdout and ``results/bench/kb_search.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import random
import statistics
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Callable

from bot.knowledge.loader import load_knowledge
from bot.knowledge.model import FaqEntry, KnowledgeBase
from benchmarks.search_baseline import CharNgramBM25
from bot.knowledge.search import FaqSearch, SearchConfig, eval_search, read_queries
from bot.settings import PROJECT_ROOT

OUT = PROJECT_ROOT / "results" / "bench"
RESULT_FILE = OUT / "kb_search.json"
KNOWLEDGE = PROJECT_ROOT / "knowledge"
QUERIES = PROJECT_ROOT / "benchmarks" / "data_search" / "queries.jsonl"
SYNONYMS = KNOWLEDGE / "synonyms.yml"
P95_TARGET_MS = 20.0
METRICS = ("hit@1", "hit@5", "hit@10", "mrr")

# Questions no FAQ entry answers, to show the score of the best (wrong) hit.
UNRELATED = (
    "明日の東京の天気は？", "おすすめのラーメン屋を教えて", "今日は何曜日ですか", "猫の飼い方を知りたい",
    "円周率を100桁言って", "近くのコンビニはどこ？", "株価の見通しはどうですか", "好きな映画は何？",
    "英語の勉強法を教えてください", "電車の乗り換え案内", "肩こりに効くストレッチ", "結婚式のスピーチ例文",
)

Engine = Callable[[KnowledgeBase], Any]
ENGINES: dict[str, Engine] = {
    "FaqSearch（ブレンド）": lambda kb: FaqSearch(kb, SYNONYMS),
    "FaqSearch（BM25 のみ）": lambda kb: FaqSearch(kb, SYNONYMS, SearchConfig(vector_weight=0.0)),
    "CharNgramBM25（文字2-gram）": lambda kb: CharNgramBM25(kb),
}


def _versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in ("bm25s", "numpy", "scipy", "SudachiPy", "SudachiDict-core", "ja-ginza", "msgpack"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def _cut(kb: KnowledgeBase, keep: Callable[[int, FaqEntry], set[int]]) -> KnowledgeBase:
    """A copy of ``kb`` keeping, per entry, the questions whose positions ``keep`` returns."""
    return KnowledgeBase(tuple(
        dataclasses.replace(e, questions=tuple(q for j, q in enumerate(e.questions) if j in keep(i, e)))
        for i, e in enumerate(kb.entries)))


def quality(kb: KnowledgeBase) -> dict[str, Any]:
    """Held-out queries on the full and on the cut knowledge base, per engine."""
    queries = read_queries(QUERIES)
    sparse = _cut(kb, lambda i, e: {0, 1})
    result: dict[str, Any] = {"queries": len(queries), "full": {}, "sparse_2q": {}, "unrelated_top_score": {}}
    for name, make in ENGINES.items():
        full_engine = make(kb)
        result["full"][name] = eval_search(full_engine, queries)
        result["sparse_2q"][name] = eval_search(make(sparse), queries)
        in_domain = [hits[0].score for q in queries if (hits := full_engine.search(q["query"], top=1))]
        unrelated = [hits[0].score if (hits := full_engine.search(q, top=1)) else 0.0 for q in UNRELATED]
        result["unrelated_top_score"][name] = {
            "held_out_median": round(statistics.median(in_domain), 3),
            "held_out_p10": round(sorted(in_domain)[len(in_domain) // 10], 3),
            "unrelated_median": round(statistics.median(unrelated), 3),
            "unrelated_max": round(max(unrelated), 3),
        }
    return result


# --------------------------------------------------------------------------- synthetic knowledge

_CATEGORIES = {
    "変更": ("変更", "変えたい", "変更の手続き"),
    "確認": ("確認", "確かめたい", "確認の方法"),
    "取り消し": ("取り消し", "取り消したい", "キャンセルの方法"),
    "追加": ("追加", "追加したい", "追加のやり方"),
    "削除": ("削除", "消したい", "削除の手順"),
    "再発行": ("再発行", "もう一度発行してほしい", "再発行の申し込み"),
    "登録": ("登録", "登録したい", "新規登録の方法"),
    "停止": ("停止", "止めたい", "一時停止の手続き"),
    "再開": ("再開", "また始めたい", "再開の手続き"),
    "移行": ("移行", "引き継ぎたい", "データ移行の方法"),
}
_NOUNS = ("住所", "電話番号", "メールアドレス", "パスワード", "クレジットカード", "料金プラン", "ポイント",
          "クーポン", "ギフト券", "配送日", "お届け先", "定期便", "会員ランク", "ニックネーム", "通知設定",
          "領収書", "口座情報", "予約", "注文履歴", "お気に入り")
_MODIFIERS = ("", "家族会員の", "法人アカウントの", "スマホアプリの", "店舗受け取りの", "海外配送の",
              "ギフト用の", "サブアカウントの", "旧会員サイトの", "キャンペーン")
_QUESTION_TEMPLATES = (
    "{topic}を{verb}",
    "{topic}の{noun}はどこからできますか",
    "{topic} {act}",
    "{topic}って{act}できる？",
    "{topic}の{act}について教えてください",
)
_QUERY_TEMPLATES = (
    "{topic}の{act}をお願いしたいのですが",
    "すみません、{topic}を{verb}んですけど、どうすればいいですか",
    "{topic}{act}のやり方",
    "{topic}、{verb}。至急お願いします！",
    "先日から困っているのですが、{topic}を{verb}と思っていて、マイページを見ても分からなかったので教えてください",
)


def synthetic_kb(n_entries: int) -> KnowledgeBase:
    """A knowledge base of ``n_entries`` entries (category x topic x action), in memory."""
    entries: list[FaqEntry] = []
    topics = [m + n for m in _MODIFIERS for n in _NOUNS]
    for i in range(n_entries):
        category = list(_CATEGORIES)[i % len(_CATEGORIES)]
        act, verb, noun = _CATEGORIES[category]
        topic = topics[(i // len(_CATEGORIES)) % len(topics)]
        suffix = "" if i < len(topics) * len(_CATEGORIES) else f"（{i // (len(topics) * len(_CATEGORIES)) + 1}）"
        fill = {"topic": topic + suffix, "act": act, "verb": verb, "noun": noun}
        entries.append(FaqEntry(
            id=f"faq-{i:05d}", category=f"{category}について", title=f"{topic}{suffix}の{act}",
            questions=tuple(t.format(**fill) for t in _QUESTION_TEMPLATES),
            answer=(f"{topic}の{act}は、マイページ（https://members.example/mypage）の「{category}」メニューから"
                    f"お手続きいただけます。画面の案内に沿って内容を確認し、最後に「確定」を押してください。"
                    f"お手続き後、ご登録のメールアドレスに完了のお知らせをお送りします。"),
        ))
    return KnowledgeBase(tuple(entries))


def synthetic_queries(n_queries: int, seed: int = 7) -> list[str]:
    """Customer-like queries over the synthetic topics, in templates the index does not hold."""
    rng = random.Random(seed)
    queries = []
    for _ in range(n_queries):
        category = rng.choice(list(_CATEGORIES))
        act, verb, _noun = _CATEGORIES[category]
        topic = rng.choice(_MODIFIERS) + rng.choice(_NOUNS)
        queries.append(rng.choice(_QUERY_TEMPLATES).format(topic=topic, act=act, verb=verb))
    return queries


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def speed(n_entries: int, n_queries: int) -> dict[str, Any]:
    """Build time and latency per engine on the synthetic knowledge base."""
    kb = synthetic_kb(n_entries)
    queries = synthetic_queries(n_queries)
    n_docs = sum(len(e.questions) + 1 for e in kb.entries)
    result: dict[str, Any] = {"entries": n_entries, "question_documents": n_docs, "queries": n_queries,
                              "p95_target_ms": P95_TARGET_MS, "engines": {}}
    for name, make in ENGINES.items():
        engine = make(kb)
        started = time.perf_counter()
        engine.build()
        build_s = time.perf_counter() - started
        engine.search("ウォームアップ")
        latencies = []
        for query in queries:
            started = time.perf_counter()
            engine.search(query, top=5)
            latencies.append((time.perf_counter() - started) * 1000)
        result["engines"][name] = {
            "build_s": round(build_s, 2),
            "p50_ms": round(_percentile(latencies, 0.50), 2),
            "p95_ms": round(_percentile(latencies, 0.95), 2),
            "max_ms": round(max(latencies), 2),
        }
    return result


# --------------------------------------------------------------------------- tuning protocol


def tuning_splits(kb: KnowledgeBase) -> list[tuple[str, KnowledgeBase, list[dict[str, Any]]]]:
    """(name, index, queries) splits built from ``knowledge/``'s own questions (see module docstring)."""
    splits = []
    folds = 4
    for f in range(folds):
        queries = [{"query": q, "relevant": [e.id]} for e in kb.entries
                   for j, q in enumerate(e.questions) if j % folds == f]
        splits.append(("cv", _cut(kb, lambda i, e, f=f: {j for j in range(len(e.questions)) if j % folds != f}),
                       queries))
    for f in range(2):
        kept = {f * 10, f * 10 + 1}
        queries = [{"query": q, "relevant": [e.id]} for e in kb.entries
                   for j, q in enumerate(e.questions) if j % 3 == f and j not in kept]
        splits.append(("sparse", _cut(kb, lambda i, e, kept=kept: kept), queries))
    rng = random.Random(7)
    sizes = (1, 2, 3, 5, 10, 20, 40, 60)
    for f in range(2):
        keep: dict[int, set[int]] = {}
        queries = []
        for i, e in enumerate(kb.entries):
            order = list(range(len(e.questions)))
            rng.shuffle(order)
            keep[i] = set(order[:sizes[(i + f * 3) % len(sizes)]])
            queries += [{"query": q, "relevant": [e.id]} for j, q in enumerate(e.questions)
                        if j not in keep[i] and j % 3 == f]
        splits.append(("mixed", _cut(kb, lambda i, e, keep=keep: keep[i]), queries))
    return splits


def tune(kb: KnowledgeBase) -> list[dict[str, Any]]:
    """The grid the defaults were chosen on: hit@1 / MRR per split, pooled over folds."""
    splits = tuning_splits(kb)
    rows = []
    grid = [(v, e) for v in (0.0, 0.2, 0.4, 0.6) for e in (0.0, 0.5, 0.8, 1.0)]
    for vector_weight, entry_weight in grid:
        lexical = (1 - vector_weight) / 2
        config = SearchConfig(word_weight=lexical, reading_weight=lexical, vector_weight=vector_weight,
                              entry_weight=entry_weight)
        pooled: dict[str, dict[str, float]] = {}
        for split, index_kb, queries in splits:
            scores = eval_search(FaqSearch(index_kb, SYNONYMS, config), queries)
            bucket = pooled.setdefault(split, {"hit@1": 0.0, "mrr": 0.0, "n": 0})
            bucket["hit@1"] += scores["hit@1"] * scores["queries"]
            bucket["mrr"] += scores["mrr"] * scores["queries"]
            bucket["n"] += scores["queries"]
        row = {"vector_weight": vector_weight, "entry_weight": entry_weight}
        for split, bucket in pooled.items():
            row[f"{split}_hit@1"] = round(bucket["hit@1"] / bucket["n"], 3)
            row[f"{split}_mrr"] = round(bucket["mrr"] / bucket["n"], 3)
        rows.append(row)
        print("  " + "  ".join(f"{k}={v}" for k, v in row.items()), flush=True)
    return rows


# --------------------------------------------------------------------------- report


def _quality_table(title: str, scores: dict[str, dict[str, float]]) -> str:
    lines = [f"### {title}", "", "| エンジン | " + " | ".join(METRICS) + " |", "|---" * (len(METRICS) + 1) + "|"]
    for name, row in scores.items():
        lines.append(f"| {name} | " + " | ".join(f"{row[m]:.3f}" for m in METRICS) + " |")
    return "\n".join(lines)


def report(results: dict[str, Any]) -> str:
    """Markdown tables of one run."""
    q = results["quality"]
    parts = [
        _quality_table(f"品質: knowledge/ 全体（保留クエリ {q['queries']} 件）", q["full"]),
        _quality_table("品質: 各エントリをタイトル + 質問2件に削った knowledge/（取り込み直後の想定）", q["sparse_2q"]),
        "### スコアの目安（1位のスコア）\n\n| エンジン | 保留クエリ 中央値 | 保留クエリ 下位10% | 無関係な質問 中央値 | 無関係な質問 最大 |\n"
        "|---|---|---|---|---|\n" + "\n".join(
            f"| {n} | {r['held_out_median']:.3f} | {r['held_out_p10']:.3f} | {r['unrelated_median']:.3f} | "
            f"{r['unrelated_max']:.3f} |" for n, r in q["unrelated_top_score"].items()),
    ]
    s = results["speed"]
    lines = [f"### 速度: 合成ナレッジ {s['entries']} エントリ（質問文書 {s['question_documents']} 件）、"
             f"{s['queries']} クエリ、目標 p95 ≤ {s['p95_target_ms']:g} ms", "",
             "| エンジン | 索引作成 (s) | p50 (ms) | p95 (ms) | 最大 (ms) | 目標 |", "|---|---|---|---|---|---|"]
    for name, row in s["engines"].items():
        ok = "達成" if row["p95_ms"] <= s["p95_target_ms"] else "未達"
        lines.append(f"| {name} | {row['build_s']:.2f} | {row['p50_ms']:.2f} | {row['p95_ms']:.2f} | "
                     f"{row['max_ms']:.2f} | {ok} |")
    parts.append("\n".join(lines))
    if "vector_load_s" in results:
        parts.append(f"GiNZA ベクトルの読み込み（初回のみ）: {results['vector_load_s']:.2f} s")
    return "\n\n".join(parts)


def main() -> None:
    """Parse the arguments, run, print and save."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=2000, help="entries of the synthetic knowledge base")
    parser.add_argument("--queries", type=int, default=500, help="queries timed per engine")
    parser.add_argument("--tune", action="store_true", help="also print the cross-validation grid of the weights")
    args = parser.parse_args()
    if args.entries < 1 or args.queries < 1:
        parser.error("--entries and --queries must be at least 1")

    from bot.text.vectors import load_static_vectors

    started = time.perf_counter()
    load_static_vectors(SearchConfig().vector_package)
    results: dict[str, Any] = {"versions": _versions(), "config": dataclasses.asdict(SearchConfig()),
                               "vector_load_s": round(time.perf_counter() - started, 2)}
    kb = load_knowledge(KNOWLEDGE)
    print("品質を測定中…", flush=True)
    results["quality"] = quality(kb)
    print("速度を測定中…", flush=True)
    results["speed"] = speed(args.entries, args.queries)
    if args.tune:
        print("重みの交差検証（knowledge/ の質問のみ）…", flush=True)
        results["tuning"] = tune(kb)
    print()
    print(report(results))
    OUT.mkdir(parents=True, exist_ok=True)
    RESULT_FILE.write_text(json.dumps(results, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(f"\n結果: {RESULT_FILE.relative_to(PROJECT_ROOT)}")
    slow = [n for n, r in results["speed"]["engines"].items() if r["p95_ms"] > P95_TARGET_MS]
    if slow:
        print(f"!! p95 が目標（{P95_TARGET_MS:g} ms）を超えました: {', '.join(slow)}", file=sys.stderr)


if __name__ == "__main__":
    main()
